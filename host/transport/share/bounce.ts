// `bounce`: the confidential-computing baseline (SEV/TDX guests with swiotlb). The guest's
// private memory is closed to the backend; a shared region holds the rings and a pool of
// 2 KiB bounce slots. The guest's DMA layer copies each readable buffer into slots before
// the device sees it and each writable buffer back out after (Linux's swiotlb), so the
// backend reads and writes only the shared region, in place.
//
// Sizes follow Linux's kernel/dma/swiotlb.c: IO_TLB_SIZE 2 KiB slots, a mapping is at most
// IO_TLB_SEGSIZE (128) contiguous slots = 256 KiB and never crosses a segment boundary.
import { viewsOf } from "../../guest/views.ts";
import type { UsedHandler } from "../../devices/types.ts";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_RING_PACKED } from "../../devices/types.ts";
import { GuestHeap } from "../../guest/heap.ts";
import { PAGE_SIZE } from "../../abi/argo.ts";
import { SideDeviceQueue } from "../vring/device-queue.ts";
import { GuestDriverQueue, type DmaOps } from "../vring/guest-queue.ts";
import { splitQueue } from "../vring/split-sides.ts";
import { packedQueue } from "../vring/packed-sides.ts";
import { SharedDevice, type SharedDeviceConfig, type SharedQueue } from "./shared-device.ts";

export const IO_TLB_SIZE = 2048;
export const IO_TLB_SEGSIZE = 128;
/** Largest single mapping (Linux's swiotlb_max_mapping_size). */
export const MAX_MAPPING_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE;
/** Linux's default swiotlb size (IO_TLB_DEFAULT_SIZE). */
export const DEFAULT_SHARED_BYTES = 64 << 20;

/** The slot allocator: which slots of the shared region are in use. */
export class SwiotlbPool {
  readonly base: number;
  readonly slots: number;
  private readonly used: Uint8Array;
  private cursor = 0;
  free: number;
  readonly stats = { maps: 0, exhausted: 0, tooLarge: 0 };

  /** Slots over [base, base + slots * 2 KiB) of the shared region. */
  constructor(base: number, slots: number) {
    this.base = base;
    this.slots = slots;
    this.used = new Uint8Array(slots);
    this.free = slots;
  }

  /**
   * `n` contiguous free slots inside one segment; returns the first, or -1 when the pool
   * has no such run (exhaustion: the caller fails the mapping, nothing is taken).
   */
  alloc(bytes: number): number {
    const n = Math.max(1, Math.ceil(bytes / IO_TLB_SIZE));
    if (n > IO_TLB_SEGSIZE) {
      this.stats.tooLarge++;
      return -1;
    }
    // One pass over the pool from the cursor, runs restarting at segment boundaries.
    let run = 0;
    for (let k = 0; k < this.slots; k++) {
      const i = (this.cursor + k) % this.slots;
      if (i % IO_TLB_SEGSIZE === 0) run = 0;
      run = this.used[i] ? 0 : run + 1;
      if (run === n) {
        const first = i - n + 1;
        this.used.fill(1, first, i + 1);
        this.free -= n;
        this.cursor = (i + 1) % this.slots;
        this.stats.maps++;
        return first;
      }
    }
    this.stats.exhausted++;
    return -1;
  }

  /** Returns slots [first, first + n); throws on a slot that is not in use (a double free is a bug, never silent). */
  release(first: number, bytes: number): void {
    const n = Math.max(1, Math.ceil(bytes / IO_TLB_SIZE));
    for (let i = first; i < first + n; i++) if (this.used[i] !== 1) throw new Error(`swiotlb: slot ${i} freed twice`);
    this.used.fill(0, first, first + n);
    this.free += n;
  }

  addr(slot: number): number {
    return this.base + slot * IO_TLB_SIZE;
  }
}

/** The guest's swiotlb DMA layer: bounce in on map, bounce out and free on completion. */
class BounceDma implements DmaOps {
  readonly addrFlags = 0;
  /** (slot, gpa, len, writable) per buffer of the chain being added. */
  private pending: number[] = [];
  private readonly byHead: Array<number[] | undefined>;

  constructor(private readonly pool: SwiotlbPool, private readonly priv: Uint8Array, private readonly shared: Uint8Array, size: number) {
    this.byHead = new Array(size);
  }

  map(gpa: number, len: number, writable: boolean): number {
    // The driver's own buffer: outside its memory is its bug, refused like any failed mapping.
    if (gpa < 0 || gpa + len > this.priv.length) return -1;
    const slot = this.pool.alloc(len);
    if (slot < 0) return -1;
    const at = this.pool.addr(slot);
    // Copied in both directions (swiotlb since CVE-2022-0854): the whole mapping is copied
    // back on completion, so slots must not carry an earlier request's bytes into this buffer.
    this.shared.set(this.priv.subarray(gpa, gpa + len), at);
    this.pending.push(slot, gpa, len, writable ? 1 : 0);
    return at;
  }

  abort(): void {
    this.unmap(this.pending, false);
    this.pending = [];
  }

  commit(head: number): void {
    this.byHead[head] = this.pending;
    this.pending = [];
  }

  complete(head: number, _written: number): void {
    const m = this.byHead[head];
    this.byHead[head] = undefined;
    if (m) this.unmap(m, true);
  }

  /** The queue is gone: every slot back, nothing copied (the requests failed). */
  release(): void {
    for (let h = 0; h < this.byHead.length; h++) {
      const m = this.byHead[h];
      this.byHead[h] = undefined;
      if (m) this.unmap(m, false);
    }
    this.abort();
  }

  private unmap(m: number[], syncBack: boolean): void {
    for (let i = 0; i < m.length; i += 4) {
      const [slot, gpa, len, writable] = [m[i], m[i + 1], m[i + 2], m[i + 3]];
      const at = this.pool.addr(slot);
      if (syncBack && writable) this.priv.set(this.shared.subarray(at, at + len), gpa);
      this.pool.release(slot, len);
    }
  }
}

export interface BounceConfig extends SharedDeviceConfig {
  /** Bytes of the shared region (rings + slots); default 64 MiB. */
  sharedBytes?: number;
}

export class BounceDevice extends SharedDevice {
  /** The shared region: the only memory the backend can reach. */
  readonly shared: WebAssembly.Memory;
  readonly pool: SwiotlbPool;
  /** Largest buffer one descriptor may carry: drivers split larger ones. */
  readonly maxMappingBytes = MAX_MAPPING_BYTES;
  private readonly sharedHeap: GuestHeap;
  private readonly dmas: BounceDma[] = [];

  constructor(cfg: BounceConfig) {
    super(cfg);
    const bytes = cfg.sharedBytes ?? DEFAULT_SHARED_BYTES;
    if (bytes % 65536 !== 0 || bytes < 1 << 20) throw new RangeError("bounce: sharedBytes must be a multiple of 64 KiB, at least 1 MiB");
    this.shared = new WebAssembly.Memory({ initial: bytes / 65536, maximum: bytes / 65536 });
    // The first eighth holds the rings (gpa 0 stays unused), the rest is slots.
    const ringBytes = Math.max(bytes / 8, 256 * 1024);
    this.sharedHeap = new GuestHeap(bytes, PAGE_SIZE, ringBytes);
    this.pool = new SwiotlbPool(ringBytes, Math.floor((bytes - ringBytes) / IO_TLB_SIZE));
  }

  /** Pages of the guest the backend can read: the shared region, all of it. */
  get exposedPages(): number {
    return this.shared.buffer.byteLength / PAGE_SIZE;
  }

  protected get ringFeatures(): bigint {
    return VIRTIO_F_EVENT_IDX | VIRTIO_F_RING_PACKED;
  }

  protected createQueue(_index: number, size: number, onUsed: UsedHandler, notify: () => void, broken: () => void): SharedQueue {
    const pair = this.packed
      ? packedQueue(this.shared, this.sharedHeap, size, this.eventIdx, false)
      : splitQueue(this.shared, this.sharedHeap, size, this.eventIdx, false);
    const dma = new BounceDma(this.pool, new Uint8Array(this.memory.buffer), new Uint8Array(this.shared.buffer), size);
    this.dmas.push(dma);
    const driver = new GuestDriverQueue(pair.driver, onUsed, notify, dma);
    // The backend sees only the shared region: rings and slots, in place.
    const device = new SideDeviceQueue(pair.device, viewsOf(this.shared), () => driver.interrupt(), broken);
    return {
      driver, device,
      release: () => {
        dma.release();
        pair.release();
        this.dmas.splice(this.dmas.indexOf(dma), 1);
      },
    };
  }
}
