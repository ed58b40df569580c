// The guest's side of device discovery: parse the toolstack's device table, create a
// frontend per device, and follow hotplug / unplug bus messages on the well-known port.
import { DOMID_ANY } from "../../abi/argo.ts";
import { READ_EMPTY } from "../../abi/argo-reader.ts";
import type { GuestRing } from "../../guest/argo-driver.ts";
import { MAX_DEVICES, entryProblem, parseTable, readEntry, type DeviceEntry, type TableError } from "./enumeration.ts";
import { ArgoFrontend } from "../argo/frontend/frontend.ts";
import { DEVICE_TABLE_GPA, type GuestKernel } from "./kernel.ts";
import { QueueFactory } from "../vring/queue-factory.ts";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED } from "../../devices/types.ts";
import { BUS_DEVICE_READY, BUS_DEVICE_REMOVED, BUS_MESSAGE_SIZE, BUS_PORT, MSG_BUS } from "../argo/wire.ts";

export type DeviceListener = (event: "ready" | "removed", frontend: ArgoFrontend) => void;

export class GuestTransport {
  readonly kernel: GuestKernel;
  readonly devices = new Map<number, ArgoFrontend>();
  readonly stats = { busMessages: 0, busRejected: 0 };
  private readonly queues: QueueFactory;
  private readonly listeners: DeviceListener[] = [];
  private bus: GuestRing | null = null;
  private readonly busBuf: number;

  constructor(kernel: GuestKernel) {
    this.kernel = kernel;
    this.queues = new QueueFactory(kernel.domain.memory, kernel.heap);
    this.busBuf = kernel.heap.allocPages(1);
  }

  /** Reads the device table the toolstack wrote, starts a frontend per entry. */
  probe(tableGpa = DEVICE_TABLE_GPA): DeviceEntry[] | TableError {
    const parsed = parseTable(this.kernel.domain.memory, tableGpa);
    if (!Array.isArray(parsed)) return parsed;
    for (const e of parsed) this.attach(e);
    return parsed;
  }

  /** Listens for DEVICE_READY / DEVICE_REMOVED on the bus port. Returns 0 or a negative errno. */
  listen(): number {
    const r = this.kernel.argo.registerRing(BUS_PORT, DOMID_ANY, 4096);
    if (typeof r === "number") return r;
    this.bus = r;
    this.kernel.domain.onVirq(() => this.drainBus());
    return 0;
  }

  onDevice(cb: DeviceListener): void {
    this.listeners.push(cb);
  }

  /**
   * Forgets a device: its frontend stops (requests in flight fail, its pages go back to
   * the heap) and listeners hear "removed". False if there is no such device.
   */
  remove(devNum: number): boolean {
    const fe = this.devices.get(devNum);
    if (!fe) return false;
    fe.stop();
    this.devices.delete(devNum);
    for (const l of this.listeners) l("removed", fe);
    return true;
  }

  private attach(e: DeviceEntry): ArgoFrontend | null {
    // Frontends whose backend died or was revoked hold a device slot and pages for
    // nothing: they go before a new device is counted against MAX_DEVICES.
    for (const [devNum, fe] of this.devices) if (fe.gone) this.remove(devNum);
    // A backend announcing devices without end must not exhaust this guest's memory.
    if (this.devices.has(e.devNum) || this.devices.size >= MAX_DEVICES) return null;
    let fe: ArgoFrontend;
    try {
      fe = new ArgoFrontend({
        argo: this.kernel.argo, heap: this.kernel.heap, entry: e, queues: this.queues,
        // Implemented on the guest's rings by the frontend's (Wasm) device side.
        ringFeatures: VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_RING_PACKED,
      });
      if (fe.start() < 0) {
        fe.stop(); // its scratch pages go back
        return null;
      }
    } catch {
      return null; // out of guest memory: the device is not attached
    }
    this.devices.set(e.devNum, fe);
    for (const l of this.listeners) l("ready", fe);
    return fe;
  }

  private drainBus(): void {
    if (!this.bus) return;
    const argo = this.kernel.argo;
    for (let budget = 64; budget > 0; budget--) {
      const n = argo.read(this.bus, this.busBuf, BUS_MESSAGE_SIZE);
      if (n === READ_EMPTY || n < 0) break;
      this.stats.busMessages++;
      const src = argo.meta.srcDomid;
      if (argo.meta.messageType !== MSG_BUS || n !== BUS_MESSAGE_SIZE) {
        this.stats.busRejected++;
        continue;
      }
      const dv = new DataView(this.kernel.domain.memory.buffer);
      const event = dv.getUint32(this.busBuf, true);
      const entry = readEntry(dv, this.busBuf + 4);
      // Only the backend a device names may announce or remove it (the policy already
      // decided who may send to this ring at all).
      if (entry.backendDomid !== src || entryProblem(entry)) {
        this.stats.busRejected++;
        continue;
      }
      if (event === BUS_DEVICE_READY) {
        this.attach(entry);
      } else if (event === BUS_DEVICE_REMOVED) {
        const fe = this.devices.get(entry.devNum);
        if (!fe || fe.entry.backendDomid !== src) {
          this.stats.busRejected++;
          continue;
        }
        this.remove(entry.devNum);
      } else {
        this.stats.busRejected++;
      }
    }
  }
}

