// `foreign`: VirtIO-MMIO with foreign mappings, the classic shared-memory baseline. The
// backend maps the whole guest memory and reads descriptors and buffers in place: zero
// copies, and every page of the guest reachable from the backend.
import { viewsOf } from "../../guest/views.ts";
import type { UsedHandler } from "../../devices/types.ts";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED } from "../../devices/types.ts";
import { SideDeviceQueue } from "../vring/device-queue.ts";
import { GuestDriverQueue } from "../vring/guest-queue.ts";
import { splitQueue } from "../vring/split-sides.ts";
import { packedQueue } from "../vring/packed-sides.ts";
import { SharedDevice, type SharedDeviceConfig, type SharedQueue } from "./shared-device.ts";

export type ForeignConfig = SharedDeviceConfig;

export class ForeignDevice extends SharedDevice {
  /** Guest pages the backend can read: all of them. */
  get exposedPages(): number {
    return this.memory.buffer.byteLength / 4096;
  }

  protected get ringFeatures(): bigint {
    return VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_RING_PACKED;
  }

  protected createQueue(_index: number, size: number, onUsed: UsedHandler, notify: () => void, broken: () => void): SharedQueue {
    const pair = this.packed
      ? packedQueue(this.memory, this.cfg.heap, size, this.eventIdx, this.indirect)
      : splitQueue(this.memory, this.cfg.heap, size, this.eventIdx, this.indirect);
    const driver = new GuestDriverQueue(pair.driver, onUsed, notify);
    // The device reads the guest's ring and buffers in place, through the foreign mapping.
    const device = new SideDeviceQueue(pair.device, viewsOf(this.memory), () => driver.interrupt(), broken);
    return { driver, device, release: pair.release };
  }
}
