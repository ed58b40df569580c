// Kernel module metadata, read from the .ko itself: a module's `.modinfo` ELF section
// holds NUL-separated `key=value` strings, `depends=a,b` among them (what depmod reads
// to write modules.dep, which Debian's package does not ship).

/** The modules `ko` depends on (its modinfo `depends=`), or [] when it has none. */
export function moduleDepends(ko: Uint8Array): string[] {
  const info = modinfo(ko);
  const dep = info.get("depends") ?? "";
  return dep.split(",").map((s) => s.trim()).filter(Boolean);
}

/** The `.modinfo` strings of an ELF32/ELF64 little-endian object as a map (first value per key). */
export function modinfo(ko: Uint8Array): Map<string, string> {
  const section = findSection(ko, ".modinfo");
  const out = new Map<string, string>();
  if (!section) return out;
  const text = new TextDecoder("latin1").decode(ko.subarray(section.offset, section.offset + section.size));
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0 && !out.has(entry.slice(0, eq))) out.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return out;
}

function findSection(b: Uint8Array, name: string): { offset: number; size: number } | null {
  if (b.length < 52 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) throw new RangeError("not an ELF file");
  if (b[5] !== 1) throw new RangeError("not a little-endian ELF file");
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const is64 = b[4] === 2;
  const shoff = is64 ? Number(dv.getBigUint64(0x28, true)) : dv.getUint32(0x20, true);
  const shentsize = dv.getUint16(is64 ? 0x3a : 0x2e, true);
  const shnum = dv.getUint16(is64 ? 0x3c : 0x30, true);
  const shstrndx = dv.getUint16(is64 ? 0x3e : 0x32, true);
  const header = (i: number) => {
    const at = shoff + i * shentsize;
    if (at + shentsize > b.length) throw new RangeError("ELF section header outside the file");
    return is64
      ? { name: dv.getUint32(at, true), offset: Number(dv.getBigUint64(at + 0x18, true)), size: Number(dv.getBigUint64(at + 0x20, true)) }
      : { name: dv.getUint32(at, true), offset: dv.getUint32(at + 0x10, true), size: dv.getUint32(at + 0x14, true) };
  };
  if (shstrndx >= shnum) throw new RangeError("ELF without a section name table");
  const strtab = header(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    let end = strtab.offset + h.name;
    while (end < b.length && b[end] !== 0) end++;
    const n = new TextDecoder("latin1").decode(b.subarray(strtab.offset + h.name, end));
    if (n === name) {
      if (h.offset + h.size > b.length) throw new RangeError(`ELF section ${name} outside the file`);
      return { offset: h.offset, size: h.size };
    }
  }
  return null;
}
