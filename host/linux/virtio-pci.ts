// Modern virtio-pci (VirtIO 1.2 section 4.1) for a Linux guest's virtio drivers: a PCI
// function in v86's PCI bus whose capability list points into one memory BAR, the BAR's
// registers mapped onto the same transport-independent VirtioBridge as virtio-mmio (so the
// same Argo data path, policy and frontend).
//
// BAR 0 (16 KiB, 32-bit memory, fixed address: v86 cannot move memory BARs):
//   0x0000 common configuration (4.1.4.3)   0x1000 ISR status (4.1.4.5, read-to-clear)
//   0x2000 device configuration (4.1.4.6)   0x3000 notifications (4.1.4.4, multiplier 4)
//
// What v86 gives a device registered from outside (npm v86 0.5.462, pinned), measured:
// - Config space is a live Int32Array that v86 answers reads from and stores writes into,
//   with no callback to the device. So there is no VIRTIO_PCI_CAP_PCI_CFG capability
//   (4.1.4.9): its window needs the device to act when pci_cfg_data is read, and reads of
//   config space never reach us. (The spec says a device MUST offer it; Linux never uses it.)
// - Guest writes to config space outside its writable fields must not change what the
//   device reads later. We keep our own copy of the whole space and restore every byte
//   outside the writable fields after each config write: v86's three config-write methods
//   (pci_write8/16/32) are wrapped on its PCI object (the one path every config write
//   takes, port 0xCFC-0xCFF), so the guest reads back the right bytes at once. The device
//   itself never reads its behaviour from that space (the interrupt pin below is ours).
// - BAR accesses: addresses arrive as signed int32; 16-bit accesses as two byte accesses,
//   low byte first; 64-bit ones as two 32-bit ones. So 16-bit fields are assembled from
//   their two bytes and act on the high byte (a notification, which repeats harmlessly,
//   acts on its low byte).
// - The command register's enables (memory space, bus master, INTx disable) are stored
//   for the guest but not enforced: v86 routes the BAR to us whatever they say.
// - No MSI/MSI-X: INTx only. v86's PIIX3 routes slot/pin to an IRQ through its PIRQ
//   registers (0x60-0x63), which Linux may reprogram: the line is read from them on every
//   assert and driven through the guest's shared IrqLines (v86 keeps one level per line).
//   The ISR read clears it and lowers the line there, synchronously.
//
// Everything a guest writes is hostile input: nothing here throws into the emulator (a bug
// of ours sets DEVICE_NEEDS_RESET instead), values the spec rules out are ignored.
import { VirtioBridge, type BridgeConfig } from "./bridge.ts";
import type { IrqChip, IrqLines } from "./irq.ts";
import { STATUS_NEEDS_RESET, VIRTIO_ID_BLOCK, VIRTIO_ID_CONSOLE, VIRTIO_ID_NET } from "../devices/types.ts";

export const PCI_VENDOR_VIRTIO = 0x1af4;
/** Modern (non-transitional) device ids are 0x1040 + the virtio device id (4.1.2.1). */
export const PCI_DEVICE_MODERN = 0x1040;
/** Subsystem device id: 4.1.2.1 asks non-transitional devices for 0x40 or higher. */
export const PCI_SUBSYSTEM_ID = 0x1100;

/** BAR 0 layout. */
export const BAR_SIZE = 0x4000;
export const COMMON = 0x0000;
export const ISR = 0x1000;
export const DEVICE = 0x2000;
export const NOTIFY = 0x3000;
export const NOTIFY_MULTIPLIER = 4;
/** Common configuration through queue_reset (0x3a, 16-bit): 0x3c bytes. */
export const COMMON_LENGTH = 0x3c;

/** virtio_pci_cap cfg_type values (4.1.4). */
export const enum Cap {
  CommonCfg = 1,
  NotifyCfg = 2,
  IsrCfg = 3,
  DeviceCfg = 4,
}

/** Common configuration offsets (4.1.4.3). */
export const enum Common {
  DeviceFeatureSelect = 0x00,
  DeviceFeature = 0x04,
  DriverFeatureSelect = 0x08,
  DriverFeature = 0x0c,
  ConfigMsixVector = 0x10,
  NumQueues = 0x12,
  DeviceStatus = 0x14,
  ConfigGeneration = 0x15,
  QueueSelect = 0x16,
  QueueSize = 0x18,
  QueueMsixVector = 0x1a,
  QueueEnable = 0x1c,
  QueueNotifyOff = 0x1e,
  QueueDescLo = 0x20,
  QueueDescHi = 0x24,
  QueueDriverLo = 0x28,
  QueueDriverHi = 0x2c,
  QueueDeviceLo = 0x30,
  QueueDeviceHi = 0x34,
  QueueNotifyData = 0x38,
  QueueReset = 0x3a,
}

/** Without MSI-X, vector registers read as VIRTIO_MSI_NO_VECTOR. */
const NO_VECTOR = 0xffff;
/** Where the capability list starts in config space (the first byte after the type-0 header). */
export const CAP_LIST = 0x40;
/** INTA#: the pin the function uses, fixed here (the guest's copy in config space is not read). */
const INT_PIN = 1;
/** PIIX3 PIRQ route control registers in the ISA bridge's config space (PIRQA-D). */
const PIRQ_ROUTE = 0x60;
const STATUS_CAP_LIST = 0x10;
const STATUS_INTX = 0x08;

/** Width and start of each common-config field, by byte offset (fields never overlap). */
const FIELDS: Array<[start: number, size: 1 | 2 | 4]> = [
  [0x00, 4], [0x04, 4], [0x08, 4], [0x0c, 4], [0x10, 2], [0x12, 2], [0x14, 1], [0x15, 1], [0x16, 2], [0x18, 2],
  [0x1a, 2], [0x1c, 2], [0x1e, 2], [0x20, 4], [0x24, 4], [0x28, 4], [0x2c, 4], [0x30, 4], [0x34, 4], [0x38, 2], [0x3a, 2],
];
const FIELD_AT: Array<[number, 1 | 2 | 4] | undefined> = [];
for (const f of FIELDS) for (let i = 0; i < f[1]; i++) FIELD_AT[f[0] + i] = f;

/** PCI class code (base class, subclass) by virtio device id, as QEMU presents them. */
function classOf(virtioId: number): [number, number] {
  switch (virtioId) {
    case VIRTIO_ID_BLOCK: return [0x01, 0x00]; // mass storage, SCSI
    case VIRTIO_ID_NET: return [0x02, 0x00]; // network, ethernet
    case VIRTIO_ID_CONSOLE: return [0x07, 0x80]; // communication, other
    default: return [0xff, 0x00]; // unassigned class
  }
}

export interface PciFunctionConfig extends Omit<BridgeConfig, "assertIrq" | "deassertIrq"> {
  /** Guest-physical address of BAR 0 (16 KiB-aligned, fixed). */
  bar: number;
  /** INTx: raise or lower the function's interrupt (the bus routes it to a line). */
  assertIntx(): void;
  deassertIntx(): void;
}

/**
 * One modern virtio-pci function: its config space (built once, guarded after every
 * config write) and BAR 0's registers decoded onto a VirtioBridge. Testable without v86.
 */
export class VirtioPciDevice {
  readonly bridge: VirtioBridge;
  readonly bar: number;
  readonly stats = { reads: 0, writes: 0, configRestores: 0 };
  /** The config space as the device defines it (writable fields: their reset values). */
  private readonly golden = new Uint8Array(256);
  /** Per byte, the bits the guest may write (0: read-only, restored from `golden`). */
  private readonly writable = new Uint8Array(256);
  private readonly c: PciFunctionConfig;
  private deviceFeatureSel = 0;
  private driverFeatureSel = 0;
  private queueSel = 0;
  /** The low byte of a 16-bit field, held until its high byte arrives (v86 splits 16-bit accesses). */
  private low: { off: number; v: number } | null = null;
  private intx = false;
  /** v86's live copy of config space, once registered (the interrupt-status bit is kept current in it). */
  private live: Uint8Array | null = null;

  constructor(c: PciFunctionConfig) {
    this.c = c;
    this.bar = c.bar >>> 0;
    if (this.bar % BAR_SIZE !== 0) throw new RangeError(`BAR 0 at 0x${this.bar.toString(16)} is not ${BAR_SIZE}-aligned`);
    this.bridge = new VirtioBridge({ ...c, assertIrq: () => this.setIntx(true), deassertIrq: () => this.setIntx(false) });
  }

  /** The virtio device id the backend reports (0: no device; such a function is not registered). */
  get virtioId(): number {
    return this.bridge.dev().virtioId;
  }

  /** The 256 bytes of config space to register (VirtIO 1.2 4.1.2, 4.1.4; PCI 3.0 6.1). */
  configSpace(): Uint8Array {
    const s = this.golden;
    s.fill(0);
    const dv = new DataView(s.buffer);
    const info = this.bridge.dev();
    dv.setUint16(0x00, PCI_VENDOR_VIRTIO, true);
    dv.setUint16(0x02, PCI_DEVICE_MODERN + info.virtioId, true);
    dv.setUint16(0x04, 0, true); // command: the guest enables decoding
    dv.setUint16(0x06, STATUS_CAP_LIST, true);
    s[0x08] = 1; // revision 1: non-transitional (4.1.2.1)
    const [base, sub] = classOf(info.virtioId);
    s[0x09] = 0; // programming interface
    s[0x0a] = sub;
    s[0x0b] = base;
    s[0x0e] = 0x00; // header type 0, single function
    dv.setUint32(0x10, this.bar, true); // BAR 0: 32-bit, non-prefetchable memory
    dv.setUint16(0x2c, PCI_VENDOR_VIRTIO, true); // subsystem vendor
    dv.setUint16(0x2e, PCI_SUBSYSTEM_ID, true);
    s[0x34] = CAP_LIST;
    s[0x3c] = 0; // interrupt line: firmware and OS write it
    s[0x3d] = INT_PIN;
    // Vendor-specific capabilities (virtio_pci_cap, 4.1.4), 4-byte aligned, chained.
    const caps: Array<[type: Cap, offset: number, length: number, extra?: number]> = [
      [Cap.CommonCfg, COMMON, COMMON_LENGTH],
      [Cap.NotifyCfg, NOTIFY, 0x1000, NOTIFY_MULTIPLIER],
      [Cap.IsrCfg, ISR, 1],
    ];
    // Device configuration only when the device has some: Linux rejects a zero-length one.
    if (info.configSize > 0) caps.push([Cap.DeviceCfg, DEVICE, Math.min(info.configSize, 0x1000)]);
    let at = CAP_LIST;
    caps.forEach(([type, offset, length, extra], i) => {
      const len = extra === undefined ? 16 : 20;
      const next = i + 1 < caps.length ? at + len : 0;
      s.set([0x09, next, len, type, 0 /* bar */, 0 /* id */, 0, 0], at);
      dv.setUint32(at + 8, offset, true);
      dv.setUint32(at + 12, length, true);
      if (extra !== undefined) dv.setUint32(at + 16, extra, true);
      at += len;
    });
    // Writable fields (PCI 3.0 6.2): command (I/O, memory, bus master, parity, SERR#,
    // interrupt disable), cache line size, latency timer, interrupt line. BAR 0 is guarded
    // separately (see `restore`); every other byte is read-only.
    this.writable.fill(0);
    this.writable[0x04] = 0x47;
    this.writable[0x05] = 0x05;
    this.writable[0x0c] = 0xff;
    this.writable[0x0d] = 0xff;
    this.writable[0x3c] = 0xff;
    return new Uint8Array(s);
  }

  /**
   * Puts back every read-only byte of the live config space `live` (v86's copy) after a
   * guest write. BAR 0 may hold its address or, after the guest wrote all ones, its size
   * mask (the sizing protocol); anything else goes back to the address. Returns whether
   * anything had changed.
   */
  restore(live: Uint8Array): boolean {
    this.live = live;
    let changed = false;
    for (let i = 0; i < 256; i++) {
      if (i >= 0x10 && i < 0x14) continue;
      const w = this.writable[i];
      const v = (this.golden[i] & ~w) | (live[i] & w);
      if (v !== live[i]) { live[i] = v; changed = true; }
    }
    const bar = (live[0x10] | (live[0x11] << 8) | (live[0x12] << 16) | (live[0x13] << 24)) >>> 0;
    const sizeMask = (~(BAR_SIZE - 1)) >>> 0;
    if (bar !== this.bar && bar !== sizeMask) {
      live.set([this.bar & 0xff, (this.bar >>> 8) & 0xff, (this.bar >>> 16) & 0xff, this.bar >>> 24], 0x10);
      changed = true;
    }
    if (changed) this.stats.configRestores++;
    return changed;
  }

  /** Whether the function asserts INTx now (the PCI status register's interrupt bit). */
  get interruptPending(): boolean {
    return this.intx;
  }

  private setIntx(on: boolean): void {
    this.intx = on;
    this.golden[0x06] = STATUS_CAP_LIST | (on ? STATUS_INTX : 0);
    if (this.live) this.live[0x06] = this.golden[0x06];
    if (on) this.c.assertIntx();
    else this.c.deassertIntx();
  }

  // --- BAR 0 ------------------------------------------------------------------------------

  /** A guest read of `size` bytes at BAR offset `off`. Never throws into the emulator. */
  read(off: number, size: 1 | 4): number {
    this.stats.reads++;
    return this.bridge.guard(() => this.readBar(off, size), 0);
  }

  /** A guest write. Never throws into the emulator. */
  write(off: number, size: 1 | 4, value: number): void {
    this.stats.writes++;
    this.bridge.guard(() => this.writeBar(off, size, value >>> 0), undefined);
  }

  private readBar(off: number, size: 1 | 4): number {
    if (off >= BAR_SIZE) return this.bridge.ignore(0);
    if (off < ISR) return this.readCommon(off, size) >>> 0;
    if (off < DEVICE) return off === ISR ? this.readIsr() : this.bridge.ignore(0);
    if (off < NOTIFY) return this.bridge.readConfig(off - DEVICE, size) >>> 0;
    return this.bridge.ignore(0); // notifications are write-only
  }

  private writeBar(off: number, size: 1 | 4, value: number): void {
    if (off >= BAR_SIZE) return this.bridge.ignore(undefined);
    if (off < ISR) return this.writeCommon(off, size, value);
    if (off < DEVICE) return this.bridge.ignore(undefined); // ISR is read-only
    if (off < NOTIFY) return this.bridge.writeConfig(off - DEVICE, size, value);
    return this.notify(off - NOTIFY);
  }

  /** ISR status: read-to-clear; the line goes down now (a deferred lower re-fires it). */
  private readIsr(): number {
    const v = this.bridge.interruptStatus;
    this.bridge.ack(v);
    return v;
  }

  /** A notification: the queue is the one whose notify address was written (queue_notify_off = index). */
  private notify(rel: number): void {
    // v86 hands a 16-bit write over as two byte writes: the low byte notifies, the high byte
    // of the same cell is the rest of that one write.
    if ((rel & 3) === 1) return;
    if ((rel & 3) !== 0) return this.bridge.ignore(undefined);
    this.bridge.notify(rel / NOTIFY_MULTIPLIER);
  }

  /** Common config, read byte-composed: every field is side-effect free to read. */
  private readCommon(off: number, size: 1 | 4): number {
    const f = FIELD_AT[off];
    if (size === 4) {
      if (f && f[0] === off && f[1] === 4) return this.field(off);
      let v = 0;
      for (let i = 3; i >= 0; i--) v = (v << 8) | this.readCommonByte(off + i);
      return v;
    }
    return this.readCommonByte(off);
  }

  private readCommonByte(off: number): number {
    const f = FIELD_AT[off];
    if (!f) return this.bridge.ignore(0);
    return (this.field(f[0]) >>> (8 * (off - f[0]))) & 0xff;
  }

  /** The value of the common-config field starting at `start`. */
  private field(start: number): number {
    const b = this.bridge;
    const q = b.queue(this.queueSel);
    switch (start) {
      case Common.DeviceFeatureSelect: return this.deviceFeatureSel;
      case Common.DeviceFeature: return b.deviceFeatureWord(this.deviceFeatureSel);
      case Common.DriverFeatureSelect: return this.driverFeatureSel;
      case Common.DriverFeature: return b.driverFeatureWord(this.driverFeatureSel);
      case Common.ConfigMsixVector: return NO_VECTOR;
      case Common.NumQueues: return b.dev().numQueues;
      case Common.DeviceStatus: {
        // After a reset the driver waits until status reads 0 (4.1.4.3.2; Linux polls).
        // A device whose backend is gone reports NEEDS_RESET alone then: read as 0 so the
        // reset completes (the next status write fails and sets NEEDS_RESET again).
        const s = b.status & 0xff;
        return (s & ~STATUS_NEEDS_RESET) === 0 ? 0 : s;
      }
      case Common.ConfigGeneration: return b.configGeneration & 0xff;
      case Common.QueueSelect: return this.queueSel;
      // On reset queue_size reads the maximum; 0 means no such queue (4.1.4.3).
      case Common.QueueSize: return q ? q.num || b.dev().maxQueueSize : 0;
      case Common.QueueMsixVector: return NO_VECTOR;
      case Common.QueueEnable: return q?.ready ? 1 : 0;
      case Common.QueueNotifyOff: return q ? this.queueSel : 0;
      case Common.QueueDescLo: return q ? q.desc[0] : 0;
      case Common.QueueDescHi: return q ? q.desc[1] : 0;
      case Common.QueueDriverLo: return q ? q.driver[0] : 0;
      case Common.QueueDriverHi: return q ? q.driver[1] : 0;
      case Common.QueueDeviceLo: return q ? q.device[0] : 0;
      case Common.QueueDeviceHi: return q ? q.device[1] : 0;
      // Only with NOTIF_CONFIG_DATA / RING_RESET, neither offered: read as 0.
      case Common.QueueNotifyData: return 0;
      case Common.QueueReset: return 0;
      default: return b.ignore(0);
    }
  }

  private writeCommon(off: number, size: 1 | 4, v: number): void {
    const f = FIELD_AT[off];
    // Fields are written at their natural width (4.1.3.1); 16-bit ones arrive as two bytes.
    if (!f) return this.bridge.ignore(undefined);
    const [start, width] = f;
    if (width === 4) return size === 4 && start === off ? this.write32(off, v) : this.bridge.ignore(undefined);
    if (size !== 1) return this.bridge.ignore(undefined);
    if (width === 1) return start === Common.DeviceStatus ? this.bridge.writeStatus(v & 0xff) : this.bridge.ignore(undefined);
    if (off === start) {
      this.low = { off, v: v & 0xff };
      return;
    }
    const low = this.low;
    this.low = null;
    // A high byte without its low byte is not a 16-bit write.
    if (!low || low.off !== start) return this.bridge.ignore(undefined);
    this.write16(start, low.v | ((v & 0xff) << 8));
  }

  private write32(off: number, v: number): void {
    const b = this.bridge;
    const sel = this.queueSel;
    switch (off) {
      case Common.DeviceFeatureSelect: this.deviceFeatureSel = v; return;
      case Common.DriverFeatureSelect: this.driverFeatureSel = v; return;
      case Common.DriverFeature: return b.setDriverFeatureWord(this.driverFeatureSel, v);
      case Common.QueueDescLo: return b.setQueue(sel, (q) => { q.desc[0] = v; });
      case Common.QueueDescHi: return b.setQueue(sel, (q) => { q.desc[1] = v; });
      case Common.QueueDriverLo: return b.setQueue(sel, (q) => { q.driver[0] = v; });
      case Common.QueueDriverHi: return b.setQueue(sel, (q) => { q.driver[1] = v; });
      case Common.QueueDeviceLo: return b.setQueue(sel, (q) => { q.device[0] = v; });
      case Common.QueueDeviceHi: return b.setQueue(sel, (q) => { q.device[1] = v; });
      default: return b.ignore(undefined); // device_feature is read-only
    }
  }

  private write16(start: number, v: number): void {
    const b = this.bridge;
    switch (start) {
      case Common.QueueSelect: this.queueSel = v; return;
      case Common.QueueSize: return b.setQueue(this.queueSel, (q) => { q.num = v; });
      // 1 enables; the driver must not write 0 (4.1.4.3.2: queue reset is not offered).
      case Common.QueueEnable: {
        if (v !== 1) return b.ignore(undefined);
        // queue_size reads the maximum until the driver writes it, and a driver that keeps
        // it (SeaBIOS's virtio-blk does when the maximum is small) enables at that size.
        b.setQueue(this.queueSel, (q) => { if (q.num === 0) q.num = b.dev().maxQueueSize; });
        return b.enableQueue(this.queueSel);
      }
      // No MSI-X: vector writes are ignored and read back NO_VECTOR, which tells the driver so.
      default: return b.ignore(undefined);
    }
  }
}

// --- v86 glue -------------------------------------------------------------------------------

/** v86's PCI bus (internals, not in v86.d.ts: the version is pinned in package.json). */
export interface V86Pci {
  register_device(d: { pci_id: number; pci_space: number[]; pci_bars: Array<{ size: number } | undefined>; name: string }): Int32Array;
  devices: unknown[];
  /** The PIIX3 ISA bridge's config space: PIRQ routing at 0x60-0x63. */
  isa_bridge_space8: Uint8Array;
  pci_write8(addr: number, v: number): void;
  pci_write16(addr: number, v: number): void;
  pci_write32(addr: number, v: number): void;
}

export interface PciCpu extends IrqChip {
  devices: { pci: V86Pci };
  io: { mmap_register(addr: number, size: number, r8: (a: number) => number, w8: (a: number, v: number) => void, r32: (a: number) => number, w32: (a: number, v: number) => void): void };
}

/** Where the BARs go: 0xfe000000, clear of v86's VGA framebuffer (0xe0000000, 8 MiB), its VGA ROM (0xfeb00000) and the virtio-mmio windows (0xfef00000). */
export const PCI_BAR_BASE = 0xfe000000;
/** v86 maps MMIO in 128 KiB regions: 8 BARs each. */
const REGION = 0x20000;
/** First slot tried: v86's own functions sit at slots 0, 1, 7 and above 17 (VGA 18, IDE 30) when present. */
const FIRST_SLOT = 8;
export const MAX_PCI_DEVICES = 16;

/** A valid PIRQ route: bit 7 clear (enabled) and an ISA IRQ number. */
export function pirqLine(route: number): number {
  return (route & 0x80) === 0 && route > 0 && route < 16 ? route : -1;
}

export interface PciAttach extends Omit<PciFunctionConfig, "bar" | "assertIntx" | "deassertIntx"> {
  /** The device's id on the shared IRQ lines (unique in the guest). */
  irqId: number;
  name: string;
}

/** One registered function: its registers, slot and live config space. */
export interface PciFunction {
  device: VirtioPciDevice;
  slot: number;
  live: Uint8Array;
  /** The IRQ line its INTx reaches now (PIIX3 routing; -1: not routed). */
  line(): number;
}

/** The Linux guest's virtio-pci functions on v86's PCI bus. */
export class VirtioPciBus {
  readonly functions: PciFunction[] = [];
  private readonly cpu: PciCpu;
  private readonly irq: IrqLines;
  private readonly bySlot = new Map<number, PciFunction>();
  private mapped = false;

  constructor(cpu: PciCpu, irq: IrqLines) {
    this.cpu = cpu;
    this.irq = irq;
  }

  /**
   * Registers a function for the device behind `c.link`; null when the backend reports no
   * device (id 0), which then has no function at all. Call before `map()`.
   */
  add(c: PciAttach): PciFunction | null {
    if (this.mapped) throw new Error("virtio-pci: add() after map()");
    if (this.functions.length >= MAX_PCI_DEVICES) throw new RangeError(`at most ${MAX_PCI_DEVICES} virtio-pci devices`);
    const pci = this.cpu.devices.pci;
    let slot = FIRST_SLOT;
    while (slot < 32 && pci.devices[slot << 3] !== undefined) slot++;
    if (slot >= 32) throw new RangeError("virtio-pci: no free PCI slot");
    const bar = PCI_BAR_BASE + this.functions.length * BAR_SIZE;
    const pirq = PIRQ_ROUTE + ((INT_PIN - 1 + slot - 1) & 3); // the PIIX3 swizzle v86 and the ACPI _PRT use
    let asserted = -1;
    const line = () => pirqLine(pci.isa_bridge_space8[pirq]);
    const device = new VirtioPciDevice({
      ...c, bar,
      assertIntx: () => {
        const l = line();
        if (asserted >= 0 && asserted !== l) this.irq.deassert(asserted, c.irqId); // routing changed
        asserted = l;
        if (l >= 0) this.irq.assert(l, c.irqId);
      },
      deassertIntx: () => {
        if (asserted >= 0) this.irq.deassert(asserted, c.irqId);
        asserted = -1;
      },
    });
    if (device.virtioId === 0) return null;
    const space = device.configSpace();
    const live32 = pci.register_device({ pci_id: slot << 3, pci_space: [...space], pci_bars: [{ size: BAR_SIZE }], name: c.name });
    const fn: PciFunction = { device, slot, live: new Uint8Array(live32.buffer, live32.byteOffset, 256), line };
    device.restore(fn.live); // binds it: from now on the status register's interrupt bit is live
    this.functions.push(fn);
    this.bySlot.set(slot, fn);
    return fn;
  }

  /** Serves the BARs (v86 MMIO regions) and guards config space; once, before the guest runs. */
  map(): void {
    if (this.mapped) return;
    this.mapped = true;
    if (this.functions.length === 0) return;
    this.guardConfigWrites();
    const at = (addr: number): [VirtioPciDevice | undefined, number] => {
      const off = (addr >>> 0) - PCI_BAR_BASE; // v86 passes addresses as signed int32
      return [this.functions[Math.floor(off / BAR_SIZE)]?.device, off & (BAR_SIZE - 1)];
    };
    const regions = Math.ceil((this.functions.length * BAR_SIZE) / REGION);
    for (let r = 0; r < regions; r++) {
      this.cpu.io.mmap_register(
        PCI_BAR_BASE + r * REGION, REGION,
        (a) => { const [d, o] = at(a); return d ? d.read(o, 1) & 0xff : 0xff; },
        (a, v) => { const [d, o] = at(a); d?.write(o, 1, v & 0xff); },
        (a) => { const [d, o] = at(a); return d ? d.read(o, 4) | 0 : -1; },
        (a, v) => { const [d, o] = at(a); d?.write(o, 4, v >>> 0); },
      );
    }
  }

  /** Restores a function's read-only config bytes after each config write v86 stores. */
  private guardConfigWrites(): void {
    const pci = this.cpu.devices.pci;
    const after = (addr: number) => {
      try {
        // CONFIG_ADDRESS: bus in bits 16-23, device 11-15, function 8-10.
        if (((addr >>> 16) & 0xff) !== 0 || ((addr >>> 8) & 7) !== 0) return;
        const fn = this.bySlot.get((addr >>> 11) & 0x1f);
        fn?.device.restore(fn.live);
      } catch {
        // never into the emulator
      }
    };
    for (const m of ["pci_write8", "pci_write16", "pci_write32"] as const) {
      const original = pci[m];
      if (typeof original !== "function") throw new Error(`v86's PCI bus has no ${m}: not the pinned v86`);
      pci[m] = function (this: V86Pci, addr: number, v: number) {
        original.call(this, addr, v);
        after(addr);
      };
    }
  }
}
