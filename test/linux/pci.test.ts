// Modern virtio-pci (issue 18) for the Linux guest: the register decoding and config-space
// guard on their own (no Linux: a real v86 PCI bus, not booted, and a device model behind
// the bridge), then Debian's own virtio_pci driver over VirtIO-Argo in one boot.
import { createRequire } from "node:module";
import { V86 } from "v86";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack } from "../../host/transport/bus/toolstack.ts";
import { setDmaWindow } from "../../host/transport/vring/engine.ts";
import { GuestHeap } from "../../host/guest/heap.ts";
import { BlkModel } from "../../host/devices/index.ts";
import { STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_NEEDS_RESET } from "../../host/devices/types.ts";
import { ForeignLink } from "../../host/linux/link.ts";
import { IrqLines } from "../../host/linux/irq.ts";
import { LinuxGuest, type LinuxRunResult } from "../../host/linux/guest.ts";
import {
  BAR_SIZE, CAP_LIST, Common, DEVICE, ISR, NOTIFY, PCI_BAR_BASE, VirtioPciBus, VirtioPciDevice, type PciCpu,
} from "../../host/linux/virtio-pci.ts";
import { Prng } from "../fuzz/prng.ts";
import { testAssets } from "./assets.ts";
import { destroyBackendMidDd, md5, patterned, section, expectReadOnlyDisk } from "./helpers.ts";

const MIB = 1 << 20;

// --- without Linux ------------------------------------------------------------------------

const RAM = 2 * MIB;

/** A blk device behind a virtio-pci function, on plain Wasm memory (the model serves the rings in place). */
function blkFunction(image: Uint8Array) {
  const memory = new WebAssembly.Memory({ initial: (4 * MIB) / 65536 });
  if (!setDmaWindow(memory, 0, RAM)) throw new Error("DMA window");
  const heap = new GuestHeap(4 * MIB, RAM, 4 * MIB);
  const irq = { asserts: 0, deasserts: 0, up: false };
  const dev = new VirtioPciDevice({
    link: new ForeignLink(new BlkModel({ image }), memory, RAM), memory, ramBase: 0, ramBytes: RAM, heap, bar: PCI_BAR_BASE,
    assertIntx: () => { irq.asserts++; irq.up = true; },
    deassertIntx: () => { irq.deasserts++; irq.up = false; },
  });
  return { dev, memory, irq };
}

/** Accesses as v86 hands them over: 16-bit ones as two byte accesses, low byte first. */
const w16 = (d: VirtioPciDevice, off: number, v: number) => { d.write(off, 1, v & 0xff); d.write(off + 1, 1, (v >> 8) & 0xff); };
const r16 = (d: VirtioPciDevice, off: number) => d.read(off, 1) | (d.read(off + 1, 1) << 8);

/** Linux's virtio_pci_modern bring-up of queue 0 (split, `size` entries at `base`), then DRIVER_OK. */
function bringUp(d: VirtioPciDevice, base: number, size: number) {
  d.write(Common.DeviceStatus, 1, 0);
  expect(d.read(Common.DeviceStatus, 1)).toBe(0);
  d.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE);
  d.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  d.write(Common.DeviceFeatureSelect, 4, 1);
  const hi = d.read(Common.DeviceFeature, 4);
  expect(hi & 1).toBe(1); // VIRTIO_F_VERSION_1
  d.write(Common.DriverFeatureSelect, 4, 0);
  d.write(Common.DriverFeature, 4, 0);
  d.write(Common.DriverFeatureSelect, 4, 1);
  d.write(Common.DriverFeature, 4, 1);
  expect(d.read(Common.DriverFeature, 4)).toBe(1);
  d.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  expect(d.read(Common.DeviceStatus, 1) & STATUS_FEATURES_OK).toBe(STATUS_FEATURES_OK);
  expect(r16(d, Common.NumQueues)).toBe(1);
  w16(d, Common.QueueSelect, 0);
  expect(r16(d, Common.QueueSize)).toBeGreaterThanOrEqual(size);
  expect(r16(d, Common.QueueEnable)).toBe(0);
  w16(d, Common.QueueSize, size);
  d.write(Common.QueueDescLo, 4, base);
  d.write(Common.QueueDescHi, 4, 0);
  d.write(Common.QueueDriverLo, 4, base + 16 * size);
  d.write(Common.QueueDriverHi, 4, 0);
  d.write(Common.QueueDeviceLo, 4, base + 0x1000);
  d.write(Common.QueueDeviceHi, 4, 0);
  expect(r16(d, Common.QueueNotifyOff)).toBe(0);
  expect(r16(d, Common.QueueMsixVector)).toBe(0xffff);
  w16(d, Common.QueueEnable, 1);
  expect(r16(d, Common.QueueEnable)).toBe(1);
  d.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  expect(d.read(Common.DeviceStatus, 1) & STATUS_NEEDS_RESET).toBe(0);
}

/** One blk read of `sector` through the split ring at `base` (head descriptor 0), as avail entry `n`. */
async function readSector(d: VirtioPciDevice, memory: WebAssembly.Memory, base: number, size: number, sector: number, n: number): Promise<Uint8Array> {
  const dv = new DataView(memory.buffer);
  const hdr = 0x10000, data = 0x11000, status = 0x12000;
  dv.setUint32(hdr, 0, true); // VIRTIO_BLK_T_IN
  dv.setUint32(hdr + 4, 0, true);
  dv.setBigUint64(hdr + 8, BigInt(sector), true);
  const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
    dv.setBigUint64(base + 16 * i, BigInt(addr), true);
    dv.setUint32(base + 16 * i + 8, len, true);
    dv.setUint16(base + 16 * i + 12, flags, true);
    dv.setUint16(base + 16 * i + 14, next, true);
  };
  desc(0, hdr, 16, 1, 1);
  desc(1, data, 512, 1 | 2, 2);
  desc(2, status, 1, 2, 0);
  new Uint8Array(memory.buffer, status, 1)[0] = 0xff;
  const avail = base + 16 * size;
  dv.setUint16(avail + 4 + 2 * (n % size), 0, true);
  dv.setUint16(avail + 2, n + 1, true);
  d.write(NOTIFY, 1, 0); // notify queue 0: the 16-bit write's two bytes
  d.write(NOTIFY + 1, 1, 0);
  const used = base + 0x1000;
  for (let t = 0; t < 200 && dv.getUint16(used + 2, true) !== n + 1; t++) await new Promise((r) => setTimeout(r, 5));
  expect(dv.getUint16(used + 2, true)).toBe(n + 1);
  expect(new Uint8Array(memory.buffer, status, 1)[0]).toBe(0); // VIRTIO_BLK_S_OK
  return new Uint8Array(memory.buffer.slice(data, data + 512));
}

describe("virtio-pci registers (no Linux)", () => {
  it("offers a modern virtio-pci function: ids, class, and a capability list Linux's walk finds", () => {
    const { dev } = blkFunction(patterned(64 * 1024, 1));
    const s = dev.configSpace();
    const dv = new DataView(s.buffer);
    expect(dv.getUint16(0, true)).toBe(0x1af4);
    expect(dv.getUint16(2, true)).toBe(0x1040 + 2); // virtio-blk
    expect(s[8]).toBe(1); // revision 1: non-transitional
    expect([s[0x0b], s[0x0a]]).toEqual([0x01, 0x00]);
    expect(dv.getUint16(0x2c, true)).toBe(0x1af4);
    expect(dv.getUint16(0x2e, true)).toBeGreaterThanOrEqual(0x40);
    expect(dv.getUint16(6, true) & 0x10).toBe(0x10); // capability list
    expect(dv.getUint32(0x10, true)).toBe(PCI_BAR_BASE);
    expect(s[0x3d]).toBe(1); // INTA#
    // Walk the vendor capabilities as pci_find_capability does (next pointers masked to 4 bytes).
    const found = new Map<number, { bar: number; offset: number; length: number; at: number }>();
    for (let at = s[0x34] & ~3, ttl = 48; at !== 0 && ttl > 0; at = s[at + 1] & ~3, ttl--) {
      expect(s[at]).toBe(0x09);
      found.set(s[at + 3], { bar: s[at + 4], offset: dv.getUint32(at + 8, true), length: dv.getUint32(at + 12, true), at });
    }
    expect([...found.keys()].sort()).toEqual([1, 2, 3, 4]); // common, notify, ISR, device; no PCI_CFG (v86 has no read callback)
    expect(found.get(1)).toMatchObject({ bar: 0, offset: 0, length: 0x3c });
    expect(found.get(3)).toMatchObject({ bar: 0, offset: ISR, length: 1 });
    expect(found.get(4)).toMatchObject({ bar: 0, offset: DEVICE });
    expect(found.get(4)!.length).toBeGreaterThanOrEqual(8); // blk capacity at least
    expect(found.get(2)).toMatchObject({ bar: 0, offset: NOTIFY });
    expect(dv.getUint32(found.get(2)!.at + 16, true)).toBe(4); // notify_off_multiplier
    expect(s[CAP_LIST - 1]).toBe(0);
  });

  it("serves a blk read set up the way Linux does it, 16-bit fields split into bytes; ISR read clears and lowers INTx at once", async () => {
    const image = patterned(64 * 1024, 7);
    const { dev, memory, irq } = blkFunction(image);
    const base = 0x20000, size = 8;
    bringUp(dev, base, size);
    // Device config: capacity in 512-byte sectors, read as two 32-bit halves.
    expect(dev.read(DEVICE, 4)).toBe(image.length / 512);
    expect(dev.read(DEVICE + 4, 4)).toBe(0);
    const got = await readSector(dev, memory, base, size, 3, 0);
    expect(md5(got)).toBe(md5(image.subarray(3 * 512, 4 * 512)));
    expect(irq.up).toBe(true);
    expect(dev.read(ISR, 1) & 1).toBe(1); // used-buffer interrupt
    expect(irq.up).toBe(false); // lowered inside the read, not later
    expect(dev.read(ISR, 1)).toBe(0);
    expect(dev.bridge.stats.faults).toBe(0);
  });

  it("survives hostile BAR accesses without throwing, then a reset brings the device back", async () => {
    const seed = Number(process.env.PCI_FUZZ_SEED ?? 0x5eed18);
    const image = patterned(64 * 1024, 9);
    const { dev, memory } = blkFunction(image);
    const prng = new Prng(seed);
    const rnd = () => prng.u32() / 0x100000000;
    try {
      for (let i = 0; i < 20000; i++) {
        // Mostly inside BAR 0, where the registers are; some past it.
        const off = rnd() < 0.7 ? Math.floor(rnd() * 0x40) : Math.floor(rnd() * (BAR_SIZE + 0x100));
        const size = rnd() < 0.5 ? 1 : 4;
        const value = rnd() < 0.3 ? [0, 1, 0xff, 0xffff, 0xffffffff][Math.floor(rnd() * 5)] : Math.floor(rnd() * 2 ** 32);
        if (rnd() < 0.5) dev.write(off, size, value);
        else dev.read(off, size);
      }
    } catch (e) {
      throw new Error(`hostile BAR access threw (seed ${seed}; replay: PCI_FUZZ_SEED=${seed} npx vitest run test/linux/pci.test.ts): ${e}`);
    }
    expect(dev.bridge.stats.faults, `seed ${seed}`).toBe(0);
    // The guest resets and starts over: the device works again.
    bringUp(dev, 0x20000, 8);
    const got = await readSector(dev, memory, 0x20000, 8, 5, 0);
    expect(md5(got)).toBe(md5(image.subarray(5 * 512, 6 * 512)));
  });

  it("enables a queue at its maximum size when the driver keeps queue_size as read (SeaBIOS's virtio-blk does)", async () => {
    const image = patterned(64 * 1024, 4);
    const { dev, memory } = blkFunction(image);
    dev.write(Common.DeviceStatus, 1, 0);
    dev.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    dev.write(Common.DriverFeatureSelect, 4, 1);
    dev.write(Common.DriverFeature, 4, 1);
    dev.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    w16(dev, Common.QueueSelect, 0);
    const max = r16(dev, Common.QueueSize);
    expect(max).toBeGreaterThan(0);
    const base = 0x40000;
    dev.write(Common.QueueDescLo, 4, base);
    dev.write(Common.QueueDriverLo, 4, base + 16 * max);
    dev.write(Common.QueueDeviceLo, 4, base + 0x8000);
    w16(dev, Common.QueueEnable, 1);
    expect(r16(dev, Common.QueueEnable)).toBe(1);
    dev.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    expect(dev.read(Common.DeviceStatus, 1) & STATUS_NEEDS_RESET).toBe(0);
    expect(r16(dev, Common.QueueSize)).toBe(max);
    void memory;
  });

  it("completes a reset of a device whose backend is gone (Linux polls status until it reads 0)", () => {
    const memory = new WebAssembly.Memory({ initial: (4 * MIB) / 65536 });
    const link = new ForeignLink(new BlkModel({ image: patterned(64 * 1024, 2) }), memory, RAM);
    const dev = new VirtioPciDevice({
      link, memory, ramBase: 0, ramBytes: RAM, heap: new GuestHeap(4 * MIB, RAM, 4 * MIB), bar: PCI_BAR_BASE,
      assertIntx: () => {}, deassertIntx: () => {},
    });
    dev.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE);
    link.remove(); // the backend died
    expect(dev.read(Common.DeviceStatus, 1) & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    dev.write(Common.DeviceStatus, 1, 0);
    expect(dev.read(Common.DeviceStatus, 1)).toBe(0);
    // Starting over fails visibly: the device still needs a reset it cannot get.
    dev.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE);
    expect(dev.read(Common.DeviceStatus, 1) & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
  });

  it("turns an exception of ours into DEVICE_NEEDS_RESET, never into the emulator", () => {
    const memory = new WebAssembly.Memory({ initial: (4 * MIB) / 65536 });
    const link = new ForeignLink(new BlkModel({ image: patterned(64 * 1024, 2) }), memory, RAM);
    const dev = new VirtioPciDevice({
      link, memory, ramBase: 0, ramBytes: RAM, heap: new GuestHeap(4 * MIB, RAM, 4 * MIB), bar: PCI_BAR_BASE,
      assertIntx: () => {}, deassertIntx: () => {},
    });
    dev.read(Common.NumQueues, 1); // device info fetched
    link.control = () => { throw new Error("a bug behind the register file"); };
    expect(() => dev.read(DEVICE, 4)).not.toThrow();
    expect(() => dev.write(Common.DeviceStatus, 1, STATUS_ACKNOWLEDGE)).not.toThrow();
    expect(dev.bridge.stats.faults).toBe(2);
    expect(dev.bridge.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
  });

  it("ignores writes to read-only common-config fields and out-of-width accesses", () => {
    const { dev } = blkFunction(patterned(64 * 1024, 3));
    const nq = r16(dev, Common.NumQueues);
    w16(dev, Common.NumQueues, 0x1234);
    expect(r16(dev, Common.NumQueues)).toBe(nq);
    dev.write(Common.DeviceFeatureSelect, 4, 0);
    const f0 = dev.read(Common.DeviceFeature, 4);
    dev.write(Common.DeviceFeature, 4, 0);
    expect(dev.read(Common.DeviceFeature, 4)).toBe(f0);
    dev.write(Common.ConfigGeneration, 1, 0x55);
    expect(dev.read(Common.ConfigGeneration, 1)).not.toBe(0x55);
    // A lone high byte of queue_select is not a 16-bit write.
    dev.write(Common.QueueSelect + 1, 1, 0x01);
    expect(r16(dev, Common.QueueSelect)).toBe(0);
    // A 32-bit write over two 16-bit fields (queue_select and queue_size) is not a natural access.
    dev.write(Common.QueueSelect, 4, 0x00400003);
    expect(r16(dev, Common.QueueSelect)).toBe(0);
    expect(dev.bridge.stats.faults).toBe(0);
  });
});

describe("virtio-pci on v86's PCI bus (v86 loaded, not booted)", () => {
  let emulator: V86;
  let cpu: PciCpu & { io: { port_write8(p: number, v: number): void; port_write16(p: number, v: number): void; port_write32(p: number, v: number): void; port_read8(p: number): number; port_read32(p: number): number } };
  let bus: VirtioPciBus;
  const raised: number[] = [];
  const lowered: number[] = [];

  beforeAll(async () => {
    const require = createRequire(import.meta.url);
    emulator = new V86({
      wasm_path: require.resolve("v86/build/v86.wasm"), memory_size: 64 * MIB, autostart: false, acpi: true,
      disable_keyboard: true, disable_mouse: true, disable_speaker: true,
    } as ConstructorParameters<typeof V86>[0]);
    await new Promise<void>((r) => emulator.add_listener("emulator-loaded", () => r()));
    cpu = (emulator as unknown as { v86: { cpu: typeof cpu } }).v86.cpu;
    const lines = new IrqLines({ device_raise_irq: (n) => raised.push(n), device_lower_irq: (n) => lowered.push(n) });
    bus = new VirtioPciBus(cpu, lines);
    const memory = new WebAssembly.Memory({ initial: (4 * MIB) / 65536 });
    setDmaWindow(memory, 0, RAM);
    const fn = bus.add({
      link: new ForeignLink(new BlkModel({ image: patterned(64 * 1024, 5) }), memory, RAM), memory, ramBase: 0, ramBytes: RAM,
      heap: new GuestHeap(4 * MIB, RAM, 4 * MIB), irqId: 0, name: "test blk",
    });
    expect(fn).not.toBeNull();
    bus.map();
  }, 60_000);

  afterAll(async () => {
    await emulator?.destroy();
  });

  /** Config accesses as a guest makes them: CONFIG_ADDRESS at 0xCF8, data at 0xCFC-0xCFF. */
  const cfgAddr = (slot: number, reg: number) => (0x80000000 | (slot << 11) | (reg & 0xfc)) >>> 0;
  const cfgRead = (slot: number) => {
    const out = new Uint8Array(256);
    const dv = new DataView(out.buffer);
    for (let r = 0; r < 256; r += 4) {
      cpu.io.port_write32(0xcf8, cfgAddr(slot, r) | 0);
      dv.setUint32(r, cpu.io.port_read32(0xcfc) >>> 0, true);
    }
    return out;
  };
  const cfgWrite = (slot: number, reg: number, size: 1 | 2 | 4, v: number) => {
    cpu.io.port_write32(0xcf8, cfgAddr(slot, reg) | 0);
    if (size === 1) cpu.io.port_write8(0xcfc + (reg & 3), v);
    else if (size === 2) cpu.io.port_write16(0xcfc + (reg & 2), v);
    else cpu.io.port_write32(0xcfc, v | 0);
  };

  it("keeps every read-only config byte through hostile byte, word and dword writes (capabilities, BAR, reserved fields)", () => {
    const fn = bus.functions[0];
    const slot = fn.slot;
    const before = cfgRead(slot);
    expect(before[0] | (before[1] << 8)).toBe(0x1af4);
    const prng = new Prng(18);
    const rnd = () => prng.u32() / 0x100000000;
    const writable = new Set([0x04, 0x05, 0x0c, 0x0d, 0x3c]);
    for (let round = 0; round < 4; round++) {
      for (let reg = 0; reg < 256; reg++) {
        if (writable.has(reg)) continue;
        cfgWrite(slot, reg, 1, Math.floor(rnd() * 256));
      }
      for (let reg = 0; reg < 256; reg += 2) if (!writable.has(reg) && !writable.has(reg + 1)) cfgWrite(slot, reg, 2, Math.floor(rnd() * 65536));
      for (let reg = 0; reg < 256; reg += 4) if (reg !== 0x04 && reg !== 0x0c && reg !== 0x3c) cfgWrite(slot, reg, 4, Math.floor(rnd() * 2 ** 32));
    }
    expect([...cfgRead(slot)]).toEqual([...before]);
    expect(fn.device.stats.configRestores).toBeGreaterThan(0);
  });

  it("lets the writable fields and the BAR sizing protocol through", () => {
    const slot = bus.functions[0].slot;
    cfgWrite(slot, 0x04, 2, 0x0006); // memory space + bus master
    cfgWrite(slot, 0x3c, 1, 11);
    cfgWrite(slot, 0x10, 4, 0xffffffff);
    let s = cfgRead(slot);
    expect(new DataView(s.buffer).getUint32(0x10, true)).toBe((~(BAR_SIZE - 1)) >>> 0); // size mask
    cfgWrite(slot, 0x10, 4, PCI_BAR_BASE);
    s = cfgRead(slot);
    expect(new DataView(s.buffer).getUint32(0x10, true)).toBe(PCI_BAR_BASE);
    expect(new DataView(s.buffer).getUint16(0x04, true)).toBe(0x0006);
    expect(s[0x3c]).toBe(11);
    // A BAR write to another address: v86 cannot move memory BARs; it keeps ours.
    cfgWrite(slot, 0x10, 4, 0xd0000000);
    expect(new DataView(cfgRead(slot).buffer).getUint32(0x10, true)).toBe(PCI_BAR_BASE);
  });

  it("serves BAR 0 through v86's MMIO (signed addresses), and reads past the functions as all ones", () => {
    const c = cpu as unknown as { mmap_read8(a: number): number; mmap_read32(a: number): number };
    expect(c.mmap_read8((PCI_BAR_BASE + Common.NumQueues) | 0)).toBe(1);
    expect(c.mmap_read32((PCI_BAR_BASE + BAR_SIZE) | 0) >>> 0).toBe(0xffffffff);
  });

  it("routes INTx through the PIIX3 PIRQ register as the guest programs it, read on every assert", () => {
    const fn = bus.functions[0];
    const pirq = 0x60 + ((fn.slot - 1) & 3); // INTA#
    const isa = cpu.devices.pci.isa_bridge_space8;
    const bridge = fn.device.bridge;
    const raiseOnce = async () => {
      bridge.needsReset(); // a config-change interrupt
      await Promise.resolve();
      fn.device.read(ISR, 1); // read-to-clear lowers it
      bridge.writeStatus(0); // clear NEEDS_RESET for the next round
    };
    return (async () => {
      isa[pirq] = 10;
      raised.length = 0; lowered.length = 0;
      bridge.needsReset();
      expect(cfgRead(fn.slot)[0x06] & 0x08).toBe(0x08); // PCI status: interrupt pending
      await Promise.resolve();
      fn.device.read(ISR, 1);
      expect(cfgRead(fn.slot)[0x06] & 0x08).toBe(0);
      bridge.writeStatus(0);
      expect(raised).toEqual([10]);
      expect(lowered).toEqual([10]);
      isa[pirq] = 11; // Linux reprogrammed the link
      raised.length = 0; lowered.length = 0;
      await raiseOnce();
      expect(raised).toEqual([11]);
      expect(fn.line()).toBe(11);
      isa[pirq] = 0x80; // routing disabled: no line to raise
      raised.length = 0;
      await raiseOnce();
      expect(raised).toEqual([]);
      expect(fn.line()).toBe(-1);
    })();
  });
});

// --- Linux --------------------------------------------------------------------------------

const assets = testAssets();
const ready = typeof assets !== "string";
if (!ready) console.log(`Linux virtio-pci tests skipped: ${assets}`);
const linux = ready ? describe : describe.skip;
const BOOT_MS = 240_000;

const POLICY = `
version: 1
domains: [guest_t, backend_t, backend_ro_t, other_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [enable, send, register_single_source] }
  - { frontend: guest_t, backend: backend_t, device: console, allow: [enable, send, register_single_source] }
  - { frontend: guest_t, backend: backend_t, device: rng, allow: [enable, send, register_single_source] }
  - frontend: guest_t
    backend: backend_ro_t
    device: blk
    allow: [enable, send, register_single_source]
    rules: { read_only: true }
`;


/** Config-space ranges the guest scribbles on: everything but the writable command, cache line, latency and interrupt line. */
const HOSTILE = [[0, 4], [6, 6], [14, 46], [61, 195]];

linux("a Linux guest's own virtio_pci driver over VirtIO-Argo", () => {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "linux-pci-test.yaml") });
  const ts = new Toolstack(hv);
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 96 * MIB });
  const roBackend = hv.createDomain({ name: "backend-ro", label: "backend_ro_t", memoryBytes: 32 * MIB });
  const other = hv.createDomain({ name: "other", label: "other_t", memoryBytes: 16 * MIB });
  const disk = patterned(16 * MIB, 11);
  const roDisk = patterned(4 * MIB, 12);
  const mmioDisk = patterned(2 * MIB, 13);
  const firstMd5 = md5(disk.subarray(0, 8 * MIB));
  const roMd5 = md5(roDisk);
  const hvcOut: number[] = [];
  let g: LinuxGuest;
  let r: LinuxRunResult;
  let killedAt = 0;

  beforeAll(async () => {
    const B = "$B";
    const script = [
      // The disks by size (16 MiB and the 4 MiB read-only one over pci, 2 MiB over mmio:
      // virtio_mmio loads first, so names do not say the bus); B is the big disk's PCI function.
      "disk() { for b in /sys/block/vd*; do [ $(cat $b/size) = $1 ] && echo /dev/${b##*/}; done; }",
      "D=$(disk 32768); RO=$(disk 8192); M=$(disk 4096)",
      "B=$(dirname $(readlink -f /sys/block/${D#/dev/}/device))",
      "echo '== pci'; for d in /sys/bus/pci/devices/*; do [ \"$(cat $d/vendor)\" = 0x1af4 ] && echo \"$(cat $d/device) $(cat $d/revision) $(cat $d/class) $(cat $d/subsystem_vendor) $(basename $(readlink $d/driver))\"; done",
      "echo '== virtio'; for d in /sys/bus/virtio/devices/*; do echo \"$(cat $d/device) $(basename $(readlink $d/driver))\"; done",
      `echo '== irq'; cat ${B}/irq`,
      "echo '== md5'; dd if=$D bs=1M count=8 2>/dev/null | md5sum",
      "echo '== write'; printf 'written-over-pci' | dd of=$D bs=512 seek=100 conv=fsync 2>/dev/null; echo rc=$?",
      "echo '== ro'; cat /sys/block/${RO#/dev/}/ro; dd if=$RO bs=1M 2>/dev/null | md5sum; dd if=/dev/zero of=$RO bs=512 count=1 conv=fsync 2>&1; echo rc=$?",
      "echo '== mmio'; dd if=$M bs=1M 2>/dev/null | md5sum",
      "echo '== rng'; head -c 64 /dev/hwrng | od -An -tx1 | tr -d ' \\n'; echo",
      "echo '== hvc'; echo hello-over-pci > /dev/hvc0; echo waiting-for-hvc-input; timeout 20 head -n 1 /dev/hvc0",
      `echo '== before'; od -An -tx1 -v ${B}/config | tr -d ' \\n'; echo`,
      // Hostile writes through sysfs (root may write any config byte): 0xff bytes, one by
      // one, over the header's read-only fields, the BAR and the capabilities; then BAR
      // dwords and 16-bit words of zeros.
      "head -c 256 /dev/zero | tr '\\000' '\\377' > /tmp/ff",
      ...HOSTILE.map(([at, n]) => `dd if=/tmp/ff of=${B}/config bs=1 seek=${at} count=${n} conv=notrunc 2>/dev/null`),
      `dd if=/dev/zero of=${B}/config bs=4 seek=4 count=6 conv=notrunc 2>/dev/null`,
      `dd if=/dev/zero of=${B}/config bs=2 seek=22 count=4 conv=notrunc 2>/dev/null`,
      `echo '== after'; od -An -tx1 -v ${B}/config | tr -d ' \\n'; echo`,
      "echo '== md5-after'; dd if=$D bs=1M count=8 iflag=direct 2>/dev/null | md5sum",
      "echo '== write-after'; printf 'after-hostile-pci' | dd of=$D bs=512 seek=200 oflag=direct conv=fsync 2>/dev/null; echo rc=$?",
      "echo '== rng-after'; head -c 64 /dev/hwrng | od -An -tx1 | tr -d ' \\n'; echo",
      // Last, the backend domain is destroyed during this dd (see below).
      "echo '== death'; echo dd-start; dd if=$D of=/dev/null bs=4096 iflag=direct 2>&1; echo dd-rc=$?",
      "dd if=$D of=/dev/null bs=4096 count=1 skip=7 iflag=direct 2>&1; echo dd2-rc=$?",
    ].join("\n");
    g = await LinuxGuest.start(hv, ts, {
      name: "linux-pci", label: "guest_t", run: script,
      devices: [
        { type: "blk", backend, bus: "pci", options: { blk: { image: disk } } },
        { type: "blk", backend: roBackend, bus: "pci", options: { blk: { image: roDisk } } },
        { type: "rng", backend, bus: "pci" },
        { type: "console", backend, bus: "pci", options: { console: { onOutput: (b) => hvcOut.push(...b) } } },
        // No pair for other_t: the policy leaves it off the PCI bus.
        { type: "rng", backend: other, bus: "pci" },
        // virtio-mmio beside virtio-pci in the same guest, sharing its IRQ lines.
        { type: "blk", backend, options: { blk: { image: mmioDisk } } },
      ],
      assets: assets as Exclude<typeof assets, string>,
    });
    await g.waitForLine((l) => l === "waiting-for-hvc-input", BOOT_MS);
    const consoleModel = g.devices.find((d) => d.spec.type === "console")!.pair!.model as unknown as { input(b: Uint8Array): void };
    consoleModel.input(new TextEncoder().encode("hello-from-the-backend\n"));
    ({ killedAt, result: r } = await destroyBackendMidDd(g, hv, backend, BOOT_MS));
  }, BOOT_MS + 90_000);

  afterAll(async () => {
    await g?.stop();
  });

  it("binds virtio_pci to one modern function per allowed pair, and none for the denied one", () => {
    expect(r.status).toBe(0);
    console.log(`Linux guest over virtio-pci: /init ready ${r.bootMs} ms after start`);
    const pci = section(r.output, "pci").trim().split("\n").sort();
    // blk 0x1042 and rng 0x1044, revision 1, subsystem vendor 0x1af4, Linux's virtio-pci driver.
    expect(pci).toEqual([
      "0x1042 0x01 0x010000 0x1af4 virtio-pci", "0x1042 0x01 0x010000 0x1af4 virtio-pci",
      "0x1043 0x01 0x078000 0x1af4 virtio-pci", "0x1044 0x01 0xff0000 0x1af4 virtio-pci",
    ]);
    const virtio = section(r.output, "virtio").trim().split("\n").sort();
    expect(virtio).toEqual(["0x0002 virtio_blk", "0x0002 virtio_blk", "0x0002 virtio_blk", "0x0003 virtio_console", "0x0004 virtio_rng"]);
    expect(g.denied.map((d) => `${d.spec.type}:${d.spec.backend.label}`)).toEqual(["rng:other_t"]);
    expect(g.devices.filter((d) => d.pci).length).toBe(4);
  });

  it("delivers INTx on the line Linux routed the PIRQ to", () => {
    const blk = g.devices.find((d) => d.spec.type === "blk")!;
    expect(Number(section(r.output, "irq").trim())).toBe(blk.pci!.line());
  });

  it("reads the disk over virtio-pci with the md5 of the backend's image", () => {
    expect(section(r.output, "md5")).toContain(firstMd5);
    const stats = g.devices.find((d) => d.spec.type === "blk")!.frontend!.stats;
    expect(stats.bytesIn).toBeGreaterThanOrEqual(8 * MIB); // (requests fail only once the backend dies, at the end)
  });

  it("lands guest writes in the backend's image", () => {
    expect(section(r.output, "write")).toContain("rc=0");
    expect(new TextDecoder().decode(disk.subarray(100 * 512, 100 * 512 + 16))).toBe("written-over-pci");
  });

  it("shows a read_only pair over virtio-pci as a read-only disk whose writes fail and leave the image alone", () => {
    expectReadOnlyDisk(section(r.output, "ro"), roDisk, roMd5);
  });

  it("serves a virtio-mmio disk beside the virtio-pci devices in the same guest", () => {
    expect(section(r.output, "mmio")).toContain(md5(mmioDisk));
  });

  it("carries console bytes both ways over hvc0 on virtio-pci", () => {
    expect(new TextDecoder().decode(new Uint8Array(hvcOut))).toContain("hello-over-pci");
    expect(section(r.output, "hvc")).toContain("hello-from-the-backend");
  });

  it("reads entropy from the backend's rng over virtio-pci", () => {
    const hex = section(r.output, "rng").trim();
    expect(hex).toMatch(/^[0-9a-f]{128}$/);
    expect(new Set(hex.match(/../g)).size).toBeGreaterThan(16);
  });

  it("keeps config space as the device defines it through hostile guest writes, and the device keeps working", () => {
    const before = section(r.output, "before").trim();
    const after = section(r.output, "after").trim();
    expect(before).toMatch(/^[0-9a-f]{512}$/);
    // Byte 6 bit 3 is the live interrupt-status bit: mask it.
    const norm = (h: string) => h.slice(0, 12) + (parseInt(h.slice(12, 14), 16) & ~8).toString(16).padStart(2, "0") + h.slice(14);
    expect(norm(after)).toBe(norm(before));
    expect(g.devices.find((d) => d.spec.type === "blk")!.pci!.device.stats.configRestores).toBeGreaterThan(0);
    // An uncached read after the hostile writes: the image with the first guest write in
    // it (the second, at sector 200, came after that read).
    const then = disk.slice(0, 8 * MIB);
    then.set(patterned(16 * MIB, 11).subarray(200 * 512, 201 * 512), 200 * 512);
    expect(section(r.output, "md5-after")).toContain(md5(then));
    expect(section(r.output, "write-after")).toContain("rc=0");
    expect(new TextDecoder().decode(disk.subarray(200 * 512, 200 * 512 + 17))).toBe("after-hostile-pci");
    expect(section(r.output, "rng-after").trim()).toMatch(/^[0-9a-f]{128}$/);
  });

  it("gives the guest I/O errors, not a hang, when the backend domain dies mid-dd, and the guest still powers off", () => {
    const out = section(r.output, "death");
    expect(out).toMatch(/dd-rc=[1-9]/);
    expect(out).toMatch(/dd2-rc=[1-9]/);
    expect(r.console).toContain("reboot: Power down");
    expect(performance.now() - killedAt).toBeLessThan(60_000);
    expect(g.devices.find((d) => d.spec.type === "blk")!.frontend!.gone).toBe(true);
  });
});
