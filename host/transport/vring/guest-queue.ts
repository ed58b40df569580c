// DriverQueue for guest drivers, over the driver side of a vring in the guest's memory.
// Transport-neutral: the transport calls interrupt() when the device signals used
// buffers, and may mark heads as failed (the transport, not the device, failed them).
import type { DriverQueue, GuestBuffer, UsedHandler } from "../../devices/types.ts";
import type { DriverSide } from "./queue-sides.ts";
import { ERR_RING_FULL, vringErrorName } from "./errors.ts";

/**
 * The guest's DMA layer between a driver's buffers and the addresses the device sees
 * (Linux's dma_map_ops): grants for `grant`, bounce slots for `bounce`. Absent for argo
 * and foreign, where descriptors carry guest-physical addresses.
 */
export interface DmaOps {
  /** Extra vringAdd buffer flag bits for every address this layer returns (e.g. grant handles). */
  readonly addrFlags: number;
  /** Maps one buffer of the chain being added; returns its device address, or -1 (nothing mapped). */
  map(gpa: number, len: number, writable: boolean): number;
  /** The chain could not be added: undo every map since the last commit or abort. */
  abort(): void;
  /** The maps since the last commit or abort belong to chain `head`. */
  commit(head: number): void;
  /** The device returned chain `head`: sync writable buffers back and unmap. */
  complete(head: number, written: number): void;
}

export class GuestDriverQueue implements DriverQueue {
  private readonly side: DriverSide;
  private readonly tokens: Float64Array;
  private readonly failed: Uint8Array;
  private readonly onUsed: UsedHandler;
  private readonly notify: () => void;
  private readonly gpa: Float64Array;
  private readonly len: Float64Array;
  private readonly writable: Uint8Array;
  private readonly dma: DmaOps | null;
  /**
   * The batch of completions being delivered: token, written and failed per entry, taken
   * before any driver callback runs. A reclaim frees every chain of its batch at once, so
   * a callback that adds a buffer (a console reposting its receive buffer, blk resubmitting
   * a blocked request) may be given a head of this batch: reading that head's token after
   * the callback would hand the new request's token to an old completion.
   */
  private readonly batchToken: Float64Array;
  private readonly batchWritten: Float64Array;
  private readonly batchFailed: Uint8Array;
  private batchAt = 0;
  private batchN = 0;
  private delivering = false;
  private again = false;
  /** 1 for each head added and not yet handed back: what close() fails. */
  private readonly outstanding: Uint8Array;
  private closed = false;
  /** First pass of a reclaim: no driver code runs here, so no head is reused before it is read. */
  private readonly collect = (head: number, written: number): void => {
    if (this.batchN >= this.batchToken.length) return; // at most `size` chains are ever out
    this.dma?.complete(head, written);
    const i = this.batchN++;
    this.batchToken[i] = this.tokens[head];
    this.batchWritten[i] = written;
    this.batchFailed[i] = this.failed[head];
    this.failed[head] = 0;
    this.outstanding[head] = 0;
  };

  constructor(side: DriverSide, onUsed: UsedHandler, notify: () => void, dma: DmaOps | null = null) {
    this.side = side;
    this.dma = dma;
    this.onUsed = onUsed;
    this.notify = notify;
    this.tokens = new Float64Array(side.size);
    this.failed = new Uint8Array(side.size);
    this.gpa = new Float64Array(side.size);
    this.len = new Float64Array(side.size);
    this.writable = new Uint8Array(side.size);
    this.batchToken = new Float64Array(side.size);
    this.batchWritten = new Float64Array(side.size);
    this.batchFailed = new Uint8Array(side.size);
    this.outstanding = new Uint8Array(side.size);
  }

  get size(): number {
    return this.side.size;
  }

  get freeDescriptors(): number {
    return this.side.freeDescriptors;
  }

  add(buffers: readonly GuestBuffer[], token: number): boolean {
    const n = buffers.length;
    if (n === 0 || n > this.side.size) return false;
    if (this.closed) {
      // The device is gone: the request fails with IOERR as the device contract says, from
      // a microtask (never inside the driver's own add), and the ring is not touched.
      queueMicrotask(() => this.onUsed(token, 0, true));
      return true;
    }
    // Enough descriptors first: a DMA layer must not map what cannot be added.
    if (n > this.side.freeDescriptors) return false;
    const dma = this.dma;
    for (let i = 0; i < n; i++) {
      const b = buffers[i];
      let addr = b.gpa;
      if (dma) {
        addr = dma.map(b.gpa, b.len, b.writable);
        if (addr < 0) {
          dma.abort();
          return false;
        }
      }
      this.gpa[i] = addr;
      this.len[i] = b.len;
      this.writable[i] = (b.writable ? 1 : 0) | (dma ? dma.addrFlags : 0);
    }
    const head = this.side.add(this.gpa, this.len, this.writable, n);
    if (head < 0) {
      dma?.abort();
      if (head === ERR_RING_FULL) return false; // back-pressure: the driver retries after a completion
      // Size and free descriptors were checked above, so anything else is our bug (a ring
      // out of bounds): reporting "full" would leave the driver waiting for a completion
      // that never frees what it needs.
      throw new Error(`virtqueue add of ${n} buffers failed: ${vringErrorName(head) ?? head}`);
    }
    dma?.commit(head);
    this.tokens[head] = token;
    this.failed[head] = 0;
    this.outstanding[head] = 1;
    return true;
  }

  kick(): void {
    if (!this.closed && this.side.needsKick()) this.notify();
  }

  /**
   * The queue is going away (device reset, removal, backend gone): every chain still out
   * completes with an error, now, and later adds fail without touching the ring. Called before the
   * ring's pages are released, so no later add or reclaim touches memory that may already
   * hold something else.
   */
  close(): void {
    if (this.closed) return;
    this.interrupt(); // what the device already returned is delivered as it completed
    this.closed = true;
    const tokens: number[] = [];
    for (let h = 0; h < this.outstanding.length; h++) {
      if (this.outstanding[h] === 0) continue;
      this.outstanding[h] = 0;
      tokens.push(this.tokens[h]);
    }
    for (const t of tokens) this.onUsed(t, 0, true);
  }

  /** The transport says chain `head` failed (IOERR): its completion reports error. */
  markFailed(head: number): void {
    if (head >= 0 && head < this.failed.length) this.failed[head] = 1;
  }

  /**
   * Used-buffer interrupt: hand every used chain to the driver, in used-ring order. An
   * interrupt raised inside a callback (a device that completes synchronously) only asks
   * the outer call to reclaim again, so completions never overtake each other; a callback
   * that throws leaves the rest of its batch for the next interrupt.
   */
  interrupt(): void {
    if (this.closed) return;
    if (this.delivering) {
      this.again = true;
      return;
    }
    this.delivering = true;
    try {
      this.deliverBatch(); // what a callback that threw left undelivered
      // A callback may close the queue (reset, removal): its ring may then be released, so
      // no reclaim follows; what this batch already took is still delivered.
      do {
        this.again = false;
        this.batchAt = this.batchN = 0;
        this.side.reclaim(this.collect);
        this.deliverBatch();
      } while (this.again && !this.closed);
    } finally {
      this.delivering = false;
    }
  }

  private deliverBatch(): void {
    while (this.batchAt < this.batchN) {
      const i = this.batchAt++;
      const failed = this.batchFailed[i] === 1;
      this.onUsed(this.batchToken[i], failed ? 0 : this.batchWritten[i], failed);
    }
  }
}
