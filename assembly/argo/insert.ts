// Hypervisor side of an Argo ring: the parts of xen/common/argo.c's ringbuf_insert
// that touch the destination ring's own memory. This instance runs over the memory of
// the domain that OWNS the ring; the payload itself comes from another domain's memory,
// which Wasm cannot address (no multi-memory on Node 20), so the host copies it with a
// native memcpy between the reserve and the publish below.
//
// Trust: rx_ptr is written by the receiving guest and may be anything; tx_ptr is the
// hypervisor's private copy (ring_info->tx_ptr), passed in, never read back from the
// guest. The host has checked that [ringGpa, ringGpa + 64) and the header slot lie in
// this memory (they are in registered, validated pages).
import {
  RING_RX_PTR, MSG_HEADER_SIZE, MSG_LEN, MSG_SOURCE_APORT, MSG_SOURCE_DOMID,
  MSG_SOURCE_PAD, MSG_TYPE, EAGAIN, EMSGSIZE, roundupMessage,
} from "./layout";

/**
 * get_sanitized_ring: the guest's rx_ptr, read once, rounded up to a slot and reset to 0
 * if out of range, so every later sum stays below ringLen (<= 16 MiB, no u32 wrap).
 */
// @ts-ignore: decorator
@inline function sanitizedRx(ringGpa: u32, ringLen: u32): u32 {
  let rx = load<u32>(ringGpa + RING_RX_PTR); // guest-written: anything goes
  // rx <= 0xFFFFFFFF: rounding may wrap to 0 for rx > 0xFFFFFFF0, which is in range.
  rx = roundupMessage(rx);
  return rx >= ringLen ? 0 : rx;
}

/**
 * ringbuf_payload_space: the largest payload that fits now, keeping one slot empty
 * so that rx == tx always means empty and never full.
 */
export function argoPayloadSpace(ringGpa: u32, ringLen: u32, txPtr: u32): u32 {
  const rx = sanitizedRx(ringGpa, ringLen);
  let space = <i32>rx - <i32>txPtr; // both < ringLen <= 16 MiB: no overflow
  if (space <= 0) space += <i32>ringLen;
  space -= <i32>(MSG_HEADER_SIZE + MSG_HEADER_SIZE); // header + the slot kept empty
  return space < 0 ? 0 : <u32>space;
}

/**
 * First half of ringbuf_insert: the size checks and the message header.
 * When the message fits, writes the header at hdrGpa (the gpa of data offset txPtr,
 * translated by the host) and returns the tx_ptr to publish once the payload is in
 * place (>= 0); otherwise -EMSGSIZE when the ring can never hold the message, or
 * -EAGAIN when it cannot hold it now. `len` <= MAX_MESSAGE_SIZE (iov_count checked).
 * Publishing is one aligned u32 store at ringGpa + 4, done by the host after the copy
 * (update_tx_ptr), which saves a second call across the JS/Wasm boundary per message.
 */
export function argoReserve(
  ringGpa: u32, ringLen: u32, txPtr: u32, hdrGpa: u32,
  len: u32, srcAport: u32, srcDomid: u32, messageType: u32,
): i32 {
  const need = roundupMessage(len) + MSG_HEADER_SIZE; // len <= 16 MiB: no wrap
  // The message must not fill the ring: one slot stays free (full != empty).
  if (ringLen <= need) return -EMSGSIZE;
  const rx = sanitizedRx(ringGpa, ringLen);
  let sp: i32 = <i32>ringLen;
  if (rx != txPtr) {
    sp = <i32>rx - <i32>txPtr;
    if (sp < 0) sp += <i32>ringLen;
  }
  if (<i32>need >= sp) return -EAGAIN;
  // The header slot is 16-aligned and 16 bytes: it never straddles the wrap or a page.
  store<u32>(hdrGpa + MSG_LEN, len + MSG_HEADER_SIZE);
  store<u32>(hdrGpa + MSG_SOURCE_APORT, srcAport);
  store<u16>(hdrGpa + MSG_SOURCE_DOMID, <u16>srcDomid);
  store<u16>(hdrGpa + MSG_SOURCE_PAD, 0);
  store<u32>(hdrGpa + MSG_TYPE, messageType);
  let next = txPtr + need; // < 2 * ringLen: one subtraction wraps it
  if (next >= ringLen) next -= ringLen;
  return <i32>next;
}
