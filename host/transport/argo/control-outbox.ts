// Control messages that wait for their turn. A sendv refused with -EAGAIN (the peer's ring
// is full, or the pair's rate limit is spent) comes with a later VIRQ_ARGO in Xen (a
// space notification; here also the rate limiter's refill): a control message is kept
// until then instead of failing driver setup or dropping a backend's reply. Messages keep
// their order; the queue is bounded, so a peer that never reads cannot make it grow.
import type { MemoryViews } from "../../guest/views.ts";
import { EAGAIN } from "../../abi/errno.ts";
import { CONTROL_HEADER_SIZE, encodeControl } from "./wire.ts";

/** Control messages one side keeps waiting at most (a full queue refuses the next one). */
export const MAX_QUEUED_CONTROL = 64;

interface Queued {
  type: number;
  msgId: number;
  devNum: number;
  token: number;
  payload: Uint8Array;
}

export class ControlOutbox {
  private readonly queue: Queued[] = [];
  private readonly views: MemoryViews;
  private readonly at: number;
  private readonly send: (gpa: number, size: number) => number;

  /** Messages are encoded at `at` (CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD bytes) and handed to `send`. */
  private get dv(): DataView {
    return this.views.fresh().dv;
  }

  constructor(views: MemoryViews, at: number, send: (gpa: number, size: number) => number) {
    this.views = views;
    this.at = at;
    this.send = send;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Sends one message, or keeps it behind those already waiting. Returns 0 (sent or kept),
   * -EAGAIN when the queue is full (nothing kept), or the negative errno of a refused send.
   */
  post(type: number, msgId: number, devNum: number, token: number, payload: Uint8Array): number {
    if (this.queue.length >= MAX_QUEUED_CONTROL) return -EAGAIN;
    this.queue.push({ type, msgId, devNum, token, payload: payload.slice() });
    const rc = this.flush();
    return rc === -EAGAIN ? 0 : rc;
  }

  /** Sends what waits, in order: 0 when all went, -EAGAIN when the peer is not ready, or the errno that dropped the head. */
  flush(): number {
    while (this.queue.length) {
      const m = this.queue[0];
      const size = CONTROL_HEADER_SIZE + m.payload.length;
      encodeControl(this.dv, this.at, { type: m.type, msgId: m.msgId, devNum: m.devNum, token: m.token, msgSize: size });
      new Uint8Array(this.dv.buffer, this.at + CONTROL_HEADER_SIZE, m.payload.length).set(m.payload);
      const rc = this.send(this.at, size);
      if (rc === -EAGAIN) return rc;
      this.queue.shift();
      if (rc < 0) return rc;
    }
    return 0;
  }

  clear(): void {
    this.queue.length = 0;
  }
}
