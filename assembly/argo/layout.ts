// Byte layouts of Xen's public/argo.h, as the hypervisor and guests see them.
//
//   xen_argo_ring_t (page 0 of every ring)
//   +--------+--------+------------------------+------------------------------+
//   | rx_ptr | tx_ptr |  reserved[56]          |  ring[len] (data, 16-aligned)|
//   +--------+--------+------------------------+------------------------------+
//   0        4        8                        64                      64+len
//   rx_ptr: written by the receiving guest (untrusted by the hypervisor).
//   tx_ptr: written by the hypervisor (untrusted by the receiving guest).
//
//   struct xen_argo_ring_message_header (16 bytes, never split at the wrap)
//   +--------+----------------------------+--------------+----------------+
//   | len    | source.aport | dom | pad   | message_type | payload ...    |
//   +--------+--------------+-----+-------+--------------+----------------+
//   0        4              8     10      12             16
//   len counts the header; the next message starts at ROUNDUP_MESSAGE(len).

/** sizeof(xen_argo_ring_t): the ring header before the data area. */
export const RING_HEADER_SIZE: u32 = 64;
export const RING_RX_PTR: u32 = 0;
export const RING_TX_PTR: u32 = 4;

/** XEN_ARGO_MSG_SLOT_SIZE: messages are padded to a multiple of this. */
export const MSG_SLOT_SIZE: u32 = 16;
/** sizeof(struct xen_argo_ring_message_header). */
export const MSG_HEADER_SIZE: u32 = 16;
export const MSG_LEN: u32 = 0;
export const MSG_SOURCE_APORT: u32 = 4;
export const MSG_SOURCE_DOMID: u32 = 8;
export const MSG_SOURCE_PAD: u32 = 10;
export const MSG_TYPE: u32 = 12;

/** XEN_ARGO_MAX_RING_SIZE (16 MiB). */
export const MAX_RING_SIZE: u32 = 0x1000000;
/** MAX_ARGO_MESSAGE_SIZE in argo.c: the largest payload the largest ring takes. */
export const MAX_MESSAGE_SIZE: u32 = MAX_RING_SIZE - MSG_HEADER_SIZE - MSG_SLOT_SIZE;

export const PAGE_SHIFT: u32 = 12;
export const PAGE_SIZE: u32 = 4096;

// Xen errnos, as returned (negated) by the hypercall.
export const EAGAIN: i32 = 11;
export const EMSGSIZE: i32 = 90;

/** ROUNDUP_MESSAGE(a): round up to the message slot size. Callers keep a < 2^32 - 16. */
// @ts-ignore: decorator
@inline export function roundupMessage(a: u32): u32 {
  return (a + (MSG_SLOT_SIZE - 1)) & ~(MSG_SLOT_SIZE - 1);
}
