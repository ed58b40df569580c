// What a Linux guest's virtio register file (virtio-mmio, virtio-pci) needs from the
// transport behind it, and the two transports it can have: VirtIO-Argo (no shared
// memory; every control access is a message to the backend domain, every byte a
// hypervisor copy) and `foreign` (the classic baseline: the backend maps all of the
// guest and serves its vrings in place), so the same guest can be measured on both.
import type { DeviceEnv, DeviceQueue, VirtioDeviceModel } from "../devices/types.ts";
import type { ArgoFrontend, QueueSink } from "../transport/argo/frontend/frontend.ts";
import { ControlEndpoint } from "../transport/argo/control.ts";
import { TransportError } from "../transport/argo/control-client.ts";
import { ABSENT_QUEUE, SideDeviceQueue } from "../transport/vring/device-queue.ts";
import type { DeviceSide } from "../transport/vring/queue-sides.ts";
import { viewsOf } from "../guest/views.ts";

export interface DeviceLink {
  /** One control request (virtio-msg id and payload), answered before returning. */
  control(msgId: number, payload: Uint8Array): Uint8Array | TransportError;
  /** Serve queue `index` on the guest's vring (`side`); `sink` hears of completions. */
  installQueue(index: number, side: DeviceSide, sink: QueueSink, release: () => void): void;
  /** The queue goes (disabled, reset): its requests fail first. */
  removeQueue(index: number): void;
  /** The driver notified queue `index`. */
  kick(index: number): void;
  /** The device was removed or its backend died. */
  readonly gone: boolean;
  onConfigChange(cb: () => void): void;
  /** Guest pages the backend can read through this link. */
  readonly exposedPages: number;
}

/** VirtIO-Argo: control over Argo (the vCPU waits on the trapped access), data through the frontend. */
export class ArgoLink implements DeviceLink {
  readonly frontend: ArgoFrontend;

  constructor(frontend: ArgoFrontend) {
    this.frontend = frontend;
  }

  control(msgId: number, payload: Uint8Array): Uint8Array | TransportError {
    return this.frontend.callNow(msgId, payload);
  }

  installQueue(index: number, side: DeviceSide, sink: QueueSink, release: () => void): void {
    this.frontend.installQueue(index, side, sink, release);
  }

  removeQueue(index: number): void {
    this.frontend.removeQueue(index);
  }

  kick(index: number): void {
    this.frontend.kick(index);
    // The vCPU is on the doorbell write: the backend serves it now (as foreign's model does
    // inside the same write), and takes what did not fit its ring.
    this.frontend.yieldToBackend();
  }

  get gone(): boolean {
    return this.frontend.gone;
  }

  onConfigChange(cb: () => void): void {
    this.frontend.onConfigChange(cb);
  }

  get exposedPages(): number {
    return 0;
  }
}

/**
 * `foreign`: the device model runs against the guest's memory itself (a foreign mapping
 * of all of it); register traps go straight to the same ControlEndpoint argo's backend
 * uses, and the model pops the guest's own vrings in place.
 */
export class ForeignLink implements DeviceLink {
  private readonly model: VirtioDeviceModel;
  private readonly memory: WebAssembly.Memory;
  private readonly ramPages: number;
  private readonly endpoint: ControlEndpoint;
  private readonly queues: Array<{ device: DeviceQueue; side: DeviceSide; release(): void } | undefined> = [];
  private readonly listeners: Array<() => void> = [];
  private isGone = false;

  constructor(model: VirtioDeviceModel, memory: WebAssembly.Memory, ramBytes: number, deny?: (perm: string, detail: string) => void) {
    this.model = model;
    this.memory = memory;
    this.ramPages = ramBytes / 4096;
    this.endpoint = new ControlEndpoint(model, {
      activate: (_sizes, features) => {
        const env: DeviceEnv = {
          queues: Array.from({ length: model.numQueues }, (_, i) => this.queues[i]?.device ?? ABSENT_QUEUE),
          features,
          configChanged: () => this.listeners.forEach((cb) => cb()),
          deny: (perm, detail) => deny?.(perm, detail),
        };
        model.activate(env);
      },
      reset: () => model.reset(),
    });
  }

  control(msgId: number, payload: Uint8Array): Uint8Array | TransportError {
    if (this.isGone) return new TransportError("device is gone");
    const r = this.endpoint.handle(msgId, payload);
    return r.error ? new TransportError(`device refused the request (${msgId})`) : r.data;
  }

  installQueue(index: number, side: DeviceSide, sink: QueueSink, release: () => void): void {
    this.removeQueue(index);
    // The model reads and writes the guest's ring and buffers in place.
    const device = new SideDeviceQueue(side, viewsOf(this.memory), () => sink.interrupt());
    this.queues[index] = { device, side, release };
  }

  removeQueue(index: number): void {
    const q = this.queues[index];
    if (!q) return;
    this.queues[index] = undefined;
    q.release();
  }

  kick(index: number): void {
    if (!this.isGone && this.queues[index]) this.model.queueNotify(index);
  }

  get gone(): boolean {
    return this.isGone;
  }

  /** Unplug or backend death: the model stops serving. */
  remove(): void {
    if (this.isGone) return;
    this.isGone = true;
    this.model.reset();
    for (let i = 0; i < this.queues.length; i++) this.removeQueue(i);
    this.listeners.forEach((cb) => cb());
  }

  onConfigChange(cb: () => void): void {
    this.listeners.push(cb);
  }

  get exposedPages(): number {
    return this.ramPages;
  }
}
