// Device enumeration: the toolstack (the embedding VMM, as firmware would) writes an
// ACPI-style table into guest memory; the guest transport verifies and parses it.
//
//   +-----------+--------+-----+-----+--------+----------+---------+---------+---------+-------+------+
//   | signature | length | rev | sum | oem_id | oem_tbl  | oem_rev | creator | crt_rev | count | rsvd |
//   | "VARG"    | le32   | u8  | u8  | 6 B    | 8 B      | le32    | 4 B     | le32    | le32  | le32 |
//   +-----------+--------+-----+-----+--------+----------+---------+---------+---------+-------+------+
//   0           4        8     9     10       16         24        28        32        36      40   44
//   then `count` entries of ENTRY_SIZE bytes:
//   {le32 dev_num, le32 virtio_type, le16 backend_domid, le16 flags, le32 frontend_port,
//    le32 backend_port, le32 ring_len, le32 max_message}
//   The bytes of the whole table sum to 0 mod 256 (ACPI checksum).

export const TABLE_SIGNATURE = 0x47524156; // "VARG" little-endian
export const TABLE_HEADER_SIZE = 44;
export const ENTRY_SIZE = 28;
export const TABLE_REVISION = 1;
/** A guest refuses tables longer than this (bounds its parse work and memory). */
export const MAX_DEVICES = 64;

export interface DeviceEntry {
  devNum: number;
  /** VirtIO device id: 2 blk, 3 console, 4 rng, 1 net, 19 vsock. */
  virtioType: number;
  backendDomid: number;
  flags: number;
  /** Port of the guest's ring (the backend sends completions and events there). */
  frontendPort: number;
  /** Port of the backend's ring (the guest sends requests and control there). */
  backendPort: number;
  /** Data bytes of each of the two rings. */
  ringLen: number;
  /** Largest Argo payload either side may send (the policy's max_message_bytes, or what the ring holds). */
  maxMessage: number;
}

export type TableError =
  | { kind: "BadSignature"; found: number }
  | { kind: "BadLength"; length: number }
  | { kind: "BadChecksum"; sum: number }
  | { kind: "BadRevision"; revision: number }
  | { kind: "TooManyDevices"; count: number }
  | { kind: "BadEntry"; index: number; why: string };

/** Bytes the table for `n` devices needs. */
export function tableSize(n: number): number {
  return TABLE_HEADER_SIZE + n * ENTRY_SIZE;
}

export function writeEntry(dv: DataView, at: number, e: DeviceEntry): void {
  dv.setUint32(at, e.devNum, true);
  dv.setUint32(at + 4, e.virtioType, true);
  dv.setUint16(at + 8, e.backendDomid, true);
  dv.setUint16(at + 10, e.flags, true);
  dv.setUint32(at + 12, e.frontendPort, true);
  dv.setUint32(at + 16, e.backendPort, true);
  dv.setUint32(at + 20, e.ringLen, true);
  dv.setUint32(at + 24, e.maxMessage, true);
}

export function readEntry(dv: DataView, at: number): DeviceEntry {
  return {
    devNum: dv.getUint32(at, true),
    virtioType: dv.getUint32(at + 4, true),
    backendDomid: dv.getUint16(at + 8, true),
    flags: dv.getUint16(at + 10, true),
    frontendPort: dv.getUint32(at + 12, true),
    backendPort: dv.getUint32(at + 16, true),
    ringLen: dv.getUint32(at + 20, true),
    maxMessage: dv.getUint32(at + 24, true),
  };
}

/** Toolstack side: writes the table for `entries` at `gpa` of a guest's memory. */
export function writeTable(memory: WebAssembly.Memory, gpa: number, entries: readonly DeviceEntry[]): number {
  const len = tableSize(entries.length);
  const bytes = new Uint8Array(memory.buffer, gpa, len);
  bytes.fill(0);
  const dv = new DataView(memory.buffer, gpa, len);
  dv.setUint32(0, TABLE_SIGNATURE, true);
  dv.setUint32(4, len, true);
  dv.setUint8(8, TABLE_REVISION);
  bytes.set(new TextEncoder().encode("VARGO "), 10);
  bytes.set(new TextEncoder().encode("VIRTARGO"), 16);
  dv.setUint32(24, 1, true);
  bytes.set(new TextEncoder().encode("VAT "), 28);
  dv.setUint32(32, 1, true);
  dv.setUint32(36, entries.length, true);
  entries.forEach((e, i) => writeEntry(dv, TABLE_HEADER_SIZE + i * ENTRY_SIZE, e));
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  dv.setUint8(9, (0x100 - sum) & 0xff);
  return len;
}

/**
 * Guest side: verifies and parses the table at `gpa`. The toolstack is trusted to
 * have written it, but a guest still checks every length against its memory and the
 * checksum, so a corrupt table is an error value, never an out-of-bounds read.
 */
export function parseTable(memory: WebAssembly.Memory, gpa: number): DeviceEntry[] | TableError {
  const size = memory.buffer.byteLength;
  if (gpa < 0 || gpa + TABLE_HEADER_SIZE > size) return { kind: "BadLength", length: 0 };
  const dv = new DataView(memory.buffer);
  const sig = dv.getUint32(gpa, true);
  if (sig !== TABLE_SIGNATURE) return { kind: "BadSignature", found: sig };
  const length = dv.getUint32(gpa + 4, true);
  if (length < TABLE_HEADER_SIZE || length > tableSize(MAX_DEVICES) || gpa + length > size) return { kind: "BadLength", length };
  const revision = dv.getUint8(gpa + 8);
  if (revision !== TABLE_REVISION) return { kind: "BadRevision", revision };
  let sum = 0;
  for (let i = 0; i < length; i++) sum = (sum + dv.getUint8(gpa + i)) & 0xff;
  if (sum !== 0) return { kind: "BadChecksum", sum };
  const count = dv.getUint32(gpa + 36, true);
  if (count > MAX_DEVICES) return { kind: "TooManyDevices", count };
  if (tableSize(count) !== length) return { kind: "BadLength", length };
  const out: DeviceEntry[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const e = readEntry(dv, gpa + TABLE_HEADER_SIZE + i * ENTRY_SIZE);
    const why = entryProblem(e);
    if (why) return { kind: "BadEntry", index: i, why };
    if (seen.has(e.devNum)) return { kind: "BadEntry", index: i, why: `duplicate dev_num ${e.devNum}` };
    seen.add(e.devNum);
    out.push(e);
  }
  return out;
}

/** Why an entry is unusable, or null. Shared by the table parser and bus messages. */
export function entryProblem(e: DeviceEntry): string | null {
  if (e.devNum > 0xffff) return `dev_num ${e.devNum} does not fit virtio-msg's le16`;
  if (e.backendDomid >= 0x7ff0) return `backend domid ${e.backendDomid} is reserved`;
  if (e.frontendPort === e.backendPort) return "frontend and backend ports must differ";
  if (e.ringLen < 48 || e.ringLen > 0x1000000 || e.ringLen % 16 !== 0) return `ring length ${e.ringLen} is not a valid Argo ring`;
  // A message must carry a transport header plus at least one byte, and fit the ring.
  if (e.maxMessage < 64 || e.maxMessage > e.ringLen - 32) return `max message ${e.maxMessage} does not fit ring ${e.ringLen}`;
  return null;
}
