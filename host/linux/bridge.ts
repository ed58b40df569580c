// The transport-independent half of a Linux guest's virtio register file: device info,
// feature words, the status state machine, queue setup on the guest's own vrings, the
// interrupt status and config space, over a DeviceLink (VirtIO-Argo, or foreign). The
// register decoders (virtio-mmio.ts; virtio-pci later) only map offsets onto it.
//
// Everything a guest writes is hostile input: values the spec says a driver must not
// write are ignored or set DEVICE_NEEDS_RESET; nothing a guest writes throws or reaches
// outside the guest's RAM (queue areas are checked against it here, descriptor
// addresses by the Wasm DMA window).
import type { QueueSink } from "../transport/argo/frontend/frontend.ts";
import { TransportError } from "../transport/argo/control-client.ts";
import { words } from "../transport/argo/wire.ts";
import { Ctrl } from "../transport/argo/wire.ts";
import { splitDeviceAt } from "../transport/vring/split-sides.ts";
import { packedDeviceAt } from "../transport/vring/packed-sides.ts";
import type { DeviceSide } from "../transport/vring/queue-sides.ts";
import { HeapLease, type GuestHeap } from "../guest/heap.ts";
import { viewsOf, type MemoryViews } from "../guest/views.ts";
import {
  STATUS_FEATURES_OK, STATUS_NEEDS_RESET, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED,
  VIRTIO_ID_BLOCK,
} from "../devices/types.ts";
import type { DeviceLink } from "./link.ts";

export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;
/** Ring features the transport implements on the guest's vrings (the Wasm device side). */
export const RING_FEATURES = VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_RING_PACKED;
/** Largest queue offered: bounds each queue's out block (16 bytes an entry) in the VMM's pages. */
const MAX_QUEUE = 1024;
/** Most queues a device may have here (net with many pairs has more; none of ours do). */
const MAX_QUEUES = 64;
const VIRTIO_BLK_S_IOERR = 1;

/** One queue's registers, as the driver wrote them (64-bit addresses as [low, high]). */
export interface QueueRegs {
  num: number;
  ready: boolean;
  desc: [number, number];
  driver: [number, number];
  device: [number, number];
}

function newQueue(): QueueRegs {
  return { num: 0, ready: false, desc: [0, 0], driver: [0, 0], device: [0, 0] };
}

/** What GET_DEVICE_INFO told the bridge (zeros: no device). */
export interface BridgeDeviceInfo {
  virtioId: number;
  vendorId: number;
  configSize: number;
  numQueues: number;
  maxQueueSize: number;
}

const NO_DEVICE: BridgeDeviceInfo = { virtioId: 0, vendorId: 0, configSize: 0, numQueues: 0, maxQueueSize: 0 };

export interface BridgeConfig {
  link: DeviceLink;
  /** The guest's memory (v86's) and where its RAM is in it. */
  memory: WebAssembly.Memory;
  ramBase: number;
  ramBytes: number;
  /** The VMM's allocator (its reserved pages), for the queues' small state blocks. */
  heap: GuestHeap;
  /** Ring features offered to the driver (default RING_FEATURES: EVENT_IDX, INDIRECT_DESC, RING_PACKED). */
  ringFeatures?: bigint;
  /** Raise the device's interrupt (the decoder's line or vector); never from the access itself. */
  assertIrq(): void;
  /** Lower it (the driver acknowledged every cause). */
  deassertIrq(): void;
}

export class VirtioBridge {
  readonly stats = { ignored: 0, needsReset: 0, kicks: 0, interrupts: 0, controlFailures: 0, faults: 0 };
  private readonly c: BridgeConfig;
  private readonly views: MemoryViews;
  private info: BridgeDeviceInfo | null = null;
  private offered: bigint | null = null;
  private driverFeatures = 0n;
  private queues: QueueRegs[] = [];
  private isr = 0;
  private deviceStatus = 0;
  /** Set by this side (bad queue setup, device gone): reported until the driver resets. */
  private localNeedsReset = false;
  /** Config generation: the backend's (from its config replies) plus this side's config events. */
  private backendGeneration = 0;
  private localGeneration = 0;
  private lastRings = { packed: false, eventIdx: false, indirect: false };

  constructor(c: BridgeConfig) {
    this.c = c;
    this.views = viewsOf(c.memory);
    c.link.onConfigChange(() => this.configChanged());
  }

  /** A value a driver must not have written: counted, otherwise ignored. */
  ignore<T>(v: T): T {
    this.stats.ignored++;
    return v;
  }

  /**
   * Runs a decoder's handling of one guest access. An exception is a bug of ours, not the
   * guest's: counted, the device says it needs a reset, and `fallback` is returned instead
   * of the exception reaching the emulator. (Added for virtio-pci, issue 18.)
   */
  guard<T>(access: () => T, fallback: T): T {
    try {
      return access();
    } catch {
      this.stats.faults++;
      this.needsReset();
      return fallback;
    }
  }

  // --- device -------------------------------------------------------------------------

  /** Device info, asked once; a backend that does not answer reads as no device (id 0). */
  dev(): BridgeDeviceInfo {
    if (this.info) return this.info;
    const r = this.c.link.control(Ctrl.GET_DEVICE_INFO, new Uint8Array(0));
    if (r instanceof TransportError || r.byteLength < 24) {
      this.stats.controlFailures++;
      return NO_DEVICE;
    }
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    this.info = {
      virtioId: dv.getUint32(0, true), vendorId: dv.getUint32(4, true), configSize: dv.getUint32(12, true),
      numQueues: Math.min(dv.getUint32(16, true), MAX_QUEUES), maxQueueSize: Math.min(dv.getUint32(20, true), MAX_QUEUE),
    };
    this.queues = Array.from({ length: this.info.numQueues }, newQueue);
    return this.info;
  }

  /** Word `sel` (0 or 1) of the features offered: the device's plus the ring features the transport implements. */
  deviceFeatureWord(sel: number): number {
    if (sel >= 2) return 0;
    if (this.offered === null) {
      const r = this.c.link.control(Ctrl.GET_DEVICE_FEATURES, words(0, 2));
      if (r instanceof TransportError || r.byteLength < 8) {
        this.stats.controlFailures++;
        return 0;
      }
      const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
      // The device's own ring bits are not its to offer: the transport serves the vrings.
      const device = (BigInt(dv.getUint32(0, true)) | (BigInt(dv.getUint32(4, true)) << 32n)) & ~RING_FEATURES;
      this.offered = device | (this.c.ringFeatures ?? RING_FEATURES);
    }
    return Number((this.offered >> BigInt(32 * sel)) & 0xffffffffn);
  }

  /** Word `sel` of the features the driver wrote (virtio-pci's driver_feature reads back; added for issue 18). */
  driverFeatureWord(sel: number): number {
    if (sel >= 2) return 0;
    return Number((this.driverFeatures >> BigInt(32 * sel)) & 0xffffffffn);
  }

  setDriverFeatureWord(sel: number, v: number): void {
    // Features are fixed once FEATURES_OK is set (3.1.1); words past 1 do not exist.
    if (sel >= 2 || this.deviceStatus & STATUS_FEATURES_OK) return this.ignore(undefined);
    const shift = BigInt(32 * sel);
    this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(v >>> 0) << shift);
  }

  get status(): number {
    return this.deviceStatus | (this.localNeedsReset || this.c.link.gone ? STATUS_NEEDS_RESET : 0);
  }

  /** A status write (3.1.1); 0 resets the device. */
  writeStatus(v: number): void {
    const link = this.c.link;
    if (v === 0) return this.reset();
    const adding = v & ~this.deviceStatus;
    if (adding & STATUS_FEATURES_OK) {
      // Ring features stay on this side; the backend hears the device features only.
      const toDevice = this.driverFeatures & ~RING_FEATURES;
      const r = link.control(Ctrl.SET_DRIVER_FEATURES, words(0, 2, Number(toDevice & 0xffffffffn), Number(toDevice >> 32n)));
      if (r instanceof TransportError) v &= ~STATUS_FEATURES_OK; // refused: FEATURES_OK stays clear
    }
    const r = link.control(Ctrl.SET_DEVICE_STATUS, words(v));
    if (r instanceof TransportError || r.byteLength < 4) {
      this.stats.controlFailures++;
      this.deviceStatus = v & ~STATUS_FEATURES_OK;
      this.needsReset();
      return;
    }
    this.deviceStatus = new DataView(r.buffer, r.byteOffset, 4).getUint32(0, true);
  }

  /** Status 0: every queue goes (its requests fail), the device resets, registers clear. */
  private reset(): void {
    for (let i = 0; i < this.queues.length; i++) if (this.queues[i].ready) this.c.link.removeQueue(i);
    this.queues = this.queues.map(newQueue);
    const r = this.c.link.control(Ctrl.SET_DEVICE_STATUS, words(0));
    if (r instanceof TransportError) this.stats.controlFailures++;
    this.deviceStatus = 0;
    this.driverFeatures = 0n;
    this.offered = null;
    this.localNeedsReset = false;
    this.isr = 0;
    this.c.deassertIrq();
  }

  private get accepted(): bigint {
    return this.deviceStatus & STATUS_FEATURES_OK ? this.driverFeatures : 0n;
  }

  /** The ring format and features of the last queue the driver enabled (kept past a reset, e.g. at power-off). */
  get rings(): { packed: boolean; eventIdx: boolean; indirect: boolean } {
    return { ...this.lastRings };
  }

  needsReset(): void {
    if (this.localNeedsReset) return;
    this.localNeedsReset = true;
    this.stats.needsReset++;
    this.configChanged(); // 2.1.2: the device tells the driver it set DEVICE_NEEDS_RESET
  }

  // --- interrupts ---------------------------------------------------------------------

  get interruptStatus(): number {
    return this.isr;
  }

  /** The driver acknowledged `bits`; the interrupt goes down once no cause is left. */
  ack(bits: number): void {
    this.isr &= ~bits;
    if (this.isr === 0) this.c.deassertIrq();
  }

  private configChanged(): void {
    this.localGeneration = (this.localGeneration + 1) >>> 0;
    this.raise(INT_CONFIG_CHANGE);
  }

  private raise(bit: number): void {
    this.isr |= bit;
    this.stats.interrupts++;
    this.c.assertIrq();
  }

  // --- queues -------------------------------------------------------------------------

  /** Queue `index`'s registers, or undefined past the device's queues. */
  queue(index: number): QueueRegs | undefined {
    this.dev();
    return index < this.queues.length ? this.queues[index] : undefined;
  }

  /** Largest size for queue `index` (0: no such queue, or it is live). */
  queueNumMax(index: number): number {
    const q = this.queue(index);
    return q && !q.ready ? this.dev().maxQueueSize : 0;
  }

  /** A queue register write; allowed only while the queue is not ready (4.2.2.3, 4.1.4.3). */
  setQueue(index: number, set: (q: QueueRegs) => void): void {
    const q = this.queue(index);
    if (!q || q.ready) return this.ignore(undefined);
    set(q);
  }

  /**
   * Queue ready: check the size and that the three areas lie in the guest's RAM, tell the
   * device the size, then serve the ring where the driver put it.
   */
  enableQueue(index: number): void {
    const q = this.queue(index);
    if (!q || q.ready) return this.ignore(undefined);
    const packed = (this.accepted & VIRTIO_F_RING_PACKED) !== 0n;
    const num = q.num;
    // Split rings need a power of two (2.7); packed rings any size up to the maximum (2.8).
    if (num === 0 || num > this.dev().maxQueueSize || (!packed && (num & (num - 1)) !== 0)) return this.needsReset();
    const area = (a: [number, number], bytes: number, align: number): number => {
      // Above 4 GiB, past the guest's RAM or misaligned: not a ring that can be served.
      if (a[1] !== 0 || a[0] % align !== 0 || a[0] + bytes > this.c.ramBytes) return -1;
      return this.c.ramBase + a[0];
    };
    const desc = area(q.desc, 16 * num, 16);
    const drv = packed ? area(q.driver, 4, 4) : area(q.driver, 6 + 2 * num, 2);
    const dev = packed ? area(q.device, 4, 4) : area(q.device, 6 + 8 * num, 4);
    if (desc < 0 || drv < 0 || dev < 0) return this.needsReset();
    if (this.c.link.control(Ctrl.SET_VQUEUE, words(index, num)) instanceof TransportError) return this.needsReset();
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
    this.lastRings = { packed, eventIdx, indirect };
    this.c.link.installQueue(index, this.dirtying(side, packed ? desc : dev, packed ? 16 * num : 6 + 8 * num), this.sink(), () => lease.release());
    q.ready = true;
  }

  disableQueue(index: number): void {
    const q = this.queue(index);
    if (!q || !q.ready) return;
    this.c.link.removeQueue(index);
    q.ready = false;
  }

  /** The driver notified queue `index` (without NOTIFICATION_DATA the value is the index). */
  notify(index: number): void {
    const q = this.queue(index);
    if (!q?.ready) return this.ignore(undefined);
    this.stats.kicks++;
    this.c.link.kick(index);
  }

  /** What the device side writes into the guest's ring (used entries), the emulator must see. */
  private dirtying(side: DeviceSide, at: number, bytes: number): DeviceSide {
    const onWrite = this.views.onWrite;
    if (onWrite === null) return side;
    return {
      get size() { return side.size; },
      get error() { return side.error; },
      pop: (out) => side.pop(out),
      push: (head, written) => { side.push(head, written); onWrite(at, bytes); },
      needsInterrupt: () => side.needsInterrupt(),
    };
  }

  /** Completions: the used-buffer interrupt; failures carry the device's own error status. */
  private sink(): QueueSink {
    return {
      interrupt: () => this.raise(INT_USED_BUFFER),
      markFailed: (_head, wGpa, wLen) => {
        // A blk request's status byte is the last writable byte (5.2.6): IOERR, so the
        // driver fails the request instead of reading a stale status.
        if (this.dev().virtioId !== VIRTIO_ID_BLOCK || wGpa.length === 0) return 0;
        const last = wGpa.length - 1;
        const at = wGpa[last] + wLen[last] - 1;
        const v = this.views.fresh();
        v.u8[at] = VIRTIO_BLK_S_IOERR;
        v.onWrite?.(at, 1);
        return 1;
      },
    };
  }

  // --- device configuration space -----------------------------------------------------

  get configGeneration(): number {
    return (this.backendGeneration + this.localGeneration) >>> 0;
  }

  readConfig(off: number, size: 1 | 2 | 4): number {
    if (off + size > this.dev().configSize) return this.ignore(0);
    const r = this.c.link.control(Ctrl.GET_CONFIG, words(off, size));
    if (r instanceof TransportError || r.byteLength < 4 + size) {
      this.stats.controlFailures++;
      return 0;
    }
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    this.backendGeneration = dv.getUint32(0, true);
    return size === 1 ? dv.getUint8(4) : size === 2 ? dv.getUint16(4, true) : dv.getUint32(4, true);
  }

  writeConfig(off: number, size: 1 | 2 | 4, value: number): void {
    if (off + size > this.dev().configSize) return this.ignore(undefined);
    const p = new Uint8Array(12); // offset, size, then the value's bytes
    p.set(words(off, size));
    new DataView(p.buffer).setUint32(8, value >>> 0, true); // little-endian: the low `size` bytes
    if (this.c.link.control(Ctrl.SET_CONFIG, p.subarray(0, 8 + size)) instanceof TransportError) this.stats.controlFailures++;
  }
}
