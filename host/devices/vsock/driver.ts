// virtio-vsock guest driver (for tests, the bench and TypeScript guests): stream sockets
// with credit-based flow control (5.10.6.3), over a GuestVirtioDevice.
//
// Completions are handled in a microtask after the used-buffer callback
// (DeferredCompletions): packets, reposts and freed transmit slots. Packets it sends wait in an outbox for a
// transmit slot; data waits for the peer's credit before it enters the outbox, so the
// outbox holds at most the peers' advertised buffers plus control packets.
import { DeferredCompletions, type Completion } from "../completions.ts";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_RING_PACKED, type DriverQueue, type GuestVirtioDevice } from "../types.ts";
import * as V from "./layout.ts";
import { CreditStream, VsockError } from "./credit-stream.ts";

export interface VsockDriverOptions {
  /** Receive buffer each socket advertises (buf_alloc). Default 256 KiB, as Linux. */
  bufAlloc?: number;
  /** Payload bytes per receive buffer posted. Default 16 KiB. */
  rxPayload?: number;
  /** Connect timeout. Default 2 s, as Linux. */
  connectTimeoutMs?: number;
  /** Ask for packed virtqueues (VIRTIO_F_RING_PACKED) when the transport offers them. */
  packed?: boolean;
}

const QUEUE_SIZE = 128;
const RX_BUFFERS = 64;
const TX_SLOTS = 64;
/** Largest payload of one transmitted packet. */
const TX_PAYLOAD = 16 << 10;
const EVENT_BUFFERS = 4;
const FIRST_EPHEMERAL = 49152;

interface Packet {
  h: V.VsockHeader;
  payload: Uint8Array | null;
}

export class VsockDriver {
  readonly dev: GuestVirtioDevice;
  cid = 0;
  features = 0n;
  readonly stats = { rxPackets: 0, txPackets: 0, rxMalformed: 0, resets: 0 };
  readonly bufAlloc: number;
  private readonly rxPayload: number;
  private readonly connectTimeoutMs: number;
  private readonly packed: boolean;
  private rx: DriverQueue | null = null;
  private tx: DriverQueue | null = null;
  private ev: DriverQueue | null = null;
  private rxBase = 0;
  private txBase = 0;
  private evBase = 0;
  private readonly freeTx: number[] = [];
  private readonly outbox: Packet[] = [];
  private readonly rxDone: Completion[] = [];
  private readonly txDone: Completion[] = [];
  private readonly evDone: Completion[] = [];
  private readonly deferred = new DeferredCompletions(() => this.process());
  private goneSeen = false;
  /** Sockets by `localPort:peerCid:peerPort`. */
  private readonly sockets = new Map<string, VsockSocket>();
  private readonly listeners = new Map<number, (s: VsockSocket) => void>();
  private readonly resetListeners: Array<() => void> = [];
  private nextPort = FIRST_EPHEMERAL;
  private memView: Uint8Array;
  private readonly h = V.newHeader();

  constructor(dev: GuestVirtioDevice, opts: VsockDriverOptions = {}) {
    this.dev = dev;
    this.bufAlloc = opts.bufAlloc ?? 256 << 10;
    this.rxPayload = opts.rxPayload ?? 16 << 10;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.packed = opts.packed ?? false;
    this.memView = new Uint8Array(dev.memory.buffer);
  }

  private get mem(): Uint8Array {
    if (this.memView.buffer !== this.dev.memory.buffer) this.memView = new Uint8Array(this.dev.memory.buffer);
    return this.memView;
  }

  async init(): Promise<void> {
    this.features = await this.dev.negotiate(VIRTIO_F_EVENT_IDX | (this.packed ? VIRTIO_F_RING_PACKED : 0n));
    const cfg = await this.dev.readConfig(0, V.CONFIG_SIZE);
    this.cid = new DataView(cfg.buffer, cfg.byteOffset, 8).getUint32(0, true);
    this.rx = await this.dev.setupQueue(V.RXQ, QUEUE_SIZE, this.deferred.into(this.rxDone));
    this.tx = await this.dev.setupQueue(V.TXQ, QUEUE_SIZE, this.deferred.into(this.txDone));
    this.ev = await this.dev.setupQueue(V.EVENTQ, 8, this.deferred.into(this.evDone));
    await this.dev.driverOk();
    const rxSize = V.HDR_SIZE + this.rxPayload;
    this.rxBase = this.dev.alloc(RX_BUFFERS * rxSize);
    this.txBase = this.dev.alloc(TX_SLOTS * (V.HDR_SIZE + TX_PAYLOAD));
    this.evBase = this.dev.alloc(EVENT_BUFFERS * V.EVENT_SIZE);
    for (let i = 0; i < TX_SLOTS; i++) this.freeTx.push(i);
    for (let i = 0; i < RX_BUFFERS; i++) this.postRx(i);
    for (let i = 0; i < EVENT_BUFFERS; i++) this.postEvent(i);
    this.rx.kick();
    this.ev.kick();
  }

  /** Resets the device (every socket fails with ECONNRESET) and gives the driver's buffers back to the guest's heap. */
  async close(): Promise<void> {
    if (!this.rx) return;
    this.rx = this.tx = this.ev = null;
    this.outbox.length = 0;
    if (!this.dev.gone) await this.dev.reset().catch(() => {});
    this.transportReset();
    this.dev.free(this.rxBase, RX_BUFFERS * (V.HDR_SIZE + this.rxPayload));
    this.dev.free(this.txBase, TX_SLOTS * (V.HDR_SIZE + TX_PAYLOAD));
    this.dev.free(this.evBase, EVENT_BUFFERS * V.EVENT_SIZE);
  }

  /** Connects to (cid, port); rejects with VsockError ECONNREFUSED (RST) or ETIMEDOUT. */
  connect(cid: number, port: number): Promise<VsockSocket> {
    if (this.dev.gone) return Promise.reject(new VsockError("ECONNRESET", "device is gone"));
    const s = new VsockSocket(this, this.ephemeral(), cid, port);
    this.sockets.set(s.key, s);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (s.state !== "connecting") return;
        this.forget(s);
        this.send(s, V.OP_RST, 0, null);
        reject(new VsockError("ETIMEDOUT", `CID ${cid} port ${port} did not answer`));
      }, this.connectTimeoutMs);
      s.onConnect = (err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(s);
      };
      this.send(s, V.OP_REQUEST, 0, null);
    });
  }

  /** Accepts connections to `port` (any peer); returns the function that stops listening. */
  listen(port: number, onAccept: (s: VsockSocket) => void): () => void {
    this.listeners.set(port, onAccept);
    return () => {
      if (this.listeners.get(port) === onAccept) this.listeners.delete(port);
    };
  }

  /** Called when the device reports TRANSPORT_RESET (every connection is gone). */
  onTransportReset(cb: () => void): void {
    this.resetListeners.push(cb);
  }

  /** Open sockets (connecting, connected or half closed). */
  get socketCount(): number {
    return this.sockets.size;
  }

  // --- used by VsockSocket --------------------------------------------------------

  /** @internal queues a packet on socket `s` with its current credit. */
  send(s: VsockSocket, op: number, flags: number, payload: Uint8Array | null): void {
    const h: V.VsockHeader = {
      srcCid: this.cid, dstCid: s.peerCid, srcPort: s.localPort, dstPort: s.peerPort, len: payload?.length ?? 0,
      type: V.VIRTIO_VSOCK_TYPE_STREAM, op, flags, bufAlloc: this.bufAlloc, fwdCnt: s.fwdCnt,
    };
    s.advertisedFwd = s.fwdCnt;
    this.outbox.push({ h, payload });
    this.pump();
  }

  /** @internal */
  forget(s: VsockSocket): void {
    if (this.sockets.get(s.key) === s) this.sockets.delete(s.key);
  }

  /** @internal the largest payload one packet carries. */
  get maxPayload(): number {
    return TX_PAYLOAD;
  }

  // --- queues -------------------------------------------------------------------------

  /** Moves packets from the outbox into free transmit slots. */
  private pump(): void {
    if (!this.tx || this.dev.gone) return;
    let added = false;
    while (this.outbox.length && this.freeTx.length) {
      const p = this.outbox.shift()!;
      const slot = this.freeTx.pop()!;
      const at = this.txBase + slot * (V.HDR_SIZE + TX_PAYLOAD);
      const mem = this.mem;
      V.encodeHeader(new DataView(mem.buffer), at, p.h);
      if (p.payload) mem.set(p.payload, at + V.HDR_SIZE);
      if (!this.tx.add([{ gpa: at, len: V.HDR_SIZE + p.h.len, writable: false }], slot)) {
        this.freeTx.push(slot);
        this.outbox.unshift(p);
        break;
      }
      this.stats.txPackets++;
      added = true;
    }
    if (added) this.tx.kick();
  }

  private postRx(i: number): boolean {
    const size = V.HDR_SIZE + this.rxPayload;
    return this.rx!.add([{ gpa: this.rxBase + i * size, len: size, writable: true }], i);
  }

  private postEvent(i: number): boolean {
    return this.ev!.add([{ gpa: this.evBase + i * V.EVENT_SIZE, len: V.EVENT_SIZE, writable: true }], i);
  }

  private process(): void {
    if (!this.rx) return; // closed: the buffers are the heap's again
    for (const c of this.txDone.splice(0)) this.freeTx.push(c.token);
    const gone = this.dev.gone;
    let reposted = false;
    for (const c of this.rxDone.splice(0)) {
      if (c.error || gone) continue;
      this.received(c.token, c.written);
      reposted = this.postRx(c.token) || reposted;
    }
    if (reposted) this.rx!.kick();
    let evReposted = false;
    for (const c of this.evDone.splice(0)) {
      if (c.error || gone) continue;
      if (c.written >= V.EVENT_SIZE && new DataView(this.mem.buffer).getUint32(this.evBase + c.token * V.EVENT_SIZE, true) === V.VIRTIO_VSOCK_EVENT_TRANSPORT_RESET) {
        this.transportReset();
      }
      evReposted = this.postEvent(c.token) || evReposted;
    }
    if (evReposted) this.ev!.kick();
    if (gone && !this.goneSeen) {
      this.goneSeen = true;
      this.transportReset();
    } else if (!gone) this.pump();
  }

  /** Every socket fails (ECONNRESET); connects in progress are refused. */
  private transportReset(): void {
    this.stats.resets++;
    for (const s of [...this.sockets.values()]) s.reset(new VsockError("ECONNRESET", "transport reset"));
    this.sockets.clear();
    for (const l of this.resetListeners) l();
  }

  /** One received packet (the backend is another domain: its header is checked too). */
  private received(i: number, written: number): void {
    const at = this.rxBase + i * (V.HDR_SIZE + this.rxPayload);
    const mem = this.mem;
    if (written < V.HDR_SIZE || written > V.HDR_SIZE + this.rxPayload) return void this.stats.rxMalformed++;
    const h = V.decodeHeader(new DataView(mem.buffer), at, this.h);
    if (h.len !== written - V.HDR_SIZE || h.dstCid !== this.cid || h.type !== V.VIRTIO_VSOCK_TYPE_STREAM) return void this.stats.rxMalformed++;
    this.stats.rxPackets++;
    const s = this.sockets.get(`${h.dstPort}:${h.srcCid}:${h.srcPort}`);
    if (!s) return this.noSocket(h);
    s.peerBufAlloc = h.bufAlloc;
    s.peerFwdCnt = h.fwdCnt;
    switch (h.op) {
      case V.OP_RESPONSE:
        if (s.state === "connecting") s.established();
        else this.resetSocket(s);
        return;
      case V.OP_RST:
        this.forget(s);
        return s.reset(new VsockError(s.state === "connecting" ? "ECONNREFUSED" : "ECONNRESET", `CID ${h.srcCid} port ${h.srcPort} reset the connection`));
      case V.OP_SHUTDOWN:
        s.peerShutdown(h.flags);
        if ((h.flags & V.SHUTDOWN_BOTH) === V.SHUTDOWN_BOTH) {
          this.send(s, V.OP_RST, 0, null); // the peer closed: acknowledge with RST, as Linux does
          this.forget(s);
        }
        return;
      case V.OP_RW:
        if (s.state !== "connected" || !s.data(mem.slice(at + V.HDR_SIZE, at + written))) this.resetSocket(s);
        return;
      case V.OP_CREDIT_UPDATE:
        return s.creditChanged();
      case V.OP_CREDIT_REQUEST:
        return this.send(s, V.OP_CREDIT_UPDATE, 0, null);
      case V.OP_REQUEST:
        return this.resetSocket(s);
      default:
        this.stats.rxMalformed++;
    }
  }

  private noSocket(h: V.VsockHeader): void {
    if (h.op === V.OP_REQUEST) {
      const onAccept = this.listeners.get(h.dstPort);
      if (onAccept) {
        const s = new VsockSocket(this, h.dstPort, h.srcCid, h.srcPort);
        s.peerBufAlloc = h.bufAlloc;
        s.peerFwdCnt = h.fwdCnt;
        s.state = "connected";
        this.sockets.set(s.key, s);
        this.send(s, V.OP_RESPONSE, 0, null);
        onAccept(s);
        return;
      }
    }
    if (h.op === V.OP_RST) return;
    const r = new VsockSocket(this, h.dstPort, h.srcCid, h.srcPort);
    this.send(r, V.OP_RST, 0, null);
  }

  private resetSocket(s: VsockSocket): void {
    this.forget(s);
    this.send(s, V.OP_RST, 0, null);
    s.reset(new VsockError("ECONNRESET", "protocol error"));
  }

  private ephemeral(): number {
    for (;;) {
      const p = this.nextPort;
      this.nextPort = p >= 0xfffffffe ? FIRST_EPHEMERAL : p + 1;
      let used = false;
      for (const s of this.sockets.values()) if (s.localPort === p) used = true;
      if (!used && !this.listeners.has(p)) return p;
    }
  }
}

/** A guest stream socket. */
export class VsockSocket extends CreditStream {
  readonly localPort: number;
  readonly peerCid: number;
  readonly peerPort: number;
  state: "connecting" | "connected" | "closed" = "connecting";
  /** @internal */ fwdCnt = 0;
  /** @internal */ advertisedFwd = 0;
  /** @internal */ peerBufAlloc = 0;
  /** @internal */ peerFwdCnt = 0;
  /** @internal */ onConnect: ((err: VsockError | null) => void) | null = null;
  private readonly drv: VsockDriver;
  private txCnt = 0;
  private sentShutdown = 0;

  constructor(drv: VsockDriver, localPort: number, peerCid: number, peerPort: number) {
    super();
    this.drv = drv;
    this.localPort = localPort;
    this.peerCid = peerCid;
    this.peerPort = peerPort;
  }

  get key(): string {
    return `${this.localPort}:${this.peerCid}:${this.peerPort}`;
  }

  /** No more sending: the peer reads end of stream. */
  shutdown(): void {
    if (this.state !== "connected" || this.sentShutdown & V.SHUTDOWN_SEND) return;
    this.sentShutdown |= V.SHUTDOWN_SEND;
    this.drv.send(this, V.OP_SHUTDOWN, V.SHUTDOWN_SEND, null);
  }

  /** Closes both directions (SHUTDOWN both); the peer answers RST. */
  close(): void {
    if (this.state === "connected") this.drv.send(this, V.OP_SHUTDOWN, V.SHUTDOWN_BOTH, null);
    this.drv.forget(this);
    this.state = "closed";
    this.wake();
  }

  // --- from the driver --------------------------------------------------------------

  /** @internal */
  established(): void {
    this.state = "connected";
    this.onConnect?.(null);
    this.onConnect = null;
  }

  /** @internal false when the peer sent beyond the buffer this side advertised. */
  data(payload: Uint8Array): boolean {
    return this.receive(payload, this.drv.bufAlloc);
  }

  /** @internal the connection was reset (RST, transport reset); a connect in progress is refused. */
  reset(e: VsockError): void {
    if (this.state === "connecting") {
      this.state = "closed";
      this.onConnect?.(e.code === "ECONNRESET" ? new VsockError("ECONNREFUSED", e.message) : e);
      this.onConnect = null;
      return;
    }
    if (this.state === "closed") return; // closed here first: nobody is waiting
    this.fail(e);
  }

  protected credit(): number {
    return this.peerBufAlloc - ((this.txCnt - this.peerFwdCnt) >>> 0);
  }

  protected consumed(n: number): void {
    this.fwdCnt = (this.fwdCnt + n) >>> 0;
    // A peer out of credit has a whole buffer unacknowledged: it always hears of the room.
    if (this.state === "connected" && !this.eof && ((this.fwdCnt - this.advertisedFwd) >>> 0) >= Math.min(this.drv.bufAlloc / 4, 64 << 10)) {
      this.drv.send(this, V.OP_CREDIT_UPDATE, 0, null);
    }
  }

  protected packet(op: number, flags: number, payload: Uint8Array | null): void {
    if (op === V.OP_RW) this.txCnt = (this.txCnt + (payload?.length ?? 0)) >>> 0;
    this.drv.send(this, op, flags, payload);
  }

  protected sendBlocked(): VsockError | null {
    return this.state !== "connected" || this.sentShutdown & V.SHUTDOWN_SEND ? new VsockError("EPIPE", "socket is not open for sending") : null;
  }

  protected get closedHere(): boolean {
    return this.state === "closed";
  }

  protected get maxChunk(): number {
    return this.drv.maxPayload;
  }
}
