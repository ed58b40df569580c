// DeviceQueue and DeviceChain for device models, over the device side of a vring in the
// memory the model may access (the guest's, for the sharing transports), and the byte
// stream chains every model sees (argo's backend reuses BufferChain over its request
// buffers). Chains are byte streams: models never see descriptors.
import type { MemoryViews } from "../../guest/views.ts";
import type { DeviceChain, DeviceQueue } from "../../devices/types.ts";
import { ChainBuffers, type DeviceSide } from "./queue-sides.ts";

/**
 * A popped chain as a readable and a writable byte stream (what device models see),
 * whatever reaches its buffers: subclasses say how to move bytes to and from buffer i.
 */
export abstract class ChainStream implements DeviceChain {
  readonly buffers: ChainBuffers;

  constructor(maxBuffers: number) {
    this.buffers = new ChainBuffers(maxBuffers);
  }

  get head(): number {
    return this.buffers.head;
  }

  get readableLength(): number {
    return this.buffers.readableBytes;
  }

  get writableLength(): number {
    return this.buffers.writableBytes;
  }

  read(offset: number, dst: Uint8Array): number {
    return this.walk(offset, dst, false);
  }

  write(offset: number, src: Uint8Array): number {
    return this.walk(offset, src, true);
  }

  /** Copies `n` bytes between bytes[done..] and buffer `i` from `skip` bytes into it (`skip + n <= len[i]`). */
  protected abstract move(i: number, skip: number, bytes: Uint8Array, done: number, n: number, toBuffer: boolean): void;

  /**
   * Copies between `bytes` and the readable (or writable) buffers starting at stream
   * `offset`. Every buffer was bounds-checked when the chain was popped, so the copies
   * stay inside it; the loop ends after at most `count` buffers.
   */
  private walk(offset: number, bytes: Uint8Array, writable: boolean): number {
    const b = this.buffers;
    let skip = offset;
    let done = 0;
    for (let i = 0; i < b.count && done < bytes.length; i++) {
      if ((b.writable[i] === 1) !== writable) continue;
      const len = b.len[i];
      if (skip >= len) { skip -= len; continue; }
      const n = Math.min(len - skip, bytes.length - done);
      this.move(i, skip, bytes, done, n, writable);
      done += n;
      skip = 0;
    }
    return done;
  }
}

/** A chain whose buffers are addresses in a memory (the model's own, or a foreign mapping of the guest's). */
export class BufferChain extends ChainStream {
  private readonly views: MemoryViews;

  constructor(views: MemoryViews, maxBuffers: number) {
    super(maxBuffers);
    this.views = views;
  }

  protected move(i: number, skip: number, bytes: Uint8Array, done: number, n: number, toBuffer: boolean): void {
    const at = this.buffers.gpa[i] + skip;
    const v = this.views.fresh();
    if (toBuffer) {
      v.u8.set(bytes.subarray(done, done + n), at);
      if (v.onWrite !== null) v.onWrite(at, n); // an emulated guest's compiled code must see it
    } else bytes.set(v.u8.subarray(at, at + n), done);
  }
}

/** A DeviceQueue over a DeviceSide; `interrupt` delivers the used-buffer notification. */
export class SideDeviceQueue implements DeviceQueue {
  private readonly side: DeviceSide;
  private readonly views: MemoryViews;
  private readonly interrupt: () => void;
  /** Told once when the ring breaks (the transport reports DEVICE_NEEDS_RESET). */
  private onBroken: (() => void) | null;
  /** Chains handed out and not yet pushed, reused once pushed (no allocation per request). */
  private readonly spare: BufferChain[] = [];

  constructor(side: DeviceSide, views: MemoryViews, interrupt: () => void, onBroken: (() => void) | null = null) {
    this.side = side;
    this.views = views;
    this.interrupt = interrupt;
    this.onBroken = onBroken;
  }

  get size(): number {
    return this.side.size;
  }

  get error(): string | null {
    return this.side.error;
  }

  pop(): DeviceChain | null {
    const chain = this.spare.pop() ?? new BufferChain(this.views, this.side.size);
    const rc = this.side.pop(chain.buffers);
    if (rc === 1) return chain;
    this.spare.push(chain);
    if (rc < 0 && this.onBroken) {
      const cb = this.onBroken;
      this.onBroken = null;
      cb();
    }
    return null;
  }

  push(chain: DeviceChain, written: number): void {
    const c = chain as BufferChain;
    const w = Math.max(0, Math.min(written, c.writableLength));
    this.side.push(c.head, w);
    this.spare.push(c);
  }

  notifyDriver(): void {
    if (this.side.needsInterrupt()) this.interrupt();
  }
}

/** A queue the driver did not set up (size 0): nothing is ever available on it. */
export const ABSENT_QUEUE: DeviceQueue = {
  size: 0,
  pop: () => null,
  push: () => {},
  notifyDriver: () => {},
};
