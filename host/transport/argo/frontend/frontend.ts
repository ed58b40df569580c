// Frontend half of the VirtIO-Argo transport: guest code, over the guest's memory only.
// To the guest's drivers it is the device side of their own vrings (GuestVirtioDevice).
// On a kick it pops each available chain and sends it to the backend (./requests.ts);
// completions come back into this guest's ring and go into the chain's writable buffers
// (./completions.ts) before the used ring is written here. A backend is another domain
// and is not trusted: every completion is checked against what this side recorded.
//
// This file is the device's life: the control plane (driver setup over control messages),
// the queues, the used ring and interrupts, and what happens when the backend goes away.
import type { GuestArgo } from "../../../guest/argo-driver.ts";
import type { GuestHeap } from "../../../guest/heap.ts";
import { EAGAIN } from "../../../abi/errno.ts";
import type { DriverQueue, GuestVirtioDevice, UsedHandler } from "../../../devices/types.ts";
import type { DeviceEntry } from "../../bus/enumeration.ts";
import {
  CTRL_EVENT, CTRL_REQUEST, CTRL_RESPONSE, CONTROL_HEADER_SIZE, Ctrl, KIND_COMPLETION, MAX_CONTROL_PAYLOAD, TF_BATCH,
  decodeControl, words, type ControlHeader,
} from "../wire.ts";
import { ChainBuffers, type DeviceSide } from "../../vring/queue-sides.ts";
import { GuestDriverQueue } from "../../vring/guest-queue.ts";
import { ControlClient, MAX_QUEUES, TransportError } from "../control-client.ts";
import type { QueueFactory } from "../../vring/queue-factory.ts";
import { ArgoEndpoint, type EndpointHandler } from "../endpoint.ts";
import { RequestSender, RequestTable, type InFlight } from "./requests.ts";
import { CompletionReceiver } from "./completions.ts";

export interface ArgoFrontendConfig {
  argo: GuestArgo;
  heap: GuestHeap;
  entry: DeviceEntry;
  queues: QueueFactory;
  /** Ring feature bits this transport implements on the guest's vrings. */
  ringFeatures?: bigint;
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

/** Buffers of one chain the frontend pops at most (and so scatters a completion into). */
const MAX_CHAIN = 1024;

export class ArgoFrontend extends ControlClient implements GuestVirtioDevice {
  readonly entry: DeviceEntry;
  readonly virtioId: number;
  /** `batched`: requests that went in batches (TF_BATCH), not one message each. */
  readonly stats = { requests: 0, completions: 0, protocolErrors: 0, failed: 0, eagain: 0, bytesOut: 0, bytesIn: 0, batched: 0 };
  private readonly cfg: ArgoFrontendConfig;
  private readonly endpoint: ArgoEndpoint;
  private readonly requests = new RequestTable();
  private readonly sender: RequestSender;
  private readonly completions: CompletionReceiver;
  private readonly ctrl: ControlHeader = { type: 0, msgId: 0, devNum: 0, token: 0, msgSize: 0 };
  private readonly queues: QueueState[] = [];
  private readonly calls = new Map<number, PendingCall>();
  private readonly chain = new ChainBuffers(MAX_CHAIN);
  private nextToken = 1;
  /** Queues with used entries pushed in this drain, awaiting one interrupt decision. */
  private readonly pushed = new Uint8Array(MAX_QUEUES);
  private isGone = false;
  private stopped = false;

  constructor(cfg: ArgoFrontendConfig) {
    super();
    this.cfg = cfg;
    this.entry = cfg.entry;
    this.virtioId = cfg.entry.virtioType;
    const e = cfg.entry;
    this.endpoint = new ArgoEndpoint(cfg.argo, cfg.heap, {
      localPort: e.frontendPort, peerDomid: e.backendDomid, peerPort: e.backendPort, ringLen: e.ringLen, maxMessage: e.maxMessage,
    }, KIND_COMPLETION, this.drainHooks(), this.stats, MAX_CHAIN);
    this.sender = new RequestSender(this.endpoint, this.stats, (req, rc) => {
      this.finish(req, 0, true);
      this.markGone(`backend unreachable (${rc})`);
    });
    this.completions = new CompletionReceiver(this.endpoint, this.requests, this.stats, (req, written, error) => this.finish(req, written, error));
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

  /**
   * Registers this guest's ring for the backend's replies, and asks the backend for the
   * transport features this side implements (batches). Returns 0 or a negative errno.
   */
  start(): number {
    const rc = this.endpoint.start();
    if (rc < 0) return rc;
    this.askTransportFeatures();
    return 0;
  }

  /**
   * SET_TRANSPORT_FEATURES(TF_BATCH). The answer is taken when its reply is read, inside
   * that drain (not a promise's microtask later): the backend may batch right after it
   * replied, and its reply is ahead of that batch in our ring. A backend that does not
   * know the message answers ERROR: single messages then, as before.
   */
  private askTransportFeatures(): void {
    const use = (reply: Uint8Array): void => {
      const bits = reply.byteLength >= 4 ? new DataView(reply.buffer, reply.byteOffset, 4).getUint32(0, true) : 0;
      this.endpoint.batchesIn = this.endpoint.batchesOut = (bits & TF_BATCH) !== 0;
    };
    this.request(Ctrl.SET_TRANSPORT_FEATURES, words(TF_BATCH), { msgId: Ctrl.SET_TRANSPORT_FEATURES, resolve: use, reject: () => {} });
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
    this.endpoint.stop();
    for (const q of this.queues) {
      q?.driver.close?.();
      q?.release();
    }
    this.queues.length = 0;
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
    // the VIRQ that follows, and goes out from flush(): driver setup does not fail on it.
    const rc = this.endpoint.postControl(CTRL_REQUEST, msgId, this.entry.devNum, token, payload);
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

  /** A control reply or event from the backend. */
  private onControl(at: number, n: number): void {
    const dv = this.endpoint.dv;
    if (!decodeControl(dv, at, n, this.ctrl) || this.ctrl.devNum !== this.entry.devNum) {
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
    const data = new Uint8Array(dv.buffer.slice(at + CONTROL_HEADER_SIZE, at + n));
    // The code is backend-written and optional here: an ERROR without one is still an error.
    if (this.ctrl.msgId === Ctrl.ERROR) {
      const code = data.length >= 4 ? new DataView(data.buffer).getUint32(0, true) : "none";
      call.reject(new TransportError(`device refused the request (code ${code})`));
    } else call.resolve(data);
  }

  // --- queues -------------------------------------------------------------------

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
    this.failQueue(index);
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

  // --- data plane ---------------------------------------------------------------

  /**
   * The guest driver notified queue `q`. As a device on another CPU would, the frontend
   * serves the notification after the driver's code that rang it, from a microtask: a
   * driver that adds and kicks request by request has them all popped at once, and they
   * go to the backend in batches (TF_BATCH). With EVENT_IDX the driver sees avail_event
   * unchanged meanwhile and rings once. With nothing in flight there is nothing to batch
   * with, and the chain is served at once (one microtask less for a request at QD1). A
   * guest whose kick must be served before it goes on (a trapped register write) calls
   * yieldToBackend, which serves it first.
   */
  kick(q: number): void {
    if (!this.queues[q] || q >= MAX_QUEUES) return;
    if (this.requests.size === 0 && !this.kickArmed) {
      // Nothing in flight: nothing to batch with; serve now (the QD1 case).
      this.popAvailable(q);
      this.pump();
      return;
    }
    this.kicked[q] = 1;
    if (this.kickArmed) return;
    this.kickArmed = true;
    queueMicrotask(this.serveKicks);
  }

  private readonly kicked = new Uint8Array(MAX_QUEUES);
  private kickArmed = false;
  private readonly serveKicks = (): void => {
    if (!this.kickArmed) return; // served already (yieldToBackend)
    this.kickArmed = false;
    for (let q = 0; q < this.queues.length; q++) {
      if (this.kicked[q] === 0) continue;
      this.kicked[q] = 0;
      this.popAvailable(q);
    }
    this.pump();
  };

  /** Pops every available chain of queue `q` (at most its size) into the send queue. */
  private popAvailable(q: number): void {
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
      const req = this.requests.track(q, chain);
      this.stats.requests++;
      if (this.isGone) this.finish(req, 0, true);
      else this.sender.send(req);
    }
  }

  /**
   * Yields to the other domains (SCHEDOP_yield) after a kick: once, so the backend serves
   * what was sent now (and its completions come back), then again while fragments wait
   * for room in its ring, at most `rounds` times. For a guest whose kick is a trapped
   * register write (Linux in v86): the backend would otherwise run only when the emulator
   * ends its time slice. Returns the requests whose fragments are still queued.
   */
  yieldToBackend(rounds = 64): number {
    this.serveKicks();
    const queue = this.sender.queue;
    for (let i = 0; i < rounds && !this.isGone && (i === 0 || queue.length > 0); i++) {
      if (this.cfg.argo.domain.schedYield() === 0) break;
    }
    return queue.length;
  }

  /** Sends waiting control messages and request fragments, in order, until done or refused. */
  private pump(): void {
    if (this.isGone) return;
    const rc = this.endpoint.flushControl();
    if (rc < 0 && rc !== -EAGAIN) return this.markGone(`backend unreachable (${rc})`);
    // -EAGAIN: the hypervisor queued a space notification; its VIRQ brings us back.
    if (this.sender.queue.flush() === -EAGAIN) this.stats.eagain++;
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
      this.failQueue(q);
      state.device.needsInterrupt();
      state.driver.interrupt();
      state.driver.close?.();
      this.enterNeedsReset();
    });
  }

  // What a drain of our ring does.

  /** The endpoint's hooks: private to this frontend (made once, not per message). */
  private drainHooks(): EndpointHandler {
    return {
      flush: () => this.pump(),
      onControl: (at, n) => this.onControl(at, n),
      onData: (h, fragLen) => this.completions.onData(h, fragLen),
      drained: (got) => this.drained(got),
      drainEnded: () => this.drainEnded(),
    };
  }

  /**
   * After the reads: send what the completions made room for, and check the backend is
   * still there. A VIRQ with nothing to read while work is outstanding asks. A drain that
   * did read something asks too, one event-loop turn later (recheck): the VIRQ of a
   * revocation or of the backend's death coalesces with the data VIRQ of a fragment
   * already in our ring, this drain read that fragment, and no later VIRQ would come to
   * ask. Asking after every drain cost 15% of blk 4 KiB QD32; one deferred drain per turn,
   * and a probe only when it finds nothing, costs next to nothing.
   */
  private drained(got: number): void {
    this.pump();
    const waiting = (this.requests.size > 0 || this.calls.size > 0) && !this.isGone;
    if (waiting && got === 0) {
      if (!this.endpoint.peerRingExists()) this.markGone("backend ring gone");
    } else if (waiting && !this.recheckArmed) {
      this.recheckArmed = true;
      setImmediate(this.recheck);
    }
  }

  /** One interrupt decision per queue for everything this drain completed. */
  private drainEnded(): void {
    for (let q = 0; q < this.queues.length; q++) {
      if (this.pushed[q] === 0) continue;
      this.pushed[q] = 0;
      this.interruptIfWanted(q);
    }
  }

  private recheckArmed = false;
  private readonly recheck = (): void => {
    this.recheckArmed = false;
    this.endpoint.drain();
  };

  /** Writes the used ring entry for `req` and interrupts the driver if it wants it. */
  private finish(req: InFlight, written: number, error: boolean): void {
    if (!this.requests.close(req)) return;
    // Completed before all its fragments went out (only a hostile backend does that): stop sending them.
    this.sender.withdraw(req);
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
    if (this.endpoint.draining) this.pushed[req.queue] = 1;
    else this.interruptIfWanted(req.queue);
  }

  private interruptIfWanted(q: number): void {
    const state = this.queues[q];
    if (state && state.device.needsInterrupt()) state.driver.interrupt();
  }

  /** Fails queue `q`'s requests in flight. */
  private failQueue(q: number): void {
    for (const req of this.requests.snapshot()) if (req.queue === q) this.finish(req, 0, true);
  }

  private failInflight(): void {
    this.sender.queue.clear((req) => (req.queued = false));
    if (this.requests.size === 0) return;
    for (const req of this.requests.snapshot()) this.finish(req, 0, true);
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
    this.endpoint.clearControl();
    this.failInflight();
    for (const call of this.calls.values()) call.reject(new TransportError(`device ${this.entry.devNum} is gone`));
    this.calls.clear();
  }
}
