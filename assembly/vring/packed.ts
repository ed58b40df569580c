// Packed virtqueues (VirtIO 1.2 section 2.8), both sides, over the memory of the domain
// that holds the ring. One ring of 16-byte descriptors {le64 addr, le32 len, le16 id,
// le16 flags} that driver and device both write: the driver marks a descriptor available
// by setting AVAIL (bit 7) to its wrap counter and USED (bit 15) to the inverse; the
// device marks it used by setting both to its own wrap counter. Two 4-byte event
// suppression structures {le16 off_wrap, le16 flags} say when each side wants to be told.
//
// The device side treats everything the driver wrote as hostile, with split.ts's rules and
// defs.ts's error codes: each field read once into a local, chains bounded by the ring size, every
// buffer inside memory, readable before writable, indirect tables (2.8.8) only when
// negotiated, never nested and a non-zero multiple of 16 long. The driver side checks what
// the device writes back (used ids must be outstanding). Errors are values, never traps.
//
// Each side keeps its indices in a state block the caller owns (see *StateSize):
//   device: +0 next_avail, +2 avail_wrap, +4 next_used, +6 used_wrap, +8 signalled_used,
//           +10 signalled_wrap, +12 le32 used_since_signal (descriptors, capped at
//           2 x size), +16 le16 desc_count[size] (ring descriptors per id)
//   driver: +0 next_avail, +2 avail_wrap, +4 next_used, +6 used_wrap, +8 num_free,
//           +10 free_id, +12 kicked_at, +14 kicked_wrap, +16 fifo_head, +18 fifo_len,
//           +20 in_order, +22 added_since_kick (descriptors, capped at 0xFFFF),
//           +24 le16 chain_len[size], le16 next_free[size], le16 fifo[size]
//           (fifo: outstanding ids in the order added, kept only with IN_ORDER)
//
// Flags, feature bits, the error enum and bounds helpers: defs.ts; the DMA window: dma.ts.
import {
  BUF_WRITABLE, ERR_ADDRESS_OUT_OF_RANGE, ERR_BAD_QUEUE, ERR_CHAIN_TOO_LONG, ERR_INCOMPLETE_CHAIN, ERR_INDEX_OUT_OF_RANGE,
  ERR_INDIRECT_IN_INDIRECT, ERR_INDIRECT_NOT_SUPPORTED, ERR_INDIRECT_WITH_NEXT, ERR_INVALID_INDIRECT_LENGTH, ERR_LENGTH_OVERFLOW,
  ERR_READABLE_AFTER_WRITABLE, ERR_RING_FULL, FEATURE_EVENT_IDX, FEATURE_INDIRECT, RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_USED, VIRTQ_DESC_F_WRITE,
  fits, packedSizeOk,
} from "./defs";
import { dmaAt, dmaLimit } from "./dma";

/** Is the descriptor with these flags available for a device whose avail wrap counter is `wrap`? */
// @ts-ignore: decorator
@inline function isAvail(flags: u16, wrap: u32): bool {
  return (((flags & VIRTQ_DESC_F_AVAIL) != 0) == (wrap != 0)) && (((flags & VIRTQ_DESC_F_USED) != 0) != (wrap != 0));
}

/** Is it used, for a driver whose used wrap counter is `wrap`? */
// @ts-ignore: decorator
@inline function isUsed(flags: u16, wrap: u32): bool {
  return (((flags & VIRTQ_DESC_F_AVAIL) != 0) == (wrap != 0)) && (((flags & VIRTQ_DESC_F_USED) != 0) == (wrap != 0));
}

// ---- device side --------------------------------------------------------------------

/** Buffer `k` of a popped chain into the out block (the caller checked k < size). */
// @ts-ignore: decorator
@inline function emit(out: u32, k: u32, addr: u32, len: u32, flags: u16): void {
  const o = out + 8 + 16 * k;
  store<u32>(o, addr);
  store<u32>(o + 4, len);
  store<u32>(o + 8, <u32>(flags & VIRTQ_DESC_F_WRITE));
  store<u32>(o + 12, 0);
}

export function packedDeviceStateSize(size: u32): u32 {
  return 16 + 2 * size;
}

/** Resets the device's view: next_avail 0, both wrap counters 1 (2.8.1). */
export function packedDeviceInit(size: u32, state: u32): i32 {
  if (!packedSizeOk(size) || !fits(state, <u64>packedDeviceStateSize(size))) return ERR_BAD_QUEUE;
  memory.fill(state, 0, packedDeviceStateSize(size));
  store<u16>(state + 2, 1);
  store<u16>(state + 6, 1);
  store<u16>(state + 10, 1); // signalled at position 0 of lap 1
  return 0;
}

/**
 * Pops the chain at next_avail. Returns the number of buffers (written to `out` as
 * split.ts's vringPop does: +0 buffer id, +4 count, then {addr, len, flags, 0} each), 0 when
 * nothing is available, or a negative ERR_* code (the queue is then broken; state is not
 * advanced). With FEATURE_EVENT_IDX, asks to be kicked for the descriptor after this chain.
 */
export function packedPop(desc: u32, deviceEvent: u32, size: u32, state: u32, features: u32, out: u32): i32 {
  if (!packedSizeOk(size) || !fits(desc, 16 * <u64>size) || !fits(deviceEvent, 4) ||
    !fits(state, <u64>packedDeviceStateSize(size)) || !fits(out, 8 + 16 * <u64>size)) return ERR_BAD_QUEUE;
  const mem = dmaLimit(); // descriptor addresses are the driver's: checked against its window
  let i = <u32>load<u16>(state) ; // our own state: the caller's block, not the driver's
  let wrap = <u32>load<u16>(state + 2);
  if (i >= size) return ERR_BAD_QUEUE;
  if (!isAvail(load<u16>(desc + 16 * i + 14), wrap)) return 0;

  let count: u32 = 0;
  let descs: u32 = 0;
  let total: u64 = 0;
  let sawWritable = false;
  let id: u32 = 0;
  for (;;) {
    // A chain never holds more descriptors than the ring: a longer walk wraps onto itself.
    if (++descs > size) return ERR_CHAIN_TOO_LONG;
    const d = desc + 16 * i; // i < size: inside the checked ring
    const flags = load<u16>(d + 14); // driver-written, read once
    if (!isAvail(flags, wrap)) return ERR_INCOMPLETE_CHAIN;
    const lo = load<u32>(d);
    const hi = load<u32>(d + 4);
    const len = load<u32>(d + 8);
    id = <u32>load<u16>(d + 12);
    // hi != 0 is past any 32-bit memory; lo + len in 64 bits cannot wrap.
    if (hi != 0 || <u64>lo + <u64>len > mem) return ERR_ADDRESS_OUT_OF_RANGE;
    i++;
    if (i == size) {
      i = 0;
      wrap ^= 1;
    }
    if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
      if ((features & FEATURE_INDIRECT) == 0) return ERR_INDIRECT_NOT_SUPPORTED;
      // 2.8.8: an indirect descriptor ends its list (no NEXT), its table a non-zero
      // multiple of 16 bytes whose entries are walked in order. A driver MUST NOT put one
      // after direct descriptors; the split ring allows that chain (2.7.5.3.1) and serves
      // it, so this side serves it too with the same rules (order, bounds, out block)
      // rather than naming one chain valid in one format and broken in the other.
      if ((flags & VIRTQ_DESC_F_NEXT) != 0) return ERR_INDIRECT_WITH_NEXT;
      if (len == 0 || (len & 15) != 0) return ERR_INVALID_INDIRECT_LENGTH;
      const entries = len >> 4;
      // The out block holds `size` buffers: a longer list is refused, not truncated
      // (count < descs <= size, so the sum cannot wrap).
      if (count + entries > size) return ERR_CHAIN_TOO_LONG;
      for (let k: u32 = 0; k < entries; k++) {
        const e = dmaAt(lo) + 16 * k; // inside the window's [lo, lo + len): checked above
        const ef = load<u16>(e + 14);
        const elo = load<u32>(e);
        const ehi = load<u32>(e + 4);
        const elen = load<u32>(e + 8);
        if ((ef & VIRTQ_DESC_F_INDIRECT) != 0) return ERR_INDIRECT_IN_INDIRECT;
        if (ehi != 0 || <u64>elo + <u64>elen > mem) return ERR_ADDRESS_OUT_OF_RANGE;
        const w = (ef & VIRTQ_DESC_F_WRITE) != 0;
        if (!w && sawWritable) return ERR_READABLE_AFTER_WRITABLE;
        sawWritable = sawWritable || w;
        total += <u64>elen;
        if (total > 0xffffffff) return ERR_LENGTH_OVERFLOW;
        emit(out, count++, dmaAt(elo), elen, ef); // count < count0 + entries <= size
      }
      break;
    }
    const writable = (flags & VIRTQ_DESC_F_WRITE) != 0;
    if (!writable && sawWritable) return ERR_READABLE_AFTER_WRITABLE;
    sawWritable = sawWritable || writable;
    total += <u64>len;
    if (total > 0xffffffff) return ERR_LENGTH_OVERFLOW;
    emit(out, count++, dmaAt(lo), len, flags); // count < descs <= size
    if ((flags & VIRTQ_DESC_F_NEXT) == 0) break;
  }
  // The buffer id (from the chain's last descriptor, as QEMU reads it) names the chain
  // when it is returned: it must index our per-id table.
  if (id >= size) return ERR_INDEX_OUT_OF_RANGE;
  store<u16>(state, <u16>i);
  store<u16>(state + 2, <u16>wrap);
  store<u16>(state + 16 + 2 * id, <u16>descs);
  if ((features & FEATURE_EVENT_IDX) != 0) {
    store<u16>(deviceEvent, <u16>(i | (wrap << 15)));
    store<u16>(deviceEvent + 2, RING_EVENT_FLAGS_DESC);
  }
  store<u32>(out, id);
  store<u32>(out + 4, count);
  return <i32>count;
}

/**
 * Returns buffer `id` used with `written` bytes: one used descriptor at next_used, flags
 * written last; next_used moves past as many descriptors as the chain took. Returns 0, or
 * ERR_BAD_QUEUE for an id that is not outstanding.
 */
export function packedPush(desc: u32, size: u32, state: u32, id: u32, written: u32): i32 {
  if (!packedSizeOk(size) || !fits(desc, 16 * <u64>size) || !fits(state, <u64>packedDeviceStateSize(size)) || id >= size) return ERR_BAD_QUEUE;
  const n = <u32>load<u16>(state + 16 + 2 * id);
  if (n == 0) return ERR_BAD_QUEUE;
  store<u16>(state + 16 + 2 * id, 0);
  let i = <u32>load<u16>(state + 4);
  let wrap = <u32>load<u16>(state + 6);
  if (i >= size) return ERR_BAD_QUEUE;
  const d = desc + 16 * i;
  store<u32>(d + 8, written);
  store<u16>(d + 12, <u16>id);
  // 2.8.4/2.8.5: in a used descriptor WRITE says the device wrote data, and len is
  // reserved (ignored by drivers) without it; so it is set exactly when len means something.
  store<u16>(d + 14, (wrap != 0 ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0) | (written != 0 ? VIRTQ_DESC_F_WRITE : 0));
  let moved = load<u32>(state + 12) + n; // n <= size, the sum stays far below 2^32
  if (moved > 2 * size) moved = 2 * size;
  store<u32>(state + 12, moved);
  i += n;
  if (i >= size) {
    i -= size;
    wrap ^= 1;
  }
  store<u16>(state + 4, <u16>i);
  store<u16>(state + 6, <u16>wrap);
  return 0;
}

/**
 * Does the driver want an interrupt for what was pushed since the last call? Reads the
 * driver event suppression structure (driver-written: read once). 2.8.10 / QEMU's
 * virtio_packed_should_notify.
 */
export function packedNeedInterrupt(driverEvent: u32, size: u32, state: u32): i32 {
  if (!packedSizeOk(size) || !fits(driverEvent, 4) || !fits(state, 16)) return 1;
  const old = <u32>load<u16>(state + 8);
  const oldWrap = <u32>load<u16>(state + 10);
  const moved = load<u32>(state + 12);
  store<u16>(state + 8, load<u16>(state + 4));
  store<u16>(state + 10, load<u16>(state + 6));
  store<u32>(state + 12, 0);
  const offWrap = <u32>load<u16>(driverEvent);
  const flags = load<u16>(driverEvent + 2);
  if (flags == RING_EVENT_FLAGS_DISABLE) return 0;
  if (flags != RING_EVENT_FLAGS_DESC) return 1;
  return eventInRange(offWrap, size, old, oldWrap, moved);
}

/**
 * Event suppression with RING_EVENT_FLAGS_DESC (2.8.10, both directions): does the
 * descriptor named by `offWrap` lie among the `moved` descriptors written since position
 * `old` of the lap with wrap counter `oldWrap`? Positions are counted on a circle of
 * 2 x size (the wrap counter is the lap's parity), and `moved` is a count, not a
 * difference of indices: one chain covering the whole ring moves `size` and still
 * matches, where QEMU's and Linux's u16 arithmetic (vring_need_event on indices that wrap
 * at `size`) sees no movement and loses the event. `offWrap` is the other side's, hostile:
 * an offset past the ring names no descriptor and never fires; nothing traps.
 */
function eventInRange(offWrap: u32, size: u32, old: u32, oldWrap: u32, moved: u32): i32 {
  if (moved == 0) return 0;
  const off = offWrap & 0x7fff;
  if (off >= size) return 0; // names no descriptor of this ring, so none is ever "the" one
  const laps: u32 = 2 * size;
  if (moved >= laps) return 1; // everything was written over
  const oldPos = old + (oldWrap != 0 ? 0 : size);
  const eventPos = off + ((offWrap >> 15) != 0 ? 0 : size); // < 2 x size
  return (eventPos + laps - oldPos) % laps < moved ? 1 : 0;
}

// ---- driver side --------------------------------------------------------------------

const DS_NEXT_AVAIL: u32 = 0;
const DS_AVAIL_WRAP: u32 = 2;
const DS_NEXT_USED: u32 = 4;
const DS_USED_WRAP: u32 = 6;
const DS_NUM_FREE: u32 = 8;
const DS_FREE_ID: u32 = 10;
const DS_KICKED_AT: u32 = 12;
const DS_KICKED_WRAP: u32 = 14;
const DS_FIFO_HEAD: u32 = 16;
const DS_FIFO_LEN: u32 = 18;
const DS_IN_ORDER: u32 = 20;
const DS_ADDED: u32 = 22;
const DS_TABLES: u32 = 24;

export function packedDriverStateSize(size: u32): u32 {
  return DS_TABLES + 6 * size;
}

// @ts-ignore: decorator
@inline function chainLenAt(state: u32, id: u32): u32 {
  return state + DS_TABLES + 2 * id;
}
// @ts-ignore: decorator
@inline function nextFreeAt(state: u32, size: u32, id: u32): u32 {
  return state + DS_TABLES + 2 * size + 2 * id;
}
// @ts-ignore: decorator
@inline function fifoAt(state: u32, size: u32, k: u32): u32 {
  return state + DS_TABLES + 4 * size + 2 * k;
}

function driverOk(desc: u32, size: u32, state: u32): bool {
  return packedSizeOk(size) && fits(desc, 16 * <u64>size) && fits(state, <u64>packedDriverStateSize(size));
}

/** Resets the ring (all flags 0: nothing available) and the driver's state. */
export function packedDriverInit(desc: u32, driverEvent: u32, size: u32, state: u32, eventIdx: u32, inOrder: u32): i32 {
  if (!driverOk(desc, size, state) || !fits(driverEvent, 4)) return ERR_BAD_QUEUE;
  memory.fill(desc, 0, 16 * size);
  memory.fill(state, 0, packedDriverStateSize(size));
  store<u16>(state + DS_AVAIL_WRAP, 1);
  store<u16>(state + DS_USED_WRAP, 1);
  store<u16>(state + DS_KICKED_WRAP, 1);
  store<u16>(state + DS_IN_ORDER, inOrder != 0 ? 1 : 0);
  store<u16>(state + DS_NUM_FREE, <u16>size); // size <= 32768
  for (let id: u32 = 0; id < size; id++) store<u16>(nextFreeAt(state, size, id), <u16>(id + 1));
  store<u16>(driverEvent, <u16>(1 << 15)); // off 0, wrap 1
  store<u16>(driverEvent + 2, eventIdx != 0 ? RING_EVENT_FLAGS_DESC : RING_EVENT_FLAGS_ENABLE);
  return 0;
}

export function packedDriverFree(state: u32): u32 {
  return <u32>load<u16>(state + DS_NUM_FREE);
}

/**
 * Adds a chain of `n` buffers ({le32 addr, le32 len, le32 flags} each, readable first)
 * under a free buffer id. With `table` != 0 the buffers go into an indirect table at
 * `table` and the ring gets one descriptor. The head's flags are written last, so the
 * device never sees a half-written chain. Returns the id; ERR_RING_FULL when fewer ring
 * descriptors are free than the chain takes, ERR_CHAIN_TOO_LONG when it takes more than
 * the ring has, ERR_BAD_QUEUE for bad geometry or arguments (or a free id past the ring:
 * our state block is corrupt).
 */
export function packedAdd(desc: u32, size: u32, state: u32, bufs: u32, n: u32, table: u32): i32 {
  if (!driverOk(desc, size, state) || n == 0 || !fits(bufs, 12 * <u64>n)) return ERR_BAD_QUEUE;
  if (table != 0 && !fits(table, 16 * <u64>n)) return ERR_BAD_QUEUE;
  const ringDescs: u32 = table != 0 ? 1 : n;
  if (ringDescs > size) return ERR_CHAIN_TOO_LONG; // no reclaim frees more than the ring holds
  const free = <u32>load<u16>(state + DS_NUM_FREE);
  if (ringDescs > free) return ERR_RING_FULL;
  const id = <u32>load<u16>(state + DS_FREE_ID);
  if (id >= size) return ERR_BAD_QUEUE;
  store<u16>(state + DS_FREE_ID, load<u16>(nextFreeAt(state, size, id)));
  let i = <u32>load<u16>(state + DS_NEXT_AVAIL);
  let wrap = <u32>load<u16>(state + DS_AVAIL_WRAP);
  const head = i;
  let headFlags: u16 = 0;
  if (table != 0) {
    for (let k: u32 = 0; k < n; k++) {
      const b = bufs + 12 * k;
      const e = table + 16 * k;
      store<u32>(e, load<u32>(b));
      store<u32>(e + 4, 0);
      store<u32>(e + 8, load<u32>(b + 4));
      store<u16>(e + 12, <u16>id);
      store<u16>(e + 14, (load<u32>(b + 8) & BUF_WRITABLE) != 0 ? VIRTQ_DESC_F_WRITE : 0);
    }
    const d = desc + 16 * i;
    store<u32>(d, table);
    store<u32>(d + 4, 0);
    store<u32>(d + 8, 16 * n);
    store<u16>(d + 12, <u16>id);
    headFlags = VIRTQ_DESC_F_INDIRECT | (wrap != 0 ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED);
    i++;
    if (i == size) { i = 0; wrap ^= 1; }
  } else {
    for (let k: u32 = 0; k < n; k++) {
      const b = bufs + 12 * k;
      const d = desc + 16 * i;
      store<u32>(d, load<u32>(b));
      store<u32>(d + 4, 0);
      store<u32>(d + 8, load<u32>(b + 4));
      store<u16>(d + 12, <u16>id);
      const flags: u16 = ((load<u32>(b + 8) & BUF_WRITABLE) != 0 ? VIRTQ_DESC_F_WRITE : 0) |
        (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0) | (wrap != 0 ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED);
      if (k == 0) headFlags = flags;
      else store<u16>(d + 14, flags);
      i++;
      if (i == size) { i = 0; wrap ^= 1; }
    }
  }
  store<u16>(desc + 16 * head + 14, headFlags); // publish: the whole chain is in place
  store<u16>(state + DS_NEXT_AVAIL, <u16>i);
  store<u16>(state + DS_AVAIL_WRAP, <u16>wrap);
  store<u16>(state + DS_NUM_FREE, <u16>(free - ringDescs));
  store<u16>(chainLenAt(state, id), <u16>ringDescs);
  const added = <u32>load<u16>(state + DS_ADDED) + ringDescs;
  store<u16>(state + DS_ADDED, <u16>(added > 0xffff ? 0xffff : added));
  if (load<u16>(state + DS_IN_ORDER) != 0) {
    // At most `size` ids are outstanding, so the fifo never overflows.
    const fh = <u32>load<u16>(state + DS_FIFO_HEAD);
    const fl = <u32>load<u16>(state + DS_FIFO_LEN);
    store<u16>(fifoAt(state, size, (fh + fl) % size), <u16>id);
    store<u16>(state + DS_FIFO_LEN, <u16>(fl + 1));
  }
  return <i32>id;
}

/** Should the driver notify the device now? Reads the device event suppression structure (device-written). */
export function packedNeedKick(deviceEvent: u32, size: u32, state: u32): i32 {
  if (!packedSizeOk(size) || !fits(deviceEvent, 4) || !fits(state, DS_TABLES)) return 1;
  const old = <u32>load<u16>(state + DS_KICKED_AT);
  const oldWrap = <u32>load<u16>(state + DS_KICKED_WRAP);
  const added = <u32>load<u16>(state + DS_ADDED);
  store<u16>(state + DS_KICKED_AT, load<u16>(state + DS_NEXT_AVAIL));
  store<u16>(state + DS_KICKED_WRAP, load<u16>(state + DS_AVAIL_WRAP));
  store<u16>(state + DS_ADDED, 0);
  const offWrap = <u32>load<u16>(deviceEvent);
  const flags = load<u16>(deviceEvent + 2);
  if (flags == RING_EVENT_FLAGS_DISABLE) return 0;
  if (flags != RING_EVENT_FLAGS_DESC) return 1;
  // A saturated count (only a 32768-entry ring can reach it) means "everything".
  return eventInRange(offWrap, size, old, oldWrap, added == 0xffff ? 2 * size : added);
}

/**
 * Takes up to `max` used buffers: writes {le32 id, le32 written} pairs to `out`, returns
 * their number, or ERR_BAD_QUEUE when the device wrote an id that is not outstanding (the
 * driver cannot know how far to move: the queue is broken). With IN_ORDER, one used
 * descriptor may stand for every outstanding buffer up to its id (2.8.20: earlier ones
 * report 0 bytes). With EVENT_IDX, asks for an interrupt at the next used position.
 */
export function packedReclaim(desc: u32, driverEvent: u32, size: u32, state: u32, eventIdx: u32, out: u32, max: u32): i32 {
  if (!driverOk(desc, size, state) || !fits(driverEvent, 4) || !fits(out, 8 * <u64>max)) return ERR_BAD_QUEUE;
  let i = <u32>load<u16>(state + DS_NEXT_USED);
  let wrap = <u32>load<u16>(state + DS_USED_WRAP);
  if (i >= size) return ERR_BAD_QUEUE;
  let got: u32 = 0;
  // Each step retires at least one outstanding buffer: at most `size` steps.
  for (let steps: u32 = 0; steps < size && got < max; steps++) {
    const d = desc + 16 * i;
    const flags = load<u16>(d + 14); // device-written, read once
    if (!isUsed(flags, wrap)) break;
    const id = <u32>load<u16>(d + 12);
    // 2.8.5: len is reserved without WRITE, and ignored: nothing was written.
    const written = (flags & VIRTQ_DESC_F_WRITE) != 0 ? load<u32>(d + 8) : 0;
    if (id >= size || load<u16>(chainLenAt(state, id)) == 0) return ERR_BAD_QUEUE;
    const inOrder = load<u16>(state + DS_IN_ORDER) != 0;
    // Retire in FIFO order up to `id` (in-order), or just `id` (any order).
    let advance: u32 = 0;
    for (let guard: u32 = 0; guard < size; guard++) {
      let take = id;
      if (inOrder) {
        if (load<u16>(state + DS_FIFO_LEN) == 0) return ERR_BAD_QUEUE;
        const fh = <u32>load<u16>(state + DS_FIFO_HEAD);
        take = <u32>load<u16>(fifoAt(state, size, fh));
        store<u16>(state + DS_FIFO_HEAD, <u16>((fh + 1) % size));
        store<u16>(state + DS_FIFO_LEN, <u16>(<u32>load<u16>(state + DS_FIFO_LEN) - 1));
      }
      const n = <u32>load<u16>(chainLenAt(state, take));
      store<u16>(chainLenAt(state, take), 0);
      store<u16>(nextFreeAt(state, size, take), load<u16>(state + DS_FREE_ID));
      store<u16>(state + DS_FREE_ID, <u16>take);
      store<u16>(state + DS_NUM_FREE, <u16>(<u32>load<u16>(state + DS_NUM_FREE) + n));
      advance += n;
      if (got < max) {
        store<u32>(out + 8 * got, take);
        store<u32>(out + 8 * got + 4, take == id ? written : 0);
        got++;
      }
      if (take == id) break;
    }
    i += advance;
    while (i >= size) {
      i -= size;
      wrap ^= 1;
    }
  }
  store<u16>(state + DS_NEXT_USED, <u16>i);
  store<u16>(state + DS_USED_WRAP, <u16>wrap);
  if (eventIdx != 0) {
    store<u16>(driverEvent, <u16>(i | (wrap << 15)));
    store<u16>(driverEvent + 2, RING_EVENT_FLAGS_DESC);
  }
  return <i32>got;
}
