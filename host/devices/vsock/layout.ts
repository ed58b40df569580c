// virtio-vsock wire constants (VirtIO 1.2 section 5.10; linux/virtio_vsock.h).

/** Queues (5.10.2): rx, tx, event. */
export const RXQ = 0;
export const TXQ = 1;
export const EVENTQ = 2;

/** struct virtio_vsock_config: le64 guest_cid. */
export const CONFIG_SIZE = 8;

/** Well-known CIDs (linux/vm_sockets.h): 0 hypervisor, 1 local, 2 host; guests from 3. */
export const VMADDR_CID_HOST = 2;
export const FIRST_GUEST_CID = 3;
/** VMADDR_CID_ANY / VMADDR_PORT_ANY. */
export const VMADDR_ANY = 0xffffffff;

/**
 * struct virtio_vsock_hdr (packed, 44 bytes): le64 src_cid, le64 dst_cid, le32 src_port,
 * le32 dst_port, le32 len, le16 type, le16 op, le32 flags, le32 buf_alloc, le32 fwd_cnt.
 */
export const HDR_SIZE = 44;
export const H_SRC_CID = 0;
export const H_DST_CID = 8;
export const H_SRC_PORT = 16;
export const H_DST_PORT = 20;
export const H_LEN = 24;
export const H_TYPE = 28;
export const H_OP = 30;
export const H_FLAGS = 32;
export const H_BUF_ALLOC = 36;
export const H_FWD_CNT = 40;

export const VIRTIO_VSOCK_TYPE_STREAM = 1;

export const OP_INVALID = 0;
export const OP_REQUEST = 1;
export const OP_RESPONSE = 2;
export const OP_RST = 3;
export const OP_SHUTDOWN = 4;
export const OP_RW = 5;
export const OP_CREDIT_UPDATE = 6;
export const OP_CREDIT_REQUEST = 7;
export const OP_NAMES = ["INVALID", "REQUEST", "RESPONSE", "RST", "SHUTDOWN", "RW", "CREDIT_UPDATE", "CREDIT_REQUEST"];

/** SHUTDOWN flags: the sender will receive (RCV) / send (SEND) no more. */
export const SHUTDOWN_RCV = 1;
export const SHUTDOWN_SEND = 2;
export const SHUTDOWN_BOTH = 3;

/** struct virtio_vsock_event: le32 id. */
export const EVENT_SIZE = 4;
export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;

/** Largest payload of one packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
export const MAX_PKT_PAYLOAD = 64 << 10;

/** A decoded header; CIDs above 2^32 do not exist (they are u32 in every implementation) and are kept as NaN. */
export interface VsockHeader {
  srcCid: number;
  dstCid: number;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

export function newHeader(): VsockHeader {
  return { srcCid: 0, dstCid: 0, srcPort: 0, dstPort: 0, len: 0, type: 0, op: 0, flags: 0, bufAlloc: 0, fwdCnt: 0 };
}

function cid(dv: DataView, at: number): number {
  return dv.getUint32(at + 4, true) === 0 ? dv.getUint32(at, true) : NaN;
}

/** Reads the 44 header bytes at `at` into `h` (each field read once). */
export function decodeHeader(dv: DataView, at: number, h: VsockHeader): VsockHeader {
  h.srcCid = cid(dv, at + H_SRC_CID);
  h.dstCid = cid(dv, at + H_DST_CID);
  h.srcPort = dv.getUint32(at + H_SRC_PORT, true);
  h.dstPort = dv.getUint32(at + H_DST_PORT, true);
  h.len = dv.getUint32(at + H_LEN, true);
  h.type = dv.getUint16(at + H_TYPE, true);
  h.op = dv.getUint16(at + H_OP, true);
  h.flags = dv.getUint32(at + H_FLAGS, true);
  h.bufAlloc = dv.getUint32(at + H_BUF_ALLOC, true);
  h.fwdCnt = dv.getUint32(at + H_FWD_CNT, true);
  return h;
}

export function encodeHeader(dv: DataView, at: number, h: VsockHeader): void {
  dv.setUint32(at + H_SRC_CID, h.srcCid, true);
  dv.setUint32(at + H_SRC_CID + 4, 0, true);
  dv.setUint32(at + H_DST_CID, h.dstCid, true);
  dv.setUint32(at + H_DST_CID + 4, 0, true);
  dv.setUint32(at + H_SRC_PORT, h.srcPort, true);
  dv.setUint32(at + H_DST_PORT, h.dstPort, true);
  dv.setUint32(at + H_LEN, h.len, true);
  dv.setUint16(at + H_TYPE, h.type, true);
  dv.setUint16(at + H_OP, h.op, true);
  dv.setUint32(at + H_FLAGS, h.flags, true);
  dv.setUint32(at + H_BUF_ALLOC, h.bufAlloc, true);
  dv.setUint32(at + H_FWD_CNT, h.fwdCnt, true);
}

/** A header as 44 fresh bytes. */
export function headerBytes(h: VsockHeader): Uint8Array {
  const b = new Uint8Array(HDR_SIZE);
  encodeHeader(new DataView(b.buffer), 0, h);
  return b;
}
