// Split virtqueue (VirtIO 1.2 section 2.7) driver and device sides used by the transports,
// over one domain's memory. The device side (the one that reads what another party wrote)
// walks and validates chains in Wasm (assembly/vring/split.ts): the avail index may not
// run ahead by more than the queue size, heads and next indices stay below the size,
// chains are bounded by the size (no loops), readable buffers come before writable ones,
// and every buffer lies inside memory; indirect tables (when negotiated) are walked with
// the same rules plus their own (no nesting, length a non-zero multiple of 16).
// The driver side is the guest's own and stays here (it never builds indirect tables).
//
//   desc  16 B x size : {le64 addr, le32 len, le16 flags, le16 next}
//   avail 6 + 2 x size: {le16 flags, le16 idx, le16 ring[size], le16 used_event}
//   used  6 + 8 x size: {le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}
// With VIRTIO_F_EVENT_IDX (2.7.10) each side publishes how far the other may go before it
// wants a notification (used_event / avail_event) and notifications follow vring_need_event.
import type { GuestHeap } from "../guest/heap.ts";
import type { ChainBuffers, DeviceSide, DriverSide } from "./queue-sides.ts";
import { instantiate } from "../wasm.ts";

const VIRTQ_DESC_F_NEXT = 1;
const VIRTQ_DESC_F_WRITE = 2;

/** vring_need_event (VirtIO 1.2 2.7.10): has idx moved past event since old? All u16. */
export function vringNeedEvent(event: number, newIdx: number, old: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

export type SplitError =
  | "AvailIdxJump" | "IndexOutOfRange" | "DescriptorLoop" | "ChainTooLong" | "AddressOutOfRange"
  | "ReadableAfterWritable" | "IndirectNotSupported" | "LengthOverflow" | "BadQueue"
  | "IndirectInIndirect" | "InvalidIndirectLength";

/** Where a split ring lives in memory. */
export interface SplitLayout {
  size: number;
  desc: number;
  avail: number;
  used: number;
}

export function allocSplit(memory: WebAssembly.Memory, heap: GuestHeap, size: number): SplitLayout {
  if (size < 1 || size > 32768 || (size & (size - 1)) !== 0) throw new RangeError(`queue size ${size} is not a power of two <= 32768`);
  const l = { size, desc: heap.alloc(16 * size), avail: heap.alloc(6 + 2 * size), used: heap.alloc(6 + 8 * size) };
  // Pages may be recycled: a ring starts with every index and event field at zero.
  const u8 = new Uint8Array(memory.buffer);
  u8.fill(0, l.avail, l.avail + 6 + 2 * size);
  u8.fill(0, l.used, l.used + 6 + 8 * size);
  return l;
}

class SplitDriver implements DriverSide {
  readonly size: number;
  private readonly eventIdx: boolean;
  /** avail idx at the last kick decision (EVENT_IDX). */
  private kickedAt = 0;
  private readonly dv: DataView;
  private readonly l: SplitLayout;
  private readonly free: number[] = [];
  private readonly chainLen: Uint16Array;
  private availIdx = 0;
  private lastUsed = 0;

  constructor(memory: WebAssembly.Memory, l: SplitLayout, eventIdx: boolean) {
    this.l = l;
    this.size = l.size;
    this.eventIdx = eventIdx;
    this.dv = new DataView(memory.buffer);
    this.chainLen = new Uint16Array(l.size);
    for (let i = l.size - 1; i >= 0; i--) this.free.push(i);
  }

  get freeDescriptors(): number {
    return this.free.length;
  }

  add(gpa: ArrayLike<number>, len: ArrayLike<number>, writable: ArrayLike<number>, n: number): number {
    if (n < 1 || this.free.length < n) return -1;
    const dv = this.dv;
    const first = this.free[this.free.length - 1];
    for (let i = 0; i < n; i++) {
      const id = this.free.pop()!;
      const next = i < n - 1 ? this.free[this.free.length - 1] : 0;
      const d = this.l.desc + id * 16;
      dv.setUint32(d, gpa[i] >>> 0, true);
      dv.setUint32(d + 4, Math.floor(gpa[i] / 0x100000000), true);
      dv.setUint32(d + 8, len[i], true);
      dv.setUint16(d + 12, (i < n - 1 ? VIRTQ_DESC_F_NEXT : 0) | (writable[i] ? VIRTQ_DESC_F_WRITE : 0), true);
      dv.setUint16(d + 14, next, true);
    }
    this.chainLen[first] = n;
    dv.setUint16(this.l.avail + 4 + 2 * (this.availIdx & (this.size - 1)), first, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    dv.setUint16(this.l.avail + 2, this.availIdx, true); // publish after the entry
    return first;
  }

  needsKick(): boolean {
    const old = this.kickedAt;
    this.kickedAt = this.availIdx;
    if (!this.eventIdx) return true;
    const availEvent = this.dv.getUint16(this.l.used + 4 + 8 * this.size, true); // device-written
    return vringNeedEvent(availEvent, this.availIdx, old);
  }

  reclaim(cb: (head: number, written: number) => void): number {
    const dv = this.dv;
    const usedIdx = dv.getUint16(this.l.used + 2, true); // device-written, read once
    let n = 0;
    // At most `size` entries can be new; more means the device lied: stop there.
    while (this.lastUsed !== usedIdx && n < this.size) {
      const e = this.l.used + 4 + 8 * (this.lastUsed & (this.size - 1));
      const id = dv.getUint32(e, true);
      const written = dv.getUint32(e + 4, true);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      n++;
      if (id >= this.size || this.chainLen[id] === 0) continue; // not a head we gave out
      let d = id;
      for (let i = this.chainLen[id]; i > 0; i--) {
        this.free.push(d);
        d = dv.getUint16(this.l.desc + d * 16 + 14, true) & (this.size - 1);
      }
      this.chainLen[id] = 0;
      cb(id, written);
    }
    // used_event: interrupt me as soon as anything past what I have seen is used.
    if (this.eventIdx) this.dv.setUint16(this.l.avail + 4 + 2 * this.size, this.lastUsed, true);
    return n;
  }
}

/** Exports of build/vring.wasm (assembly/vring/split.ts). */
interface VringEngine {
  vringPop(desc: number, avail: number, used: number, size: number, lastAvail: number, eventIdx: number, out: number): number;
  vringPush(used: number, size: number, usedIdx: number, head: number, written: number): number;
  vringNeedEvent(event: number, newIdx: number, old: number): number;
  vringUsedEvent(avail: number, size: number): number;
}

const VRING_ERRORS: Record<number, SplitError> = {
  [-1]: "AvailIdxJump", [-2]: "IndexOutOfRange", [-3]: "DescriptorLoop", [-4]: "AddressOutOfRange",
  [-5]: "ReadableAfterWritable", [-6]: "IndirectNotSupported", [-7]: "LengthOverflow", [-8]: "BadQueue",
  [-9]: "IndirectInIndirect", [-10]: "InvalidIndirectLength", [-11]: "ChainTooLong",
};

const engines = new WeakMap<WebAssembly.Memory, VringEngine>();

/** build/vring.wasm instantiated once per memory. */
function vringEngine(memory: WebAssembly.Memory): VringEngine {
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
  error: SplitError | null = null;
  private readonly engine: VringEngine;
  private readonly u32: Uint32Array;
  private readonly l: SplitLayout;
  private readonly eventIdx: boolean;
  /** vringPop feature bits: 1 EVENT_IDX, 2 INDIRECT_DESC. */
  private readonly features: number;
  /** Out block for vringPop: head, count, then 16 bytes per buffer. */
  private readonly out: number;
  private lastAvail = 0;
  private usedIdx = 0;
  /** used idx at the last interrupt decision (EVENT_IDX). */
  private signalledAt = 0;

  constructor(memory: WebAssembly.Memory, heap: GuestHeap, l: SplitLayout, eventIdx: boolean, indirect: boolean) {
    this.l = l;
    this.size = l.size;
    this.eventIdx = eventIdx;
    this.features = (eventIdx ? 1 : 0) | (indirect ? 2 : 0);
    this.engine = vringEngine(memory);
    this.u32 = new Uint32Array(memory.buffer);
    this.out = heap.alloc(8 + 16 * l.size);
  }

  pop(out: ChainBuffers): number {
    if (this.error) return -1;
    const l = this.l;
    const n = this.engine.vringPop(l.desc, l.avail, l.used, l.size, this.lastAvail, this.features, this.out);
    if (n === 0) return 0;
    if (n < 0) {
      this.error = VRING_ERRORS[n] ?? "BadQueue"; // NEEDS_RESET: nothing more is popped
      return -1;
    }
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    const w = this.out >>> 2; // heap allocations are page-aligned
    out.reset(this.u32[w]);
    for (let i = 0; i < n; i++) {
      const e = w + 2 + 4 * i;
      out.push(this.u32[e], this.u32[e + 1], (this.u32[e + 2] & VIRTQ_DESC_F_WRITE) !== 0);
    }
    return 1;
  }

  push(head: number, written: number): void {
    this.usedIdx = this.engine.vringPush(this.l.used, this.l.size, this.usedIdx, head, written);
  }

  needsInterrupt(): boolean {
    const old = this.signalledAt;
    this.signalledAt = this.usedIdx;
    if (!this.eventIdx) return old !== this.usedIdx;
    const usedEvent = this.engine.vringUsedEvent(this.l.avail, this.l.size); // driver-written
    return this.engine.vringNeedEvent(usedEvent, this.usedIdx, old) === 1;
  }
}

/** A split ring of `size` entries allocated from `heap`, seen from both sides. */
export function splitQueue(
  memory: WebAssembly.Memory, heap: GuestHeap, size: number, eventIdx = false, indirect = false,
): { driver: DriverSide; device: DeviceSide } {
  const l = allocSplit(memory, heap, size);
  return { driver: new SplitDriver(memory, l, eventIdx), device: new SplitDevice(memory, heap, l, eventIdx, indirect) };
}
