// Packed virtqueue (VirtIO 1.2 section 2.8) driver and device sides over one domain's
// memory, behind the same DriverSide / DeviceSide interfaces as the split ring, so any
// transport or device model runs on either format. The ring logic, and every check on
// what the other side wrote, is Wasm (assembly/vring/packed.ts); these classes own the
// state blocks and move results in and out of small blocks, allocation-free per chain.
//
//   desc 16 B x size: {le64 addr, le32 len, le16 id, le16 flags (AVAIL 7, USED 15)}
//   driver event suppression {le16 off_wrap, le16 flags}, device event suppression (same)
import { viewsOf, type MemoryViews } from "../../guest/views.ts";
import { HeapLease, type GuestHeap, type PageAllocator } from "../../guest/heap.ts";
import type { ChainBuffers, DeviceSide, DriverSide, QueuePair } from "./queue-sides.ts";
import { WasmDriverSide } from "./driver-side.ts";
import { takeChain } from "./device-side.ts";
import { BUF_WRITABLE, FEATURE_EVENT_IDX, FEATURE_INDIRECT, vringEngine, type VringEngine } from "./engine.ts";
import type { VringError } from "./errors.ts";

/** Where a packed ring lives in memory. Sizes need not be powers of two. */
export interface PackedLayout {
  size: number;
  desc: number;
  driverEvent: number;
  deviceEvent: number;
}

export function allocPacked(memory: WebAssembly.Memory, heap: PageAllocator, size: number): PackedLayout {
  if (!Number.isInteger(size) || size < 1 || size > 32768) throw new RangeError(`packed queue size ${size} is not in 1..32768`);
  const events = heap.alloc(8);
  const l = { size, desc: heap.alloc(16 * size), driverEvent: events, deviceEvent: events + 4 };
  new Uint8Array(memory.buffer).fill(0, events, events + 8);
  return l;
}

/** Packed driver side over the driver's own memory (assembly/vring/packed.ts). */
class PackedDriver extends WasmDriverSide {
  private readonly l: PackedLayout;
  private readonly eventIdx: number;
  /** The device returned an id that was not outstanding: nothing more is reclaimed. */
  broken = false;

  constructor(memory: WebAssembly.Memory, heap: PageAllocator, l: PackedLayout, eventIdx: boolean, inOrder: boolean) {
    super(memory, heap, l.size, (e) => e.packedDriverStateSize(l.size));
    this.l = l;
    this.eventIdx = eventIdx ? 1 : 0;
    if (this.engine.packedDriverInit(l.desc, l.driverEvent, l.size, this.state, this.eventIdx, inOrder ? 1 : 0) < 0) {
      throw new RangeError("bad packed ring geometry");
    }
  }

  get freeDescriptors(): number {
    return this.engine.packedDriverFree(this.state);
  }

  protected get flagMask(): number {
    return BUF_WRITABLE; // grant handles are a split-ring feature here
  }

  protected addBufs(bufs: number, n: number): number {
    return this.engine.packedAdd(this.l.desc, this.l.size, this.state, bufs, n, 0);
  }

  needsKick(): boolean {
    return this.engine.packedNeedKick(this.l.deviceEvent, this.l.size, this.state) === 1;
  }

  protected reclaimInto(out: number, max: number): number {
    if (this.broken) return -1;
    const n = this.engine.packedReclaim(this.l.desc, this.l.driverEvent, this.l.size, this.state, this.eventIdx, out, max);
    if (n < 0) this.broken = true;
    return n;
  }
}

/** Device side: the hostile-facing half; its walk and checks run in Wasm. */
class PackedDevice implements DeviceSide {
  readonly size: number;
  error: VringError | null = null;
  private readonly engine: VringEngine;
  private readonly views: MemoryViews;
  private readonly l: PackedLayout;
  private readonly features: number;
  private readonly state: number;
  private readonly out: number;

  constructor(memory: WebAssembly.Memory, heap: PageAllocator, l: PackedLayout, eventIdx: boolean, indirect: boolean) {
    this.l = l;
    this.size = l.size;
    this.features = (eventIdx ? FEATURE_EVENT_IDX : 0) | (indirect ? FEATURE_INDIRECT : 0);
    this.engine = vringEngine(memory);
    this.views = viewsOf(memory);
    this.state = heap.alloc(this.engine.packedDeviceStateSize(l.size));
    this.out = heap.alloc(8 + 16 * l.size);
    this.engine.packedDeviceInit(l.size, this.state);
  }

  pop(out: ChainBuffers): number {
    if (this.error) return -1;
    const n = this.engine.packedPop(this.l.desc, this.l.deviceEvent, this.l.size, this.state, this.features, this.out);
    return takeChain(this, n, this.views.fresh().u32, this.out, out);
  }

  push(id: number, written: number): void {
    if (this.engine.packedPush(this.l.desc, this.l.size, this.state, id, written) < 0) this.error ??= "BadQueue";
  }

  needsInterrupt(): boolean {
    return this.engine.packedNeedInterrupt(this.l.driverEvent, this.l.size, this.state) === 1;
  }
}

/** A packed ring of `size` entries allocated from `heap`, seen from both sides. */
export function packedQueue(
  memory: WebAssembly.Memory, heap: GuestHeap, size: number, eventIdx = false, indirect = false, inOrder = false,
): QueuePair<PackedLayout> & { driver: DriverSide & { broken: boolean } } {
  const lease = new HeapLease(heap);
  const q = packedQueueAt(memory, lease, allocPacked(memory, lease, size), eventIdx, indirect, inOrder);
  return { ...q, release: () => lease.release() };
}

/** Both sides of a packed ring already placed at `layout`; `heap` provides their state blocks. */
export function packedQueueAt(
  memory: WebAssembly.Memory, heap: PageAllocator, layout: PackedLayout, eventIdx = false, indirect = false, inOrder = false,
): { driver: DriverSide & { broken: boolean }; device: DeviceSide; layout: PackedLayout } {
  return { driver: new PackedDriver(memory, heap, layout, eventIdx, inOrder), device: new PackedDevice(memory, heap, layout, eventIdx, indirect), layout };
}

/** The device side alone of a packed ring a driver placed and owns (see splitDeviceAt). */
export function packedDeviceAt(memory: WebAssembly.Memory, heap: PageAllocator, layout: PackedLayout, eventIdx = false, indirect = false): DeviceSide {
  return new PackedDevice(memory, heap, layout, eventIdx, indirect);
}
