// virtio-net device model (VirtIO 1.2 section 5.1): one port of the backend domain's
// learning switch (switch.ts). receiveq (0) holds buffers the driver posted, filled with
// frames the switch sends this port; transmitq (1) carries the driver's frames, each
// checked here before the switch sees it. Everything in a transmit chain is written by
// the guest: one early return per rule, each counted, and the chain is always returned.
//
// Features: MAC (the config address, assigned by the toolstack from the policy), STATUS
// (link state; a change raises the config interrupt), MTU (1500, enforced), CSUM (the
// driver may leave a partial checksum; the switch completes it before any receiver sees
// the frame, so receivers never need GUEST_CSUM). Not offered: MRG_RXBUF (every receive
// buffer must hold a whole frame, RX_BUFFER_SIZE), GSO, control queue, multiqueue.
import type { DeviceChain, DeviceEnv, VirtioDeviceModel } from "../types.ts";
import { VIRTIO_ID_NET } from "../types.ts";
import type { RateLimit } from "../../mac/index.ts";
import { TokenBucket } from "../../mac/ratelimit.ts";
import * as N from "./layout.ts";
import type { NetSwitch, SwitchPort } from "./switch.ts";

export interface NetOptions {
  /** The backend domain's switch this port joins. */
  switch: NetSwitch;
  /** The device's address (config `mac`): the first allowed one, or one the toolstack assigned. */
  mac: string;
  /** The pair's `allowed_macs`; absent = any source address (no rule). */
  allowedMacs?: readonly string[];
  /** The pair's rate limit, applied per transmitted frame whatever the transport. */
  rate?: RateLimit;
  /** For audit details and stats: e.g. `d3/net1`. */
  name?: string;
}

/** Counters of one port; every frame a driver sends ends in exactly one of tx* or a drop. */
export interface NetPortStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Source address not allowed for this guest (audited). */
  spoofed: number;
  /** Transmit chain longer than header + MAX_FRAME. */
  oversized: number;
  /** Transmit chain shorter than header + Ethernet header. */
  undersized: number;
  /** virtio_net_hdr asks for GSO, unknown flags, or a checksum outside the frame. */
  badHeader: number;
  /** A broadcast or multicast source address. */
  badSource: number;
  /** Over the pair's rate. */
  rateLimited: number;
  /** Sent while the link was down. */
  linkDown: number;
  /** A frame for this port found no receive buffer posted: dropped (the buffers stay as they were). */
  rxNoBuffer: number;
  /** The next receive buffer is smaller than the frame: frame dropped, buffer kept. */
  rxTooSmall: number;
  /** Receive-queue chains with readable parts (not receive buffers): returned empty. */
  rxBadBuffer: number;
}

const QUEUE_SIZE = 256;

export class NetModel implements VirtioDeviceModel, SwitchPort {
  readonly type = "net" as const;
  readonly virtioId = VIRTIO_ID_NET;
  readonly numQueues = 2;
  readonly maxQueueSize = QUEUE_SIZE;
  readonly features = N.VIRTIO_NET_F_MAC | N.VIRTIO_NET_F_STATUS | N.VIRTIO_NET_F_MTU | N.VIRTIO_NET_F_CSUM;
  readonly configSize = N.CONFIG_SIZE;
  readonly name: string;
  readonly mac: number;
  readonly stats: NetPortStats = {
    txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, spoofed: 0, oversized: 0, undersized: 0, badHeader: 0,
    badSource: 0, rateLimited: 0, linkDown: 0, rxNoBuffer: 0, rxTooSmall: 0, rxBadBuffer: 0,
  };
  private allowed: ReadonlySet<number> | null;
  private allowedText: string;
  private readonly sw: NetSwitch;
  private bucket: TokenBucket | null;
  private env: DeviceEnv | null = null;
  private linkUp = true;
  private revokedWhy: string | null = null;
  /** Receive buffers posted by the driver, oldest first. */
  private readonly posted: DeviceChain[] = [];
  /** One transmitted chain's bytes: header then frame; receivers copy out of it. */
  private readonly txBuf = new Uint8Array(N.NET_HDR_SIZE + N.MAX_FRAME);
  private readonly config = new Uint8Array(N.CONFIG_SIZE);

  constructor(opts: NetOptions) {
    const mac = N.macToNumber(opts.mac);
    if (Number.isNaN(mac) || N.isGroup(mac)) throw new RangeError(`net device address ${opts.mac} is not a unicast MAC`);
    this.mac = mac;
    this.name = opts.name ?? `net ${opts.mac}`;
    this.sw = opts.switch;
    this.allowed = null;
    this.allowedText = "";
    this.bucket = null;
    this.setRules(opts.allowedMacs, opts.rate);
    N.writeMac(this.config, N.CFG_MAC, mac);
    new DataView(this.config.buffer).setUint16(N.CFG_MAX_VIRTQUEUE_PAIRS, 1, true);
    new DataView(this.config.buffer).setUint16(N.CFG_MTU, N.MTU, true);
    this.writeStatus();
    if (!this.sw.addPort(this, mac)) throw new RangeError(`address ${opts.mac} is already used by another port of ${this.sw.name}`);
  }

  /** Link up and a driver serving: the switch sends frames here. */
  get up(): boolean {
    return this.linkUp && this.env !== null;
  }

  get allowedMacs(): ReadonlySet<number> | null {
    return this.allowed;
  }

  /** Receive buffers posted and not filled. */
  get postedBuffers(): number {
    return this.posted.length;
  }

  /** Replaces the address rule and rate (policy reload). The device's own address stays. */
  setRules(allowedMacs: readonly string[] | undefined, rate: RateLimit | undefined): void {
    this.allowed = allowedMacs ? new Set(allowedMacs.map(N.macToNumber)) : null;
    this.allowedText = allowedMacs ? `[${allowedMacs.join(" ")}]` : "";
    if (!rate) this.bucket = null;
    else if (this.bucket?.rate !== rate) this.bucket = new TokenBucket(rate, performance.now());
  }

  /** Link state (VIRTIO_NET_S_LINK_UP); a change is signalled through the config interrupt. */
  setLink(up: boolean): void {
    if (this.revokedWhy && up) return; // a revoked port stays down
    if (up === this.linkUp) return;
    this.linkUp = up;
    this.writeStatus();
    this.env?.configChanged();
  }

  get link(): boolean {
    return this.linkUp;
  }

  /** The policy no longer has this pair: link down for good, off the switch. */
  revoke(why: string): void {
    if (this.revokedWhy) return;
    this.setLink(false);
    this.revokedWhy = why;
    this.sw.removePort(this);
  }

  get revoked(): string | null {
    return this.revokedWhy;
  }

  /** Leaves the switch (the device pair is gone). */
  close(): void {
    this.sw.removePort(this);
    this.reset();
  }

  readConfig(offset: number, length: number): Uint8Array | null {
    if (offset < 0 || length < 0 || offset + length > N.CONFIG_SIZE) return null;
    return this.config.slice(offset, offset + length);
  }

  /** Nothing is driver-writable: with VERSION_1 the address is the device's (5.1.4.1), and it is the policy's. */
  writeConfig(): boolean {
    return false;
  }

  activate(env: DeviceEnv): void {
    this.env = env;
  }

  reset(): void {
    this.env = null;
    this.posted.length = 0; // the transport fails or forgets the chains with the queues
  }

  queueNotify(queue: number): void {
    const q = this.env?.queues[queue];
    if (!q) return;
    if (queue === N.RXQ) {
      for (let c = q.pop(); c; c = q.pop()) {
        if (c.readableLength > 0) {
          this.stats.rxBadBuffer++;
          q.push(c, 0);
        } else this.posted.push(c);
      }
      q.notifyDriver();
    } else if (queue === N.TXQ) {
      // Each pop consumes one available chain: at most queue-size iterations per pass.
      for (let c = q.pop(); c; c = q.pop()) {
        this.transmit(c);
        q.push(c, 0);
      }
      q.notifyDriver();
      this.sw.flush();
    }
  }

  /** SwitchPort: one frame at buf[N.NET_HDR_SIZE, + frameLen) into the oldest posted buffer. */
  receive(buf: Uint8Array, frameLen: number): void {
    const c = this.posted[0];
    if (!c || !this.env) {
      this.stats.rxNoBuffer++;
      return;
    }
    const total = N.NET_HDR_SIZE + frameLen;
    if (c.writableLength < total) {
      this.stats.rxTooSmall++;
      return;
    }
    this.posted.shift();
    // The receive header: no offloads (the checksum is complete), one buffer (5.1.6.4: num_buffers 1 without MRG_RXBUF).
    buf.fill(0, 0, N.NET_HDR_SIZE);
    buf[N.HDR_NUM_BUFFERS] = 1;
    c.write(0, buf.subarray(0, total));
    this.env.queues[N.RXQ].push(c, total);
    this.stats.rxFrames++;
    this.stats.rxBytes += frameLen;
  }

  flush(): void {
    this.env?.queues[N.RXQ].notifyDriver();
  }

  private transmit(c: DeviceChain): void {
    const st = this.stats;
    const total = c.readableLength;
    if (total > N.NET_HDR_SIZE + N.MAX_FRAME) return void st.oversized++;
    if (total < N.NET_HDR_SIZE + N.MIN_FRAME) return void st.undersized++;
    const buf = this.txBuf;
    c.read(0, buf.subarray(0, total)); // read once: the guest may change its buffer meanwhile
    const len = total - N.NET_HDR_SIZE;
    const flags = buf[N.HDR_FLAGS];
    // No GSO was offered; NEEDS_CSUM only with CSUM negotiated; other flags are receive-only.
    if (buf[N.HDR_GSO_TYPE] !== N.VIRTIO_NET_HDR_GSO_NONE || (flags & ~N.VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) return void st.badHeader++;
    if (flags & N.VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      if (!this.env || (this.env.features & N.VIRTIO_NET_F_CSUM) === 0n) return void st.badHeader++;
      const start = buf[N.HDR_CSUM_START] | (buf[N.HDR_CSUM_START + 1] << 8);
      const off = buf[N.HDR_CSUM_OFFSET] | (buf[N.HDR_CSUM_OFFSET + 1] << 8);
      if (!completeChecksum(buf, N.NET_HDR_SIZE, len, start, off)) return void st.badHeader++;
    }
    const src = N.readMac(buf, N.NET_HDR_SIZE + 6);
    const dst = N.readMac(buf, N.NET_HDR_SIZE);
    if (N.isGroup(src)) return void st.badSource++;
    if ((this.allowed && !this.allowed.has(src)) || this.sw.claimedByOther(src, this)) {
      st.spoofed++;
      const why = this.allowed?.has(src) ? "it is another device's address" : `not in allowed_macs ${this.allowedText}`;
      this.env?.deny("net_src_mac", `${this.name}: frame from ${N.numberToMac(src)} to ${N.numberToMac(dst)} dropped: ${why}`);
      return;
    }
    if (!this.linkUp) return void st.linkDown++;
    if (this.bucket && !this.bucket.take(performance.now())) return void st.rateLimited++;
    st.txFrames++;
    st.txBytes += len;
    this.sw.forward(this, src, dst, buf, len);
  }

  private writeStatus(): void {
    new DataView(this.config.buffer).setUint16(N.CFG_STATUS, this.linkUp ? N.VIRTIO_NET_S_LINK_UP : 0, true);
  }
}

/**
 * Completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM, 5.1.6.2): the 16-bit ones'
 * complement sum of frame[start, end), which includes the pseudo-header sum the driver
 * left in the field, complemented and stored at start + off (a zero result is sent as
 * 0xFFFF, as Linux's skb_checksum_help does). False when the field is not inside the frame.
 */
export function completeChecksum(buf: Uint8Array, frameAt: number, len: number, start: number, off: number): boolean {
  // start, off < 2^16 and len <= MAX_FRAME: the sums cannot overflow.
  if (start >= len || start + off + 2 > len) return false;
  let sum = 0;
  const end = frameAt + len;
  let i = frameAt + start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const csum = ~sum & 0xffff || 0xffff;
  const at = frameAt + start + off;
  buf[at] = csum >>> 8;
  buf[at + 1] = csum & 0xff;
  return true;
}
