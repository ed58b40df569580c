// The two sides of a virtqueue as the transports use them, over one domain's memory,
// whatever the ring format: split-sides.ts (split) and packed-sides.ts (packed) implement
// them over build/vring.wasm (assembly/vring/). Kept here as small interfaces so the
// transports read in terms of what they do with a queue, not how rings work.

/** A popped chain's buffers, in descriptor order (readable first). Reused per pop. */
export class ChainBuffers {
  head = 0;
  count = 0;
  readableBytes = 0;
  writableBytes = 0;
  readonly gpa: Float64Array;
  readonly len: Float64Array;
  readonly writable: Uint8Array;

  constructor(maxBuffers: number) {
    this.gpa = new Float64Array(maxBuffers);
    this.len = new Float64Array(maxBuffers);
    this.writable = new Uint8Array(maxBuffers);
  }

  reset(head: number): void {
    this.head = head;
    this.count = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
  }

  push(gpa: number, len: number, writable: boolean): void {
    const i = this.count++;
    this.gpa[i] = gpa;
    this.len[i] = len;
    this.writable[i] = writable ? 1 : 0;
    if (writable) this.writableBytes += len;
    else this.readableBytes += len;
  }
}

/** Device side: pops chains the driver made available, returns them used. */
export interface DeviceSide {
  readonly size: number;
  /** Fills `out` with the next chain: 1 when one was popped, 0 when none, a negative code when the ring is broken. */
  pop(out: ChainBuffers): number;
  /** Returns chain `head` with `written` bytes written. */
  push(head: number, written: number): void;
  /** EVENT_IDX / flags: does the driver want an interrupt for what was pushed since the last call? */
  needsInterrupt(): boolean;
  /** Name of the error that broke the queue, or null. */
  readonly error: string | null;
}

/** Driver side: adds chains, reclaims used ones. */
export interface DriverSide {
  readonly size: number;
  readonly freeDescriptors: number;
  /**
   * Adds a chain of `n` buffers from the arrays; returns the head index, or (errors.ts)
   * ERR_RING_FULL when fewer descriptors are free than it needs (back-pressure: retry after
   * a reclaim), ERR_CHAIN_TOO_LONG when it needs more than the ring has (never fits), or
   * ERR_BAD_QUEUE for n < 1 or a ring out of bounds (a bug).
   * `flags[i]`: bit 0 device-writable, bit 1 the address is a grant DMA handle (bit 63 set).
   */
  add(gpa: ArrayLike<number>, len: ArrayLike<number>, flags: ArrayLike<number>, n: number): number;
  /** EVENT_IDX / flags: does the device want a notification for what was added? */
  needsKick(): boolean;
  /**
   * Calls cb(head, written) for every used entry not yet reclaimed; returns how many. Every
   * chain of a batch is back on the free list before the first cb runs: a caller that keeps
   * state per head must read it for the whole batch before running code that may add.
   */
  reclaim(cb: (head: number, written: number) => void): number;
}

/** A queue's two sides, and how to give its memory back (after the driver set it up again or reset it). */
export interface QueuePair<L> {
  driver: DriverSide;
  device: DeviceSide;
  layout: L;
  release(): void;
}
