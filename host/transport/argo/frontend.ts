// Frontend half of the VirtIO-Argo transport: guest code, over the guest's memory only.
// To the guest's drivers it is the device side of their own vrings (GuestVirtioDevice).
// On a kick it pops each available chain and sends its readable buffers as Argo
// messages whose iovs point straight at the driver's buffers (no staging copy): the
// hypervisor copies them once into the backend's ring. Completions come back into this
// guest's ring and are copied into the chain's writable buffers before the used ring
// is written. A backend is another domain and is not trusted: every completion is
// checked against what this side recorded for the request.
import { viewsOf, type MemoryViews } from "../../guest/views.ts";
import type { GuestArgo, GuestRing } from "../../guest/argo-driver.ts";
import type { GuestHeap } from "../../guest/heap.ts";
import { READ_EMPTY } from "../../abi/argo-reader.ts";
import { EAGAIN } from "../../abi/errno.ts";
import { MSG_HEADER_SIZE, MSG_SLOT_SIZE, MAXIOV, RING_EXISTS } from "../../abi/argo.ts";
import type { DriverQueue, GuestVirtioDevice, UsedHandler } from "../../devices/types.ts";
import type { DeviceEntry } from "../bus/enumeration.ts";
import {
  CONTROL_HEADER_SIZE, CTRL_EVENT, CTRL_REQUEST, CTRL_RESPONSE, Ctrl, DATA_HEADER_SIZE, FLAG_ERROR, FLAG_FIRST,
  FLAG_LAST, KIND_COMPLETION, KIND_REQUEST, MAX_CONTROL_PAYLOAD, MSG_CONTROL, MSG_DATA, decodeControl,
  decodeData, encodeData, words, type ControlHeader, type DataHeader,
} from "./wire.ts";
import { ChainBuffers, type DeviceSide } from "../vring/queue-sides.ts";
import { GuestDriverQueue } from "../vring/guest-queue.ts";
import { ControlClient, MAX_QUEUES, TransportError } from "./control-client.ts";
import { ControlOutbox } from "./control-outbox.ts";
import type { QueueFactory } from "../vring/shadow.ts";
import { releaseRing } from "../bus/kernel.ts";

export interface ArgoFrontendConfig {
  argo: GuestArgo;
  heap: GuestHeap;
  entry: DeviceEntry;
  queues: QueueFactory;
  /** Ring feature bits this transport implements on the guest's vrings. */
  ringFeatures?: bigint;
}

/** A request popped from a guest vring, being sent or waiting for its completion. */
interface InFlight {
  id: number;
  queue: number;
  head: number;
  /** Readable pieces still to send: [gpa, len] pairs, consumed as fragments go out. */
  rGpa: number[];
  rLen: number[];
  rIndex: number;
  readableTotal: number;
  sentBytes: number;
  /** Writable pieces of the chain, where the completion's bytes go. */
  wGpa: number[];
  wLen: number[];
  capacity: number;
  received: number;
  completionTotal: number;
  /** In sendQueue (fragments still to send). */
  queued: boolean;
}

function newInFlight(): InFlight {
  return {
    id: 0, queue: 0, head: 0, rGpa: [], rLen: [], rIndex: 0, readableTotal: 0, sentBytes: 0,
    wGpa: [], wLen: [], capacity: 0, received: 0, completionTotal: 0, queued: false,
  };
}

/**
 * Who hears about a queue's completions: the guest driver queue of a driver written here,
 * or (Linux in v86) the virtio-mmio interrupt of a driver the frontend cannot call.
 */
export interface QueueSink {
  /** Used buffers were pushed and the driver wants to hear of them. */
  interrupt(): void;
  /**
   * The request at `head` failed here (backend gone, bad completion). A sink may write a
   * device-level error status into the chain's writable pieces (wGpa/wLen) and return the
   * bytes it wrote (the used length); our own drivers are told directly and return 0.
   */
  markFailed(head: number, wGpa: readonly number[], wLen: readonly number[]): number | void;
  /** The queue goes away (reset, removal): chains this frontend never popped fail too; nothing more is taken. */
  close?(): void;
}

interface QueueState {
  device: DeviceSide;
  driver: QueueSink;
  release(): void;
  /** Its ring broke: failed once, NEEDS_RESET reported. */
  broken?: boolean;
}

interface PendingCall {
  /** What was asked: a reply must answer it (or be ERROR). */
  msgId: number;
  resolve(data: Uint8Array): void;
  reject(e: Error): void;
}

export { TransportError };

const DRAIN_BUDGET = 256;
const SCRATCH_PAGES = 4;

export class ArgoFrontend extends ControlClient implements GuestVirtioDevice {
  readonly entry: DeviceEntry;
  readonly virtioId: number;
  readonly stats = { requests: 0, completions: 0, protocolErrors: 0, failed: 0, eagain: 0, bytesOut: 0, bytesIn: 0 };
  private readonly cfg: ArgoFrontendConfig;
  private ring: GuestRing | null = null;
  private readonly scratch: number;
  /** The guest's memory views (made again after an emulator's memory grew). */
  private readonly views: MemoryViews;
  private readonly maxPayload: number;
  private readonly hdr: DataHeader = { kind: 0, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };
  private readonly ctrl: ControlHeader = { type: 0, msgId: 0, devNum: 0, token: 0, msgSize: 0 };
  private readonly queues: QueueState[] = [];
  private readonly inflight = new Map<number, InFlight>();
  /** Finished request records, reused. */
  private readonly spareReqs: InFlight[] = [];
  /** Header of the fragment being sent, reused. */
  private readonly outHdr: DataHeader = { kind: 0, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };
  /** Requests whose fragments are not all sent yet (the backend's ring was full). */
  private readonly sendQueue: InFlight[] = [];
  private readonly calls = new Map<number, PendingCall>();
  private readonly chain: ChainBuffers;
  /** One message's iovs (header + up to 7 pieces), reused for every fragment. */
  private readonly iovGpa = new Float64Array(MAXIOV);
  private readonly iovLen = new Float64Array(MAXIOV);
  private nextToken = 1;
  /**
   * Next request id. Ids come from a counter, never from the chain head: a request failed
   * here (bad completion, reset) frees its head at once while the backend may still answer
   * it, and a head-derived id would deliver that stale answer into the next chain.
   */
  private nextRequestId = 1;
  private draining = false;
  /** Queues with used entries pushed in this drain, awaiting one interrupt decision. */
  private readonly pushed = new Uint8Array(MAX_QUEUES);
  private isGone = false;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  /** Control requests the backend's ring or the pair's rate limit could not take yet. */
  private readonly outbox: ControlOutbox;

  constructor(cfg: ArgoFrontendConfig) {
    super();
    this.cfg = cfg;
    this.entry = cfg.entry;
    this.virtioId = cfg.entry.virtioType;
    this.scratch = cfg.heap.allocPages(SCRATCH_PAGES); // headers, control messages and iov lists
    this.views = viewsOf(cfg.argo.domain.memory);
    this.maxPayload = Math.min(cfg.entry.maxMessage, cfg.entry.ringLen - MSG_HEADER_SIZE - MSG_SLOT_SIZE) - DATA_HEADER_SIZE;
    this.chain = new ChainBuffers(1024);
    this.outbox = new ControlOutbox(this.views, this.scratch, (gpa, size) =>
      this.cfg.argo.send(this.entry.backendDomid, this.entry.backendPort, gpa, size, MSG_CONTROL, this.entry.frontendPort));
  }

  private get dv(): DataView {
    return this.views.fresh().dv;
  }

  get memory(): WebAssembly.Memory {
    return this.cfg.argo.domain.memory;
  }

  get gone(): boolean {
    return this.isGone;
  }

  protected get heap(): GuestHeap {
    return this.cfg.heap;
  }

  /** Registers this guest's ring for the backend's replies. Returns 0 or a negative errno. */
  start(): number {
    const r = this.cfg.argo.registerRing(this.entry.frontendPort, this.entry.backendDomid, this.entry.ringLen);
    if (typeof r === "number") return r;
    this.ring = r;
    this.unsubscribe = this.cfg.argo.domain.onVirq(() => this.drain());
    return 0;
  }

  /**
   * Detaches: fails everything in flight, unregisters the ring and gives every page this
   * frontend took back to the guest's heap (ring, gfn list, scratch, the queues' rings).
   * The driver's queues are closed first, so a driver that still holds one cannot write
   * into pages that now belong to something else.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.markGone("transport stopped");
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.ring) releaseRing(this.cfg.argo, this.cfg.heap, this.ring);
    this.ring = null;
    for (const q of this.queues) {
      q?.driver.close?.();
      q?.release();
    }
    this.queues.length = 0;
    this.cfg.heap.freePagesAt(this.scratch, SCRATCH_PAGES);
  }

  // --- control plane ------------------------------------------------------------

  protected call(msgId: number, payload: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.request(msgId, payload, { msgId, resolve, reject }));
  }

  /** Sends one control request; `pending` settles when its reply is read (or at once, if it cannot be sent). */
  private request(msgId: number, payload: Uint8Array, pending: PendingCall): void {
    if (this.isGone) return pending.reject(new TransportError(`device ${this.entry.devNum} is gone`));
    if (payload.length > MAX_CONTROL_PAYLOAD) return pending.reject(new RangeError("control payload too large"));
    const token = this.nextToken++ & 0xffff || (this.nextToken++ & 0xffff);
    // Refused with -EAGAIN (ring full, rate limit spent), the request waits in the outbox for
    // the VIRQ that follows, and goes out from pump(): driver setup does not fail on it.
    const rc = this.outbox.post(CTRL_REQUEST, msgId, this.entry.devNum, token, payload);
    if (rc < 0) {
      if (rc !== -EAGAIN) this.markGone(`backend unreachable (${rc})`);
      return pending.reject(new TransportError(`control message ${msgId} not sent: ${rc}`));
    }
    this.calls.set(token, pending);
  }

  /**
   * A control request whose reply is needed before the caller returns: a Linux guest's
   * vCPU is stopped on a trapped virtio-mmio access. The request goes out as any other;
   * then the domain yields to the others (SCHEDOP_yield) until the backend's reply has
   * been read, at most `rounds` times. Returns the reply, or a TransportError (refused,
   * device gone, or no answer while we yielded: the caller treats the device as broken).
   */
  callNow(msgId: number, payload: Uint8Array, rounds = 8): Uint8Array | TransportError {
    let reply: Uint8Array | null = null;
    let failure: Error | null = null;
    const pending: PendingCall = { msgId, resolve: (d) => (reply = d), reject: (e) => (failure = e) };
    this.request(msgId, payload, pending);
    for (let i = 0; i < rounds && reply === null && failure === null; i++) {
      if (this.cfg.argo.domain.schedYield() === 0) break;
    }
    if (reply !== null) return reply;
    if (failure === null) {
      for (const [token, p] of this.calls) if (p === pending) this.calls.delete(token);
      return new TransportError(`control message ${msgId}: no reply from the backend`);
    }
    const f: Error = failure;
    return f instanceof TransportError ? f : new TransportError(f.message);
  }

  /**
   * Serves queue `index` on a vring the guest placed itself (a Linux driver wrote its
   * addresses into virtio-mmio registers): `device` is the device side over those
   * addresses, `sink` hears of completions. The backend is told the size only.
   */
  installQueue(index: number, device: DeviceSide, sink: QueueSink, release: () => void = () => {}): void {
    this.queues[index]?.release();
    this.queues[index] = { device, driver: sink, release };
  }

  /** Forgets queue `index` (the guest disabled it or reset the device); its requests fail first. */
  removeQueue(index: number): void {
    const state = this.queues[index];
    if (!state) return;
    for (const req of [...this.inflight.values()]) if (req.queue === index) this.finish(req, 0, true);
    state.release();
    delete this.queues[index];
  }

  async setupQueue(index: number, size: number, onUsed: UsedHandler): Promise<DriverQueue> {
    await this.checkQueueIndex(index);
    await this.call(Ctrl.SET_VQUEUE, words(index, size));
    const pair = this.cfg.queues.guestPair(size, this.eventIdx, this.indirect, this.packed);
    const driver = new GuestDriverQueue(pair.driver, onUsed, () => this.kick(index));
    // Set up again (after a reset): the old queue is closed and its ring's pages go back to the guest's heap.
    this.queues[index]?.driver.close?.();
    this.queues[index]?.release();
    this.queues[index] = { device: pair.device, driver, release: pair.release };
    return driver;
  }

  protected get ringFeatures(): bigint {
    return this.cfg.ringFeatures ?? 0n;
  }

  protected onReset(): void {
    this.failInflight();
  }

  // --- data plane: requests out -------------------------------------------------

  /** The guest driver notified queue `q`: send every available chain. */
  kick(q: number): void {
    const state = this.queues[q];
    if (!state) return;
    const chain = this.chain;
    for (let budget = state.device.size; budget > 0; budget--) {
      const rc = state.device.pop(chain);
      if (rc === 0) break;
      if (rc < 0) {
        // The driver corrupted its own ring: nothing more is sent from it, and the device needs a reset.
        this.queueBroken(q, state);
        break;
      }
      const req = this.track(q, chain);
      if (this.isGone) {
        this.finish(req, 0, true);
        continue;
      }
      req.queued = true;
      this.sendQueue.push(req);
    }
    this.pump();
  }

  /**
   * Yields to the other domains (SCHEDOP_yield) after a kick: once, so the backend serves
   * what was sent now (and its completions come back), then again while fragments wait
   * for room in its ring, at most `rounds` times. For a guest whose kick is a trapped
   * register write (Linux in v86): the backend would otherwise run only when the emulator
   * ends its time slice. Returns the requests whose fragments are still queued.
   */
  yieldToBackend(rounds = 64): number {
    for (let i = 0; i < rounds && !this.isGone && (i === 0 || this.sendQueue.length > 0); i++) {
      if (this.cfg.argo.domain.schedYield() === 0) break;
    }
    return this.sendQueue.length;
  }

  /**
   * Queue `q`'s ring is broken (its device side latched the error): requests in flight on it
   * fail, chains never popped fail (the queue closes), and the device reports
   * DEVICE_NEEDS_RESET with a config change notification (VirtIO 1.2 2.1.1). A microtask
   * later, not inside the driver's kick.
   */
  private queueBroken(q: number, state: QueueState): void {
    if (state.broken) return;
    state.broken = true;
    this.stats.protocolErrors++;
    queueMicrotask(() => {
      if (this.queues[q] !== state) return; // set up again meanwhile
      for (const req of [...this.inflight.values()]) if (req.queue === q) this.finish(req, 0, true);
      state.device.needsInterrupt();
      state.driver.interrupt();
      state.driver.close?.();
      this.enterNeedsReset();
    });
  }

  private track(q: number, c: ChainBuffers): InFlight {
    // Recycled records: no allocation per request on the data path.
    const req = this.spareReqs.pop() ?? newInFlight();
    req.id = this.allocRequestId();
    req.queue = q;
    req.head = c.head;
    req.rGpa.length = req.rLen.length = req.wGpa.length = req.wLen.length = 0;
    req.rIndex = req.sentBytes = req.received = req.completionTotal = 0;
    req.readableTotal = c.readableBytes;
    req.capacity = c.writableBytes;
    req.queued = false;
    for (let i = 0; i < c.count; i++) {
      if (c.len[i] === 0) continue;
      if (c.writable[i]) { req.wGpa.push(c.gpa[i]); req.wLen.push(c.len[i]); }
      else { req.rGpa.push(c.gpa[i]); req.rLen.push(c.len[i]); }
    }
    this.inflight.set(req.id, req);
    this.stats.requests++;
    return req;
  }

  /** A 32-bit id not in flight (wraps after 4 G requests; skips any still open). */
  private allocRequestId(): number {
    let id = this.nextRequestId;
    while (this.inflight.has(id)) id = (id + 1) >>> 0 || 1;
    this.nextRequestId = (id + 1) >>> 0 || 1;
    return id;
  }

  /** Sends queued fragments in order until done or the backend's ring is full. */
  private pump(): void {
    if (this.outbox.waiting && !this.isGone) {
      const rc = this.outbox.flush();
      if (rc < 0 && rc !== -EAGAIN) this.markGone(`backend unreachable (${rc})`);
    }
    while (this.sendQueue.length && !this.isGone) {
      const req = this.sendQueue[0];
      const rc = this.sendFragment(req);
      if (rc === -EAGAIN) {
        this.stats.eagain++;
        return; // the hypervisor queued a space notification; VIRQ brings us back
      }
      if (rc < 0) {
        this.sendQueue.shift();
        req.queued = false;
        this.finish(req, 0, true);
        this.markGone(`backend unreachable (${rc})`);
        return;
      }
      if (req.sentBytes >= req.readableTotal && req.rIndex >= req.rGpa.length) {
        this.sendQueue.shift();
        req.queued = false;
      }
    }
  }

  /** One message: header + up to 7 readable pieces, at most maxPayload bytes. */
  private sendFragment(req: InFlight): number {
    const hdrAt = this.scratch + 512;
    let n = 1;
    let bytes = 0;
    let idx = req.rIndex;
    let inPiece = req.sentBytes - this.piecesBefore(req, idx);
    const iovGpa = this.iovGpa;
    const iovLen = this.iovLen;
    iovGpa[0] = hdrAt;
    iovLen[0] = DATA_HEADER_SIZE;
    while (idx < req.rGpa.length && n < MAXIOV && bytes < this.maxPayload) {
      const take = Math.min(req.rLen[idx] - inPiece, this.maxPayload - bytes);
      iovGpa[n] = req.rGpa[idx] + inPiece;
      iovLen[n] = take;
      bytes += take;
      n++;
      if (inPiece + take === req.rLen[idx]) { idx++; inPiece = 0; } else inPiece += take;
    }
    const first = req.sentBytes === 0;
    const last = req.sentBytes + bytes >= req.readableTotal;
    const h = this.outHdr;
    h.kind = KIND_REQUEST;
    h.flags = (first ? FLAG_FIRST : 0) | (last ? FLAG_LAST : 0);
    h.queue = req.queue;
    h.requestId = req.id;
    h.offset = req.sentBytes;
    h.total = req.readableTotal;
    h.writable = req.capacity;
    encodeData(this.dv, hdrAt, h);
    const rc = this.cfg.argo.sendGather(this.entry.backendDomid, this.entry.backendPort, iovGpa, iovLen, n, MSG_DATA, this.entry.frontendPort);
    if (rc >= 0) {
      req.sentBytes += bytes;
      req.rIndex = idx;
      this.stats.bytesOut += bytes;
    }
    return rc;
  }

  private piecesBefore(req: InFlight, idx: number): number {
    let s = 0;
    for (let i = 0; i < idx; i++) s += req.rLen[i];
    return s;
  }

  // --- data plane: completions in -----------------------------------------------

  private drain(): void {
    if (this.draining || !this.ring) return;
    this.draining = true;
    try {
      this.pump();
      let got = 0;
      let budget = DRAIN_BUDGET;
      while (budget-- > 0) {
        const r = this.readOne();
        if (r === 0) break;
        got++;
      }
      if (budget < 0) queueMicrotask(() => this.drain());
      // Senders waiting for space on our ring may go on now (only consuming frees space).
      if (got > 0) this.cfg.argo.notify();
      this.pump();
      // Is the backend still there? A VIRQ with nothing to read while work is outstanding asks.
      // A drain that did read something asks too, one event-loop turn later (recheck): the
      // VIRQ of a revocation or of the backend's death coalesces with the data VIRQ of a
      // fragment already in our ring, this drain read that fragment, and no later VIRQ
      // would come to ask. Asking after every drain cost 15% of blk 4 KiB QD32; one deferred
      // drain per turn, and a probe only when it finds nothing, costs next to nothing.
      const waiting = (this.inflight.size > 0 || this.calls.size > 0) && !this.isGone;
      if (waiting && got === 0) this.probeBackend();
      else if (waiting && !this.recheckArmed) {
        this.recheckArmed = true;
        setImmediate(this.recheck);
      }
    } finally {
      this.draining = false;
      for (let q = 0; q < this.pushed.length; q++) {
        if (this.pushed[q] === 0) continue;
        this.pushed[q] = 0;
        this.interruptIfWanted(q);
      }
    }
  }

  private recheckArmed = false;
  private readonly recheck = (): void => {
    this.recheckArmed = false;
    this.drain();
  };

  private probeBackend(): void {
    // space_required larger than any ring: Xen answers EMSGSIZE and leaves our
    // pending-space entry alone (a satisfiable size would cancel it: fill_ring_data).
    const q = this.cfg.argo.query(this.entry.backendDomid, this.entry.backendPort, 0xffffffff);
    if (q.rc < 0 || !(q.flags & RING_EXISTS)) this.markGone("backend ring gone");
  }

  /** Handles one message; 0 when the ring is empty or unusable. */
  private readOne(): number {
    const ring = this.ring!;
    const argo = this.cfg.argo;
    const iov = this.scratch + 1024;
    const peek = this.scratch + 1536;
    this.dv.setUint32(iov, peek, true);
    this.dv.setUint32(iov + 4, CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD, true);
    const n = argo.recv(ring, iov, 1, 0, false);
    if (n === READ_EMPTY) return 0;
    if (n < 0) {
      this.stats.protocolErrors++;
      return 0;
    }
    const type = argo.meta.messageType;
    if (argo.meta.srcDomid !== this.entry.backendDomid) {
      this.consume();
      this.stats.protocolErrors++;
    } else if (type === MSG_CONTROL) {
      this.consume();
      this.onControl(peek, n);
    } else if (type === MSG_DATA) {
      this.onCompletion(peek, n);
    } else {
      this.consume();
      this.stats.protocolErrors++;
    }
    return 1;
  }

  private consume(): void {
    this.cfg.argo.recv(this.ring!, this.scratch + 1024, 0, 0, true);
  }

  private onControl(at: number, n: number): void {
    if (!decodeControl(this.dv, at, n, this.ctrl) || this.ctrl.devNum !== this.entry.devNum) {
      this.stats.protocolErrors++;
      return;
    }
    if (this.ctrl.type === CTRL_EVENT) {
      if (this.ctrl.msgId === Ctrl.EVENT_CONFIG) this.configChanged();
      return;
    }
    const call = this.calls.get(this.ctrl.token);
    if (this.ctrl.type !== CTRL_RESPONSE || !call) {
      this.stats.protocolErrors++;
      return;
    }
    this.calls.delete(this.ctrl.token);
    if (this.ctrl.msgId !== call.msgId && this.ctrl.msgId !== Ctrl.ERROR) {
      this.stats.protocolErrors++;
      call.reject(new TransportError(`control reply ${this.ctrl.msgId} to request ${call.msgId}`));
      return;
    }
    const data = new Uint8Array(this.dv.buffer.slice(at + CONTROL_HEADER_SIZE, at + n));
    // The code is backend-written and optional here: an ERROR without one is still an error.
    if (this.ctrl.msgId === Ctrl.ERROR) {
      const code = data.length >= 4 ? new DataView(data.buffer).getUint32(0, true) : "none";
      call.reject(new TransportError(`device refused the request (code ${code})`));
    } else call.resolve(data);
  }

  private onCompletion(at: number, n: number): void {
    const h = this.hdr;
    const fragLen = n - DATA_HEADER_SIZE;
    if (!decodeData(this.dv, at, n, h) || h.kind !== KIND_COMPLETION) {
      this.consume();
      this.stats.protocolErrors++;
      return;
    }
    const req = this.inflight.get(h.requestId);
    // Unknown id (already completed, or invented), wrong queue, out-of-order or
    // oversized data: reject. A known request with a bad fragment is failed.
    if (!req || req.queue !== h.queue) {
      this.consume();
      this.stats.protocolErrors++;
      return;
    }
    if (h.offset !== req.received || h.total > req.capacity || (h.flags & FLAG_FIRST ? h.offset !== 0 : req.received === 0 && h.offset !== 0)) {
      this.consume();
      this.stats.protocolErrors++;
      this.finish(req, 0, true);
      return;
    }
    if (h.flags & FLAG_FIRST) req.completionTotal = h.total;
    else if (h.total !== req.completionTotal) {
      this.consume();
      this.stats.protocolErrors++;
      this.finish(req, 0, true);
      return;
    }
    // Scatter the payload into the chain's writable buffers from `offset` on:
    // offset + fragLen <= total <= capacity, so the pieces always hold it.
    const iovAt = this.scratch + 2048;
    let skip = h.offset;
    let pieces = 0;
    let left = fragLen;
    for (let i = 0; i < req.wGpa.length && left > 0; i++) {
      if (skip >= req.wLen[i]) { skip -= req.wLen[i]; continue; }
      const take = Math.min(req.wLen[i] - skip, left);
      this.dv.setUint32(iovAt + pieces * 8, req.wGpa[i] + skip, true);
      this.dv.setUint32(iovAt + pieces * 8 + 4, take, true);
      pieces++;
      left -= take;
      skip = 0;
    }
    this.cfg.argo.recv(this.ring!, iovAt, pieces, DATA_HEADER_SIZE, true);
    req.received += fragLen;
    this.stats.bytesIn += fragLen;
    if (h.flags & FLAG_LAST) this.finish(req, req.received, (h.flags & FLAG_ERROR) !== 0);
  }

  /** Writes the used ring entry for `req` and interrupts the driver if it wants it. */
  private finish(req: InFlight, written: number, error: boolean): void {
    if (!this.inflight.delete(req.id)) return;
    // Completed before all its fragments went out (only a hostile backend does that): stop sending them.
    if (req.queued) {
      this.sendQueue.splice(this.sendQueue.indexOf(req), 1);
      req.queued = false;
    }
    this.spareReqs.push(req);
    const state = this.queues[req.queue];
    if (!state) return;
    let failedLen = 0;
    if (error) {
      this.stats.failed++;
      failedLen = state.driver.markFailed(req.head, req.wGpa, req.wLen) ?? 0;
    }
    this.stats.completions++;
    state.device.push(req.head, error ? failedLen : written);
    // Inside a drain the interrupt decision waits for the whole batch (one used-buffer
    // notification for everything this VIRQ completed); outside, it is made now.
    if (this.draining) this.pushed[req.queue] = 1;
    else this.interruptIfWanted(req.queue);
  }

  private interruptIfWanted(q: number): void {
    const state = this.queues[q];
    if (state && state.device.needsInterrupt()) state.driver.interrupt();
  }

  private failInflight(): void {
    for (const req of this.sendQueue) req.queued = false;
    this.sendQueue.length = 0;
    if (this.inflight.size === 0) return;
    for (const req of [...this.inflight.values()]) this.finish(req, 0, true);
    // Failed requests are delivered now, whatever the driver's used_event asked for: it may
    // have suppressed interrupts until a later completion that will never come.
    for (const q of this.queues) {
      if (!q) continue;
      q.device.needsInterrupt(); // moves the interrupt point past what was just pushed
      q.driver.interrupt();
    }
  }

  /** Device removed or backend dead: every request in flight completes with an error, now. */
  markGone(_why: string): void {
    if (this.isGone) return;
    this.isGone = true;
    this.outbox.clear();
    this.failInflight();
    for (const call of this.calls.values()) call.reject(new TransportError(`device ${this.entry.devNum} is gone`));
    this.calls.clear();
  }
}
