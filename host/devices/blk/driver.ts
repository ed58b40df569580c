// virtio-blk guest driver: builds requests in the guest's own memory and waits for their
// completions. Transport-neutral: it talks to a GuestVirtioDevice. Many requests may be
// in flight; when the queue is full, new ones wait in FIFO order.
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_RING_PACKED, type DriverQueue, type GuestBuffer, type GuestVirtioDevice } from "../types.ts";
import * as B from "./layout.ts";

export interface BlkDriverOptions {
  queueSize?: number;
  /** Ask for packed virtqueues (VIRTIO_F_RING_PACKED) when the transport offers them. */
  packed?: boolean;
}

interface Slot {
  /** Guest page holding this request's header (0), status (16), segment (32) and id (64). */
  gpa: number;
  resolve: ((status: number) => void) | null;
}

const SLOT_HEADER = 0;
const SLOT_STATUS = 16;
const SLOT_SEGMENT = 32;
const SLOT_ID = 64;

export class BlkDriver {
  readonly dev: GuestVirtioDevice;
  capacity = 0;
  readOnly = false;
  features = 0n;
  private queue: DriverQueue | null = null;
  private readonly queueSize: number;
  private readonly packed: boolean;
  private readonly slots: Slot[] = [];
  private readonly freeSlots: number[] = [];
  private readonly waiting: Array<() => void> = [];
  private dv: DataView;
  private segmentBytes = Infinity;
  /** Requests the queue could not take (descriptors or DMA mappings exhausted): retried as others complete. */
  private readonly blocked: Array<{ slot: number; bufs: GuestBuffer[] }> = [];
  private closed = false;

  constructor(dev: GuestVirtioDevice, opts: BlkDriverOptions = {}) {
    this.dev = dev;
    this.queueSize = opts.queueSize ?? 128;
    this.packed = opts.packed ?? false;
    this.dv = new DataView(dev.memory.buffer);
  }

  async init(): Promise<void> {
    this.features = await this.dev.negotiate(
      B.VIRTIO_BLK_F_FLUSH | B.VIRTIO_BLK_F_BLK_SIZE | B.VIRTIO_BLK_F_SEG_MAX | B.VIRTIO_BLK_F_SIZE_MAX |
        B.VIRTIO_BLK_F_RO | B.VIRTIO_BLK_F_DISCARD | B.VIRTIO_BLK_F_WRITE_ZEROES | VIRTIO_F_EVENT_IDX |
        (this.packed ? VIRTIO_F_RING_PACKED : 0n),
    );
    this.readOnly = (this.features & B.VIRTIO_BLK_F_RO) !== 0n;
    const cfg = await this.dev.readConfig(B.CFG_CAPACITY, 8);
    this.capacity = Number(new DataView(cfg.buffer, cfg.byteOffset, 8).getBigUint64(0, true));
    // One descriptor carries at most size_max bytes (device) and the DMA layer's limit
    // (swiotlb's 256 KiB under bounce): larger requests are split into segments.
    let segLimit = this.dev.maxMappingBytes ?? Infinity;
    if (this.features & B.VIRTIO_BLK_F_SIZE_MAX) {
      const sm = await this.dev.readConfig(B.CFG_SIZE_MAX, 4);
      const sizeMax = new DataView(sm.buffer, sm.byteOffset, 4).getUint32(0, true);
      if (sizeMax > 0) segLimit = Math.min(segLimit, sizeMax);
    }
    this.segmentBytes = segLimit;
    this.queue = await this.dev.setupQueue(0, this.queueSize, (token, _written, error) => this.complete(token, error));
    await this.dev.driverOk();
    // A request uses at least 2 descriptors: at most size/2 in flight.
    for (let i = 0; i < this.queueSize / 2; i++) {
      this.slots.push({ gpa: this.dev.alloc(4096), resolve: null });
      this.freeSlots.push(i);
    }
  }

  /**
   * Unbinds the driver (Linux's remove): resets the device, so requests in flight fail and
   * the device stops writing into this driver's pages, then gives those pages back. Every
   * request after close fails with IOERR.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.dev.gone) await this.dev.reset().catch(() => {}); // a gone device has nothing left to stop
    for (const b of this.blocked.splice(0)) this.complete(b.slot, true);
    for (const w of this.waiting.splice(0)) w();
    for (const s of this.slots) {
      s.resolve?.(B.VIRTIO_BLK_S_IOERR);
      s.resolve = null;
      this.dev.free(s.gpa, 4096);
    }
    this.slots.length = 0;
    this.freeSlots.length = 0;
    this.queue = null;
  }

  /** Reads `len` bytes (a multiple of 512) at `sector` into guest memory at `gpa`; resolves with the status. */
  read(sector: number, gpa: number, len: number): Promise<number> {
    return this.request(B.VIRTIO_BLK_T_IN, sector, this.segments(gpa, len, true));
  }

  write(sector: number, gpa: number, len: number): Promise<number> {
    return this.request(B.VIRTIO_BLK_T_OUT, sector, this.segments(gpa, len, false));
  }

  /** [gpa, gpa + len) as buffers of at most segmentBytes. */
  private segments(gpa: number, len: number, writable: boolean): GuestBuffer[] {
    if (len <= this.segmentBytes) return [{ gpa, len, writable }];
    const out: GuestBuffer[] = [];
    for (let at = 0; at < len; at += this.segmentBytes) out.push({ gpa: gpa + at, len: Math.min(this.segmentBytes, len - at), writable });
    return out;
  }

  flush(): Promise<number> {
    return this.request(B.VIRTIO_BLK_T_FLUSH, 0, []);
  }

  discard(sector: number, count: number): Promise<number> {
    return this.request(B.VIRTIO_BLK_T_DISCARD, 0, [], { sector, count });
  }

  writeZeroes(sector: number, count: number): Promise<number> {
    return this.request(B.VIRTIO_BLK_T_WRITE_ZEROES, 0, [], { sector, count });
  }

  /** The device's id string (GET_ID), or null on error. */
  async getId(): Promise<string | null> {
    const slot = await this.takeSlot();
    if (slot < 0 || this.closed) return null;
    const gpa = this.slots[slot].gpa + SLOT_ID;
    const status = await this.submit(slot, B.VIRTIO_BLK_T_GET_ID, 0, [{ gpa, len: B.VIRTIO_BLK_ID_BYTES, writable: true }]);
    if (status !== B.VIRTIO_BLK_S_OK) return null;
    const bytes = new Uint8Array(this.dev.memory.buffer, gpa, B.VIRTIO_BLK_ID_BYTES);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(bytes.slice(0, end < 0 ? bytes.length : end));
  }

  private async request(type: number, sector: number, data: GuestBuffer[], segment?: { sector: number; count: number }): Promise<number> {
    const slot = await this.takeSlot();
    if (slot < 0 || this.closed) return B.VIRTIO_BLK_S_IOERR; // closed (its slots are gone)
    if (segment) {
      const at = this.slots[slot].gpa + SLOT_SEGMENT;
      this.dv.setBigUint64(at, BigInt(segment.sector), true);
      this.dv.setUint32(at + 8, segment.count, true);
      this.dv.setUint32(at + 12, 0, true);
      data = [{ gpa: at, len: B.SEGMENT_SIZE, writable: false }];
    }
    return this.submit(slot, type, sector, data);
  }

  private submit(slot: number, type: number, sector: number, data: GuestBuffer[]): Promise<number> {
    const s = this.slots[slot];
    this.dv.setUint32(s.gpa + SLOT_HEADER, type, true);
    this.dv.setUint32(s.gpa + SLOT_HEADER + 4, 0, true);
    this.dv.setBigUint64(s.gpa + SLOT_HEADER + 8, BigInt(sector), true);
    this.dv.setUint8(s.gpa + SLOT_STATUS, 0xff); // no status yet
    const bufs: GuestBuffer[] = [{ gpa: s.gpa + SLOT_HEADER, len: B.REQ_HEADER_SIZE, writable: false }, ...data, { gpa: s.gpa + SLOT_STATUS, len: 1, writable: true }];
    return new Promise<number>((resolve) => {
      s.resolve = resolve;
      if (this.dev.gone || !this.queue) return this.complete(slot, true);
      if (this.blocked.length === 0 && this.queue.add(bufs, slot)) return this.queue.kick();
      // Out of descriptors or DMA mappings: wait for a completion to free some (Linux's
      // BLK_STS_RESOURCE requeue). With nothing else in flight no completion will come.
      if (this.inFlight() === 1 && this.blocked.length === 0) return this.complete(slot, true);
      this.blocked.push({ slot, bufs });
    });
  }

  /** Requests submitted and not completed (blocked ones included). */
  private inFlight(): number {
    return this.slots.length - this.freeSlots.length;
  }

  /** After a completion: resubmit blocked requests in order while the queue takes them. */
  private retryBlocked(): void {
    let added = false;
    while (this.blocked.length && this.queue && !this.dev.gone) {
      const b = this.blocked[0];
      if (!this.queue.add(b.bufs, b.slot)) break;
      this.blocked.shift();
      added = true;
    }
    if (added) this.queue!.kick();
    // Nothing left in flight to free resources: what is still blocked cannot ever fit.
    if (this.blocked.length && (this.dev.gone || this.inFlight() === this.blocked.length)) {
      for (const b of this.blocked.splice(0)) this.complete(b.slot, true);
    }
  }

  private complete(slot: number, error: boolean): void {
    const s = this.slots[slot];
    if (!s?.resolve) return;
    const resolve = s.resolve;
    s.resolve = null;
    const status = error ? B.VIRTIO_BLK_S_IOERR : this.dv.getUint8(s.gpa + SLOT_STATUS);
    this.freeSlots.push(slot);
    this.retryBlocked();
    this.waiting.shift()?.();
    // A status the device never wrote (0xff) is an I/O error too.
    resolve(status > B.VIRTIO_BLK_S_UNSUPP ? B.VIRTIO_BLK_S_IOERR : status);
  }

  /** A free slot, once there is one; -1 once the driver is closed. */
  private takeSlot(): Promise<number> {
    if (this.closed) return Promise.resolve(-1);
    const slot = this.freeSlots.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve) => this.waiting.push(() => resolve(this.closed ? -1 : (this.freeSlots.pop() ?? -1))));
  }
}
