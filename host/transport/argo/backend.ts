// Backend half of the VirtIO-Argo transport: code that runs in the backend domain, over
// its memory only. It reads requests and control messages from its Argo ring, rebuilds
// each request as an ordinary chain on a shadow virtqueue in its own memory for an
// unmodified device model, and sends completions back as Argo messages. Nothing the
// frontend sends is ever used as an address: request ids index a table, offsets and
// lengths are checked against buffers this side allocated.
//
// Copies per request (frontend -> backend): the hypervisor copies the driver's readable
// buffers into this ring (1); this side copies them out of the ring into the shadow
// buffer (2, within its own memory), so ring space is freed at once and device models
// may complete out of order. Completions: hypervisor copy into the frontend's ring,
// then the frontend's copy into the driver's buffers.
import { viewsOf } from "../../guest/views.ts";
import type { GuestArgo, GuestRing } from "../../guest/argo-driver.ts";
import { GuestHeap } from "../../guest/heap.ts";
import { READ_EMPTY } from "../../abi/argo-reader.ts";
import { EAGAIN } from "../../abi/errno.ts";
import { MSG_HEADER_SIZE, MSG_SLOT_SIZE } from "../../abi/argo.ts";
import type { DeviceEntry } from "../bus/enumeration.ts";
import {
  CONTROL_HEADER_SIZE, CTRL_EVENT, CTRL_REQUEST, CTRL_RESPONSE, Ctrl, DATA_HEADER_SIZE, FLAG_ERROR, FLAG_FIRST,
  FLAG_LAST, KIND_COMPLETION, KIND_REQUEST, MSG_CONTROL, MSG_DATA, decodeControl, decodeData,
  encodeData, type ControlHeader, type DataHeader,
} from "./wire.ts";
import { ControlEndpoint } from "./control.ts";
import type { VirtioDeviceModel, DeviceEnv } from "../../devices/types.ts";
import { ShadowQueue, type QueueFactory } from "../vring/shadow.ts";
import { ControlOutbox } from "./control-outbox.ts";
import { releaseRing } from "../bus/kernel.ts";
import { ABSENT_QUEUE } from "../vring/device-queue.ts";

export interface ArgoBackendConfig {
  /** The backend domain's Argo driver (shared by all devices it serves). */
  argo: GuestArgo;
  /** Allocator of the backend domain's memory. */
  heap: GuestHeap;
  entry: DeviceEntry;
  frontendDomid: number;
  model: VirtioDeviceModel;
  queues: QueueFactory;
  /** Device-level policy denials go to the audit log through this. */
  deny(perm: string, detail: string): void;
  /** Largest readable or writable part of one request (default 1 MiB + 4 KiB). */
  maxRequestBytes?: number;
  /**
   * What this frontend's open requests may hold of the backend's memory, shared by all of
   * its devices on this backend (the Toolstack makes one per frontend and backend domain).
   * Default: a budget of this device's own, a quarter of the backend's memory.
   */
  budget?: OpenBudget;
}

/**
 * Bytes one frontend's open requests hold in a backend domain. A request that does not fit
 * waits in the backend's ring (the frontend's sends then wait for space: backpressure)
 * until completions give bytes back, so one guest cannot take the memory every other
 * guest's devices on this backend allocate from. Honest frontends send a request's
 * fragments back to back, so what they hold open is always being served and comes back.
 */
export class OpenBudget {
  used = 0;
  readonly limit: number;
  private readonly waiters = new Set<() => void>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes `bytes` if they fit, or if nothing is held (one request always goes, whatever its size). */
  take(bytes: number): boolean {
    if (this.used > 0 && this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  /** Gives bytes back; whoever waited tries again (from a microtask, never inside the caller). */
  give(bytes: number): void {
    this.used -= bytes;
    if (this.waiters.size === 0) return;
    const w = [...this.waiters];
    this.waiters.clear();
    for (const cb of w) queueMicrotask(cb);
  }

  /** `cb` runs once after the next give(). */
  wait(cb: () => void): void {
    this.waiters.add(cb);
  }

  /** A backend that stops does not wait any more. */
  forget(cb: () => void): void {
    this.waiters.delete(cb);
  }
}

/**
 * A request being reassembled or served, then its completion (or the completion's
 * remaining fragments) waiting for ring space at the frontend: one record per request.
 * Not recycled: a pool of them measured 45% more scavenges than a fresh record each
 * (node --trace-gc, bench/blk-qd32.ts), short-lived objects being the cheap kind.
 */
interface Pending {
  id: number;
  queue: number;
  total: number;
  writable: number;
  received: number;
  gpa: number;
  bytes: number;
  /** Shadow descriptor head; -1 while fragments arrive, -2 complete and waiting in the backlog. */
  head: number;
  /** Completion: bytes to send back, how many went out, and whether it failed. */
  written: number;
  sent: number;
  error: boolean;
}

/** Fills sent slots of the outgoing queue. */
const NO_REQUEST: Pending = { id: 0, queue: 0, total: 0, writable: 0, received: 0, gpa: -1, bytes: 0, head: -1, written: 0, sent: 0, error: false };

/** Requests being reassembled or served at once, per device (the shadow queues hold at most 256). */
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

/** Work per VIRQ is bounded; the rest runs in a later microtask so one guest cannot starve others. */
const DRAIN_BUDGET = 256;

export class ArgoBackend {
  readonly entry: DeviceEntry;
  readonly stats = { requests: 0, completions: 0, protocolErrors: 0, bytesIn: 0, bytesOut: 0, eagain: 0, budgetWaits: 0 };
  private readonly cfg: ArgoBackendConfig;
  private ring: GuestRing | null = null;
  private readonly maxRequest: number;
  /** Largest payload of one message to the frontend's ring (its max message size). */
  private readonly maxPayload: number;
  private readonly scratch: number;
  private readonly dv: DataView;
  private readonly hdr: DataHeader = { kind: 0, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };
  /** Header of the completion fragment being sent, reused. */
  private readonly outHdr: DataHeader = { kind: 0, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };
  private readonly ctrlHdr: ControlHeader = { type: 0, msgId: 0, devNum: 0, token: 0, msgSize: 0 };
  private readonly pending = new Map<number, Pending>();
  /** Per queue: the request on each shadow descriptor head (heads are < the queue size). */
  private readonly byHead: Array<Array<Pending | null>> = [];
  /**
   * Completions waiting to go out, in order: outgoing[outHead .. outTail). No Array.shift
   * per completion, and no length change either (setting length 0 drops the backing store,
   * and the next push allocates it again: measured as 45% more scavenges).
   */
  private readonly outgoing: Pending[] = [];
  private outHead = 0;
  private outTail = 0;
  private shadows: Array<ShadowQueue | null> = [];
  /** Per queue: complete requests waiting for free shadow descriptors. */
  private backlogs: Pending[][] = [];
  private readonly control: ControlEndpoint;
  private draining = false;
  /** Shadow queues with requests the model has not been told about (one flag per queue). */
  private kicked: Uint8Array = new Uint8Array(0);
  private notifying = false;
  private stopped = false;
  private readonly iovGpa = new Float64Array(2);
  private readonly iovLen = new Float64Array(2);
  private unsubscribe: (() => void) | null = null;
  private readonly budget: OpenBudget;
  /** A request's first fragment waits in the ring for budget (see OpenBudget). */
  private readonly resume = (): void => this.drain();
  /** Control replies and events the frontend's ring or the rate limit could not take yet. */
  private readonly outbox: ControlOutbox;
  /** Spare request buffers (gpas) by page count, and the pages they hold (SPARE_MAX_PAGES). */
  private readonly spare: number[][] = [];
  private sparePages = 0;

  constructor(cfg: ArgoBackendConfig) {
    this.cfg = cfg;
    this.entry = cfg.entry;
    this.maxRequest = cfg.maxRequestBytes ?? (1 << 20) + 4096;
    this.budget = cfg.budget ?? new OpenBudget(cfg.argo.domain.memory.buffer.byteLength / 4);
    this.maxPayload = Math.min(cfg.entry.maxMessage, cfg.entry.ringLen - MSG_HEADER_SIZE - MSG_SLOT_SIZE) - DATA_HEADER_SIZE;
    this.scratch = cfg.heap.allocPages(1);
    this.dv = new DataView(cfg.argo.domain.memory.buffer);
    this.outbox = new ControlOutbox(viewsOf(cfg.argo.domain.memory), this.scratch + 1024, (gpa, size) =>
      cfg.argo.send(cfg.frontendDomid, cfg.entry.frontendPort, gpa, size, MSG_CONTROL, cfg.entry.backendPort));
    this.control = new ControlEndpoint(cfg.model, {
      activate: (sizes, features) => this.activate(sizes, features),
      reset: () => this.resetDevice(),
    });
  }

  /** Registers the request ring (single partner: the frontend) and starts serving. Returns 0 or a negative errno. */
  start(): number {
    const r = this.cfg.argo.registerRing(this.entry.backendPort, this.cfg.frontendDomid, this.entry.ringLen);
    if (typeof r === "number") return r;
    this.ring = r;
    this.unsubscribe = this.cfg.argo.domain.onVirq(() => this.drain());
    this.drain();
    return 0;
  }

  /**
   * Stops serving: unregisters the ring, drops what is in flight, and gives every page this
   * backend took back to its domain's heap (ring, gfn list, scratch, shadow queues, request
   * buffers) and their bytes to the frontend's budget.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.ring) releaseRing(this.cfg.argo, this.cfg.heap, this.ring);
    this.ring = null;
    this.cfg.model.reset(); // the model drops its chains before their memory goes
    for (const req of this.pending.values()) this.release(req);
    for (let i = this.outHead; i < this.outTail; i++) this.release(this.outgoing[i]);
    this.pending.clear();
    this.outgoing.length = 0;
    this.outHead = this.outTail = 0;
    for (const s of this.shadows) s?.release();
    this.shadows = [];
    this.backlogs = [];
    this.byHead.length = 0;
    this.outbox.clear();
    this.budget.forget(this.resume);
    for (let pages = 1; pages < this.spare.length; pages++) {
      for (const gpa of this.spare[pages] ?? []) this.cfg.heap.freePagesAt(gpa, pages);
    }
    this.spare.length = 0;
    this.sparePages = 0;
    this.cfg.heap.freePagesAt(this.scratch, 1);
  }

  /** Sends an EVENT_CONFIG to the frontend (config space changed). */
  configChanged(): void {
    this.sendControl(CTRL_EVENT, Ctrl.EVENT_CONFIG, 0, new Uint8Array(0));
  }

  // --- receive path -------------------------------------------------------------

  private drain(): void {
    if (this.draining || this.stopped || !this.ring) return;
    this.draining = true;
    try {
      if (this.outbox.waiting) {
        const rc = this.outbox.flush();
        if (rc < 0 && rc !== -EAGAIN) this.stats.protocolErrors++; // that reply is dropped; the rest go on
      }
      this.flushOutgoing();
      let budget = DRAIN_BUDGET;
      let got = 0;
      while (budget-- > 0 && !this.stopped) {
        if (!this.readOne()) break;
        got++;
      }
      // The model hears of every request this drain made available at once, as a
      // device hears one kick for a batch: one pass over its queue, one completion batch.
      this.notifyModel();
      if (budget < 0) queueMicrotask(() => this.drain());
      // Senders waiting for space on our ring may go on now (only consuming frees space).
      if (got > 0) this.cfg.argo.notify();
    } finally {
      this.draining = false;
    }
  }

  /** Handles one message; false when the ring is empty (or unusable). */
  private readOne(): boolean {
    const ring = this.ring!;
    const argo = this.cfg.argo;
    // Peek at the first bytes (transport header) without consuming.
    const iov = this.scratch;
    this.dv.setUint32(iov, this.scratch + 64, true);
    this.dv.setUint32(iov + 4, CONTROL_HEADER_SIZE + 256, true);
    const n = argo.recv(ring, iov, 1, 0, false);
    if (n === READ_EMPTY) return false;
    if (n < 0) {
      // Our own ring is corrupt (only the hypervisor and we write it): count and stop reading.
      this.stats.protocolErrors++;
      return false;
    }
    const type = argo.meta.messageType;
    if (argo.meta.srcDomid !== this.cfg.frontendDomid) {
      this.consume();
      this.stats.protocolErrors++;
      return true;
    }
    if (type === MSG_CONTROL) {
      this.consume();
      this.onControl(n);
    } else if (type === MSG_DATA && decodeData(this.dv, this.scratch + 64, n, this.hdr) && this.hdr.kind === KIND_REQUEST) {
      return this.onRequestFragment(n);
    } else {
      this.consume();
      this.stats.protocolErrors++;
    }
    return true;
  }

  private consume(): void {
    this.cfg.argo.recv(this.ring!, this.scratch, 0, 0, true);
  }

  private onControl(n: number): void {
    const at = this.scratch + 64;
    if (!decodeControl(this.dv, at, n, this.ctrlHdr) || this.ctrlHdr.type !== CTRL_REQUEST || this.ctrlHdr.devNum !== this.entry.devNum) {
      this.stats.protocolErrors++;
      return;
    }
    const payload = new Uint8Array(this.dv.buffer, at + CONTROL_HEADER_SIZE, n - CONTROL_HEADER_SIZE);
    const reply = this.control.handle(this.ctrlHdr.msgId, payload);
    this.sendControl(CTRL_RESPONSE, reply.error ? Ctrl.ERROR : this.ctrlHdr.msgId, this.ctrlHdr.token, reply.data);
  }

  /** Handles one request fragment; false when it stays in the ring, waiting for budget. */
  private onRequestFragment(n: number): boolean {
    const h = this.hdr;
    const fragLen = n - DATA_HEADER_SIZE;
    let req = this.pending.get(h.requestId);
    if (h.flags & FLAG_FIRST) {
      if (req || h.offset !== 0 || !this.shadows[h.queue] || h.total > this.maxRequest || h.writable > this.maxRequest) {
        // A reused id, a queue that is not set up, or a request larger than we serve:
        // fail it back rather than guess.
        this.consume();
        this.stats.protocolErrors++;
        this.failEarly(h.requestId, h.queue);
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
        this.consume();
        this.stats.protocolErrors++;
        this.failEarly(h.requestId, h.queue);
        return true;
      }
      req = this.record(h.requestId, h.queue, h.total, h.writable, gpa, bytes);
      this.pending.set(h.requestId, req);
    }
    // A fragment for a request already complete (on a shadow queue or waiting for one):
    // refused, and the request completes as the model serves it. Failing it here would
    // free its buffer while the model may still use it, and queue its record twice.
    if (req && req.head !== -1) {
      this.consume();
      this.stats.protocolErrors++;
      return true;
    }
    // Fragments arrive in order (Argo keeps order per ring): anything else is a protocol error.
    if (!req || h.offset !== req.received || h.total !== req.total || h.queue !== req.queue) {
      this.consume();
      this.stats.protocolErrors++;
      if (req) this.complete(req, 0, true);
      return true;
    }
    // Copy the fragment's payload out of the ring into the shadow buffer at its offset:
    // offset + fragLen <= total was checked by decodeData, and total bytes were allocated.
    this.dv.setUint32(this.scratch, req.gpa + h.offset, true);
    this.dv.setUint32(this.scratch + 4, fragLen, true);
    this.cfg.argo.recv(this.ring!, this.scratch, 1, DATA_HEADER_SIZE, true);
    req.received += fragLen;
    this.stats.bytesIn += fragLen;
    if (!(h.flags & FLAG_LAST)) return true;
    if (req.received !== req.total) {
      this.stats.protocolErrors++;
      this.complete(req, 0, true);
      return true;
    }
    this.stats.requests++;
    this.submit(req);
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
      return this.cfg.heap.alloc(bytes);
    } catch {
      return -1; // the backend domain is out of memory: refuse this request, keep serving
    }
  }

  /** Puts a complete request on its shadow queue for the device model. */
  private submit(req: Pending): void {
    const q = this.shadows[req.queue]!;
    const head = q.add(req.gpa, req.total, req.gpa + req.total, req.writable);
    if (head < 0) {
      req.head = -2; // complete, waiting for descriptors (not -1: no more fragments)
      this.backlogs[req.queue].push(req);
      return;
    }
    req.head = head;
    this.headMap(req.queue)[head] = req;
    this.kicked[req.queue] = 1;
    if (!this.draining) this.notifyModel();
  }

  /**
   * queueNotify for every shadow queue that got requests since the last call. Completions
   * the model makes inside queueNotify can submit waiting requests (backlog), which set
   * their flag again: the loop goes round until nothing is flagged.
   */
  private notifyModel(): void {
    if (this.notifying) return; // the outer call sees the new flags
    this.notifying = true;
    try {
      let again = true;
      while (again && !this.stopped) {
        again = false;
        for (let q = 0; q < this.kicked.length; q++) {
          if (this.kicked[q] === 0) continue;
          this.kicked[q] = 0;
          again = true;
          this.cfg.model.queueNotify(q);
        }
      }
    } finally {
      this.notifying = false;
    }
  }

  private headMap(queue: number): Array<Pending | null> {
    let m = this.byHead[queue];
    if (!m) this.byHead[queue] = m = [];
    return m;
  }

  private record(id: number, queue: number, total: number, writable: number, gpa: number, bytes: number): Pending {
    return { id, queue, total, writable, received: 0, gpa, bytes, head: -1, written: 0, sent: 0, error: false };
  }

  /** The device model pushed used buffers on `queue`: turn them into completions. */
  private onShadowUsed(queue: number): void {
    const q = this.shadows[queue];
    if (!q) return;
    this.reclaimQueue = queue;
    q.reclaim(this.onReclaimed);
    // Freed descriptors: submit what waited.
    const backlog = this.backlogs[queue];
    while (backlog.length && q.freeDescriptors >= 2) this.submit(backlog.shift()!);
  }

  /** Queue being reclaimed, for onReclaimed (one bound callback, no closure per interrupt). */
  private reclaimQueue = 0;
  private readonly onReclaimed = (head: number, written: number): void => {
    const heads = this.headMap(this.reclaimQueue);
    const req = heads[head];
    if (!req) return; // a head we never added (or not an index): the model is buggy; nothing to complete
    heads[head] = null;
    this.complete(req, Math.min(written, req.writable), false);
  };

  private failEarly(requestId: number, queue: number): void {
    const req = this.record(requestId, queue, 0, 0, -1, 0);
    this.queueCompletion(req, 0, true);
    this.flushOutgoing();
  }

  private complete(req: Pending, written: number, error: boolean): void {
    this.pending.delete(req.id);
    this.stats.completions++;
    this.queueCompletion(req, written, error);
    this.flushOutgoing();
  }

  private queueCompletion(req: Pending, written: number, error: boolean): void {
    req.written = written;
    req.sent = 0;
    req.error = error;
    this.outgoing[this.outTail++] = req;
  }

  // --- send path ----------------------------------------------------------------

  /** Sends queued completions in order until the frontend's ring is full. */
  private flushOutgoing(): void {
    const out = this.outgoing;
    while (this.outHead < this.outTail && !this.stopped) {
      const o = out[this.outHead];
      const rc = this.sendCompletionFragment(o);
      if (rc === -EAGAIN) {
        this.stats.eagain++;
        return; // the hypervisor queued us; its VIRQ brings us back to drain()
      }
      if (rc < 0 || o.sent >= o.written) {
        this.outHead++;
        out[this.outHead - 1] = NO_REQUEST; // not kept alive by the queue
        this.release(o);
      }
    }
    // All sent: start over at 0 (the usual case, so the array never grows); a queue that
    // never empties (a frontend that stopped reading) drops its sent half now and then.
    if (this.outHead === this.outTail) {
      this.outHead = this.outTail = 0;
    } else if (this.outHead >= 1024 && this.outHead * 2 >= this.outTail) {
      out.copyWithin(0, this.outHead, this.outTail);
      this.outTail -= this.outHead;
      this.outHead = 0;
    }
  }

  /** A request's shadow buffer goes back to the spares or the heap, and its bytes to the frontend's budget (once). */
  private release(req: Pending): void {
    if (req.gpa < 0) return;
    const pages = pagesOf(req.bytes);
    if (this.sparePages + pages <= SPARE_MAX_PAGES && !this.stopped) {
      (this.spare[pages] ??= []).push(req.gpa);
      this.sparePages += pages;
    } else this.cfg.heap.free(req.gpa, req.bytes);
    req.gpa = -1;
    this.budget.give(pagesHeld(req.bytes));
  }

  private sendCompletionFragment(o: Pending): number {
    const chunk = Math.min(this.maxPayload, o.written - o.sent);
    const first = o.sent === 0;
    const last = o.sent + chunk >= o.written;
    const hdrAt = this.scratch + 512;
    const h = this.outHdr;
    h.kind = KIND_COMPLETION;
    h.flags = (first ? FLAG_FIRST : 0) | (last ? FLAG_LAST : 0) | (o.error ? FLAG_ERROR : 0);
    h.queue = o.queue;
    h.requestId = o.id;
    h.offset = o.sent;
    h.total = h.writable = o.written;
    encodeData(this.dv, hdrAt, h);
    this.iovGpa[0] = hdrAt;
    this.iovLen[0] = DATA_HEADER_SIZE;
    this.iovGpa[1] = o.gpa + o.total + o.sent;
    this.iovLen[1] = chunk;
    const rc = this.cfg.argo.sendGather(this.cfg.frontendDomid, this.entry.frontendPort, this.iovGpa, this.iovLen, chunk > 0 ? 2 : 1, MSG_DATA, this.entry.backendPort);
    if (rc >= 0) {
      o.sent += chunk;
      this.stats.bytesOut += chunk;
      if (chunk === 0) o.sent = o.written; // an empty completion is one message
    }
    return rc;
  }

  private sendControl(type: number, msgId: number, token: number, data: Uint8Array): void {
    // Kept until the frontend's ring or the rate limit takes it (a dropped reply would leave
    // the driver's call waiting forever); a frontend that never reads fills the outbox and
    // its further requests go unanswered, counted.
    if (this.outbox.post(type, msgId, this.entry.devNum, token, data) < 0) this.stats.protocolErrors++;
  }

  // --- device life cycle --------------------------------------------------------

  private activate(sizes: readonly number[], features: bigint): void {
    // Queues the driver left at size 0 get no shadow; requests naming them are refused.
    this.shadows = sizes.map((size, i) => (size > 0 ? this.cfg.queues.shadow(size, () => this.onShadowUsed(i)) : null));
    this.kicked = new Uint8Array(sizes.length);
    this.backlogs = sizes.map(() => []);
    const env: DeviceEnv = {
      queues: this.shadows.map((s) => s?.deviceQueue ?? ABSENT_QUEUE),
      features,
      configChanged: () => this.configChanged(),
      deny: (perm, detail) => this.cfg.deny(perm, detail),
    };
    this.cfg.model.activate(env);
  }

  private resetDevice(): void {
    this.cfg.model.reset();
    for (const req of this.pending.values()) this.queueCompletion(req, 0, true);
    this.pending.clear();
    this.byHead.length = 0;
    // The model dropped its chains (reset above): the shadow rings' pages can go back.
    for (const s of this.shadows) s?.release();
    this.shadows = [];
    this.backlogs = [];
    this.flushOutgoing();
  }
}
