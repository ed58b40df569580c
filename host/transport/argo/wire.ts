// Wire formats of the VirtIO-Argo transport. Everything here travels inside Argo
// messages; nothing carries a guest-physical address. Readers treat every field as
// hostile: decoders return null for anything malformed instead of throwing.
//
// Argo message_type tells the planes apart:
//   MSG_CONTROL  virtio-msg style control (8-byte header below)
//   MSG_DATA     requests (frontend -> backend) and completions (backend -> frontend)
//   MSG_BUS      device ready / removed on the well-known bus port
//
// Data header (24 bytes), then payload:
//   +------+-------+-------+-----------+--------+-------+----------+----------+
//   | kind | flags | queue | requestId | offset | total | writable | reserved |
//   | u8   | u8    | le16  | le32      | le32   | le32  | le32     | le32     |
//   +------+-------+-------+-----------+--------+-------+----------+----------+
//   offset/total: where this fragment's payload sits in the request's readable
//   stream (or in the completion's written stream); writable: the request's writable
//   capacity (completion: the device's used length, which may exceed what was written
//   only if the device lies, and is clamped by the frontend).
//
// Batch (kind 3, only between peers that agreed on TF_BATCH, below): several whole
// requests (or completions) that were ready together, in one message, so one sendv, one
// ring slot and one header read serve them all:
//   +--------------+---------------------+-----+---------------------+-------+-----+-------+
//   | batch header | record 1 header     | ... | record N header     | pay 1 | ... | pay N |
//   | 24 B         | 24 B, as above      |     | 24 B                |       |     |       |
//   +--------------+---------------------+-----+---------------------+-------+-----+-------+
//   batch header: kind 3, flags 0, queue 0, requestId = N (2..MAX_BATCH), offset 0,
//   total = the bytes after it (24 N + the payloads), writable 0, reserved 0.
//   Each record is a whole request or completion: FIRST | LAST (ERROR allowed on a
//   completion), offset 0, and its payload is `total` bytes. The receiver checks that the
//   records' totals add up to the message, then handles each record exactly as a message
//   of its own; a malformed record is refused alone, the others stand.
//
// Transport features (SET_TRANSPORT_FEATURES, msg id 0x80): the frontend asks for the
// bits it wants once, after it registered its ring; the backend answers the bits it
// accepts. A backend that does not know the message answers ERROR, and then nothing
// changes: single messages only. The reply travels on the frontend's ring ahead of any
// batch, so each side knows before the first batch arrives; a batch from a peer that did
// not agree is a protocol error.
//
// Control header (8 bytes, virtio-msg): {u8 type, u8 msg_id, le16 dev_num, le16 token, le16 msg_size}

export const MSG_CONTROL = 0x5649_4f43; // "VIOC"
export const MSG_DATA = 0x5649_4f44; // "VIOD"
export const MSG_BUS = 0x5649_4f42; // "VIOB"

export const DATA_HEADER_SIZE = 24;
export const KIND_REQUEST = 1;
export const KIND_COMPLETION = 2;
export const FLAG_FIRST = 1;
export const FLAG_LAST = 2;
/** Completion flag: the backend could not serve the request (frontend reports IOERR). */
export const FLAG_ERROR = 4;
/** A batch of whole requests or completions (TF_BATCH). */
export const KIND_BATCH = 3;
/** Records per batch at most: one iov carries the headers, each record's payload at least one more (MAXIOV 8). */
export const MAX_BATCH = 7;
/** Transport feature: batches (KIND_BATCH) in both directions. */
export const TF_BATCH = 1;

export interface DataHeader {
  kind: number;
  flags: number;
  queue: number;
  requestId: number;
  offset: number;
  total: number;
  writable: number;
}

export function encodeData(dv: DataView, at: number, h: DataHeader): void {
  dv.setUint8(at, h.kind);
  dv.setUint8(at + 1, h.flags);
  dv.setUint16(at + 2, h.queue, true);
  dv.setUint32(at + 4, h.requestId, true);
  dv.setUint32(at + 8, h.offset, true);
  dv.setUint32(at + 12, h.total, true);
  dv.setUint32(at + 16, h.writable, true);
  dv.setUint32(at + 20, 0, true);
}

/** Decodes into `out`; false if the message is too short or the header is malformed. */
export function decodeData(dv: DataView, at: number, msgLen: number, out: DataHeader): boolean {
  if (msgLen < DATA_HEADER_SIZE) return false;
  out.kind = dv.getUint8(at);
  out.flags = dv.getUint8(at + 1);
  out.queue = dv.getUint16(at + 2, true);
  out.requestId = dv.getUint32(at + 4, true);
  out.offset = dv.getUint32(at + 8, true);
  out.total = dv.getUint32(at + 12, true);
  out.writable = dv.getUint32(at + 16, true);
  if (out.kind !== KIND_REQUEST && out.kind !== KIND_COMPLETION && out.kind !== KIND_BATCH) return false;
  if ((out.flags & ~(FLAG_FIRST | FLAG_LAST | FLAG_ERROR)) !== 0) return false;
  if (dv.getUint32(at + 20, true) !== 0) return false; // reserved must be zero
  // The fragment must lie inside its stream: offset + payload <= total (no wrap in doubles).
  if (out.offset + (msgLen - DATA_HEADER_SIZE) > out.total) return false;
  return true;
}

// --- control plane (virtio-msg) -------------------------------------------------

export const CONTROL_HEADER_SIZE = 8;
export const CTRL_REQUEST = 0;
export const CTRL_RESPONSE = 1;
export const CTRL_EVENT = 2;

/** virtio-msg message ids (names from the virtio-msg proposal). */
export const enum Ctrl {
  ERROR = 0x01,
  GET_DEVICE_INFO = 0x02,
  GET_DEVICE_FEATURES = 0x03,
  SET_DRIVER_FEATURES = 0x04,
  GET_CONFIG = 0x05,
  SET_CONFIG = 0x06,
  GET_DEVICE_STATUS = 0x07,
  SET_DEVICE_STATUS = 0x08,
  GET_VQUEUE = 0x09,
  SET_VQUEUE = 0x0a,
  RESET_VQUEUE = 0x0b,
  /** VirtIO-Argo's own: which transport features (TF_*) both sides use; le32 bits -> le32 bits. */
  SET_TRANSPORT_FEATURES = 0x80,
  EVENT_CONFIG = 0x40,
  EVENT_USED = 0x42,
}

/** Largest control payload either side accepts (config space is small). */
export const MAX_CONTROL_PAYLOAD = 256;

export interface ControlHeader {
  type: number;
  msgId: number;
  devNum: number;
  token: number;
  msgSize: number;
}

export function encodeControl(dv: DataView, at: number, h: ControlHeader): void {
  dv.setUint8(at, h.type);
  dv.setUint8(at + 1, h.msgId);
  dv.setUint16(at + 2, h.devNum, true);
  dv.setUint16(at + 4, h.token, true);
  dv.setUint16(at + 6, h.msgSize, true);
}

export function decodeControl(dv: DataView, at: number, msgLen: number, out: ControlHeader): boolean {
  if (msgLen < CONTROL_HEADER_SIZE || msgLen > CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD) return false;
  out.type = dv.getUint8(at);
  out.msgId = dv.getUint8(at + 1);
  out.devNum = dv.getUint16(at + 2, true);
  out.token = dv.getUint16(at + 4, true);
  out.msgSize = dv.getUint16(at + 6, true);
  if (out.type > CTRL_EVENT) return false;
  // msg_size counts the whole message; it must match what Argo delivered.
  return out.msgSize === msgLen;
}

// --- bus (hotplug) --------------------------------------------------------------

/** The well-known Argo port on which a guest's transport listens for bus messages. */
export const BUS_PORT = 0xb0500;
export const BUS_DEVICE_READY = 1;
export const BUS_DEVICE_REMOVED = 2;
/** {u32 event, then one device table entry (ENTRY_SIZE bytes)}. */
export const BUS_MESSAGE_SIZE = 4 + 28;

/** Little-endian u32 words: the payload encoding of every control message. */
export function words(...v: number[]): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  v.forEach((x, i) => dv.setUint32(i * 4, x >>> 0, true));
  return out;
}
