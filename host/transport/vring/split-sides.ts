// Split virtqueue (VirtIO 1.2 section 2.7) driver and device sides used by the transports,
// over one domain's memory (layout: split-layout.ts). The device side (the one that reads
// what another party wrote) walks and validates chains in Wasm (assembly/vring/split.ts):
// the avail index may not run ahead by more than the queue size, heads and next indices
// stay below the size, chains are bounded by the size (no loops), readable buffers come
// before writable ones, and every buffer lies inside memory; indirect tables (when
// negotiated) are walked with the same rules plus their own (no nesting, length a non-zero
// multiple of 16). The driver side (assembly/vring/driver.ts) allocates, publishes and
// reclaims in Wasm too; the classes here keep the indices and move results in and out of
// small blocks.
import { viewsOf, type MemoryViews } from "../../guest/views.ts";
import { HeapLease, type GuestHeap, type PageAllocator } from "../../guest/heap.ts";
import type { ChainBuffers, DeviceSide, DriverSide, QueuePair } from "./queue-sides.ts";
import { allocSplit, type SplitLayout } from "./split-layout.ts";
import { WasmDriverSide } from "./driver-side.ts";
import { takeChain } from "./device-side.ts";
import { BUF_GRANT_ADDR, BUF_WRITABLE, FEATURE_EVENT_IDX, FEATURE_GRANT_ADDR, FEATURE_INDIRECT, vringEngine, type VringEngine } from "./engine.ts";
import type { VringError } from "./errors.ts";

/**
 * Split driver side, over the driver's own memory: descriptor allocation, publishing and
 * reclaiming run in Wasm (assembly/vring/driver.ts).
 */
class SplitDriver extends WasmDriverSide {
  private readonly l: SplitLayout;
  private readonly eventIdx: number;

  constructor(memory: WebAssembly.Memory, heap: PageAllocator, l: SplitLayout, eventIdx: boolean) {
    super(memory, heap, l.size, (e) => e.vringDriverStateSize(l.size));
    this.l = l;
    this.eventIdx = eventIdx ? 1 : 0;
    if (this.engine.vringDriverInit(l.desc, l.avail, l.used, l.size, this.state) < 0) throw new RangeError("bad split ring geometry");
  }

  get freeDescriptors(): number {
    return this.engine.vringDriverFree(this.state);
  }

  protected get flagMask(): number {
    return BUF_WRITABLE | BUF_GRANT_ADDR;
  }

  protected addBufs(bufs: number, n: number): number {
    const l = this.l;
    return this.engine.vringAdd(l.desc, l.avail, l.used, l.size, this.state, bufs, n);
  }

  needsKick(): boolean {
    return this.engine.vringNeedKick(this.l.used, this.l.size, this.state, this.eventIdx) === 1;
  }

  protected reclaimInto(out: number, max: number): number {
    const l = this.l;
    return this.engine.vringReclaim(l.desc, l.avail, l.used, l.size, this.state, this.eventIdx, out, max);
  }
}

/**
 * Device side: the hostile-facing half, so its walk and checks run in Wasm
 * (assembly/vring/split.ts); this class keeps the indices and reads the out block.
 */
class SplitDevice implements DeviceSide {
  readonly size: number;
  error: VringError | null = null;
  private readonly engine: VringEngine;
  private readonly views: MemoryViews;
  private readonly l: SplitLayout;
  private readonly eventIdx: boolean;
  /** vringPop feature bits (engine.ts): EVENT_IDX, INDIRECT_DESC, grant DMA handles as addresses. */
  private readonly features: number;
  /** Out block for vringPop: head, count, then 16 bytes per buffer. */
  private readonly out: number;
  private lastAvail = 0;
  private usedIdx = 0;
  /** used idx at the last interrupt decision (EVENT_IDX). */
  private signalledAt = 0;

  constructor(memory: WebAssembly.Memory, heap: PageAllocator, l: SplitLayout, eventIdx: boolean, indirect: boolean, grantAddr: boolean) {
    this.l = l;
    this.size = l.size;
    this.eventIdx = eventIdx;
    this.features = (eventIdx ? FEATURE_EVENT_IDX : 0) | (indirect ? FEATURE_INDIRECT : 0) | (grantAddr ? FEATURE_GRANT_ADDR : 0);
    this.engine = vringEngine(memory);
    this.views = viewsOf(memory);
    this.out = heap.alloc(8 + 16 * l.size);
  }

  pop(out: ChainBuffers): number {
    if (this.error) return -1;
    const l = this.l;
    const n = this.engine.vringPop(l.desc, l.avail, l.used, l.size, this.lastAvail, this.features, this.out);
    if (n > 0) this.lastAvail = (this.lastAvail + 1) & 0xffff;
    return takeChain(this, n, this.views.fresh().u32, this.out, out);
  }

  push(head: number, written: number): void {
    this.usedIdx = this.engine.vringPush(this.l.used, this.l.size, this.usedIdx, head, written);
  }

  needsInterrupt(): boolean {
    const old = this.signalledAt;
    this.signalledAt = this.usedIdx;
    // used_event with EVENT_IDX, avail.flags NO_INTERRUPT without it (2.7.7.2): both read in Wasm.
    return this.engine.vringNeedInterrupt(this.l.avail, this.l.size, this.usedIdx, old, this.eventIdx ? 1 : 0) === 1;
  }
}

/** A split ring of `size` entries allocated from `heap`, seen from both sides. */
export function splitQueue(
  memory: WebAssembly.Memory, heap: GuestHeap, size: number, eventIdx = false, indirect = false, grantAddr = false,
): QueuePair<SplitLayout> {
  const lease = new HeapLease(heap);
  const q = splitQueueAt(memory, lease, allocSplit(memory, lease, size), eventIdx, indirect, grantAddr);
  return { ...q, release: () => lease.release() };
}

/**
 * Both sides of a split ring already placed at `layout` (e.g. by vringLayout, or where a
 * guest said it put its ring): `heap` only provides the sides' small state blocks.
 */
export function splitQueueAt(
  memory: WebAssembly.Memory, heap: PageAllocator, layout: SplitLayout, eventIdx = false, indirect = false, grantAddr = false,
): { driver: DriverSide; device: DeviceSide; layout: SplitLayout } {
  return {
    driver: new SplitDriver(memory, heap, layout, eventIdx),
    device: new SplitDevice(memory, heap, layout, eventIdx, indirect, grantAddr),
    layout,
  };
}

/**
 * The device side alone of a split ring a driver placed and owns (a Linux guest's vring,
 * addresses from its virtio-mmio registers): nothing is written into the ring until the
 * driver makes buffers available. `heap` provides the out block.
 */
export function splitDeviceAt(memory: WebAssembly.Memory, heap: PageAllocator, layout: SplitLayout, eventIdx = false, indirect = false): DeviceSide {
  return new SplitDevice(memory, heap, layout, eventIdx, indirect, false);
}
