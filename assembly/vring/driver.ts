// Driver side of a split virtqueue (VirtIO 1.2 section 2.7.13), over the driver's own
// memory. Free descriptors are linked through their `next` fields, as Linux does, and the
// driver's indices live in a small state block the caller owns:
//
//   state: +0 le16 free_head, +2 le16 num_free, +4 le16 avail_idx, +6 le16 last_used,
//          +8 le16 kicked_at, +10 pad, +12 le16 chain_len[size]
//
// The used ring is written by the device: ids and counts read from it are checked (an id
// that is not an outstanding head is skipped), so a lying device cannot corrupt the free
// list through it. Links are masked to the ring size, so even a scribbled descriptor
// table keeps every access inside the table.
//
// Errors (defs.ts): ERR_RING_FULL when the chain needs more descriptors than are free
// (back-pressure: retry after a reclaim), ERR_CHAIN_TOO_LONG when it needs more than the
// ring has (never fits), ERR_BAD_QUEUE for bad geometry or arguments (a caller's bug).
import {
  BUF_GRANT_ADDR, BUF_WRITABLE, ERR_BAD_QUEUE, ERR_CHAIN_TOO_LONG, ERR_RING_FULL, GRANT_DMA_HI, MAX_INDIRECT,
  VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY, fits, splitRingOk, vringNeedEvent,
} from "./defs";

const ST_FREE_HEAD: u32 = 0;
const ST_NUM_FREE: u32 = 2;
const ST_AVAIL_IDX: u32 = 4;
const ST_LAST_USED: u32 = 6;
const ST_KICKED_AT: u32 = 8;
const ST_CHAIN_LEN: u32 = 12;

/** Bytes of the state block for a queue of `size`. */
export function vringDriverStateSize(size: u32): u32 {
  return ST_CHAIN_LEN + 2 * size;
}

function driverOk(desc: u32, avail: u32, used: u32, size: u32, state: u32): bool {
  return splitRingOk(desc, avail, used, size) && fits(state, <u64>vringDriverStateSize(size));
}

/** Resets the driver state: every descriptor free, indices zero. Returns 0, or ERR_BAD_QUEUE on bad geometry. */
export function vringDriverInit(desc: u32, avail: u32, used: u32, size: u32, state: u32): i32 {
  if (!driverOk(desc, avail, used, size, state)) return ERR_BAD_QUEUE;
  for (let i: u32 = 0; i < size; i++) {
    store<u16>(desc + 16 * i + 14, <u16>((i + 1) & (size - 1)));
    store<u16>(state + ST_CHAIN_LEN + 2 * i, 0);
  }
  store<u16>(state + ST_FREE_HEAD, 0);
  store<u16>(state + ST_NUM_FREE, <u16>size); // size <= 32768 fits a u16
  store<u16>(state + ST_AVAIL_IDX, 0);
  store<u16>(state + ST_LAST_USED, 0);
  store<u16>(state + ST_KICKED_AT, 0);
  return 0;
}

/** Descriptors free now. */
export function vringDriverFree(state: u32): u32 {
  return <u32>load<u16>(state + ST_NUM_FREE);
}

/**
 * Adds a chain of `n` buffers described at `bufs` ({le32 addr, le32 len, le32 flags}
 * each, readable first; flags BUF_WRITABLE | BUF_GRANT_ADDR) and publishes it. Returns the
 * head index; ERR_RING_FULL when fewer than `n` descriptors are free, ERR_CHAIN_TOO_LONG
 * when `n` exceeds the ring, ERR_BAD_QUEUE when the ring or `bufs` is out of memory or n is 0.
 */
export function vringAdd(desc: u32, avail: u32, used: u32, size: u32, state: u32, bufs: u32, n: u32): i32 {
  if (!driverOk(desc, avail, used, size, state) || n == 0) return ERR_BAD_QUEUE;
  if (n > size) return ERR_CHAIN_TOO_LONG; // no reclaim frees more than the ring holds
  if (!fits(bufs, 12 * <u64>n)) return ERR_BAD_QUEUE;
  const free = <u32>load<u16>(state + ST_NUM_FREE);
  if (n > free) return ERR_RING_FULL;
  const head = <u32>load<u16>(state + ST_FREE_HEAD) & (size - 1);
  let i = head;
  for (let k: u32 = 0; k < n; k++) {
    const d = desc + 16 * i;
    const b = bufs + 12 * k;
    const bf = load<u32>(b + 8);
    store<u32>(d, load<u32>(b));
    store<u32>(d + 4, (bf & BUF_GRANT_ADDR) != 0 ? GRANT_DMA_HI : 0);
    store<u32>(d + 8, load<u32>(b + 4));
    const flags: u16 = ((bf & BUF_WRITABLE) != 0 ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
    store<u16>(d + 12, flags);
    i = <u32>load<u16>(d + 14) & (size - 1); // free list link = next in the chain
  }
  store<u16>(state + ST_FREE_HEAD, <u16>i);
  store<u16>(state + ST_NUM_FREE, <u16>(free - n));
  store<u16>(state + ST_CHAIN_LEN + 2 * head, <u16>n);
  publish(avail, size, state, head);
  return <i32>head;
}

/**
 * Like vringAdd, but the `n` buffers go into an indirect table at `table` (16 bytes each,
 * linked by `next`) and the ring gets one INDIRECT descriptor (2.7.5.3). Returns the head;
 * ERR_RING_FULL when no descriptor is free, ERR_CHAIN_TOO_LONG for a table of more than
 * MAX_INDIRECT entries (no device here takes it), ERR_BAD_QUEUE as vringAdd.
 */
export function vringAddIndirect(desc: u32, avail: u32, used: u32, size: u32, state: u32, bufs: u32, n: u32, table: u32): i32 {
  if (!driverOk(desc, avail, used, size, state) || n == 0) return ERR_BAD_QUEUE;
  if (n > MAX_INDIRECT) return ERR_CHAIN_TOO_LONG; // longer than vringPop takes
  if (!fits(bufs, 12 * <u64>n) || !fits(table, 16 * <u64>n)) return ERR_BAD_QUEUE;
  const free = <u32>load<u16>(state + ST_NUM_FREE);
  if (free < 1) return ERR_RING_FULL;
  for (let k: u32 = 0; k < n; k++) {
    const b = bufs + 12 * k;
    const e = table + 16 * k;
    store<u32>(e, load<u32>(b));
    store<u32>(e + 4, 0);
    store<u32>(e + 8, load<u32>(b + 4));
    store<u16>(e + 12, ((load<u32>(b + 8) & BUF_WRITABLE) != 0 ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
    store<u16>(e + 14, <u16>(k + 1));
  }
  const head = <u32>load<u16>(state + ST_FREE_HEAD) & (size - 1);
  const d = desc + 16 * head;
  const nextFree = load<u16>(d + 14);
  store<u32>(d, table);
  store<u32>(d + 4, 0);
  store<u32>(d + 8, 16 * n);
  store<u16>(d + 12, VIRTQ_DESC_F_INDIRECT);
  store<u16>(state + ST_FREE_HEAD, nextFree);
  store<u16>(state + ST_NUM_FREE, <u16>(free - 1));
  store<u16>(state + ST_CHAIN_LEN + 2 * head, 1);
  publish(avail, size, state, head);
  return <i32>head;
}

/** Puts `head` in the avail ring and publishes the new avail idx (after the entry). */
function publish(avail: u32, size: u32, state: u32, head: u32): void {
  const availIdx = <u32>load<u16>(state + ST_AVAIL_IDX);
  store<u16>(avail + 4 + 2 * (availIdx & (size - 1)), <u16>head);
  const next = (availIdx + 1) & 0xffff;
  store<u16>(state + ST_AVAIL_IDX, <u16>next);
  store<u16>(avail + 2, <u16>next);
}

/** Should the driver notify the device now? (EVENT_IDX: avail_event; otherwise always.) */
export function vringNeedKick(used: u32, size: u32, state: u32, eventIdx: u32): i32 {
  if (!fits(used, 6 + 8 * <u64>size) || !fits(state, ST_CHAIN_LEN)) return 1;
  const old = <u32>load<u16>(state + ST_KICKED_AT);
  const now = <u32>load<u16>(state + ST_AVAIL_IDX);
  store<u16>(state + ST_KICKED_AT, <u16>now);
  // 2.7.7.2 without EVENT_IDX: avail_event is ignored; used.flags NO_NOTIFY (device-written) says "don't".
  if (eventIdx == 0) return (load<u16>(used) & VIRTQ_USED_F_NO_NOTIFY) != 0 ? 0 : 1;
  const availEvent = <u32>load<u16>(used + 4 + 8 * size); // device-written
  return vringNeedEvent(availEvent, now, old);
}

/**
 * Takes up to `max` used entries: writes {le32 head, le32 written} pairs to `out` and
 * returns their number (0 when none; ERR_BAD_QUEUE on bad geometry). Chains go back on the free list. An entry whose id
 * is not an outstanding head (a lying device) is skipped. With EVENT_IDX, publishes
 * used_event = last_used (interrupt me for anything newer).
 */
export function vringReclaim(desc: u32, avail: u32, used: u32, size: u32, state: u32, eventIdx: u32, out: u32, max: u32): i32 {
  if (!driverOk(desc, avail, used, size, state) || !fits(out, 8 * <u64>max)) return ERR_BAD_QUEUE;
  const usedIdx = <u32>load<u16>(used + 2); // device-written, read once
  let lastUsed = <u32>load<u16>(state + ST_LAST_USED);
  let got: u32 = 0;
  // At most `size` entries can be new: more means the device lies; stop there.
  for (let k: u32 = 0; k < size && lastUsed != usedIdx && got < max; k++) {
    const e = used + 4 + 8 * (lastUsed & (size - 1));
    const id = load<u32>(e);
    const written = load<u32>(e + 4);
    lastUsed = (lastUsed + 1) & 0xffff;
    if (id >= size) continue;
    const n = <u32>load<u16>(state + ST_CHAIN_LEN + 2 * id);
    if (n == 0) continue; // not outstanding
    store<u16>(state + ST_CHAIN_LEN + 2 * id, 0);
    // Walk the chain's n descriptors (our own links) and splice them onto the free list.
    let tail = id;
    for (let j: u32 = 1; j < n; j++) tail = <u32>load<u16>(desc + 16 * tail + 14) & (size - 1);
    store<u16>(desc + 16 * tail + 14, load<u16>(state + ST_FREE_HEAD));
    store<u16>(state + ST_FREE_HEAD, <u16>id);
    store<u16>(state + ST_NUM_FREE, <u16>(<u32>load<u16>(state + ST_NUM_FREE) + n));
    store<u32>(out + 8 * got, id);
    store<u32>(out + 8 * got + 4, written);
    got++;
  }
  store<u16>(state + ST_LAST_USED, <u16>lastUsed);
  if (eventIdx != 0) store<u16>(avail + 4 + 2 * size, <u16>lastUsed);
  return <i32>got;
}
