// Where transports get their virtqueues: a guest's vring in one domain's memory, seen
// from both sides (driver and device).
import type { GuestHeap } from "../../guest/heap.ts";
import type { QueuePair } from "./queue-sides.ts";
import { splitQueue } from "./split-sides.ts";
import { packedQueue } from "./packed-sides.ts";

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
}
