// Byte layouts of xen/include/public/argo.h as seen from the host (offsets in bytes).
// test/argo/layout.test.ts checks every number here against the real header (libxen-dev).

/** XEN_ARGO_DOMID_ANY == DOMID_INVALID. */
export const DOMID_ANY = 0x7ff4;
/** XEN_ARGO_MAX_RING_SIZE. */
export const MAX_RING_SIZE = 0x1000000;
/** XEN_ARGO_MSG_SLOT_SIZE. */
export const MSG_SLOT_SIZE = 0x10;
/** XEN_ARGO_MAXIOV. */
export const MAXIOV = 8;
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;

// Operations (XEN_ARGO_OP_*) and flags.
export const OP_REGISTER_RING = 1;
export const OP_UNREGISTER_RING = 2;
export const OP_SENDV = 3;
export const OP_NOTIFY = 4;
export const REGISTER_FLAG_FAIL_EXIST = 0x1;
export const REGISTER_FLAG_MASK = REGISTER_FLAG_FAIL_EXIST;
export const RING_EXISTS = 1 << 0;
export const RING_SHARED = 1 << 1;
export const RING_EMPTY = 1 << 2;
export const RING_SUFFICIENT = 1 << 3;
export const RING_EMSGSIZE = 1 << 4;
export const RING_EBUSY = 1 << 5;

// Limits of xen/common/argo.c.
export const MAX_RINGS_PER_DOMAIN = 128;
export const MAX_NOTIFY_COUNT = 256;
export const MAX_PENDING_PER_RING = 32;

/** sizeof(xen_argo_ring_t): ring header before the data. */
export const RING_HEADER_SIZE = 64;
export const RING_RX_PTR = 0;
export const RING_TX_PTR = 4;
/** sizeof(struct xen_argo_ring_message_header). */
export const MSG_HEADER_SIZE = 16;
/** MAX_ARGO_MESSAGE_SIZE in argo.c. */
export const MAX_MESSAGE_SIZE = MAX_RING_SIZE - MSG_HEADER_SIZE - MSG_SLOT_SIZE;

/** xen_argo_addr_t { u32 aport; u16 domain_id; u16 pad; } */
export const ADDR_SIZE = 8;
export const ADDR_APORT = 0;
export const ADDR_DOMID = 4;
export const ADDR_PAD = 6;
/** xen_argo_send_addr_t { xen_argo_addr_t src, dst; } */
export const SEND_ADDR_SIZE = 16;
export const SEND_ADDR_SRC = 0;
export const SEND_ADDR_DST = 8;
/** xen_argo_iov_t { u64 iov_hnd; u32 iov_len; u32 pad; } */
export const IOV_SIZE = 16;
export const IOV_HND = 0;
export const IOV_LEN = 8;
export const IOV_PAD = 12;
/** xen_argo_register_ring_t { u32 aport; u16 partner_id; u16 pad; u32 len; } */
export const REGISTER_RING_SIZE = 12;
export const REGISTER_APORT = 0;
export const REGISTER_PARTNER = 4;
export const REGISTER_PAD = 6;
export const REGISTER_LEN = 8;
/** xen_argo_unregister_ring_t { u32 aport; u16 partner_id; u16 pad; } */
export const UNREGISTER_RING_SIZE = 8;
/** xen_argo_gfn_t: u64. */
export const GFN_SIZE = 8;
/** xen_argo_ring_data_t { u32 nent; u32 pad; ent data[]; } */
export const RING_DATA_SIZE = 8;
export const RING_DATA_NENT = 0;
export const RING_DATA_ENTS = 8;
/** xen_argo_ring_data_ent_t { addr ring; u16 flags; u16 pad; u32 space_required; u32 max_message_size; } */
export const RING_DATA_ENT_SIZE = 20;
export const ENT_RING = 0;
export const ENT_FLAGS = 8;
export const ENT_PAD = 10;
export const ENT_SPACE_REQUIRED = 12;
export const ENT_MAX_MESSAGE_SIZE = 16;

/** ROUNDUP_MESSAGE on a u32, wrapping as C's unsigned arithmetic does (0xFFFFFFF1.. -> 0). */
export function roundupMessage(n: number): number {
  return ((n + (MSG_SLOT_SIZE - 1)) & ~(MSG_SLOT_SIZE - 1)) >>> 0;
}

/** NPAGES_RING: pages that hold a ring of `len` data bytes plus its header. */
export function npagesRing(len: number): number {
  return Math.ceil((roundupMessage(len) + RING_HEADER_SIZE) / PAGE_SIZE);
}
