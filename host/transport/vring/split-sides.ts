// Split virtqueue (VirtIO 1.2 section 2.7) driver and device sides used by the transports,
// over one domain's memory. The device side (the one that reads what another party wrote)
// walks and validates chains in Wasm (assembly/vring/split.ts): the avail index may not
// run ahead by more than the queue size, heads and next indices stay below the size,
// chains are bounded by the size (no loops), readable buffers come before writable ones,
// and every buffer lies inside memory; indirect tables (when negotiated) are walked with
// the same rules plus their own (no nesting, length a non-zero multiple of 16). The
// driver side (assembly/vring/driver.ts) allocates, publishes and reclaims in Wasm too;
// the classes here keep the indices and move results in and out of small blocks.
//
//   desc  16 B x size : {le64 addr, le32 len, le16 flags, le16 next}
//   avail 6 + 2 x size: {le16 flags, le16 idx, le16 ring[size], le16 used_event}
//   used  6 + 8 x size: {le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}
// With VIRTIO_F_EVENT_IDX (2.7.10) each side publishes how far the other may go before it
// wants a notification (used_event / avail_event) and notifications follow vring_need_event.
import { viewsOf, type MemoryViews } from "../../guest/views.ts";
import { HeapLease, type GuestHeap, type PageAllocator } from "../../guest/heap.ts";
import type { ChainBuffers, DeviceSide, DriverSide } from "./queue-sides.ts";
import { instantiate } from "../../wasm.ts";
import { ERR_BAD_QUEUE, ERR_CHAIN_TOO_LONG, vringErrorName, type VringError } from "./errors.ts";

const VIRTQ_DESC_F_NEXT = 1;
const VIRTQ_DESC_F_WRITE = 2;

/** vring_need_event (VirtIO 1.2 2.7.10): has idx moved past event since old? All u16. */
export function vringNeedEvent(event: number, newIdx: number, old: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

/** Where a split ring lives in memory. */
export interface SplitLayout {
  size: number;
  desc: number;
  avail: number;
  used: number;
}

/**
 * The legacy contiguous layout (linux/virtio_ring.h vring_init): desc at `base`, avail
 * right after, used at the next multiple of `align`; `bytes` is vring_size(size, align).
 * For VMM authors placing a ring the way a legacy driver does.
 */
export function vringLayout(base: number, size: number, align: number): SplitLayout & { bytes: number } {
  const avail = base + 16 * size;
  const used = Math.ceil((avail + 2 * (2 + size) + 2) / align) * align;
  return { size, desc: base, avail, used, bytes: used - base + 6 + 8 * size };
}

export function allocSplit(memory: WebAssembly.Memory, heap: PageAllocator, size: number): SplitLayout {
  if (size < 1 || size > 32768 || (size & (size - 1)) !== 0) throw new RangeError(`queue size ${size} is not a power of two <= 32768`);
  const l = { size, desc: heap.alloc(16 * size), avail: heap.alloc(6 + 2 * size), used: heap.alloc(6 + 8 * size) };
  // Pages may be recycled: a ring starts with every index and event field at zero.
  const u8 = new Uint8Array(memory.buffer);
  u8.fill(0, l.avail, l.avail + 6 + 2 * size);
  u8.fill(0, l.used, l.used + 6 + 8 * size);
  return l;
}

/**
 * What the split and packed driver sides share: buffers go to Wasm through a block of
 * {le32 addr, le32 len, le32 flags}, used entries come back through a block of
 * {le32 id, le32 written}, and reclaim is safe against a callback that re-enters it.
 */
export abstract class WasmDriverSide implements DriverSide {
  readonly size: number;
  protected readonly engine: VringEngine;
  protected readonly state: number;
  private readonly u32: Uint32Array;
  private readonly bufs: number;
  private readonly out: number;
  private reclaiming = false;
  private reclaimAgain = false;

  constructor(memory: WebAssembly.Memory, heap: PageAllocator, size: number, stateBytes: (e: VringEngine) => number) {
    this.size = size;
    this.engine = vringEngine(memory);
    this.u32 = new Uint32Array(memory.buffer);
    this.state = heap.alloc(stateBytes(this.engine));
    this.bufs = heap.alloc(12 * size);
    this.out = heap.alloc(8 * size);
  }

  abstract get freeDescriptors(): number;
  abstract needsKick(): boolean;
  /** Adds the `n` buffers at `bufs`; the head / buffer id, or a driver-side ERR_* code. */
  protected abstract addBufs(bufs: number, n: number): number;
  /** Writes up to `max` used entries to `out`; their number, or negative when the ring is broken. */
  protected abstract reclaimInto(out: number, max: number): number;
  /** Which flag bits this ring format carries (bit 0 writable, bit 1 grant handle). */
  protected abstract get flagMask(): number;

  add(gpa: ArrayLike<number>, len: ArrayLike<number>, flags: ArrayLike<number>, n: number): number {
    if (n < 1) return ERR_BAD_QUEUE;
    if (n > this.size) return ERR_CHAIN_TOO_LONG; // more than the bufs block (and the ring) holds
    const w = this.bufs >>> 2; // page-aligned heap block
    const mask = this.flagMask;
    for (let i = 0; i < n; i++) {
      this.u32[w + 3 * i] = gpa[i];
      this.u32[w + 3 * i + 1] = len[i];
      this.u32[w + 3 * i + 2] = flags[i] & mask;
    }
    return this.addBufs(this.bufs, n);
  }

  reclaim(cb: (head: number, written: number) => void): number {
    // A callback may complete more work and re-enter (an interrupt inside an interrupt);
    // the out block is shared, so the inner call only asks the outer one to go again.
    if (this.reclaiming) {
      this.reclaimAgain = true;
      return 0;
    }
    this.reclaiming = true;
    let total = 0;
    try {
      do {
        this.reclaimAgain = false;
        const n = this.reclaimInto(this.out, this.size);
        if (n < 0) break;
        const w = this.out >>> 2;
        for (let i = 0; i < n; i++) cb(this.u32[w + 2 * i], this.u32[w + 2 * i + 1]);
        total += n;
      } while (this.reclaimAgain);
    } finally {
      this.reclaiming = false;
    }
    return total;
  }
}

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
    return 3; // BUF_WRITABLE | BUF_GRANT_ADDR
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

/** Exports of build/vring.wasm (assembly/vring/: split.ts, driver.ts, packed.ts, bench.ts). */
export interface VringEngine {
  vringDriverInit(desc: number, avail: number, used: number, size: number, state: number): number;
  vringDriverFree(state: number): number;
  vringDriverStateSize(size: number): number;
  vringAdd(desc: number, avail: number, used: number, size: number, state: number, bufs: number, n: number): number;
  vringNeedKick(used: number, size: number, state: number, eventIdx: number): number;
  vringReclaim(desc: number, avail: number, used: number, size: number, state: number, eventIdx: number, out: number, max: number): number;
  vringAddIndirect(desc: number, avail: number, used: number, size: number, state: number, bufs: number, n: number, table: number): number;
  vringCycleBench(desc: number, avail: number, used: number, size: number, state: number, devState: number, bufs: number, n: number, popOut: number, reclaimOut: number, features: number, iterations: number, table: number): number;
  packedDeviceStateSize(size: number): number;
  packedDeviceInit(size: number, state: number): number;
  packedPop(desc: number, deviceEvent: number, size: number, state: number, features: number, out: number): number;
  packedPush(desc: number, size: number, state: number, id: number, written: number): number;
  packedNeedInterrupt(driverEvent: number, size: number, state: number): number;
  packedDriverStateSize(size: number): number;
  packedDriverInit(desc: number, driverEvent: number, size: number, state: number, eventIdx: number, inOrder: number): number;
  packedDriverFree(state: number): number;
  packedAdd(desc: number, size: number, state: number, bufs: number, n: number, table: number): number;
  packedNeedKick(deviceEvent: number, size: number, state: number): number;
  packedReclaim(desc: number, driverEvent: number, size: number, state: number, eventIdx: number, out: number, max: number): number;
  packedCycleBench(desc: number, driverEvent: number, deviceEvent: number, size: number, driverState: number, deviceState: number, bufs: number, n: number, popOut: number, reclaimOut: number, features: number, iterations: number, table: number): number;
  vringPop(desc: number, avail: number, used: number, size: number, lastAvail: number, eventIdx: number, out: number): number;
  vringPush(used: number, size: number, usedIdx: number, head: number, written: number): number;
  vringNeedEvent(event: number, newIdx: number, old: number): number;
  vringUsedEvent(avail: number, size: number): number;
  vringSetDmaWindow(base: number, limit: number): number;
  vringNeedInterrupt(avail: number, size: number, usedIdx: number, old: number, eventIdx: number): number;
}

/**
 * The result of a Wasm pop (`n` buffers, or a negative code) into `out`: 1 when a chain was
 * popped, 0 when none, -1 (and `side.error` set: NEEDS_RESET) when the ring is broken. The
 * out block is {le32 head, le32 count, then {addr, len, flags, 0} per buffer}.
 */
export function takeChain(side: { error: VringError | null }, n: number, u32: Uint32Array, outBlock: number, out: ChainBuffers): number {
  if (n === 0) return 0;
  if (n < 0) {
    side.error = vringErrorName(n) ?? "BadQueue";
    return -1;
  }
  const w = outBlock >>> 2; // heap allocations are page-aligned
  out.reset(u32[w]);
  for (let i = 0; i < n; i++) {
    const e = w + 2 + 4 * i;
    out.push(u32[e], u32[e + 1], (u32[e + 2] & VIRTQ_DESC_F_WRITE) !== 0);
  }
  return 1;
}

const engines = new WeakMap<WebAssembly.Memory, VringEngine>();

/** build/vring.wasm instantiated once per memory. */
export function vringEngine(memory: WebAssembly.Memory): VringEngine {
  let e = engines.get(memory);
  if (!e) engines.set(memory, (e = instantiate<VringEngine>("vring", memory)));
  return e;
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
  /** vringPop feature bits: 1 EVENT_IDX, 2 INDIRECT_DESC, 4 grant DMA handles as addresses. */
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
    this.features = (eventIdx ? 1 : 0) | (indirect ? 2 : 0) | (grantAddr ? 4 : 0);
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

/** A queue's two sides, and how to give its memory back (after the driver set it up again or reset it). */
export interface QueuePair<L> {
  driver: DriverSide;
  device: DeviceSide;
  layout: L;
  release(): void;
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

/**
 * Sets the DMA window of `memory`'s ring engine: descriptor addresses are then checked
 * against [0, limit) and used at offset `base` (a Linux guest's RAM inside v86's memory).
 * False when the window lies outside the memory.
 */
export function setDmaWindow(memory: WebAssembly.Memory, base: number, limit: number): boolean {
  return vringEngine(memory).vringSetDmaWindow(base, limit) === 1;
}
