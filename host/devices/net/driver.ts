// virtio-net guest driver (for tests, the bench and TypeScript guests): keeps receive
// buffers posted, sends frames through a pool of transmit slots, follows link state.
// Transport-neutral (GuestVirtioDevice).
//
// Completions are handled in a microtask after the used-buffer callback
// (DeferredCompletions): receive buffers are reposted outside any callback.
import { DeferredCompletions, type Completion } from "../completions.ts";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_RING_PACKED, type DriverQueue, type GuestVirtioDevice } from "../types.ts";
import * as N from "./layout.ts";

export interface NetDriverOptions {
  /** Entries per queue (power of two); the receive queue is kept full. Default 256. */
  queueSize?: number;
  packed?: boolean;
  /** Ask for VIRTIO_NET_F_CSUM (send partial checksums). Default true. */
  csum?: boolean;
}

export class NetDriver {
  readonly dev: GuestVirtioDevice;
  features = 0n;
  /** The device's address (config mac). */
  mac = "";
  linkUp = false;
  mtu = N.MTU;
  readonly stats = { rxFrames: 0, rxErrors: 0, txFrames: 0, txErrors: 0 };
  private rx: DriverQueue | null = null;
  private tx: DriverQueue | null = null;
  private readonly queueSize: number;
  private readonly packed: boolean;
  private readonly csum: boolean;
  private rxBase = 0;
  private txBase = 0;
  private readonly freeTx: number[] = [];
  private readonly txResolve: Array<((ok: boolean) => void) | null> = [];
  private readonly txWaiting: Array<() => void> = [];
  private readonly rxDone: Completion[] = [];
  private readonly txDone: Completion[] = [];
  private readonly deferred = new DeferredCompletions(() => this.process());
  private readonly frameListeners: Array<(frame: Uint8Array) => void> = [];
  private readonly linkListeners: Array<(up: boolean) => void> = [];
  private memView: Uint8Array;

  constructor(dev: GuestVirtioDevice, opts: NetDriverOptions = {}) {
    this.dev = dev;
    this.queueSize = opts.queueSize ?? 256;
    this.packed = opts.packed ?? false;
    this.csum = opts.csum ?? true;
    this.memView = new Uint8Array(dev.memory.buffer);
  }

  /** The guest's memory (a new view if it grew). */
  private get mem(): Uint8Array {
    if (this.memView.buffer !== this.dev.memory.buffer) this.memView = new Uint8Array(this.dev.memory.buffer);
    return this.memView;
  }

  async init(): Promise<void> {
    this.features = await this.dev.negotiate(
      N.VIRTIO_NET_F_MAC | N.VIRTIO_NET_F_STATUS | N.VIRTIO_NET_F_MTU | (this.csum ? N.VIRTIO_NET_F_CSUM : 0n) |
        VIRTIO_F_EVENT_IDX | (this.packed ? VIRTIO_F_RING_PACKED : 0n),
    );
    const cfg = await this.dev.readConfig(0, N.CONFIG_SIZE);
    this.mac = N.numberToMac(N.readMac(cfg, N.CFG_MAC));
    const dv = new DataView(cfg.buffer, cfg.byteOffset, cfg.byteLength);
    // Without STATUS the link is assumed up (5.1.4.2).
    this.linkUp = (this.features & N.VIRTIO_NET_F_STATUS) === 0n || (dv.getUint16(N.CFG_STATUS, true) & N.VIRTIO_NET_S_LINK_UP) !== 0;
    if (this.features & N.VIRTIO_NET_F_MTU) this.mtu = dv.getUint16(N.CFG_MTU, true);
    this.dev.onConfigChange(() => void this.readStatus());
    this.rx = await this.dev.setupQueue(N.RXQ, this.queueSize, this.deferred.into(this.rxDone));
    this.tx = await this.dev.setupQueue(N.TXQ, this.queueSize, this.deferred.into(this.txDone));
    await this.dev.driverOk();
    this.rxBase = this.dev.alloc(this.queueSize * N.RX_BUFFER_SIZE);
    this.txBase = this.dev.alloc(this.queueSize * N.RX_BUFFER_SIZE);
    for (let i = 0; i < this.queueSize; i++) {
      this.freeTx.push(this.queueSize - 1 - i);
      this.txResolve.push(null);
      this.postRx(i);
    }
    this.rx.kick();
  }

  /** Resets the device (frames in flight fail) and gives the driver's buffers back to the guest's heap. */
  async close(): Promise<void> {
    if (!this.rx) return;
    this.rx = this.tx = null;
    if (!this.dev.gone) await this.dev.reset().catch(() => {});
    this.dev.free(this.rxBase, this.queueSize * N.RX_BUFFER_SIZE);
    this.dev.free(this.txBase, this.queueSize * N.RX_BUFFER_SIZE);
    for (const w of this.txWaiting.splice(0)) w();
  }

  /** Called with a copy of every frame received (without the virtio-net header). */
  onFrame(cb: (frame: Uint8Array) => void): void {
    this.frameListeners.push(cb);
  }

  onLinkChange(cb: (up: boolean) => void): void {
    this.linkListeners.push(cb);
  }

  /**
   * Sends one Ethernet frame (at most MTU + 18 bytes); resolves true once the device took
   * it, false if the device is gone. `partialCsum`: leave the checksum at
   * frame[start + offset] for the device to complete (CSUM must be negotiated).
   */
  async send(frame: Uint8Array, partialCsum?: { start: number; offset: number }): Promise<boolean> {
    if (frame.length > N.MAX_FRAME) throw new RangeError(`frame of ${frame.length} B is larger than ${N.MAX_FRAME}`);
    const hdr = new Uint8Array(N.NET_HDR_SIZE);
    if (partialCsum) {
      hdr[N.HDR_FLAGS] = N.VIRTIO_NET_HDR_F_NEEDS_CSUM;
      hdr[N.HDR_CSUM_START] = partialCsum.start & 0xff;
      hdr[N.HDR_CSUM_START + 1] = partialCsum.start >>> 8;
      hdr[N.HDR_CSUM_OFFSET] = partialCsum.offset & 0xff;
      hdr[N.HDR_CSUM_OFFSET + 1] = partialCsum.offset >>> 8;
    }
    return this.sendRaw(hdr, frame);
  }

  /**
   * Sends `hdr` then `payload` as one transmit chain, unchecked (tests play a hostile
   * driver with it: any header, any length up to RX_BUFFER_SIZE per part).
   */
  async sendRaw(hdr: Uint8Array, payload: Uint8Array): Promise<boolean> {
    if (hdr.length + payload.length > N.RX_BUFFER_SIZE) return this.sendLarge(hdr, payload);
    const slot = await this.takeSlot();
    if (slot < 0) return false;
    const at = this.txBase + slot * N.RX_BUFFER_SIZE;
    this.mem.set(hdr, at);
    this.mem.set(payload, at + hdr.length);
    return this.submitTx(slot, [{ gpa: at, len: hdr.length + payload.length, writable: false }], () => {});
  }

  /** A chain bigger than a slot (hostile oversized frames): its own buffer, freed on completion. */
  private async sendLarge(hdr: Uint8Array, payload: Uint8Array): Promise<boolean> {
    const slot = await this.takeSlot();
    if (slot < 0) return false;
    const len = hdr.length + payload.length;
    const gpa = this.dev.alloc(len);
    this.mem.set(hdr, gpa);
    this.mem.set(payload, gpa + hdr.length);
    return this.submitTx(slot, [{ gpa, len, writable: false }], () => this.dev.free(gpa, len));
  }

  private submitTx(slot: number, bufs: Array<{ gpa: number; len: number; writable: boolean }>, after: () => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      this.txResolve[slot] = (ok) => {
        after();
        resolve(ok);
      };
      if (this.dev.gone || !this.tx!.add(bufs, slot)) return this.finishTx(slot, false);
      this.tx!.kick();
    });
  }

  private takeSlot(): Promise<number> {
    if (!this.tx || this.dev.gone) return Promise.resolve(-1);
    const s = this.freeTx.pop();
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((resolve) => this.txWaiting.push(() => resolve(this.dev.gone || !this.tx ? -1 : this.freeTx.pop() ?? -1)));
  }

  private finishTx(slot: number, ok: boolean): void {
    const r = this.txResolve[slot];
    if (!r) return; // a token this driver never used: the transport's bug, ignore
    this.txResolve[slot] = null;
    this.freeTx.push(slot);
    if (ok) this.stats.txFrames++;
    else this.stats.txErrors++;
    r(ok);
    this.txWaiting.shift()?.();
  }

  private postRx(i: number): boolean {
    return this.rx!.add([{ gpa: this.rxBase + i * N.RX_BUFFER_SIZE, len: N.RX_BUFFER_SIZE, writable: true }], i);
  }

  /** Outside any completion callback: deliver frames, repost their buffers, free transmit slots. */
  private process(): void {
    if (!this.rx) return; // closed: the buffers are the heap's again
    for (const c of this.txDone.splice(0)) this.finishTx(c.token, !c.error);
    const done = this.rxDone.splice(0);
    let reposted = false;
    for (const c of done) {
      if (c.error || this.dev.gone) continue; // reset or removed: nothing to repost
      const at = this.rxBase + c.token * N.RX_BUFFER_SIZE;
      if (c.written >= N.NET_HDR_SIZE + N.ETH_HLEN && c.written <= N.RX_BUFFER_SIZE) {
        this.stats.rxFrames++;
        const frame = this.mem.slice(at + N.NET_HDR_SIZE, at + c.written);
        for (const l of this.frameListeners) l(frame);
      } else this.stats.rxErrors++;
      reposted = this.postRx(c.token) || reposted;
    }
    if (reposted) this.rx!.kick();
    if (this.dev.gone) for (const w of this.txWaiting.splice(0)) w();
  }

  private async readStatus(): Promise<void> {
    if (this.dev.gone) return;
    const st = await this.dev.readConfig(N.CFG_STATUS, 2).catch(() => null);
    if (!st) return;
    const up = ((st[0] | (st[1] << 8)) & N.VIRTIO_NET_S_LINK_UP) !== 0;
    if (up === this.linkUp) return;
    this.linkUp = up;
    for (const l of this.linkListeners) l(up);
  }
}
