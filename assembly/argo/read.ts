// Guest side of an Argo ring: what a receiving guest's driver runs over its OWN memory
// to consume one message. The ring is described by the same gfn list (u64 entries) the
// guest passed to register_ring, so rings on non-contiguous pages read correctly.
//
// Trust: tx_ptr and every message header are written by the hypervisor, which a careful
// guest still validates (a buggy hypervisor, or an overlapping ring of its own, must not
// make it read outside its ring or its memory). Every address is checked against the
// memory size before use, so bad input gives an error code, never a trap.
import {
  RING_HEADER_SIZE, RING_RX_PTR, RING_TX_PTR, MSG_HEADER_SIZE, MSG_LEN, MSG_SOURCE_APORT,
  MSG_SOURCE_DOMID, MSG_TYPE, MAX_RING_SIZE, PAGE_SHIFT, PAGE_SIZE, roundupMessage,
} from "./layout";

/** Ring is empty: nothing to read. */
export const READ_EMPTY: i32 = -1;
/** ringLen, the gfn list or a gfn is not a valid ring in this memory. */
export const READ_BAD_RING: i32 = -2;
/** rx_ptr or tx_ptr is unaligned or outside the ring. */
export const READ_BAD_POINTER: i32 = -3;
/** A message header's len is shorter than a header or longer than the data present. */
export const READ_BAD_MESSAGE: i32 = -4;
/** The output buffer or metadata block lies outside memory. */
export const READ_BAD_BUFFER: i32 = -5;

/** Metadata block written by argoRecv (16 bytes; argoReadMessage also uses the next 8 as its iov). */
export const META_PAYLOAD_LEN: u32 = 0;
export const META_SOURCE_APORT: u32 = 4;
export const META_SOURCE_DOMID: u32 = 8;
export const META_TYPE: u32 = 12;

// @ts-ignore: decorator
@inline function memoryBytes(): u64 {
  return <u64>memory.size() << 16;
}

/** ringByteGpa's answer for a gfn outside memory: no u32 address, so it cannot be mistaken for one. */
const OUTSIDE: i64 = -1;

/**
 * Guest-physical address of ring byte `ringByte` (0 = start of xen_argo_ring_t), or
 * OUTSIDE when the gfn for it lies outside memory. An i64, because every u32 is a valid
 * address in a 4 GiB guest (0xFFFFFFFF is its last byte, and may hold ring data).
 * The caller has checked that the gfn list itself is inside memory.
 */
// @ts-ignore: decorator
@inline function ringByteGpa(gfnList: u32, ringByte: u32): i64 {
  const gfn = load<u64>(gfnList + ((ringByte >> PAGE_SHIFT) << 3)); // guest's own list
  if (gfn >= (memoryBytes() >> PAGE_SHIFT)) return OUTSIDE;
  return <i64>((<u32>gfn << PAGE_SHIFT) | (ringByte & (PAGE_SIZE - 1)));
}

/**
 * Copies `n` bytes of ring data starting at data offset `off` into `dst`, following the
 * wrap at ringLen and the page boundaries of the gfn list. Returns false if a page is
 * outside memory. Each step moves at least one byte, so the loop ends after <= n steps.
 */
function copyOut(gfnList: u32, ringLen: u32, off: u32, dst: u32, n: u32): bool {
  while (n > 0) {
    const ringByte = RING_HEADER_SIZE + off;
    const at = ringByteGpa(gfnList, ringByte);
    if (at == OUTSIDE) return false;
    const src = <u32>at;
    let chunk = PAGE_SIZE - (ringByte & (PAGE_SIZE - 1)); // to the end of this page
    if (chunk > ringLen - off) chunk = ringLen - off;      // to the wrap
    if (chunk > n) chunk = n;
    memory.copy(dst, src, chunk);
    dst += chunk;
    n -= chunk;
    off += chunk;
    if (off == ringLen) off = 0;
  }
  return true;
}

/**
 * Reads the message at rx_ptr. Writes its metadata to `metaGpa`, then copies payload
 * bytes from offset `skip` on into the `niov` buffers described at `iovGpa` (each
 * {le32 gpa, le32 len}, in order) until the payload or the buffers run out. When
 * `consume` is non-zero, rx_ptr moves past the message (a payload longer than the
 * buffers is truncated, like MSG_TRUNC, so one message cannot block the ring).
 * Returns the full payload length, or a negative READ_* code with rx_ptr unchanged.
 */
export function argoRecv(
  gfnList: u32, ringLen: u32, metaGpa: u32, iovGpa: u32, niov: u32, skip: u32, consume: u32,
): i32 {
  const mem = memoryBytes();
  // The ring geometry is the guest's own choice, but check it so nothing below can trap.
  if (ringLen < 3 * MSG_HEADER_SIZE || ringLen > MAX_RING_SIZE || (ringLen & 15) != 0) return READ_BAD_RING;
  const npages = (RING_HEADER_SIZE + ringLen + PAGE_SIZE - 1) >> PAGE_SHIFT;
  if (<u64>gfnList + (<u64>npages << 3) > mem) return READ_BAD_RING;
  if (<u64>metaGpa + 16 > mem || <u64>iovGpa + (<u64>niov << 3) > mem) return READ_BAD_BUFFER;
  const ringAt = ringByteGpa(gfnList, 0);
  if (ringAt == OUTSIDE) return READ_BAD_RING;
  const ring = <u32>ringAt;

  const rx = load<u32>(ring + RING_RX_PTR); // our own pointer, read once
  const tx = load<u32>(ring + RING_TX_PTR); // hypervisor-written, read once
  if (rx >= ringLen || tx >= ringLen || ((rx | tx) & 15) != 0) return READ_BAD_POINTER;
  if (rx == tx) return READ_EMPTY;
  let avail = <i32>tx - <i32>rx; // both < 16 MiB
  if (avail < 0) avail += <i32>ringLen;

  // The header never splits at the wrap (rx is 16-aligned) nor across a page.
  const hdrAt = ringByteGpa(gfnList, RING_HEADER_SIZE + rx);
  if (hdrAt == OUTSIDE) return READ_BAD_RING;
  const hdr = <u32>hdrAt;
  const len = load<u32>(hdr + MSG_LEN);
  // len > avail first, so roundupMessage(len) below cannot wrap.
  if (len < MSG_HEADER_SIZE || len > <u32>avail || roundupMessage(len) > <u32>avail) return READ_BAD_MESSAGE;
  const payloadLen = len - MSG_HEADER_SIZE;

  // Validate every output buffer before writing anything.
  for (let i: u32 = 0; i < niov; i++) {
    const base = load<u32>(iovGpa + (i << 3));
    const n = load<u32>(iovGpa + (i << 3) + 4);
    if (<u64>base + <u64>n > mem) return READ_BAD_BUFFER;
  }

  store<u32>(metaGpa + META_PAYLOAD_LEN, payloadLen);
  store<u32>(metaGpa + META_SOURCE_APORT, load<u32>(hdr + MSG_SOURCE_APORT));
  store<u32>(metaGpa + META_SOURCE_DOMID, <u32>load<u16>(hdr + MSG_SOURCE_DOMID));
  store<u32>(metaGpa + META_TYPE, load<u32>(hdr + MSG_TYPE));

  if (skip < payloadLen) {
    // Payload byte `skip` sits at data offset rx + 16 + skip (mod ringLen); all terms
    // are < 16 MiB so the sum cannot wrap.
    let off = rx + MSG_HEADER_SIZE + skip;
    if (off >= ringLen) off -= ringLen;
    let left = payloadLen - skip;
    for (let i: u32 = 0; i < niov && left > 0; i++) {
      const base = load<u32>(iovGpa + (i << 3));
      let n = load<u32>(iovGpa + (i << 3) + 4);
      if (n > left) n = left;
      if (!copyOut(gfnList, ringLen, off, base, n)) return READ_BAD_RING;
      left -= n;
      off += n; // < 2 * ringLen
      if (off >= ringLen) off -= ringLen;
    }
  }

  if (consume != 0) {
    let next = rx + roundupMessage(len); // <= rx + avail < 2 * ringLen
    if (next >= ringLen) next -= ringLen;
    store<u32>(ring + RING_RX_PTR, next);
  }
  return <i32>payloadLen;
}

/**
 * Reads and consumes the message at rx_ptr into one buffer (argoRecv with a single
 * iov kept in the metadata block's neighbour: callers pass an 8-byte scratch at
 * metaGpa + 16). Returns the payload length or a READ_* code.
 */
export function argoReadMessage(gfnList: u32, ringLen: u32, metaGpa: u32, bufGpa: u32, bufCap: u32): i32 {
  if (<u64>metaGpa + 24 > memoryBytes()) return READ_BAD_BUFFER;
  store<u32>(metaGpa + 16, bufGpa);
  store<u32>(metaGpa + 20, bufCap);
  return argoRecv(gfnList, ringLen, metaGpa, metaGpa + 16, 1, 0, 1);
}

/** Number of bytes between rx_ptr and tx_ptr (0 when empty), or a negative READ_* code. */
export function argoPendingBytes(gfnList: u32, ringLen: u32): i32 {
  if (ringLen < 3 * MSG_HEADER_SIZE || ringLen > MAX_RING_SIZE || (ringLen & 15) != 0) return READ_BAD_RING;
  if (<u64>gfnList + 8 > memoryBytes()) return READ_BAD_RING;
  const ringAt = ringByteGpa(gfnList, 0);
  if (ringAt == OUTSIDE) return READ_BAD_RING;
  const ring = <u32>ringAt;
  const rx = load<u32>(ring + RING_RX_PTR);
  const tx = load<u32>(ring + RING_TX_PTR);
  if (rx >= ringLen || tx >= ringLen || ((rx | tx) & 15) != 0) return READ_BAD_POINTER;
  let avail = <i32>tx - <i32>rx;
  if (avail < 0) avail += <i32>ringLen;
  return avail;
}
