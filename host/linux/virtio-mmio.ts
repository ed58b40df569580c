// virtio-mmio, version 2 (VirtIO 1.2 section 4.2), in a Linux guest's VMM, bridged to
// the VirtIO-Argo transport: configuration over virtio-mmio, data over Argo.
//
// Register accesses that need the device (features, status, config, queue setup) become
// the control plane's messages over Argo to the backend domain; the vCPU waits on the
// trapped access while the backend answers (ArgoFrontend.callNow). The guest's own
// vrings, placed by Linux at the addresses it writes into QueueDesc/Driver/Device, are
// served by the existing frontend's (Wasm) device side; the backend is told only the
// queue size and never sees a guest address.
//
// Every register write is hostile input. Values the spec says a driver must not write
// are ignored or set DEVICE_NEEDS_RESET; nothing a guest writes throws or reaches
// outside the guest's RAM (queue areas are checked against it, descriptor addresses by
// the Wasm DMA window).
import type { ArgoFrontend, QueueSink } from "../transport/frontend.ts";
import { TransportError } from "../transport/control-client.ts";
import { words } from "../transport/control.ts";
import { Ctrl } from "../transport/wire.ts";
import { splitDeviceAt } from "../transport/split-sides.ts";
import { packedDeviceAt } from "../transport/packed-sides.ts";
import type { DeviceSide } from "../transport/queue-sides.ts";
import { HeapLease, type GuestHeap } from "../guest/heap.ts";
import {
  STATUS_FEATURES_OK, STATUS_NEEDS_RESET, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED,
  VIRTIO_ID_BLOCK,
} from "../devices/types.ts";
import type { IrqLines } from "./irq.ts";
import { viewsOf, type MemoryViews } from "../guest/views.ts";

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
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;
/** Ring features the frontend implements on the guest's vrings (its Wasm device side). */
export const RING_FEATURES = VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_RING_PACKED;
/** Largest queue offered: bounds the out block per queue (16 bytes per entry) in the VMM's memory. */
const MAX_QUEUE = 1024;
const VIRTIO_BLK_S_IOERR = 1;

interface Queue {
  num: number;
  ready: boolean;
  desc: [number, number];
  driver: [number, number];
  device: [number, number];
}

function newQueue(): Queue {
  return { num: 0, ready: false, desc: [0, 0], driver: [0, 0], device: [0, 0] };
}

interface Info {
  virtioId: number;
  vendorId: number;
  configSize: number;
  numQueues: number;
  maxQueueSize: number;
}

export interface VirtioMmioConfig {
  frontend: ArgoFrontend;
  /** The guest's memory (v86's) and where its RAM is in it. */
  memory: WebAssembly.Memory;
  ramBase: number;
  ramBytes: number;
  /** The VMM's allocator (its reserved pages) for the queues' small state blocks. */
  heap: GuestHeap;
  irq: IrqLines;
  line: number;
  /** This device's index (its IRQ identity on a shared line). */
  index: number;
  /** Tells the emulator that [off, off + len) of its memory changed (v86: jit_dirty_cache). */
  dirty(off: number, len: number): void;
}

export class VirtioMmioDevice {
  readonly stats = { reads: 0, writes: 0, ignored: 0, needsReset: 0, kicks: 0, interrupts: 0, controlFailures: 0 };
  private readonly c: VirtioMmioConfig;
  private readonly views: MemoryViews;
  private info: Info | null = null;
  private offered: bigint | null = null;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private queues: Queue[] = [];
  private isr = 0;
  private status = 0;
  /** Set by this side (bad queue setup, device gone): reported until the driver resets. */
  private localNeedsReset = false;
  /** Config generation: the backend's (from its config replies) plus this side's config events. */
  private backendGeneration = 0;
  private localGeneration = 0;

  constructor(c: VirtioMmioConfig) {
    this.c = c;
    this.views = viewsOf(c.memory);
    c.frontend.onConfigChange(() => this.configChanged());
  }

  /** The device info, asked once (0 when the backend does not answer: Linux then skips the device). */
  private dev(): Info {
    if (this.info) return this.info;
    const r = this.c.frontend.callNow(Ctrl.GET_DEVICE_INFO, new Uint8Array(0));
    if (r instanceof TransportError || r.byteLength < 24) {
      this.stats.controlFailures++;
      return { virtioId: 0, vendorId: 0, configSize: 0, numQueues: 0, maxQueueSize: 0 };
    }
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    const info = { virtioId: dv.getUint32(0, true), vendorId: dv.getUint32(4, true), configSize: dv.getUint32(12, true), numQueues: Math.min(dv.getUint32(16, true), 64), maxQueueSize: Math.min(dv.getUint32(20, true), MAX_QUEUE) };
    this.info = info;
    this.queues = Array.from({ length: info.numQueues }, newQueue);
    return info;
  }

  private deviceFeatures(): bigint {
    if (this.offered !== null) return this.offered;
    const r = this.c.frontend.callNow(Ctrl.GET_DEVICE_FEATURES, words(0, 2));
    if (r instanceof TransportError || r.byteLength < 8) {
      this.stats.controlFailures++;
      return 0n;
    }
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    // Ring features are the frontend's to offer: it serves the guest's vrings.
    this.offered = (BigInt(dv.getUint32(0, true)) | (BigInt(dv.getUint32(4, true)) << 32n)) | RING_FEATURES;
    return this.offered;
  }

  // --- register file ----------------------------------------------------------------

  read(off: number, size: 1 | 4): number {
    this.stats.reads++;
    try {
      if (off >= Reg.Config) return this.readConfig(off - Reg.Config, size);
      if (size !== 4 || (off & 3) !== 0) return this.ignore(0); // 4.2.2.2: registers are 32-bit
      return this.readReg(off) >>> 0;
    } catch {
      return this.fail(0);
    }
  }

  write(off: number, size: 1 | 4, value: number): void {
    this.stats.writes++;
    try {
      if (off >= Reg.Config) return this.writeConfig(off - Reg.Config, size, value);
      if (size !== 4 || (off & 3) !== 0) return this.ignore(undefined);
      this.writeReg(off, value >>> 0);
    } catch {
      this.fail(undefined);
    }
  }

  private ignore<T>(v: T): T {
    this.stats.ignored++;
    return v;
  }

  /** Something unexpected: never an exception into the emulator; the device needs a reset. */
  private fail<T>(v: T): T {
    this.needsReset();
    return v;
  }

  private readReg(off: number): number {
    switch (off) {
      case Reg.MagicValue: return MMIO_MAGIC;
      case Reg.Version: return 2;
      case Reg.DeviceID: return this.dev().virtioId;
      case Reg.VendorID: return this.dev().vendorId;
      case Reg.DeviceFeatures: {
        const sel = this.deviceFeaturesSel;
        return sel < 2 ? Number((this.deviceFeatures() >> BigInt(32 * sel)) & 0xffffffffn) : 0;
      }
      case Reg.QueueNumMax: {
        const q = this.selected();
        return q && !q.ready ? this.dev().maxQueueSize : 0;
      }
      case Reg.QueueReady: return this.selected()?.ready ? 1 : 0;
      case Reg.InterruptStatus: return this.isr;
      case Reg.Status: return this.status | (this.localNeedsReset || this.c.frontend.gone ? STATUS_NEEDS_RESET : 0);
      // No shared memory regions: length and base read as all ones (4.2.2).
      case Reg.SHMLenLow: case Reg.SHMLenHigh: case Reg.SHMBaseLow: case Reg.SHMBaseHigh: return 0xffffffff;
      case Reg.ConfigGeneration: return (this.backendGeneration + this.localGeneration) >>> 0;
      default: return this.ignore(0);
    }
  }

  private writeReg(off: number, v: number): void {
    switch (off) {
      case Reg.DeviceFeaturesSel: this.deviceFeaturesSel = v; return;
      case Reg.DriverFeaturesSel: this.driverFeaturesSel = v; return;
      case Reg.DriverFeatures: {
        const sel = this.driverFeaturesSel;
        // Features are fixed once FEATURES_OK is set (3.1.1); other words do not exist.
        if (sel >= 2 || this.status & STATUS_FEATURES_OK) return this.ignore(undefined);
        const shift = BigInt(32 * sel);
        this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(v) << shift);
        return;
      }
      case Reg.QueueSel: this.queueSel = v; return;
      case Reg.QueueNum: return this.queueField((q) => { q.num = v; });
      case Reg.QueueDescLow: return this.queueField((q) => { q.desc[0] = v; });
      case Reg.QueueDescHigh: return this.queueField((q) => { q.desc[1] = v; });
      case Reg.QueueDriverLow: return this.queueField((q) => { q.driver[0] = v; });
      case Reg.QueueDriverHigh: return this.queueField((q) => { q.driver[1] = v; });
      case Reg.QueueDeviceLow: return this.queueField((q) => { q.device[0] = v; });
      case Reg.QueueDeviceHigh: return this.queueField((q) => { q.device[1] = v; });
      case Reg.QueueReady: return v === 1 ? this.enableQueue() : v === 0 ? this.disableQueue() : this.ignore(undefined);
      case Reg.QueueNotify: {
        // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
        const q = this.queues[v];
        if (v >= this.queues.length || !q?.ready) return this.ignore(undefined);
        this.stats.kicks++;
        this.c.frontend.kick(v);
        return;
      }
      case Reg.InterruptACK: {
        this.isr &= ~v;
        // Lowered now: a deferred lower re-fires the level-triggered line.
        if (this.isr === 0) this.c.irq.deassert(this.c.line, this.c.index);
        return;
      }
      case Reg.Status: return this.setStatus(v);
      default: return this.ignore(undefined);
    }
  }

  private selected(): Queue | undefined {
    this.dev();
    return this.queueSel < this.queues.length ? this.queues[this.queueSel] : undefined;
  }

  /** Queue registers may change only while the queue is not ready (4.2.2.3). */
  private queueField(set: (q: Queue) => void): void {
    const q = this.selected();
    if (!q || q.ready) return this.ignore(undefined);
    set(q);
  }

  private needsReset(): void {
    if (this.localNeedsReset) return;
    this.localNeedsReset = true;
    this.stats.needsReset++;
    this.configChanged(); // 2.1.2: the device notifies the driver of DEVICE_NEEDS_RESET
  }

  private configChanged(): void {
    this.localGeneration = (this.localGeneration + 1) >>> 0;
    this.raise(INT_CONFIG_CHANGE);
  }

  private raise(bit: number): void {
    this.isr |= bit;
    this.stats.interrupts++;
    this.c.irq.assert(this.c.line, this.c.index);
  }

  private setStatus(v: number): void {
    const f = this.c.frontend;
    if (v === 0) return this.reset();
    const adding = v & ~this.status;
    if (adding & STATUS_FEATURES_OK) {
      // The ring features stay here; the backend hears the device features only.
      const toDevice = this.driverFeatures & ~RING_FEATURES;
      const r = f.callNow(Ctrl.SET_DRIVER_FEATURES, words(0, 2, Number(toDevice & 0xffffffffn), Number(toDevice >> 32n)));
      if (r instanceof TransportError) {
        // Refused (e.g. after FEATURES_OK) or gone: FEATURES_OK will not be set.
        v &= ~STATUS_FEATURES_OK;
      }
    }
    const r = f.callNow(Ctrl.SET_DEVICE_STATUS, words(v));
    if (r instanceof TransportError || r.byteLength < 4) {
      this.stats.controlFailures++;
      this.status = v & ~STATUS_FEATURES_OK;
      this.needsReset();
      return;
    }
    this.status = new DataView(r.buffer, r.byteOffset, 4).getUint32(0, true);
  }

  /** Status 0: every queue goes (its requests fail), the backend resets, registers clear. */
  private reset(): void {
    for (let i = 0; i < this.queues.length; i++) if (this.queues[i].ready) this.c.frontend.removeQueue(i);
    this.queues = this.queues.map(newQueue);
    const r = this.c.frontend.callNow(Ctrl.SET_DEVICE_STATUS, words(0));
    if (r instanceof TransportError) this.stats.controlFailures++;
    this.status = 0;
    this.driverFeatures = 0n;
    this.offered = null;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.localNeedsReset = false;
    this.isr = 0;
    this.c.irq.deassert(this.c.line, this.c.index);
  }

  private get accepted(): bigint {
    return this.status & STATUS_FEATURES_OK ? this.driverFeatures : 0n;
  }

  /**
   * QueueReady = 1: check the size and that the three areas lie in the guest's RAM, tell
   * the backend the size, then serve the ring where Linux put it.
   */
  private enableQueue(): void {
    const index = this.queueSel;
    const q = this.selected();
    if (!q || q.ready) return this.ignore(undefined);
    const packed = (this.accepted & VIRTIO_F_RING_PACKED) !== 0n;
    const num = q.num;
    const max = this.dev().maxQueueSize;
    // Split rings need a power of two (2.7); packed rings any size up to the maximum (2.8).
    if (num === 0 || num > max || (!packed && (num & (num - 1)) !== 0)) return this.needsReset();
    const area = (a: [number, number], bytes: number, align: number): number => {
      // Above 4 GiB, past the guest's RAM or misaligned: not a ring we can serve.
      if (a[1] !== 0 || a[0] % align !== 0 || a[0] + bytes > this.c.ramBytes) return -1;
      return this.c.ramBase + a[0];
    };
    const desc = area(q.desc, 16 * num, 16);
    const drv = packed ? area(q.driver, 4, 4) : area(q.driver, 6 + 2 * num, 2);
    const dev = packed ? area(q.device, 4, 4) : area(q.device, 6 + 8 * num, 4);
    if (desc < 0 || drv < 0 || dev < 0) return this.needsReset();
    const r = this.c.frontend.callNow(Ctrl.SET_VQUEUE, words(index, num));
    if (r instanceof TransportError) return this.needsReset();
    const lease = new HeapLease(this.c.heap);
    const eventIdx = (this.accepted & VIRTIO_F_EVENT_IDX) !== 0n;
    const indirect = (this.accepted & VIRTIO_F_INDIRECT_DESC) !== 0n;
    let side: DeviceSide;
    try {
      side = packed
        ? packedDeviceAt(this.c.memory, lease, { size: num, desc, driverEvent: drv, deviceEvent: dev }, eventIdx, indirect)
        : splitDeviceAt(this.c.memory, lease, { size: num, desc, avail: drv, used: dev }, eventIdx, indirect);
    } catch {
      lease.release();
      return this.needsReset(); // the VMM's own pages ran out
    }
    // What the device side writes (used ring, event suppression) the emulator must see.
    const usedArea = packed ? [desc, 16 * num] : [dev, 6 + 8 * num];
    const dirty = this.c.dirty;
    const push = side.push.bind(side);
    side.push = (head: number, written: number) => {
      push(head, written);
      dirty(usedArea[0], usedArea[1]);
    };
    this.c.frontend.installQueue(index, side, this.sink(), () => lease.release());
    q.ready = true;
  }

  private disableQueue(): void {
    const q = this.selected();
    if (!q || !q.ready) return;
    this.c.frontend.removeQueue(this.queueSel);
    q.ready = false;
  }

  /** Completions: used-buffer interrupt; failures carry the device's own error status. */
  private sink(): QueueSink {
    return {
      interrupt: () => this.raise(INT_USED_BUFFER),
      markFailed: (_head, wGpa, wLen) => {
        // A blk request's status byte is the last writable byte (5.2.6): IOERR, so the
        // driver fails the request instead of reading a stale status.
        if (this.dev().virtioId !== VIRTIO_ID_BLOCK || wGpa.length === 0) return 0;
        const last = wGpa.length - 1;
        const at = wGpa[last] + wLen[last] - 1;
        this.views.fresh().u8[at] = VIRTIO_BLK_S_IOERR;
        this.c.dirty(at, 1);
        return 1;
      },
    };
  }

  // --- device configuration space -----------------------------------------------------

  private readConfig(off: number, size: 1 | 4): number {
    if (off + size > this.dev().configSize) return this.ignore(0);
    const r = this.c.frontend.callNow(Ctrl.GET_CONFIG, words(off, size));
    if (r instanceof TransportError || r.byteLength < 4 + size) {
      this.stats.controlFailures++;
      return 0;
    }
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    this.backendGeneration = dv.getUint32(0, true);
    return size === 1 ? dv.getUint8(4) : dv.getUint32(4, true);
  }

  private writeConfig(off: number, size: 1 | 4, value: number): void {
    if (off + size > this.dev().configSize) return this.ignore(undefined);
    const bytes = size === 1 ? new Uint8Array([value & 0xff]) : words(value);
    const p = new Uint8Array(8 + size);
    p.set(words(off, size));
    p.set(bytes, 8);
    const r = this.c.frontend.callNow(Ctrl.SET_CONFIG, p);
    if (r instanceof TransportError) this.stats.controlFailures++;
  }
}
