// The device model's side of one backend queue: complete requests, in arrival order, as
// chains over the request buffers this backend allocated (the readable bytes, then the
// writable room). The model is unmodified: it sees the DeviceQueue every transport gives
// it (pop, push, notifyDriver) and byte-stream chains, never descriptors.
//
// Why no shadow vring here: the backend would be both the driver and the device of it,
// in its own memory, so the ring's validation would guard nothing against anyone (the
// frontend's bytes were checked on the way in: ids, offsets and lengths against this
// side's buffers), and its add/pop/push/reclaim cost four Wasm crossings per request.
// What the ring gave besides (a bound on requests with the model, their order, a way to
// hand each completion back) is here directly: the backend caps open requests
// (MAX_OPEN_REQUESTS and the frontend's OpenBudget), this is a FIFO, and push completes.
import type { MemoryViews } from "../../../guest/views.ts";
import type { DeviceChain, DeviceQueue } from "../../../devices/types.ts";
import { BufferChain } from "../../vring/device-queue.ts";
import type { Pending } from "./requests.ts";

/** A chain over one request's buffer, reused after its push. */
class RequestChain extends BufferChain {
  /** The request it serves; null once pushed (a second push is ignored). */
  req: Pending | null = null;
  readonly owner: RequestQueue;

  constructor(views: MemoryViews, owner: RequestQueue) {
    super(views, 2);
    this.owner = owner;
  }

  bind(req: Pending, head: number): void {
    this.req = req;
    const b = this.buffers;
    b.reset(head);
    if (req.total > 0) b.push(req.gpa, req.total, false);
    if (req.writable > 0 || req.total === 0) b.push(req.gpa + req.total, req.writable, true);
  }
}

export class RequestQueue implements DeviceQueue {
  /** The queue size the driver set up (models may size their own state by it). */
  readonly size: number;
  private readonly views: MemoryViews;
  private readonly done: (req: Pending, written: number) => void;
  /** Complete requests not popped yet: ready[readyHead .. readyTail). */
  private readonly ready: Array<Pending | null> = [];
  private readyHead = 0;
  private readyTail = 0;
  private readonly spare: RequestChain[] = [];
  /** Chain heads as models see them: a counter, for models that log or key by head. */
  private nextHead = 0;
  private closed = false;

  /** `done` hears of each request the model returned, with the bytes it wrote (clamped to the room). */
  constructor(size: number, views: MemoryViews, done: (req: Pending, written: number) => void) {
    this.size = size;
    this.views = views;
    this.done = done;
  }

  /** Makes a complete request available to the model. */
  add(req: Pending): void {
    if (this.closed) return;
    this.ready[this.readyTail++] = req;
  }

  pop(): DeviceChain | null {
    if (this.closed || this.readyHead === this.readyTail) return null;
    const req = this.ready[this.readyHead]!;
    this.ready[this.readyHead++] = null;
    if (this.readyHead === this.readyTail) this.readyHead = this.readyTail = 0; // the usual case: the array never grows
    const chain = this.spare.pop() ?? new RequestChain(this.views, this);
    chain.bind(req, this.nextHead);
    this.nextHead = (this.nextHead + 1) % 0x10000;
    return chain;
  }

  push(chain: DeviceChain, written: number): void {
    const c = chain as RequestChain;
    // A chain of another queue, or pushed twice: the model is buggy; nothing to complete.
    if (c.owner !== this || c.req === null) return;
    const req = c.req;
    c.req = null;
    this.spare.push(c);
    if (this.closed) return; // reset or stopped: its request was failed already
    this.done(req, Math.max(0, Math.min(written, req.writable)));
  }

  /** Completions went out as the model pushed them: there is nothing more to tell. */
  notifyDriver(): void {}

  /** Reset or stop: nothing is popped any more, and pushes of chains still out are ignored. */
  close(): void {
    this.closed = true;
    this.ready.length = 0;
    this.readyHead = this.readyTail = 0;
  }
}
