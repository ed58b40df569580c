// What the three sharing transports (foreign, grant, bounce) have in common: the backend's
// device model runs against memory it shares with the guest, and control accesses are
// register traps handled synchronously by the same ControlEndpoint argo uses. Each
// transport differs only in which memory the rings and buffers live in and what the guest's
// DMA layer does (nothing, grant pages, bounce through slots): `createQueue`.
import type { DeviceEnv, DeviceQueue, DriverQueue, GuestVirtioDevice, UsedHandler, VirtioDeviceModel } from "../../devices/types.ts";
import { STATUS_NEEDS_RESET } from "../../devices/types.ts";
import type { GuestHeap } from "../../guest/heap.ts";
import { ControlEndpoint } from "../argo/control.ts";
import { words } from "../argo/wire.ts";
import { Ctrl } from "../argo/wire.ts";
import { ControlClient, TransportError } from "../argo/control-client.ts";
import { ABSENT_QUEUE } from "../vring/device-queue.ts";
import type { GuestDriverQueue } from "../vring/guest-queue.ts";

export interface SharedDeviceConfig {
  /** The guest's memory, where its drivers allocate their buffers. */
  memory: WebAssembly.Memory;
  heap: GuestHeap;
  model: VirtioDeviceModel;
  /** Records a device-level denial (read-only disk, bad grant) in the audit log. */
  deny?(perm: string, detail: string): void;
}

/** A queue as a sharing transport builds it: the guest's driver half and the model's device half. */
export interface SharedQueue {
  driver: GuestDriverQueue;
  device: DeviceQueue;
  /** Releases what the queue holds (ring mappings, slots) on reset or removal. */
  release?(): void;
}

export abstract class SharedDevice extends ControlClient implements GuestVirtioDevice {
  readonly virtioId: number;
  readonly memory: WebAssembly.Memory;
  protected readonly cfg: SharedDeviceConfig;
  private readonly endpoint: ControlEndpoint;
  private queues: SharedQueue[] = [];
  private isGone = false;

  constructor(cfg: SharedDeviceConfig) {
    super();
    this.cfg = cfg;
    this.memory = cfg.memory;
    this.virtioId = cfg.model.virtioId;
    this.endpoint = new ControlEndpoint(cfg.model, {
      activate: (_sizes, features) => {
        const env: DeviceEnv = {
          queues: Array.from({ length: cfg.model.numQueues }, (_, i) => this.queues[i]?.device ?? ABSENT_QUEUE),
          features,
          configChanged: () => this.configChanged(),
          deny: (perm, detail) => cfg.deny?.(perm, detail),
        };
        cfg.model.activate(env);
      },
      reset: () => cfg.model.reset(),
    });
  }

  /** Pages of the guest the backend can read (now or at any time during the run). */
  abstract get exposedPages(): number;

  /**
   * Builds queue `index`: rings, the guest's DMA layer, the model's device queue; the
   * device queue calls `broken` once when a chain breaks the ring (or cannot be mapped).
   */
  protected abstract createQueue(index: number, size: number, onUsed: UsedHandler, notify: () => void, broken: () => void): SharedQueue;

  get gone(): boolean {
    return this.isGone;
  }

  protected get heap(): GuestHeap {
    return this.cfg.heap;
  }

  protected call(msgId: number, payload: Uint8Array): Promise<Uint8Array> {
    if (this.isGone) return Promise.reject(new TransportError("device is gone"));
    const r = this.endpoint.handle(msgId, payload);
    return r.error ? Promise.reject(new TransportError(`device refused the request (${msgId})`)) : Promise.resolve(r.data);
  }

  protected onReset(): void {
    // Chains still out (a model that holds requests, as console does its receive buffers)
    // fail now, before their ring and mappings go.
    for (const q of this.queues) q?.driver.close();
    for (const q of this.queues) q?.release?.();
    this.queues = [];
  }

  async setupQueue(index: number, size: number, onUsed: UsedHandler): Promise<DriverQueue> {
    await this.checkQueueIndex(index);
    await this.call(Ctrl.SET_VQUEUE, words(index, size));
    this.queues[index]?.driver.close();
    this.queues[index]?.release?.();
    // The notify "register write" traps straight into the device model.
    const q = this.createQueue(index, size, onUsed, () => this.cfg.model.queueNotify(index), () => this.queueBroken(q));
    this.queues[index] = q;
    return q.driver;
  }

  /**
   * A driver's bad chain broke queue `q` (the model was handed nothing of it): what is in
   * flight on it fails, the device status gets DEVICE_NEEDS_RESET and the driver a config
   * change notification (VirtIO 1.2 2.1.1). A microtask later, not inside the model's pop.
   */
  private queueBroken(q: SharedQueue): void {
    queueMicrotask(() => {
      if (!this.queues.includes(q)) return; // reset or set up again meanwhile
      q.driver.close();
      this.endpoint.status |= STATUS_NEEDS_RESET;
      this.enterNeedsReset();
    });
  }

  /**
   * Unplug, or the backend domain is gone: the model stops, every request still out
   * completes with an error, the queues' memory goes back, and later calls fail.
   */
  remove(): void {
    if (this.isGone) return;
    this.isGone = true;
    this.cfg.model.reset();
    this.onReset();
  }
}
