// The driver side of the control plane, shared by every transport: the VirtIO 1.2
// section 3.1.1 initialisation sequence (reset, ACKNOWLEDGE, DRIVER, features,
// FEATURES_OK, DRIVER_OK) and config access, over whatever carries a control message
// (Argo messages for argo, a trapped register access for the sharing transports).
import { STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_NEEDS_RESET, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1 } from "../../devices/types.ts";
import { Ctrl, words } from "./wire.ts";
import type { GuestHeap } from "../../guest/heap.ts";
import { VmmError } from "../../errors.ts";

/** A control operation failed: the device refused it, answered malformed, or is gone. A VmmError (code TRANSPORT). */
export class TransportError extends VmmError {
  constructor(message: string) {
    super("TRANSPORT", message, "the device refused or was removed: check `vmm.list()` and the audit log, reset the driver or attach the device again");
  }
}

/**
 * The first `n` le32 words of a reply. The reply was written by the backend, another domain:
 * a short one is a protocol error (TransportError), never a RangeError out of a DataView.
 */
function replyWords(r: Uint8Array, n: number, what: string): DataView {
  if (r.byteLength < 4 * n) throw new TransportError(`${what}: reply of ${r.byteLength} bytes, ${4 * n} expected`);
  return new DataView(r.buffer, r.byteOffset, r.byteLength);
}

export interface DeviceInfo {
  virtioId: number;
  vendorId: number;
  configSize: number;
  numQueues: number;
  maxQueueSize: number;
}

/** Queues a driver may set up on one device at most (the frontend's interrupt bookkeeping is this size). */
export const MAX_QUEUES = 256;

export abstract class ControlClient {
  protected status = 0;
  /** The device's queue count (GET_DEVICE_INFO, capped at MAX_QUEUES), asked once. */
  private queueCount: number | null = null;
  private readonly configListeners: Array<() => void> = [];
  /** A ring broke on this side of the transport: DEVICE_NEEDS_RESET until the driver resets. */
  private ringBroken = false;
  /** Features the driver accepted, ring features included. */
  protected accepted = 0n;

  /** Sends one control request; resolves with the reply payload, rejects on an ERROR reply. */
  protected abstract call(msgId: number, payload: Uint8Array): Promise<Uint8Array>;
  /** Ring feature bits the transport itself implements on the guest's vrings. */
  protected abstract get ringFeatures(): bigint;
  /** Transport work on reset (fail what is in flight) before the status write. */
  protected abstract onReset(): void;
  /** The guest's page allocator, where its drivers' buffers live. */
  protected abstract get heap(): GuestHeap;

  alloc(bytes: number): number {
    return this.heap.alloc(bytes);
  }

  free(gpa: number, bytes: number): void {
    this.heap.free(gpa, bytes);
  }

  protected get eventIdx(): boolean {
    return (this.accepted & VIRTIO_F_EVENT_IDX) !== 0n;
  }

  protected get indirect(): boolean {
    return (this.accepted & VIRTIO_F_INDIRECT_DESC) !== 0n;
  }

  /** VIRTIO_F_RING_PACKED accepted: the guest's vrings are packed (2.8), not split. */
  protected get packed(): boolean {
    return (this.accepted & VIRTIO_F_RING_PACKED) !== 0n;
  }

  protected async setStatus(value: number): Promise<number> {
    const r = await this.call(Ctrl.SET_DEVICE_STATUS, words(value));
    this.status = replyWords(r, 1, "SET_DEVICE_STATUS").getUint32(0, true);
    return this.status;
  }

  async deviceInfo(): Promise<DeviceInfo> {
    const r = await this.call(Ctrl.GET_DEVICE_INFO, new Uint8Array(0));
    const dv = replyWords(r, 6, "GET_DEVICE_INFO");
    return { virtioId: dv.getUint32(0, true), vendorId: dv.getUint32(4, true), configSize: dv.getUint32(12, true), numQueues: dv.getUint32(16, true), maxQueueSize: dv.getUint32(20, true) };
  }

  async negotiate(wanted: bigint): Promise<bigint> {
    await this.reset();
    await this.setStatus(STATUS_ACKNOWLEDGE);
    await this.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const r = await this.call(Ctrl.GET_DEVICE_FEATURES, words(0, 2));
    const dv = replyWords(r, 2, "GET_DEVICE_FEATURES");
    const offered = BigInt(dv.getUint32(0, true)) | (BigInt(dv.getUint32(4, true)) << 32n);
    // Ring features are between the guest driver and the transport (the vrings it serves).
    const ring = this.ringFeatures;
    const accepted = (offered | ring) & (wanted | VIRTIO_F_VERSION_1);
    this.accepted = accepted;
    const toDevice = accepted & ~ring;
    await this.call(Ctrl.SET_DRIVER_FEATURES, words(0, 2, Number(toDevice & 0xffffffffn), Number(toDevice >> 32n)));
    const s = await this.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(s & STATUS_FEATURES_OK)) throw new TransportError("device refused the features (FEATURES_OK not set)");
    return accepted;
  }

  /**
   * Refuses a queue index the device does not have (its GET_DEVICE_INFO count, at most
   * MAX_QUEUES). Without it an index of 256 or more was accepted and its interrupts were
   * dropped, so the queue hung.
   */
  protected async checkQueueIndex(index: number): Promise<void> {
    this.queueCount ??= Math.min((await this.deviceInfo()).numQueues, MAX_QUEUES);
    if (!Number.isInteger(index) || index < 0 || index >= this.queueCount) {
      throw new TransportError(`queue ${index} does not exist: the device has ${this.queueCount} queue(s)`);
    }
  }

  /** Called when the device signals a config change (EVENT_CONFIG, or DEVICE_NEEDS_RESET being set). */
  onConfigChange(cb: () => void): void {
    this.configListeners.push(cb);
  }

  protected configChanged(): void {
    for (const cb of [...this.configListeners]) cb();
  }

  /** DEVICE_NEEDS_RESET (VirtIO 1.2 2.1.1): set by the device, or by this transport when a ring broke. */
  get needsReset(): boolean {
    return this.ringBroken || (this.status & STATUS_NEEDS_RESET) !== 0;
  }

  /**
   * A driver's ring is broken (a bad chain): the device enters an error state a reset clears.
   * VirtIO 1.2 2.1.1: it sets DEVICE_NEEDS_RESET and, with DRIVER_OK set, sends a
   * configuration change notification (from a microtask, never inside the driver's kick).
   */
  protected enterNeedsReset(): void {
    if (this.ringBroken) return;
    this.ringBroken = true;
    if (this.status & STATUS_DRIVER_OK) queueMicrotask(() => this.configChanged());
  }

  async readConfig(offset: number, length: number): Promise<Uint8Array> {
    const r = await this.call(Ctrl.GET_CONFIG, words(offset, length));
    // {le32 generation, then exactly `length` bytes}: a driver reading a field must get all of it.
    if (r.byteLength !== 4 + length) throw new TransportError(`GET_CONFIG: reply of ${r.byteLength} bytes, ${4 + length} expected`);
    return r.slice(4);
  }

  async writeConfig(offset: number, data: Uint8Array): Promise<void> {
    const p = new Uint8Array(8 + data.length);
    p.set(words(offset, data.length));
    p.set(data, 8);
    await this.call(Ctrl.SET_CONFIG, p);
  }

  async driverOk(): Promise<void> {
    const s = await this.setStatus(this.status | STATUS_DRIVER_OK);
    if (!(s & STATUS_DRIVER_OK)) throw new TransportError("device refused DRIVER_OK");
  }

  async reset(): Promise<void> {
    this.ringBroken = false;
    this.onReset();
    await this.setStatus(0);
  }
}
