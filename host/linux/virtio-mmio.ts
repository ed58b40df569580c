// virtio-mmio, version 2 (VirtIO 1.2 section 4.2), for a Linux guest's virtio drivers:
// the register offsets of table 4.1 mapped onto the transport-independent VirtioBridge.
// Registers are 32-bit (4.2.2.2: a driver must use 32-bit aligned accesses); any other
// access to them is ignored. Config space from 0x100 is accessed at its natural width
// (v86 hands 16-bit accesses over as two byte accesses).
import { VirtioBridge, type BridgeConfig } from "./bridge.ts";

/** Register offsets (VirtIO 1.2 table 4.1). */
export const enum Reg {
  MagicValue = 0x000,
  Version = 0x004,
  DeviceID = 0x008,
  VendorID = 0x00c,
  DeviceFeatures = 0x010,
  DeviceFeaturesSel = 0x014,
  DriverFeatures = 0x020,
  DriverFeaturesSel = 0x024,
  QueueSel = 0x030,
  QueueNumMax = 0x034,
  QueueNum = 0x038,
  QueueReady = 0x044,
  QueueNotify = 0x050,
  InterruptStatus = 0x060,
  InterruptACK = 0x064,
  Status = 0x070,
  QueueDescLow = 0x080,
  QueueDescHigh = 0x084,
  QueueDriverLow = 0x090,
  QueueDriverHigh = 0x094,
  QueueDeviceLow = 0x0a0,
  QueueDeviceHigh = 0x0a4,
  SHMSel = 0x0ac,
  SHMLenLow = 0x0b0,
  SHMLenHigh = 0x0b4,
  SHMBaseLow = 0x0b8,
  SHMBaseHigh = 0x0bc,
  QueueReset = 0x0c0,
  ConfigGeneration = 0x0fc,
  Config = 0x100,
}

export const MMIO_MAGIC = 0x74726976; // "virt"

export class VirtioMmioDevice {
  readonly bridge: VirtioBridge;
  readonly stats = { reads: 0, writes: 0 };
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;

  constructor(c: BridgeConfig) {
    this.bridge = new VirtioBridge(c);
  }

  /** A guest read of `size` bytes at window offset `off`. Never throws into the emulator. */
  read(off: number, size: 1 | 4): number {
    this.stats.reads++;
    return this.bridge.guard(() => {
      if (off >= Reg.Config) return this.bridge.readConfig(off - Reg.Config, size);
      if (size !== 4 || (off & 3) !== 0) return this.bridge.ignore(0);
      return this.readReg(off) >>> 0;
    }, 0);
  }

  /** A guest write. Never throws into the emulator. */
  write(off: number, size: 1 | 4, value: number): void {
    this.stats.writes++;
    this.bridge.guard(() => {
      if (off >= Reg.Config) return this.bridge.writeConfig(off - Reg.Config, size, value);
      if (size !== 4 || (off & 3) !== 0) return this.bridge.ignore(undefined);
      this.writeReg(off, value >>> 0);
    }, undefined);
  }

  private readReg(off: number): number {
    const b = this.bridge;
    switch (off) {
      case Reg.MagicValue: return MMIO_MAGIC;
      case Reg.Version: return 2;
      case Reg.DeviceID: return b.dev().virtioId;
      case Reg.VendorID: return b.dev().vendorId;
      case Reg.DeviceFeatures: return b.deviceFeatureWord(this.deviceFeaturesSel);
      case Reg.QueueNumMax: return b.queueNumMax(this.queueSel);
      case Reg.QueueReady: return b.queue(this.queueSel)?.ready ? 1 : 0;
      case Reg.InterruptStatus: return b.interruptStatus;
      case Reg.Status: return b.status;
      // No shared memory regions: their length and base read as all ones (4.2.2).
      case Reg.SHMLenLow: case Reg.SHMLenHigh: case Reg.SHMBaseLow: case Reg.SHMBaseHigh: return 0xffffffff;
      case Reg.ConfigGeneration: return b.configGeneration;
      default: return b.ignore(0);
    }
  }

  private writeReg(off: number, v: number): void {
    const b = this.bridge;
    const q = this.queueSel;
    switch (off) {
      case Reg.DeviceFeaturesSel: this.deviceFeaturesSel = v; return;
      case Reg.DriverFeaturesSel: this.driverFeaturesSel = v; return;
      case Reg.DriverFeatures: return b.setDriverFeatureWord(this.driverFeaturesSel, v);
      case Reg.QueueSel: this.queueSel = v; return;
      case Reg.QueueNum: return b.setQueue(q, (r) => { r.num = v; });
      case Reg.QueueDescLow: return b.setQueue(q, (r) => { r.desc[0] = v; });
      case Reg.QueueDescHigh: return b.setQueue(q, (r) => { r.desc[1] = v; });
      case Reg.QueueDriverLow: return b.setQueue(q, (r) => { r.driver[0] = v; });
      case Reg.QueueDriverHigh: return b.setQueue(q, (r) => { r.driver[1] = v; });
      case Reg.QueueDeviceLow: return b.setQueue(q, (r) => { r.device[0] = v; });
      case Reg.QueueDeviceHigh: return b.setQueue(q, (r) => { r.device[1] = v; });
      case Reg.QueueReady: return v === 1 ? b.enableQueue(q) : v === 0 ? b.disableQueue(q) : b.ignore(undefined);
      case Reg.QueueNotify: return b.notify(v);
      case Reg.InterruptACK: return b.ack(v); // lowered now: a deferred lower re-fires the level line
      case Reg.Status: return b.writeStatus(v);
      default: return b.ignore(undefined);
    }
  }
}
