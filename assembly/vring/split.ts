// Device side of a split virtqueue (VirtIO 1.2 section 2.7, indirect tables 2.7.5.3), over the memory of the
// domain that holds the ring. Everything read from the ring is written by the driver and
// is hostile: each index is read once into a local, checked, then used; a chain is
// bounded by the queue size (a longer walk is a loop); every buffer must lie inside memory.
// Errors are values (negative codes), never traps. State (last_avail, used idx) is the
// caller's, passed in: this module owns no memory.
//
//   desc  16 B x size : {le64 addr, le32 len, le16 flags, le16 next}
//   avail 6 + 2 x size: {le16 flags, le16 idx, le16 ring[size], le16 used_event}
//   used  6 + 8 x size: {le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}
//
// pop() writes the chain into an out block the caller owns:
//   +0 le32 head, +4 le32 count, then count x {le32 addr, le32 len, le32 flags, le32 0}
//
// Flags, feature bits, error codes and bounds helpers: defs.ts; the DMA window: dma.ts.
import {
  ERR_ADDRESS_OUT_OF_RANGE, ERR_AVAIL_IDX_JUMP, ERR_BAD_QUEUE, ERR_CHAIN_TOO_LONG, ERR_DESCRIPTOR_LOOP, ERR_INDEX_OUT_OF_RANGE,
  ERR_INDIRECT_IN_INDIRECT, ERR_INDIRECT_NOT_SUPPORTED, ERR_INDIRECT_WITH_NEXT, ERR_INVALID_INDIRECT_LENGTH, ERR_LENGTH_OVERFLOW,
  ERR_READABLE_AFTER_WRITABLE, FEATURE_EVENT_IDX, FEATURE_GRANT_ADDR, FEATURE_INDIRECT, GRANT_DMA_HI, MAX_INDIRECT,
  VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, fits, splitRingOk, vringNeedEvent,
} from "./defs";
import { dmaAt, dmaLimit } from "./dma";

/** The ring areas, the out block and the size must be sane before anything is read. */
function queueOk(desc: u32, avail: u32, used: u32, size: u32, out: u32): bool {
  return splitRingOk(desc, avail, used, size) && fits(out, 8 + 16 * <u64>size);
}

/**
 * Pops the chain at last_avail. Returns the number of buffers (>= 1, written to `out`),
 * 0 when nothing is available, or a negative ERR_* code (the queue is then broken).
 * With FEATURE_EVENT_IDX, publishes avail_event = last_avail + 1 (kick me past this one);
 * without FEATURE_INDIRECT an indirect descriptor is an error.
 */
export function vringPop(desc: u32, avail: u32, used: u32, size: u32, lastAvail: u32, features: u32, out: u32): i32 {
  if (!queueOk(desc, avail, used, size, out)) return ERR_BAD_QUEUE;
  const availIdx = <u32>load<u16>(avail + 2); // driver-written, read once
  const pending = (availIdx - lastAvail) & 0xffff;
  if (pending == 0) return 0;
  // More than a ring's worth outstanding: the driver lies about avail idx (DoS / hang).
  if (pending > size) return ERR_AVAIL_IDX_JUMP;
  const head = <u32>load<u16>(avail + 4 + 2 * (lastAvail & (size - 1))); // in the ring: size checked
  if (head >= size) return ERR_INDEX_OUT_OF_RANGE;
  if ((features & FEATURE_EVENT_IDX) != 0) store<u16>(used + 4 + 8 * size, <u16>(lastAvail + 1));

  const mem = dmaLimit(); // descriptor addresses are the driver's: checked against its window
  let table = desc; // the descriptor table being walked: the ring's, or one indirect table
  let tableSize = size;
  let inIndirect = false;
  let i = head;
  let count: u32 = 0;
  let steps: u32 = 0;
  let total: u64 = 0;
  let sawWritable = false;
  // ttl: the ring's chain visits at most `size` descriptors and an indirect table at most
  // its own length; one more step is a loop.
  for (;;) {
    if (++steps > tableSize) return ERR_DESCRIPTOR_LOOP;
    const d = table + 16 * i; // i < tableSize: inside the checked table
    const lo = load<u32>(d);
    const hi = load<u32>(d + 4);
    const len = load<u32>(d + 8);
    const flags = load<u16>(d + 12);
    const next = <u32>load<u16>(d + 14);
    if ((features & FEATURE_GRANT_ADDR) != 0) {
      // A grant handle: anything else (a raw gpa) would bypass the grant check.
      if (hi != GRANT_DMA_HI || (flags & VIRTQ_DESC_F_INDIRECT) != 0) return ERR_ADDRESS_OUT_OF_RANGE;
    } else if (hi != 0 || <u64>lo + <u64>len > mem) {
      // hi != 0 is past any 32-bit memory; lo + len is computed in 64 bits, no wrap.
      return ERR_ADDRESS_OUT_OF_RANGE;
    }
    if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
      // Not negotiated: the driver may not use indirect tables at all.
      if ((features & FEATURE_INDIRECT) == 0) return ERR_INDIRECT_NOT_SUPPORTED;
      // 2.7.5.3.1: no nested tables, and the ring descriptor holding one has no NEXT. A
      // table may end a chain of direct descriptors (the split ring does not forbid it;
      // vhost and rust-vmm serve it): its entries follow them, with the same rules and
      // the same out-block bound. packed.ts serves that chain alike.
      if (inIndirect) return ERR_INDIRECT_IN_INDIRECT;
      if ((flags & VIRTQ_DESC_F_NEXT) != 0) return ERR_INDIRECT_WITH_NEXT;
      if (len == 0 || (len & 15) != 0 || (len >> 4) > MAX_INDIRECT) return ERR_INVALID_INDIRECT_LENGTH;
      table = dmaAt(lo); // inside the window: checked above
      tableSize = len >> 4;
      inIndirect = true;
      steps = 0;
      i = 0;
      continue;
    }
    const writable = (flags & VIRTQ_DESC_F_WRITE) != 0;
    if (!writable && sawWritable) return ERR_READABLE_AFTER_WRITABLE;
    sawWritable = sawWritable || writable;
    total += <u64>len;
    if (total > 0xffffffff) return ERR_LENGTH_OVERFLOW;
    // The out block holds `size` buffers: a longer (indirect) chain is refused, not truncated.
    if (count >= size) return ERR_CHAIN_TOO_LONG;
    const e = out + 8 + 16 * count; // count < size: inside the checked out block
    // Grant handles are not addresses (the grant map bounds them); anything else is translated.
    store<u32>(e, (features & FEATURE_GRANT_ADDR) != 0 ? lo : dmaAt(lo));
    store<u32>(e + 4, len);
    store<u32>(e + 8, <u32>flags);
    store<u32>(e + 12, 0);
    count++;
    if ((flags & VIRTQ_DESC_F_NEXT) == 0) break;
    if (next >= tableSize) return ERR_INDEX_OUT_OF_RANGE;
    i = next;
  }
  store<u32>(out, head);
  store<u32>(out + 4, count);
  return <i32>count;
}

/** Writes used[usedIdx] = {head, written} and publishes the new used idx (after the entry). */
export function vringPush(used: u32, size: u32, usedIdx: u32, head: u32, written: u32): u32 {
  if (size == 0 || (size & (size - 1)) != 0 || !fits(used, 6 + 8 * <u64>size)) return usedIdx;
  const e = used + 4 + 8 * (usedIdx & (size - 1));
  store<u32>(e, head);
  store<u32>(e + 4, written);
  const next = (usedIdx + 1) & 0xffff;
  store<u16>(used + 2, <u16>next);
  return next;
}

/**
 * Should the device send a used buffer notification for what it pushed since the used
 * idx was `old` (2.7.7.2)? Nothing pushed: no. With EVENT_IDX: vring_need_event against
 * used_event, avail.flags ignored. Without it: yes unless the driver set
 * VIRTQ_AVAIL_F_NO_INTERRUPT (used_event ignored). Both fields are driver-written, read once.
 */
export function vringNeedInterrupt(avail: u32, size: u32, usedIdx: u32, old: u32, eventIdx: u32): i32 {
  if (((usedIdx - old) & 0xffff) == 0) return 0;
  if (!fits(avail, 6 + 2 * <u64>size)) return 1; // cannot read the driver's wish: do not lose an interrupt
  if (eventIdx != 0) return vringNeedEvent(<u32>load<u16>(avail + 4 + 2 * size), usedIdx, old);
  return (load<u16>(avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) != 0 ? 0 : 1;
}

/** used_event as the driver published it (avail ring tail); 0 if the ring is out of memory. */
export function vringUsedEvent(avail: u32, size: u32): u32 {
  if (!fits(avail, 6 + 2 * <u64>size)) return 0;
  return <u32>load<u16>(avail + 4 + 2 * size);
}
