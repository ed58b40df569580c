// Where transports get their virtqueues: a guest's vring seen from both sides (driver
// and device), and the argo backend's shadow queues in its own memory.
import { viewsOf, type MemoryViews } from "../../guest/views.ts";
import type { GuestHeap } from "../../guest/heap.ts";
import type { DeviceQueue } from "../../devices/types.ts";
import type { DeviceSide, DriverSide, QueuePair } from "./queue-sides.ts";
import { SideDeviceQueue } from "./device-queue.ts";
import { ERR_BAD_QUEUE, vringErrorName } from "./errors.ts";
import { splitQueue } from "./split-sides.ts";
import { packedQueue } from "./packed-sides.ts";

/**
 * A shadow virtqueue in the backend's memory: the backend transport is its driver,
 * the device model its device. Requests rebuilt from Argo messages become chains of at
 * most two buffers: the readable bytes, then the writable room.
 */
export class ShadowQueue {
  readonly deviceQueue: DeviceQueue;
  private readonly driver: DriverSide;
  private readonly gpa = new Float64Array(2);
  private readonly len = new Float64Array(2);
  private readonly writable = new Uint8Array(2);

  /** Gives the queue's pages back to the backend's heap (after a device reset). */
  readonly release: () => void;

  constructor(driver: DriverSide, device: DeviceSide, views: MemoryViews, onUsed: () => void, release: () => void = () => {}) {
    this.driver = driver;
    this.deviceQueue = new SideDeviceQueue(device, views, onUsed);
    this.release = release;
  }

  get freeDescriptors(): number {
    return this.driver.freeDescriptors;
  }

  /**
   * Adds [readGpa, +readLen) readable and [writeGpa, +writeLen) writable; returns the head,
   * ERR_RING_FULL (wait for a reclaim) or ERR_CHAIN_TOO_LONG (two buffers on a queue of
   * size 1: never fits). Throws on ERR_BAD_QUEUE: this ring is ours, so that is our bug.
   */
  add(readGpa: number, readLen: number, writeGpa: number, writeLen: number): number {
    let n = 0;
    if (readLen > 0) { this.gpa[n] = readGpa; this.len[n] = readLen; this.writable[n] = 0; n++; }
    if (writeLen > 0) { this.gpa[n] = writeGpa; this.len[n] = writeLen; this.writable[n] = 1; n++; }
    if (n === 0) { this.gpa[0] = writeGpa; this.len[0] = 0; this.writable[0] = 1; n = 1; }
    const head = this.driver.add(this.gpa, this.len, this.writable, n);
    if (head === ERR_BAD_QUEUE) throw new Error(`shadow queue add of ${n} buffers: ${vringErrorName(head)}`);
    return head;
  }

  reclaim(cb: (head: number, written: number) => void): number {
    return this.driver.reclaim(cb);
  }
}

/** Makes the queues a transport needs in one domain's memory. */
export class QueueFactory {
  private readonly memory: WebAssembly.Memory;
  private readonly heap: GuestHeap;

  constructor(memory: WebAssembly.Memory, heap: GuestHeap) {
    this.memory = memory;
    this.heap = heap;
  }

  /** A vring of `size` entries in this memory (split, or packed), with its driver and device sides. */
  guestPair(size: number, eventIdx = false, indirect = false, packed = false): QueuePair<unknown> {
    return packed ? packedQueue(this.memory, this.heap, size, eventIdx, indirect) : splitQueue(this.memory, this.heap, size, eventIdx, indirect);
  }

  /** A shadow queue; `onUsed` runs when the device model signals used buffers. */
  shadow(size: number, onUsed: () => void): ShadowQueue {
    const { driver, device, release } = splitQueue(this.memory, this.heap, size);
    return new ShadowQueue(driver, device, viewsOf(this.memory), onUsed, release);
  }
}
