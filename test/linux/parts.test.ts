// The Linux guest's parts without booting Linux: the SSDT encoder, the initramfs packer,
// the modinfo reader, the apt sources reader, the Wasm DMA window, and the virtio-mmio
// register file driven by hand (and by a hostile driver) against a real device model.
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildSsdt, MMIO_WINDOW } from "../../host/linux/boot/acpi.ts";
import { newcArchive } from "../../host/linux/boot/initramfs.ts";
import { modinfo, moduleDepends } from "../../host/linux/boot/modules.ts";
import { systemSources } from "../../host/linux/boot/assets.ts";
import { VirtioMmioDevice, Reg, MMIO_MAGIC } from "../../host/linux/virtio-mmio.ts";
import { INT_CONFIG_CHANGE, INT_USED_BUFFER } from "../../host/linux/bridge.ts";
import { ForeignLink } from "../../host/linux/link.ts";
import { RngModel } from "../../host/devices/rng/model.ts";
import { GuestHeap } from "../../host/guest/heap.ts";
import { splitQueue, splitDeviceAt } from "../../host/transport/vring/split-sides.ts";
import { setDmaWindow } from "../../host/transport/vring/engine.ts";
import { ChainBuffers } from "../../host/transport/vring/queue-sides.ts";
import { STATUS_NEEDS_RESET, VIRTIO_ID_RNG } from "../../host/devices/types.ts";

const require = createRequire(import.meta.url);

describe("SSDT for virtio-mmio devices", () => {
  const devs = [{ base: 0xfef00000, irq: 10 }, { base: 0xfef00200, irq: 11 }, { base: 0xfef00400, irq: 5 }];
  const t = buildSsdt(devs);

  it("is a complete ACPI table: signature, length, zero checksum", () => {
    expect(new TextDecoder().decode(t.subarray(0, 4))).toBe("SSDT");
    expect(new DataView(t.buffer).getUint32(4, true)).toBe(t.length);
    expect(t.reduce((s, b) => (s + b) & 0xff, 0)).toBe(0);
  });

  it("declares one LNRO0005 device per window, with its register window and level interrupt", () => {
    const text = new TextDecoder("latin1").decode(t);
    expect(text.split("LNRO0005").length - 1).toBe(3);
    for (const d of devs) {
      // Memory32Fixed: 0x86, length 9, read/write, base, 0x200.
      const mem = [0x86, 9, 0, 1, d.base & 0xff, (d.base >>> 8) & 0xff, (d.base >>> 16) & 0xff, d.base >>> 24, 0, 2, 0, 0];
      // Extended interrupt: consumer, level, active high, exclusive; one GSI.
      const irq = [0x89, 6, 0, 1, 1, d.irq, 0, 0, 0];
      const at = findBytes(t, [...mem, ...irq]);
      expect(at).toBeGreaterThan(0);
    }
    expect(MMIO_WINDOW).toBe(0x200);
  });

  it("encodes each package length so that it spans exactly its package", () => {
    // Scope(\_SB_) right after the header: its PkgLength covers the rest of the table.
    const { len, bytes } = pkgLength(t, 37);
    expect(t[36]).toBe(0x10);
    expect(37 + len).toBe(t.length);
    expect(bytes).toBeGreaterThan(1); // three devices need the two-byte form
  });

  it("refuses windows and IRQs Linux could not use", () => {
    expect(() => buildSsdt([{ base: 0xfef00100, irq: 10 }])).toThrow(RangeError);
    expect(() => buildSsdt([{ base: 0xfef00000, irq: 24 }])).toThrow(RangeError);
    expect(() => buildSsdt(Array.from({ length: 257 }, (_, i) => ({ base: 0xfef00000 + i * 0x200, irq: 5 })))).toThrow(RangeError);
  });
});

describe("initramfs newc archives", () => {
  it("round-trips through a cpio reader: names, modes, bytes, symlinks, 4-byte alignment", async () => {
    const files = [{ path: "bin" }, { path: "bin/busybox", data: new Uint8Array([1, 2, 3, 4, 5]), mode: 0o755 }, { path: "bin/sh", link: "busybox" }, { path: "init", data: "#!/bin/sh\n" }];
    const a = await newcArchive(files);
    expect(new TextDecoder().decode(a.subarray(0, 6))).toBe("070701");
    expect(a.length % 4).toBe(0);
    const seen = await extract(a);
    expect(seen.map((e) => e.name)).toEqual(["bin", "bin/busybox", "bin/sh", "init"]);
    expect(seen[1].mode & 0o777).toBe(0o755);
    expect([...seen[1].data]).toEqual([1, 2, 3, 4, 5]);
    expect(seen[2].linkname).toBe("busybox");
    expect(new TextDecoder().decode(seen[3].data)).toBe("#!/bin/sh\n");
  });

  it("gives the same bytes for the same inputs (mtime 0, fixed inodes)", async () => {
    const files = [{ path: "a", data: "x" }];
    expect(Buffer.from(await newcArchive(files)).equals(Buffer.from(await newcArchive(files)))).toBe(true);
  });
});

describe("modinfo from a .ko", () => {
  it("reads depends= from the .modinfo section of an ELF32 object", () => {
    const ko = elf32WithModinfo("license=GPL\0depends=virtio,virtio_ring\0vermagic=6.1\0");
    expect(moduleDepends(ko)).toEqual(["virtio", "virtio_ring"]);
    expect(modinfo(ko).get("license")).toBe("GPL");
  });

  it("refuses a file that is not ELF, or whose section table lies outside it, with a RangeError", () => {
    expect(() => moduleDepends(new Uint8Array(64))).toThrow(RangeError);
    const ko = elf32WithModinfo("depends=\0");
    new DataView(ko.buffer).setUint32(0x20, 0xfffffff0, true); // e_shoff past the end
    expect(() => moduleDepends(ko)).toThrow(RangeError);
  });
});

describe("the system's apt sources, read not changed", () => {
  it("reads deb822 and one-line sources, keeping those with main", () => {
    const root = mkdtempSync(join(tmpdir(), "apt-"));
    mkdirSync(join(root, "sources.list.d"));
    writeFileSync(join(root, "sources.list.d", "debian.sources"), "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb-src\nURIs: http://x\nSuites: s\nComponents: main\n");
    writeFileSync(join(root, "sources.list"), "deb [arch=amd64 signed-by=/s.gpg] http://sec.example/debian-security bookworm-security main contrib\ndeb http://other contrib\n");
    writeFileSync(join(root, "sources.list.d", "x.list.disabled"), "deb http://never main\n");
    const s = systemSources(root);
    expect(s).toEqual([
      { uri: "http://sec.example/debian-security", suites: ["bookworm-security"], components: ["main", "contrib"], signedBy: "/s.gpg" },
      { uri: "http://mirror.example/debian", suites: ["bookworm", "bookworm-updates"], components: ["main"], signedBy: "/k.gpg" },
    ]);
  });
});

describe("the Wasm DMA window (a Linux guest's RAM inside v86's memory)", () => {
  it("translates descriptor addresses inside the window and refuses those past it", () => {
    const memory = new WebAssembly.Memory({ initial: 32 }); // 2 MiB: 1 MiB "emulator state", then 1 MiB of RAM
    const base = 1 << 20;
    expect(setDmaWindow(memory, base, 1 << 20)).toBe(true);
    const heap = new GuestHeap(2 << 20, base + (512 << 10));
    const dv = new DataView(memory.buffer);
    const l = { size: 4, desc: base + 0x1000, avail: base + 0x2000, used: base + 0x3000 };
    const device = splitDeviceAt(memory, heap, l);
    const chain = new ChainBuffers(4);
    const post = (head: number, addr: number, len: number, availIdx: number) => {
      dv.setUint32(l.desc + 16 * head, addr, true);
      dv.setUint32(l.desc + 16 * head + 8, len, true);
      dv.setUint16(l.desc + 16 * head + 12, 2, true); // WRITE
      dv.setUint16(l.avail + 4 + 2 * head, head, true);
      dv.setUint16(l.avail + 2, availIdx, true);
    };
    post(0, 0x8000, 512, 1); // a guest-physical address: lands at base + 0x8000
    expect(device.pop(chain)).toBe(1);
    expect(chain.gpa[0]).toBe(base + 0x8000);
    post(1, (1 << 20) - 256, 512, 2); // runs past the guest's RAM: into whatever follows it
    expect(device.pop(chain)).toBeLessThan(0);
    expect(device.error).toBe("AddressOutOfRange");
    expect(setDmaWindow(memory, base, 2 << 20)).toBe(false); // a window past the memory is refused
  });
});

/** A device register file on a 1 MiB "guest" with an rng behind the foreign link (the same bridge argo uses). */
function rig() {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 16 });
  const ramBytes = 1 << 20;
  const heap = new GuestHeap(ramBytes, 512 << 10);
  const irq = { up: 0, asserts: 0 };
  const mmio = new VirtioMmioDevice({
    link: new ForeignLink(new RngModel(), memory, ramBytes), memory, ramBase: 0, ramBytes, heap,
    assertIrq: () => { irq.up = 1; irq.asserts++; }, deassertIrq: () => { irq.up = 0; },
  });
  return { memory, heap, mmio, irq, r: (o: number) => mmio.read(o, 4), w: (o: number, v: number) => mmio.write(o, 4, v) };
}

/** Linux's virtio_mmio probe and setup (vm_find_vqs) for queue 0 at `l`, as register accesses. */
function linuxSetup(t: ReturnType<typeof rig>, l: { desc: number; avail: number; used: number; size: number }) {
  const { r, w } = t;
  w(Reg.Status, 0);
  w(Reg.Status, 1);
  w(Reg.Status, 3);
  w(Reg.DeviceFeaturesSel, 1);
  const hi = r(Reg.DeviceFeatures);
  w(Reg.DeviceFeaturesSel, 0);
  r(Reg.DeviceFeatures);
  w(Reg.DriverFeaturesSel, 1);
  w(Reg.DriverFeatures, hi & 1); // VERSION_1 only
  w(Reg.DriverFeaturesSel, 0);
  w(Reg.DriverFeatures, 0);
  w(Reg.Status, 11);
  expect(r(Reg.Status) & 8).toBe(8);
  w(Reg.QueueSel, 0);
  expect(r(Reg.QueueReady)).toBe(0);
  expect(r(Reg.QueueNumMax)).toBeGreaterThanOrEqual(l.size);
  w(Reg.QueueNum, l.size);
  w(Reg.QueueDescLow, l.desc); w(Reg.QueueDescHigh, 0);
  w(Reg.QueueDriverLow, l.avail); w(Reg.QueueDriverHigh, 0);
  w(Reg.QueueDeviceLow, l.used); w(Reg.QueueDeviceHigh, 0);
  w(Reg.QueueReady, 1);
  w(Reg.Status, 15);
}

describe("virtio-mmio registers over the bridge", () => {
  it("answers the identification registers as version 2 with the device's id", () => {
    const t = rig();
    expect(t.r(Reg.MagicValue)).toBe(MMIO_MAGIC);
    expect(t.r(Reg.Version)).toBe(2);
    expect(t.r(Reg.DeviceID)).toBe(VIRTIO_ID_RNG);
    expect(t.r(Reg.SHMLenLow)).toBe(0xffffffff);
  });

  it("serves a vring the driver placed: bytes land in its buffer, used-buffer interrupt up, ACK lowers it", async () => {
    const t = rig();
    const q = splitQueue(t.memory, t.heap, 8);
    linuxSetup(t, q.layout);
    expect(t.r(Reg.Status) & STATUS_NEEDS_RESET).toBe(0);
    const buf = t.heap.alloc(64);
    expect(q.driver.add([buf], [64], [1], 1)).toBeGreaterThanOrEqual(0);
    t.w(Reg.QueueNotify, 0);
    await new Promise((res) => setTimeout(res, 0));
    let written = -1;
    q.driver.reclaim((_h, n) => { written = n; });
    expect(written).toBe(64);
    expect(new Uint8Array(t.memory.buffer, buf, 64).some((b) => b !== 0)).toBe(true);
    expect(t.r(Reg.InterruptStatus) & INT_USED_BUFFER).toBe(INT_USED_BUFFER);
    expect(t.irq.up).toBe(1);
    t.w(Reg.InterruptACK, INT_USED_BUFFER);
    expect(t.irq.up).toBe(0);
  });

  it("a queue whose rings lie past the guest's RAM sets DEVICE_NEEDS_RESET and a config interrupt, and is not served", () => {
    const t = rig();
    linuxSetup(t, { desc: (1 << 20) - 16, avail: 0x1000, used: 0x2000, size: 8 });
    expect(t.r(Reg.Status) & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(t.r(Reg.InterruptStatus) & INT_CONFIG_CHANGE).toBe(INT_CONFIG_CHANGE);
    expect(t.r(Reg.QueueReady)).toBe(0);
    t.w(Reg.Status, 0); // a reset clears it
    expect(t.r(Reg.Status)).toBe(0);
  });

  it("ignores what a driver must not write: sub-word register accesses, features after FEATURES_OK, notify of a missing queue, a live queue's registers", () => {
    const t = rig();
    const q = splitQueue(t.memory, t.heap, 8);
    linuxSetup(t, q.layout);
    const before = t.mmio.bridge.stats.ignored;
    t.mmio.write(Reg.Status, 1, 0); // a byte write to a register: no reset
    expect(t.r(Reg.Status) & 4).toBe(4);
    t.w(Reg.DriverFeatures, 0xffffffff);
    t.w(Reg.QueueNotify, 7);
    t.w(Reg.QueueNum, 2);
    t.w(Reg.QueueDescLow, 0x40);
    expect(t.mmio.bridge.stats.ignored).toBe(before + 5);
    expect(t.r(Reg.Status) & STATUS_NEEDS_RESET).toBe(0);
  });

  it("a bug of ours behind a register (a link that throws) reaches the emulator as DEVICE_NEEDS_RESET, not an exception", () => {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 16 });
    const link = new ForeignLink(new RngModel(), memory, 1 << 20);
    link.control = () => { throw new Error("bug"); };
    const mmio = new VirtioMmioDevice({ link, memory, ramBase: 0, ramBytes: 1 << 20, heap: new GuestHeap(1 << 20, 512 << 10), assertIrq: () => {}, deassertIrq: () => {} });
    expect(mmio.read(Reg.DeviceID, 4)).toBe(0);
    expect(() => mmio.write(Reg.Status, 4, 1)).not.toThrow();
    expect(mmio.bridge.stats.faults).toBe(2);
    expect(mmio.read(Reg.Status, 4) & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
  });

  it("a hostile driver's random register accesses never throw, and a reset brings the device back", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0x1ff }), fc.constantFrom(1 as const, 4 as const), fc.integer({ min: 0, max: 0xffffffff }), fc.boolean()), { maxLength: 300 }), (ops) => {
        const t = rig();
        for (const [off, size, value, isWrite] of ops) {
          if (isWrite) t.mmio.write(off, size, value);
          else t.mmio.read(off, size);
        }
        expect(t.mmio.bridge.stats.faults).toBe(0);
        const q = splitQueue(t.memory, t.heap, 8);
        linuxSetup(t, q.layout);
        return (t.r(Reg.Status) & STATUS_NEEDS_RESET) === 0 && t.r(Reg.QueueReady) === 1;
      }),
      { seed: 0x5eed, numRuns: 200 },
    );
  });
});

function findBytes(hay: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function pkgLength(b: Uint8Array, at: number): { len: number; bytes: number } {
  const lead = b[at];
  const n = lead >> 6;
  if (n === 0) return { len: lead & 0x3f, bytes: 1 };
  let len = lead & 0x0f;
  for (let i = 0; i < n; i++) len |= b[at + 1 + i] << (4 + 8 * i);
  return { len, bytes: n + 1 };
}

interface Entry { name: string; mode: number; linkname?: string; data: Uint8Array }

async function extract(archive: Uint8Array): Promise<Entry[]> {
  const cpio = require("cpio-stream") as { extract(): NodeJS.WritableStream & { on(ev: string, cb: (...a: never[]) => void): void } };
  const x = cpio.extract();
  const out: Entry[] = [];
  await new Promise<void>((resolve, reject) => {
    x.on("entry", ((header: { name: string; mode: number; linkname?: string }, stream: NodeJS.ReadableStream, next: () => void) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => { out.push({ name: header.name, mode: header.mode, linkname: header.linkname, data: new Uint8Array(Buffer.concat(chunks)) }); next(); });
      stream.resume();
    }) as never);
    x.on("finish", (() => resolve()) as never);
    x.on("error", ((e: Error) => reject(e)) as never);
    x.end(Buffer.from(archive));
  });
  return out;
}

/** A minimal ELF32 little-endian object: null section, .shstrtab, .modinfo. */
function elf32WithModinfo(info: string): Uint8Array {
  const shstr = "\0.shstrtab\0.modinfo\0";
  const infoBytes = new TextEncoder().encode(info);
  const shoff = 52 + shstr.length + infoBytes.length;
  const b = new Uint8Array(shoff + 3 * 40);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0);
  dv.setUint32(0x20, shoff, true);
  dv.setUint16(0x2e, 40, true);
  dv.setUint16(0x30, 3, true);
  dv.setUint16(0x32, 1, true);
  b.set(new TextEncoder().encode(shstr), 52);
  b.set(infoBytes, 52 + shstr.length);
  const sh = (i: number, name: number, off: number, size: number) => {
    dv.setUint32(shoff + 40 * i, name, true);
    dv.setUint32(shoff + 40 * i + 0x10, off, true);
    dv.setUint32(shoff + 40 * i + 0x14, size, true);
  };
  sh(1, 1, 52, shstr.length);
  sh(2, 11, 52 + shstr.length, infoBytes.length);
  return b;
}
