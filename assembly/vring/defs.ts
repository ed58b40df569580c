// What every ring module shares, as rust-vmm's virtio-queue `defs.rs`: the flag bits of
// the spec (VirtIO 1.2 2.7 split, 2.8 packed), the feature bits and buffer flags the
// exports take, ONE error enum for every export of build/vring.wasm, and the bounds
// helpers each guest read is checked with. Constants and pure helpers only: no state
// (the DMA window, which is state, is dma.ts).
//
// host/transport/vring/errors.ts maps the enum to names; test/vring/errors.test.ts ties
// each of its values to the global of the same name that index.ts exports from here.

// ---- descriptor flags ---------------------------------------------------------------

/** 2.7.5: the buffer continues via the `next` field (split) / the next descriptor (packed, 2.8.6). */
export const VIRTQ_DESC_F_NEXT: u16 = 1;
/** 2.7.5: device-writable (otherwise device-readable); in a packed used descriptor, data was written (2.8.5). */
export const VIRTQ_DESC_F_WRITE: u16 = 2;
/** 2.7.5.3 / 2.8.8: the buffer holds a table of indirect descriptors. */
export const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/** 2.8.1: packed descriptor AVAIL bit (the driver's wrap counter when made available). */
export const VIRTQ_DESC_F_AVAIL: u16 = 1 << 7;
/** 2.8.1: packed descriptor USED bit (the device's wrap counter when used). */
export const VIRTQ_DESC_F_USED: u16 = 1 << 15;

// ---- ring flags and event suppression -----------------------------------------------

/** avail.flags bit 0 (2.7.7.2): the driver asks for no used buffer notifications. */
export const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/** used.flags bit 0 (2.7.7.2): the device asks for no available buffer notifications. */
export const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;
/** Packed event suppression `flags` (2.8.10): notify always, never, or at off_wrap. */
export const RING_EVENT_FLAGS_ENABLE: u16 = 0;
export const RING_EVENT_FLAGS_DISABLE: u16 = 1;
export const RING_EVENT_FLAGS_DESC: u16 = 2;

// ---- what the exports take ----------------------------------------------------------

/** vringPop / packedPop `features` bits: the ring features the driver negotiated. */
export const FEATURE_EVENT_IDX: u32 = 1;
export const FEATURE_INDIRECT: u32 = 2;
/**
 * Addresses are Xen grant DMA handles (bit 63 set, ref << 12 | offset: xen/grant-dma-ops.c)
 * for the `grant` baseline: hi must be exactly GRANT_DMA_HI and lo is returned as is; the
 * hypervisor's grant map, not the walk, bounds the buffer. Split ring only.
 */
export const FEATURE_GRANT_ADDR: u32 = 4;
/** The high half of every grant DMA handle (bit 63). */
export const GRANT_DMA_HI: u32 = 0x80000000;

/** Driver-side buffer flags ({le32 addr, le32 len, le32 flags} blocks): device-writable. */
export const BUF_WRITABLE: u32 = 1;
/** The address is a grant DMA handle (split ring only). */
export const BUF_GRANT_ADDR: u32 = 2;

/** Largest queue of either format (2.7 / 2.8: Queue Size is at most 32768). */
export const MAX_QUEUE_SIZE: u32 = 32768;
/** Most descriptors one indirect table may hold here (the spec bounds it by the queue size too). */
export const MAX_INDIRECT: u32 = 32768;

// ---- the error enum -----------------------------------------------------------------
// Every export returns i32: >= 0 a result, < 0 one of these. Device side (pop, push):
// the driver wrote something the spec forbids, the queue is broken (NEEDS_RESET). Driver
// side (add, reclaim): ERR_RING_FULL is back-pressure (retry after a reclaim); the rest
// are a caller's bug or a lying device, never worth a retry.

/** More than a ring's worth made available at once: the driver lies about avail idx (DoS / hang). */
export const ERR_AVAIL_IDX_JUMP: i32 = -1;
/** A head, next index or buffer id at or past the ring (or table) size. */
export const ERR_INDEX_OUT_OF_RANGE: i32 = -2;
/** A chain visits more descriptors than its table holds: it loops. */
export const ERR_DESCRIPTOR_LOOP: i32 = -3;
/** A buffer not inside the driver's DMA window (or, with grant addresses, not a grant handle). */
export const ERR_ADDRESS_OUT_OF_RANGE: i32 = -4;
/** A device-readable buffer after a device-writable one (2.7.4.2, 2.8.4). */
export const ERR_READABLE_AFTER_WRITABLE: i32 = -5;
/** An indirect descriptor although INDIRECT_DESC was not negotiated. */
export const ERR_INDIRECT_NOT_SUPPORTED: i32 = -6;
/** A chain whose lengths add up past 2^32 - 1. */
export const ERR_LENGTH_OVERFLOW: i32 = -7;
/**
 * The ring, a state or out block, or an argument is out of bounds (size, areas outside
 * memory, a state index past the ring), or (packed driver) the device returned an id that
 * is not outstanding. Device and driver side alike: a bug or an attack, never back-pressure.
 */
export const ERR_BAD_QUEUE: i32 = -8;
/** An indirect table inside an indirect table (2.7.5.3.1, 2.8.8). */
export const ERR_INDIRECT_IN_INDIRECT: i32 = -9;
/** An indirect table of 0 bytes, not a multiple of 16, or longer than MAX_INDIRECT entries. */
export const ERR_INVALID_INDIRECT_LENGTH: i32 = -10;
/**
 * Device side: a chain with more buffers than the pop's out block holds (the queue size).
 * Driver side: a chain of more descriptors than the ring has; it can never be added.
 */
export const ERR_CHAIN_TOO_LONG: i32 = -11;
/** Packed: a chain's later descriptor is not available yet (the driver published a head before its tail). */
export const ERR_INCOMPLETE_CHAIN: i32 = -12;
/** A descriptor with both INDIRECT and NEXT (2.7.5.3.1, 2.8.8: a driver MUST NOT set both). */
export const ERR_INDIRECT_WITH_NEXT: i32 = -13;
/** Driver side: fewer free descriptors (or buffer ids) than the chain needs. Back-pressure: retry after a reclaim. */
export const ERR_RING_FULL: i32 = -14;

// ---- bounds helpers -----------------------------------------------------------------

/** Bytes of memory now (64-bit: a 4 GiB memory does not wrap to 0). */
// @ts-ignore: decorator
@inline export function memoryBytes(): u64 {
  return <u64>memory.size() << 16;
}

/** Does [at, at + bytes) lie inside memory? (64-bit sum: no wrap.) */
// @ts-ignore: decorator
@inline export function fits(at: u32, bytes: u64): bool {
  return <u64>at + bytes <= memoryBytes();
}

/** A packed ring's size (2.8: 1..32768, not necessarily a power of two). */
// @ts-ignore: decorator
@inline export function packedSizeOk(size: u32): bool {
  return size >= 1 && size <= MAX_QUEUE_SIZE;
}

/** A split ring's size (2.7: a power of two, at most 32768). */
// @ts-ignore: decorator
@inline export function splitSizeOk(size: u32): bool {
  return size != 0 && size <= MAX_QUEUE_SIZE && (size & (size - 1)) == 0;
}

/**
 * A split ring of a valid size whose three areas lie inside memory (2.7.6: desc 16 x size,
 * avail 6 + 2 x size, used 6 + 8 x size bytes; sums in 64 bits, no wrap).
 */
// @ts-ignore: decorator
@inline export function splitRingOk(desc: u32, avail: u32, used: u32, size: u32): bool {
  if (!splitSizeOk(size)) return false;
  const s = <u64>size;
  return fits(desc, 16 * s) && fits(avail, 6 + 2 * s) && fits(used, 6 + 8 * s);
}

/** vring_need_event (2.7.10): did idx move past event since old? All u16. Both sides of a split ring use it. */
export function vringNeedEvent(event: u32, newIdx: u32, old: u32): i32 {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff) ? 1 : 0;
}
