// virtio-vsock device model (VirtIO 1.2 section 5.10): one guest's port on the backend
// domain's vsock hub (hub.ts), stream sockets only (no feature bits: F_STREAM is implied).
// rx (0) holds buffers the driver posted, filled with packets the hub queued for this
// CID (a RW payload larger than a buffer is split over several); tx (1) carries the
// driver's packets, each checked here before the hub sees it; event (2) holds buffers
// for TRANSPORT_RESET. Every header field is written by the guest: one early return per
// rule, each counted, and the chain is always returned.
import type { DeviceChain, DeviceEnv, VirtioDeviceModel } from "../types.ts";
import { VIRTIO_ID_VSOCK } from "../types.ts";
import * as V from "./layout.ts";
import type { HubPort, VsockHub } from "./hub.ts";

export interface VsockOptions {
  hub: VsockHub;
  /** The guest's CID, assigned by the toolstack (>= 3). */
  cid: number;
  /** The pair's `allowed_ports`: destination ports the guest may connect to; absent = any. */
  allowedPorts?: readonly number[];
  name?: string;
}

/** Packets (and payload bytes) waiting for this guest's receive buffers, at most. */
export const MAX_PENDING_PACKETS = 4096;
export const MAX_PENDING_BYTES = 4 << 20;

export interface VsockPortStats {
  txPackets: number;
  rxPackets: number;
  /** Headers that break 5.10.6: short, len not matching the chain, unknown op or type, bad flags, payload on a control op. */
  malformed: number;
  /** src_cid other than the assigned CID (audited). */
  spoofed: number;
  /** Receive-queue chains that cannot hold a header, or carry readable parts: returned empty. */
  rxBadBuffer: number;
  /** Sent after the policy removed the pair. */
  revoked: number;
}

interface Queued {
  hdr: Uint8Array;
  payload: Uint8Array | null;
  /** Payload bytes already delivered (a payload may span several receive buffers). */
  off: number;
}

export class VsockModel implements VirtioDeviceModel, HubPort {
  readonly type = "vsock" as const;
  readonly virtioId = VIRTIO_ID_VSOCK;
  readonly numQueues = 3;
  readonly maxQueueSize = 256;
  readonly features = 0n;
  readonly configSize = V.CONFIG_SIZE;
  readonly cid: number;
  readonly name: string;
  readonly stats: VsockPortStats = { txPackets: 0, rxPackets: 0, malformed: 0, spoofed: 0, rxBadBuffer: 0, revoked: 0 };
  private allowed: ReadonlySet<number> | null = null;
  private readonly hub: VsockHub;
  private env: DeviceEnv | null = null;
  private revokedWhy: string | null = null;
  private readonly posted: DeviceChain[] = [];
  private readonly events: DeviceChain[] = [];
  private resetEventDue = false;
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private readonly hdrBuf = new Uint8Array(V.HDR_SIZE);
  private readonly hdrView = new DataView(this.hdrBuf.buffer);
  private readonly h = V.newHeader();

  constructor(opts: VsockOptions) {
    if (!Number.isInteger(opts.cid) || opts.cid < V.FIRST_GUEST_CID || opts.cid >= V.VMADDR_ANY) throw new RangeError(`vsock CID ${opts.cid} is not a guest CID`);
    this.cid = opts.cid;
    this.name = opts.name ?? `vsock cid ${opts.cid}`;
    this.hub = opts.hub;
    this.setRules(opts.allowedPorts);
    if (!this.hub.addPort(this)) throw new RangeError(`CID ${opts.cid} is already on ${this.hub.name}`);
  }

  get allowedPorts(): ReadonlySet<number> | null {
    return this.allowed;
  }

  get active(): boolean {
    return this.env !== null && this.revokedWhy === null;
  }

  get revoked(): string | null {
    return this.revokedWhy;
  }

  /** Packets waiting for receive buffers. */
  get queued(): number {
    return this.queue.length;
  }

  /** Replaces `allowed_ports` (policy reload); connections to ports no longer allowed are reset. */
  setRules(allowedPorts: readonly number[] | undefined): void {
    this.allowed = allowedPorts ? new Set(allowedPorts) : null;
    if (this.hub?.connectionsOf(this)) this.hub.recheck(this);
  }

  /** The policy no longer has this pair: connections reset on both ends, the CID leaves the hub. */
  revoke(why: string): void {
    if (this.revokedWhy) return;
    this.revokedWhy = why;
    this.hub.revoke(this);
  }

  /** Leaves the hub (the device pair is gone); connections are reset. */
  close(): void {
    this.hub.removePort(this);
    this.reset();
  }

  readConfig(offset: number, length: number): Uint8Array | null {
    if (offset < 0 || length < 0 || offset + length > V.CONFIG_SIZE) return null;
    const cfg = new Uint8Array(V.CONFIG_SIZE);
    new DataView(cfg.buffer).setUint32(0, this.cid, true); // le64 guest_cid; CIDs are below 2^32
    return cfg.subarray(offset, offset + length);
  }

  writeConfig(): boolean {
    return false; // guest_cid is the toolstack's
  }

  activate(env: DeviceEnv): void {
    this.env = env;
  }

  /** Driver or device reset: every connection of this CID ends (peers get RST). */
  reset(): void {
    this.env = null;
    this.posted.length = 0;
    this.events.length = 0;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.hub.portReset(this);
  }

  queueNotify(queue: number): void {
    const q = this.env?.queues[queue];
    if (!q) return;
    if (queue === V.RXQ) {
      for (let c = q.pop(); c; c = q.pop()) {
        // A buffer must hold a header and at least one payload byte, or splitting could not progress.
        if (c.readableLength > 0 || c.writableLength <= V.HDR_SIZE) {
          this.stats.rxBadBuffer++;
          q.push(c, 0);
        } else this.posted.push(c);
      }
      q.notifyDriver();
      this.deliver();
    } else if (queue === V.EVENTQ) {
      for (let c = q.pop(); c; c = q.pop()) {
        if (c.readableLength > 0 || c.writableLength < V.EVENT_SIZE) {
          this.stats.rxBadBuffer++;
          q.push(c, 0);
        } else this.events.push(c);
      }
      q.notifyDriver();
      if (this.resetEventDue) this.transportReset();
    } else if (queue === V.TXQ) {
      for (let c = q.pop(); c; c = q.pop()) {
        this.transmit(c);
        q.push(c, 0);
      }
      q.notifyDriver();
      this.hub.flush();
    }
  }

  // --- HubPort ----------------------------------------------------------------------

  enqueue(hdr: Uint8Array, payload: Uint8Array | null): boolean {
    const n = payload?.length ?? 0;
    if (this.queue.length >= MAX_PENDING_PACKETS || this.queuedBytes + n > MAX_PENDING_BYTES) return false;
    this.queue.push({ hdr, payload, off: 0 });
    this.queuedBytes += n;
    return true;
  }

  deliver(): void {
    const env = this.env;
    if (!env) return;
    const q = env.queues[V.RXQ];
    let any = false;
    // Each pass fills one posted buffer: at most posted.length passes.
    while (this.posted.length && this.queue.length) {
      const c = this.posted.shift()!;
      const p = this.queue[0];
      const left = (p.payload?.length ?? 0) - p.off;
      const n = Math.min(left, c.writableLength - V.HDR_SIZE);
      if (n < left || p.off > 0) new DataView(p.hdr.buffer).setUint32(V.H_LEN, n, true); // one piece of a split payload
      c.write(0, p.hdr);
      if (n > 0) c.write(V.HDR_SIZE, p.payload!.subarray(p.off, p.off + n));
      p.off += n;
      if (p.off >= (p.payload?.length ?? 0)) {
        this.queue.shift();
        this.queuedBytes -= p.payload?.length ?? 0;
      }
      q.push(c, V.HDR_SIZE + n);
      this.stats.rxPackets++;
      any = true;
    }
    if (any) q.notifyDriver();
  }

  deny(perm: string, detail: string): void {
    this.env?.deny(perm, detail);
  }

  transportReset(): void {
    const c = this.events.shift();
    if (!c || !this.env) {
      this.resetEventDue = true; // sent when the driver posts an event buffer
      return;
    }
    this.resetEventDue = false;
    const ev = new Uint8Array(V.EVENT_SIZE);
    new DataView(ev.buffer).setUint32(0, V.VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, true);
    c.write(0, ev);
    const q = this.env.queues[V.EVENTQ];
    q.push(c, V.EVENT_SIZE);
    q.notifyDriver();
  }

  // --- transmit ---------------------------------------------------------------------

  private transmit(c: DeviceChain): void {
    const st = this.stats;
    const total = c.readableLength;
    if (total < V.HDR_SIZE) return void st.malformed++;
    c.read(0, this.hdrBuf); // read once: the guest may rewrite its buffer meanwhile
    const h = V.decodeHeader(this.hdrView, 0, this.h);
    if (h.len !== total - V.HDR_SIZE || h.len > V.MAX_PKT_PAYLOAD) return void st.malformed++;
    if (h.op < V.OP_REQUEST || h.op > V.OP_CREDIT_REQUEST) return void st.malformed++;
    if (h.op !== V.OP_RW && h.len !== 0) return void st.malformed++;
    if (h.op === V.OP_SHUTDOWN && (h.flags & ~V.SHUTDOWN_BOTH) !== 0) return void st.malformed++;
    if (h.srcCid !== this.cid) {
      st.spoofed++;
      this.env?.deny("vsock_src_cid", `${this.name}: packet (${V.OP_NAMES[h.op]}) with source CID ${Number.isNaN(h.srcCid) ? "> 2^32" : h.srcCid} dropped: the device's CID is ${this.cid}`);
      return;
    }
    if (this.revokedWhy) return void st.revoked++;
    if (h.type !== V.VIRTIO_VSOCK_TYPE_STREAM) {
      st.malformed++;
      // An unsupported socket type is refused as Linux refuses it: RST (never answer an RST).
      if (h.op !== V.OP_RST) this.hub.refuse(this, h);
      return;
    }
    let payload: Uint8Array | null = null;
    if (h.len > 0) {
      payload = new Uint8Array(h.len); // the hub may keep it until the receiver has buffers
      c.read(V.HDR_SIZE, payload);
    }
    st.txPackets++;
    this.hub.fromGuest(this, h, payload);
  }
}
