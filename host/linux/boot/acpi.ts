// The ACPI SSDT that enumerates a Linux guest's virtio-mmio devices: one Device per
// device, `_HID "LNRO0005"` (Linux's virtio_mmio binds through its `acpi*:LNRO0005:*`
// alias), `_CRS` = Memory32Fixed(ReadWrite, base, 0x200) + Interrupt(ResourceConsumer,
// Level, ActiveHigh, Exclusive). This is the ACPI enumeration the VirtIO-Argo proposal
// planned. The kernel takes the table from `kernel/firmware/acpi/ssdt.aml` in an
// uncompressed cpio at the front of the initrd (CONFIG_ACPI_TABLE_UPGRADE).
//
// AML encoding: ACPI 6.5 section 20 (ScopeOp 0x10, DeviceOp 0x5B 0x82, NameOp 0x08,
// BufferOp 0x11, StringPrefix 0x0D, BytePrefix 0x0A, DWordPrefix 0x0C, PkgLength as in
// 20.2.4) and 6.4 (resource descriptors: 0x86 Memory32Fixed, 0x89 Extended Interrupt,
// 0x79 End Tag).

/** One virtio-mmio device window as the guest will see it. */
export interface MmioDeviceAcpi {
  /** Guest-physical base of the 0x200-byte register window. */
  base: number;
  /** The GSI (IOAPIC input) of its level-triggered interrupt. */
  irq: number;
}

/** Bytes of one virtio-mmio register window (VirtIO 1.2 section 4.2.2: registers up to 0x100, config after). */
export const MMIO_WINDOW = 0x200;

const SSDT_HEADER = 36;

/** PkgLength (20.2.4): the length counts its own encoding bytes. At most 2^28 - 1. */
function pkgLength(body: number): number[] {
  for (let n = 1; n <= 4; n++) {
    const total = body + n;
    if (n === 1 && total < 0x40) return [total];
    if (n > 1 && total < 1 << (4 + 8 * (n - 1))) {
      const out = [((n - 1) << 6) | (total & 0x0f)];
      for (let i = 1; i < n; i++) out.push((total >> (4 + 8 * (i - 1))) & 0xff);
      return out;
    }
  }
  throw new RangeError("AML package too large");
}

function nameSeg(s: string): number[] {
  if (!/^[A-Z_][A-Z0-9_]{3}$/.test(s)) throw new RangeError(`bad AML name segment "${s}"`);
  return [...s].map((c) => c.charCodeAt(0));
}

function integer(v: number): number[] {
  if (v === 0) return [0x00]; // ZeroOp
  if (v === 1) return [0x01]; // OneOp
  if (v < 0x100) return [0x0a, v];
  return [0x0c, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

function u32le(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** `_CRS`: the register window and the interrupt line. */
function resources(dev: MmioDeviceAcpi): number[] {
  const mem = [0x86, 9, 0, 0x01, ...u32le(dev.base), ...u32le(MMIO_WINDOW)]; // 0x01: read/write
  // Flags 0x01: ResourceConsumer; bit 1 clear = level, bit 2 clear = active high, bit 3 clear = exclusive.
  const irq = [0x89, 6, 0, 0x01, 1, ...u32le(dev.irq)];
  return [...mem, ...irq, 0x79, 0x00];
}

function device(index: number, dev: MmioDeviceAcpi): number[] {
  const hid = [0x08, ...nameSeg("_HID"), 0x0d, ...[..."LNRO0005"].map((c) => c.charCodeAt(0)), 0x00];
  const uid = [0x08, ...nameSeg("_UID"), ...integer(index)];
  const res = resources(dev);
  const buf = [...integer(res.length), ...res];
  const crs = [0x08, ...nameSeg("_CRS"), 0x11, ...pkgLength(buf.length), ...buf];
  const body = [...nameSeg(`VR${index.toString(16).toUpperCase().padStart(2, "0")}`), ...hid, ...uid, ...crs];
  return [0x5b, 0x82, ...pkgLength(body.length), ...body];
}

/** The SSDT (a complete ACPI table, checksum included) describing `devices`. */
export function buildSsdt(devices: readonly MmioDeviceAcpi[]): Uint8Array {
  if (devices.length > 256) throw new RangeError("at most 256 virtio-mmio devices");
  const scopeBody = [0x5c, ...nameSeg("_SB_")]; // \_SB_
  for (let i = 0; i < devices.length; i++) {
    const d = devices[i];
    if (!Number.isInteger(d.base) || d.base < 0 || d.base > 0xffffffff - MMIO_WINDOW || d.base % MMIO_WINDOW !== 0) {
      throw new RangeError(`device ${i}: bad register window base ${d.base}`);
    }
    if (!Number.isInteger(d.irq) || d.irq < 0 || d.irq > 23) throw new RangeError(`device ${i}: bad IRQ ${d.irq}`);
    scopeBody.push(...device(i, d));
  }
  const aml = [0x10, ...pkgLength(scopeBody.length), ...scopeBody];
  const table = new Uint8Array(SSDT_HEADER + aml.length);
  const dv = new DataView(table.buffer);
  table.set([..."SSDT"].map((c) => c.charCodeAt(0)), 0);
  dv.setUint32(4, table.length, true);
  table[8] = 2; // revision: 64-bit integers
  table.set([..."VARGO "].map((c) => c.charCodeAt(0)), 10); // OEMID (6)
  table.set([..."VIRTIOAR"].map((c) => c.charCodeAt(0)), 16); // OEM table id (8)
  dv.setUint32(24, 1, true); // OEM revision
  table.set([..."VARG"].map((c) => c.charCodeAt(0)), 28); // creator id
  dv.setUint32(32, 1, true); // creator revision
  table.set(aml, SSDT_HEADER);
  let sum = 0;
  for (const b of table) sum = (sum + b) & 0xff;
  table[9] = (0x100 - sum) & 0xff; // the whole table sums to 0 mod 256
  return table;
}
