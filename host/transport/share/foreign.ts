// `foreign`: VirtIO-MMIO with foreign mappings, the classic shared-memory baseline. The
// backend maps the whole guest memory and reads descriptors and buffers in place: zero
// copies, and every page of the guest reachable from the backend. Control accesses are
// register traps handled synchronously by the same ControlEndpoint argo uses.
import type { DeviceEnv, DeviceQueue, DriverQueue, GuestVirtioDevice, UsedHandler, VirtioDeviceModel } from "../../devices/types.ts";
import type { GuestHeap } from "../../guest/heap.ts";
import { ControlEndpoint, words } from "../control.ts";
import { Ctrl } from "../wire.ts";
import { ControlClient, TransportError } from "../control-client.ts";
import { ABSENT_QUEUE, SideDeviceQueue } from "../device-queue.ts";
import { GuestDriverQueue } from "../guest-queue.ts";
import { splitQueue } from "../split-sides.ts";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../../devices/types.ts";

export interface ForeignConfig {
  /** The guest's memory: the backend's foreign mapping of it is the whole of it. */
  memory: WebAssembly.Memory;
  heap: GuestHeap;
  model: VirtioDeviceModel;
  deny?(perm: string, detail: string): void;
}

export class ForeignDevice extends ControlClient implements GuestVirtioDevice {
  readonly virtioId: number;
  readonly memory: WebAssembly.Memory;
  /** Guest pages the backend can read: all of them. */
  readonly exposedPages: number;
  private readonly cfg: ForeignConfig;
  private readonly endpoint: ControlEndpoint;
  private readonly deviceQueues: DeviceQueue[] = [];
  private readonly driverQueues: GuestDriverQueue[] = [];
  private readonly configListeners: Array<() => void> = [];
  private isGone = false;

  constructor(cfg: ForeignConfig) {
    super();
    this.cfg = cfg;
    this.memory = cfg.memory;
    this.virtioId = cfg.model.virtioId;
    this.exposedPages = cfg.memory.buffer.byteLength / 4096;
    this.endpoint = new ControlEndpoint(cfg.model, {
      activate: (_sizes, features) => {
        const env: DeviceEnv = {
          queues: Array.from({ length: cfg.model.numQueues }, (_, i) => this.deviceQueues[i] ?? ABSENT_QUEUE),
          features,
          configChanged: () => this.configListeners.forEach((cb) => cb()),
          deny: (perm, detail) => cfg.deny?.(perm, detail),
        };
        cfg.model.activate(env);
      },
      reset: () => cfg.model.reset(),
    });
  }

  get gone(): boolean {
    return this.isGone;
  }

  alloc(bytes: number): number {
    return this.cfg.heap.alloc(bytes);
  }

  free(gpa: number, bytes: number): void {
    this.cfg.heap.freePagesAt(gpa, Math.max(1, Math.ceil(bytes / 4096)));
  }

  protected call(msgId: number, payload: Uint8Array): Promise<Uint8Array> {
    if (this.isGone) return Promise.reject(new TransportError("device is gone"));
    const r = this.endpoint.handle(msgId, payload);
    return r.error ? Promise.reject(new TransportError(`device refused the request (${msgId})`)) : Promise.resolve(r.data);
  }

  protected get ringFeatures(): bigint {
    return VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC;
  }

  protected onReset(): void {
    this.deviceQueues.length = 0;
    this.driverQueues.length = 0;
  }

  async setupQueue(index: number, size: number, onUsed: UsedHandler): Promise<DriverQueue> {
    await this.call(Ctrl.SET_VQUEUE, words(index, size));
    const pair = splitQueue(this.memory, this.cfg.heap, size, this.eventIdx, this.indirect);
    // The notify "register write" reaches the device model directly.
    const driver = new GuestDriverQueue(pair.driver, onUsed, () => this.cfg.model.queueNotify(index));
    // The device reads the guest's ring and buffers in place, through the foreign mapping.
    this.deviceQueues[index] = new SideDeviceQueue(pair.device, new Uint8Array(this.memory.buffer), () => driver.interrupt());
    this.driverQueues[index] = driver;
    return driver;
  }

  onConfigChange(cb: () => void): void {
    this.configListeners.push(cb);
  }

  /** Unplug: the device stops; nothing is in flight (requests complete synchronously). */
  remove(): void {
    this.isGone = true;
    this.cfg.model.reset();
  }
}
