// DriverQueue for guest drivers, over the driver side of a vring in the guest's memory.
// Transport-neutral: the transport calls interrupt() when the device signals used
// buffers, and may mark heads as failed (the transport, not the device, failed them).
import type { DriverQueue, GuestBuffer, UsedHandler } from "../devices/types.ts";
import type { DriverSide } from "./queue-sides.ts";

export class GuestDriverQueue implements DriverQueue {
  private readonly side: DriverSide;
  private readonly tokens: Float64Array;
  private readonly failed: Uint8Array;
  private readonly onUsed: UsedHandler;
  private readonly notify: () => void;
  private readonly gpa: Float64Array;
  private readonly len: Float64Array;
  private readonly writable: Uint8Array;
  private readonly deliver = (head: number, written: number): void => {
    const failed = this.failed[head] === 1;
    this.failed[head] = 0;
    this.onUsed(this.tokens[head], failed ? 0 : written, failed);
  };

  constructor(side: DriverSide, onUsed: UsedHandler, notify: () => void) {
    this.side = side;
    this.onUsed = onUsed;
    this.notify = notify;
    this.tokens = new Float64Array(side.size);
    this.failed = new Uint8Array(side.size);
    this.gpa = new Float64Array(side.size);
    this.len = new Float64Array(side.size);
    this.writable = new Uint8Array(side.size);
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
    for (let i = 0; i < n; i++) {
      this.gpa[i] = buffers[i].gpa;
      this.len[i] = buffers[i].len;
      this.writable[i] = buffers[i].writable ? 1 : 0;
    }
    const head = this.side.add(this.gpa, this.len, this.writable, n);
    if (head < 0) return false;
    this.tokens[head] = token;
    this.failed[head] = 0;
    return true;
  }

  kick(): void {
    if (this.side.needsKick()) this.notify();
  }

  /** The transport says chain `head` failed (IOERR): its completion reports error. */
  markFailed(head: number): void {
    if (head >= 0 && head < this.failed.length) this.failed[head] = 1;
  }

  /** Used-buffer interrupt: hand every used chain to the driver. */
  interrupt(): void {
    this.side.reclaim(this.deliver);
  }
}
