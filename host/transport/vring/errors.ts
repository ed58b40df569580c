// The error enum of build/vring.wasm (assembly/vring/defs.ts) as the host sees it: the
// codes every ring export returns (< 0), and the name each has in DeviceSide.error.
// test/vring/errors.test.ts ties every ERR_* here to the Wasm global of the same name.
//
// Device side (pop, push): the driver broke a rule of the spec; the queue is broken
// (NEEDS_RESET). Driver side (add, reclaim): ERR_RING_FULL is back-pressure, retry after a
// reclaim; ERR_CHAIN_TOO_LONG can never succeed; ERR_BAD_QUEUE is a bug (bad geometry or
// arguments) or a lying device.

/** More than a ring's worth made available at once: the driver lies about avail idx (DoS / hang). */
export const ERR_AVAIL_IDX_JUMP = -1;
/** A head, next index or buffer id at or past the ring (or table) size. */
export const ERR_INDEX_OUT_OF_RANGE = -2;
/** A chain visits more descriptors than its table holds: it loops. */
export const ERR_DESCRIPTOR_LOOP = -3;
/** A buffer outside the driver's DMA window (or, with grant addresses, not a grant handle). */
export const ERR_ADDRESS_OUT_OF_RANGE = -4;
/** A device-readable buffer after a device-writable one (2.7.4.2, 2.8.4). */
export const ERR_READABLE_AFTER_WRITABLE = -5;
/** An indirect descriptor although INDIRECT_DESC was not negotiated. */
export const ERR_INDIRECT_NOT_SUPPORTED = -6;
/** A chain whose lengths add up past 2^32 - 1. */
export const ERR_LENGTH_OVERFLOW = -7;
/** The ring, a state or out block, or an argument is out of bounds; (packed driver) the device returned an id not outstanding. */
export const ERR_BAD_QUEUE = -8;
/** An indirect table inside an indirect table (2.7.5.3.1, 2.8.8). */
export const ERR_INDIRECT_IN_INDIRECT = -9;
/** An indirect table of 0 bytes, not a multiple of 16, or too long. */
export const ERR_INVALID_INDIRECT_LENGTH = -10;
/** Device: a chain longer than the queue size. Driver: a chain of more descriptors than the ring has (never fits). */
export const ERR_CHAIN_TOO_LONG = -11;
/** Packed: a chain's later descriptor is not available yet (head published before its tail). */
export const ERR_INCOMPLETE_CHAIN = -12;
/** A descriptor with both INDIRECT and NEXT (2.7.5.3.1, 2.8.8). */
export const ERR_INDIRECT_WITH_NEXT = -13;
/** Driver: fewer free descriptors (or buffer ids) than the chain needs. Back-pressure: retry after a reclaim. */
export const ERR_RING_FULL = -14;

/** Each code's name, as DeviceSide.error reports it. */
export const VRING_ERROR_NAMES = {
  [ERR_AVAIL_IDX_JUMP]: "AvailIdxJump",
  [ERR_INDEX_OUT_OF_RANGE]: "IndexOutOfRange",
  [ERR_DESCRIPTOR_LOOP]: "DescriptorLoop",
  [ERR_ADDRESS_OUT_OF_RANGE]: "AddressOutOfRange",
  [ERR_READABLE_AFTER_WRITABLE]: "ReadableAfterWritable",
  [ERR_INDIRECT_NOT_SUPPORTED]: "IndirectNotSupported",
  [ERR_LENGTH_OVERFLOW]: "LengthOverflow",
  [ERR_BAD_QUEUE]: "BadQueue",
  [ERR_INDIRECT_IN_INDIRECT]: "IndirectInIndirect",
  [ERR_INVALID_INDIRECT_LENGTH]: "InvalidIndirectLength",
  [ERR_CHAIN_TOO_LONG]: "ChainTooLong",
  [ERR_INCOMPLETE_CHAIN]: "IncompleteChain",
  [ERR_INDIRECT_WITH_NEXT]: "IndirectWithNext",
  [ERR_RING_FULL]: "RingFull",
} as const;

/** The name of a ring error, as DeviceSide.error reports it. */
export type VringError = (typeof VRING_ERROR_NAMES)[keyof typeof VRING_ERROR_NAMES];

/** The name of code `code`, or null when it is not one of the enum's (a result, or a code this build does not know). */
export function vringErrorName(code: number): VringError | null {
  return Object.hasOwn(VRING_ERROR_NAMES, code) ? VRING_ERROR_NAMES[code as keyof typeof VRING_ERROR_NAMES] : null;
}
