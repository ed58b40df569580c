// Split virtqueue (VirtIO 1.2 section 2.7) driver and device sides used by the transports,
// over one domain's memory. Everything the other side writes is re-validated here:
// the avail index may not run ahead by more than the queue size, heads and next
// indices stay below the size, chains are bounded by the size (no loops), readable
// buffers come before writable ones, and every buffer lies inside memory.
//
//   desc  16 B x size : {le64 addr, le32 len, le16 flags, le16 next}
//   avail 6 + 2 x size: {le16 flags, le16 idx, le16 ring[size], le16 used_event}
//   used  6 + 8 x size: {le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}
// With VIRTIO_F_EVENT_IDX (2.7.10) each side publishes how far the other may go before it
// wants a notification (used_event / avail_event) and notifications follow vring_need_event.
import type { GuestHeap } from "../guest/heap.ts";
import type { ChainBuffers, DeviceSide, DriverSide } from "./queue-sides.ts";

const VIRTQ_DESC_F_NEXT = 1;
const VIRTQ_DESC_F_WRITE = 2;
const VIRTQ_DESC_F_INDIRECT = 4;

/** vring_need_event (VirtIO 1.2 2.7.10): has idx moved past event since old? All u16. */
export function vringNeedEvent(event: number, newIdx: number, old: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

export type SplitError =
  | "AvailIdxJump" | "IndexOutOfRange" | "DescriptorLoop" | "ChainTooLong" | "AddressOutOfRange"
  | "ReadableAfterWritable" | "IndirectNotSupported" | "LengthOverflow";

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

class SplitDevice implements DeviceSide {
  readonly size: number;
  private readonly eventIdx: boolean;
  /** used idx at the last interrupt decision (EVENT_IDX). */
  private signalledAt = 0;
  error: SplitError | null = null;
  private readonly dv: DataView;
  private readonly memSize: number;
  private readonly l: SplitLayout;
  private lastAvail = 0;
  private usedIdx = 0;
  private readonly seen: Uint8Array;

  constructor(memory: WebAssembly.Memory, l: SplitLayout, eventIdx: boolean) {
    this.l = l;
    this.size = l.size;
    this.eventIdx = eventIdx;
    this.dv = new DataView(memory.buffer);
    this.memSize = memory.buffer.byteLength;
    this.seen = new Uint8Array(l.size);
  }

  private fail(e: SplitError): number {
    this.error = e; // the queue is broken (NEEDS_RESET); nothing more is popped
    return -1;
  }

  pop(out: ChainBuffers): number {
    if (this.error) return -1;
    const dv = this.dv;
    const availIdx = dv.getUint16(this.l.avail + 2, true); // driver-written, read once
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending === 0) return 0;
    if (pending > this.size) return this.fail("AvailIdxJump");
    const head = dv.getUint16(this.l.avail + 4 + 2 * (this.lastAvail & (this.size - 1)), true);
    if (head >= this.size) return this.fail("IndexOutOfRange");
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    // avail_event: kick me for anything past what I have taken.
    if (this.eventIdx) dv.setUint16(this.l.used + 4 + 8 * this.size, this.lastAvail, true);
    out.reset(head);
    this.seen.fill(0);
    let i = head;
    let sawWritable = false;
    let total = 0;
    // Each step marks a descriptor; a second visit is a loop, so <= size steps.
    for (;;) {
      if (this.seen[i]) return this.fail("DescriptorLoop");
      if (out.count >= this.size) return this.fail("ChainTooLong");
      this.seen[i] = 1;
      const d = this.l.desc + i * 16;
      const lo = dv.getUint32(d, true);
      const hi = dv.getUint32(d + 4, true);
      const len = dv.getUint32(d + 8, true);
      const flags = dv.getUint16(d + 12, true);
      const next = dv.getUint16(d + 14, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) return this.fail("IndirectNotSupported");
      // hi != 0 is beyond any 4 GiB memory; lo + len is exact in doubles.
      if (hi !== 0 || lo + len > this.memSize) return this.fail("AddressOutOfRange");
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (!writable && sawWritable) return this.fail("ReadableAfterWritable");
      sawWritable ||= writable;
      total += len;
      if (total > 0xffffffff) return this.fail("LengthOverflow");
      out.push(lo, len, writable);
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      if (next >= this.size) return this.fail("IndexOutOfRange");
      i = next;
    }
    return 1;
  }

  push(head: number, written: number): void {
    const e = this.l.used + 4 + 8 * (this.usedIdx & (this.size - 1));
    this.dv.setUint32(e, head, true);
    this.dv.setUint32(e + 4, written, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.dv.setUint16(this.l.used + 2, this.usedIdx, true); // publish after the entry
  }

  needsInterrupt(): boolean {
    const old = this.signalledAt;
    this.signalledAt = this.usedIdx;
    if (!this.eventIdx) return old !== this.usedIdx;
    const usedEvent = this.dv.getUint16(this.l.avail + 4 + 2 * this.size, true); // driver-written
    return vringNeedEvent(usedEvent, this.usedIdx, old);
  }
}

/** A split ring of `size` entries allocated from `heap`, seen from both sides. */
export function splitQueue(memory: WebAssembly.Memory, heap: GuestHeap, size: number, eventIdx = false): { driver: DriverSide; device: DeviceSide } {
  const l = allocSplit(memory, heap, size);
  return { driver: new SplitDriver(memory, l, eventIdx), device: new SplitDevice(memory, l, eventIdx) };
}
