// The backend's request path: request fragments from the frontend are reassembled, in
// order, into a buffer this side allocated, sized by the first fragment's totals and
// charged to the frontend's budget. Nothing the frontend sends is ever used as an
// address: request ids index a table, offsets and lengths are checked against the
// buffer's own. A complete request goes to the backend (`submit`), which puts it on the
// queue the device model pops from.
//
// Copies per request: the hypervisor copied the driver's readable buffers into our ring
// (1); the reader copies them out of the ring into the request buffer (2, within our own
// memory), so ring space is freed at once and device models may complete out of order.
import type { GuestHeap } from "../../../guest/heap.ts";
import { FLAG_FIRST, FLAG_LAST, type DataHeader } from "../wire.ts";
import type { ArgoEndpoint } from "../endpoint.ts";
import type { OpenBudget } from "./budget.ts";

/**
 * A request being reassembled or served, then its completion (or the completion's
 * remaining fragments) waiting for ring space at the frontend: one record per request,
 * reused once its completion went (RequestAssembler.release). A pool measured 45% more
 * scavenges than fresh records when completions went one by one; with batches and no
 * shadow vring it measured 4-5% faster (bench/ab-blk.ts, both orders).
 */
export interface Pending {
  id: number;
  queue: number;
  total: number;
  writable: number;
  received: number;
  /** The request buffer: `total` readable bytes, then `writable` bytes of room; -1 once released. */
  gpa: number;
  bytes: number;
  /** Shadow descriptor head; -1 while fragments arrive, -2 complete and waiting in the backlog. */
  head: number;
  /** Completion: bytes to send back, how many went out, and whether it failed. */
  written: number;
  sent: number;
  error: boolean;
}

export function pendingRecord(id: number, queue: number, total: number, writable: number, gpa: number, bytes: number): Pending {
  return { id, queue, total, writable, received: 0, gpa, bytes, head: -1, written: 0, sent: 0, error: false };
}

/** What the reassembly asks of the backend. */
export interface AssemblyHooks {
  /** Queue `q` is set up (the driver gave it a size). */
  hasQueue(q: number): boolean;
  /** A complete request, for the device model. */
  submit(req: Pending): void;
  /** A request failed while being reassembled: complete it with an error. */
  fail(req: Pending): void;
  /** A request refused before it had a record (reused id, no queue, no memory): fail it back by id. */
  refuse(requestId: number, queue: number): void;
}

/** Requests being reassembled or served at once, per device (a driver's queues hold at most 256 each). */
const MAX_OPEN_REQUESTS = 512;

/** Bytes a buffer of `bytes` holds of the heap (whole pages), as the budget counts them. */
const pagesHeld = (bytes: number): number => Math.ceil(bytes / 4096) * 4096;
/** Pages of a heap.alloc(bytes) block (GuestHeap.alloc: at least one). */
const pagesOf = (bytes: number): number => Math.max(1, Math.ceil(bytes / 4096));

/**
 * Request buffers of finished requests kept for the next ones of the same page count, at
 * most this many pages per backend (256 KiB: a 4 KiB blk queue at QD32 recycles 64). A
 * heap alloc and free per request cost ~4% of blk 4 KiB QD32; the cap bounds what an idle
 * backend keeps from its domain, and stop() gives it all back.
 */
const SPARE_MAX_PAGES = 64;

export interface AssemblyStats {
  requests: number;
  protocolErrors: number;
  bytesIn: number;
  budgetWaits: number;
}

export class RequestAssembler {
  /** Open requests by id: being reassembled, with the model, or waiting for descriptors. */
  readonly pending = new Map<number, Pending>();
  private readonly endpoint: ArgoEndpoint;
  private readonly heap: GuestHeap;
  private readonly budget: OpenBudget;
  private readonly maxRequest: number;
  private readonly hooks: AssemblyHooks;
  private readonly stats: AssemblyStats;
  /** A request's first fragment waits in the ring for budget (see OpenBudget). */
  private readonly resume: () => void;
  /** Spare request buffers (gpas) by page count, and the pages they hold (SPARE_MAX_PAGES). */
  private readonly spare: number[][] = [];
  private sparePages = 0;
  private stopped = false;

  constructor(endpoint: ArgoEndpoint, heap: GuestHeap, budget: OpenBudget, maxRequest: number, hooks: AssemblyHooks, stats: AssemblyStats) {
    this.endpoint = endpoint;
    this.heap = heap;
    this.budget = budget;
    this.maxRequest = maxRequest;
    this.hooks = hooks;
    this.stats = stats;
    this.resume = () => endpoint.drain();
  }

  /** Handles one request fragment; false when it stays in the ring, waiting for budget. */
  onData(h: DataHeader, fragLen: number): boolean {
    const ep = this.endpoint;
    let req = this.pending.get(h.requestId);
    if (h.flags & FLAG_FIRST) {
      if (req || h.offset !== 0 || !this.hooks.hasQueue(h.queue) || h.total > this.maxRequest || h.writable > this.maxRequest) {
        // A reused id, a queue that is not set up, or a request larger than we serve:
        // fail it back rather than guess.
        ep.drop();
        this.hooks.refuse(h.requestId, h.queue);
        return true;
      }
      // Each open request pins up to 2 x maxRequest bytes of this domain: a frontend that
      // opens requests and never finishes them must not exhaust the backend's memory. Over
      // its budget the request waits in the ring; past the count cap, or with the domain
      // really out of memory, it is failed back.
      const bytes = Math.max(1, h.total + h.writable);
      let gpa = -1;
      if (this.pending.size < MAX_OPEN_REQUESTS) {
        if (!this.budget.take(pagesHeld(bytes))) {
          this.budget.wait(this.resume);
          this.stats.budgetWaits++;
          return false;
        }
        gpa = this.tryAlloc(bytes);
        if (gpa < 0) this.budget.give(pagesHeld(bytes));
      }
      if (gpa < 0) {
        ep.drop();
        this.hooks.refuse(h.requestId, h.queue);
        return true;
      }
      req = this.record(h.requestId, h.queue, h.total, h.writable, gpa, bytes);
      this.pending.set(h.requestId, req);
    }
    // A fragment for a request already complete (with the model):
    // refused, and the request completes as the model serves it. Failing it here would
    // free its buffer while the model may still use it, and queue its record twice.
    if (req && req.head !== -1) return ep.drop();
    // Fragments arrive in order (Argo keeps order per ring): anything else is a protocol error.
    if (!req || h.offset !== req.received || h.total !== req.total || h.queue !== req.queue) {
      ep.drop();
      if (req) this.hooks.fail(req);
      return true;
    }
    // Copy the fragment's payload out of the ring into the request buffer at its offset:
    // offset + fragLen <= total was checked by decodeData, and total bytes were allocated.
    ep.setPiece(0, req.gpa + h.offset, fragLen);
    ep.receive(1);
    req.received += fragLen;
    this.stats.bytesIn += fragLen;
    if (!(h.flags & FLAG_LAST)) return true;
    if (req.received !== req.total) {
      this.stats.protocolErrors++; // the last fragment came before all the bytes
      this.hooks.fail(req);
      return true;
    }
    this.stats.requests++;
    this.hooks.submit(req);
    return true;
  }

  private tryAlloc(bytes: number): number {
    const pages = pagesOf(bytes);
    const spare = this.spare[pages];
    if (spare !== undefined && spare.length > 0) {
      this.sparePages -= pages;
      return spare.pop()!;
    }
    try {
      return this.heap.alloc(bytes);
    } catch {
      return -1; // the backend domain is out of memory: refuse this request, keep serving
    }
  }

  /** Records whose completion went, reused (at most MAX_OPEN_REQUESTS kept). */
  private readonly spareRecords: Pending[] = [];

  private record(id: number, queue: number, total: number, writable: number, gpa: number, bytes: number): Pending {
    const r = this.spareRecords.pop();
    if (r === undefined) return pendingRecord(id, queue, total, writable, gpa, bytes);
    r.id = id;
    r.queue = queue;
    r.total = total;
    r.writable = writable;
    r.received = 0;
    r.gpa = gpa;
    r.bytes = bytes;
    r.head = -1;
    r.written = 0;
    r.sent = 0;
    r.error = false;
    return r;
  }

  /**
   * A request's buffer goes back to the spares or the heap, and its bytes to the frontend's
   * budget (once), and the record to the spare records: nothing refers to it any more (it
   * left `pending` when it completed, the send queue when its completion went, and its
   * chain dropped it at the push). A record without a buffer (refused) is not kept.
   */
  release(req: Pending): void {
    if (req.gpa < 0) return;
    if (this.spareRecords.length < MAX_OPEN_REQUESTS) this.spareRecords.push(req);
    const pages = pagesOf(req.bytes);
    if (this.sparePages + pages <= SPARE_MAX_PAGES && !this.stopped) {
      (this.spare[pages] ??= []).push(req.gpa);
      this.sparePages += pages;
    } else this.heap.free(req.gpa, req.bytes);
    req.gpa = -1;
    this.budget.give(pagesHeld(req.bytes));
  }

  /** Releases every open request and the spare buffers; nothing is kept after this. */
  stop(): void {
    this.stopped = true;
    for (const req of this.pending.values()) this.release(req);
    this.pending.clear();
    this.budget.forget(this.resume);
    for (let pages = 1; pages < this.spare.length; pages++) {
      for (const gpa of this.spare[pages] ?? []) this.heap.freePagesAt(gpa, pages);
    }
    this.spare.length = 0;
    this.sparePages = 0;
  }
}
