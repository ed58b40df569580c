// Backend half of the VirtIO-Argo transport: code that runs in the backend domain, over
// its memory only. Requests from the frontend are reassembled into buffers of its own
// (./requests.ts), each complete one becomes an ordinary chain on the queue an unmodified
// device model pops from (./request-queue.ts), and what the model wrote goes back as
// completion messages (./completions.ts).
//
// This file is the device's life: the control plane's device side, the model's queues,
// and stop and reset, which give back everything the device held.
//
// Copies per request (frontend -> backend): the hypervisor copies the driver's readable
// buffers into this ring (1); this side copies them out of the ring into the request
// buffer (2, within its own memory). Completions: hypervisor copy into the frontend's
// ring, then the frontend's copy into the driver's buffers.
import type { GuestArgo } from "../../../guest/argo-driver.ts";
import type { GuestHeap } from "../../../guest/heap.ts";
import { EAGAIN } from "../../../abi/errno.ts";
import type { DeviceEntry } from "../../bus/enumeration.ts";
import {
  CONTROL_HEADER_SIZE, CTRL_EVENT, CTRL_REQUEST, CTRL_RESPONSE, Ctrl, KIND_REQUEST, TF_BATCH, decodeControl,
  type ControlHeader,
} from "../wire.ts";
import { ControlEndpoint } from "../control.ts";
import type { VirtioDeviceModel, DeviceEnv } from "../../../devices/types.ts";
import { ABSENT_QUEUE } from "../../vring/device-queue.ts";
import { viewsOf } from "../../../guest/views.ts";
import { RequestQueue } from "./request-queue.ts";
import { ArgoEndpoint, type EndpointHandler } from "../endpoint.ts";
import { OpenBudget } from "./budget.ts";
import { RequestAssembler, pendingRecord, type Pending } from "./requests.ts";
import { CompletionSender } from "./completions.ts";

export { OpenBudget };

export interface ArgoBackendConfig {
  /** The backend domain's Argo driver (shared by all devices it serves). */
  argo: GuestArgo;
  /** Allocator of the backend domain's memory. */
  heap: GuestHeap;
  entry: DeviceEntry;
  frontendDomid: number;
  model: VirtioDeviceModel;
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

export class ArgoBackend {
  readonly entry: DeviceEntry;
  /** `batched`: completions that went in batches (TF_BATCH), not one message each. */
  readonly stats = { requests: 0, completions: 0, protocolErrors: 0, bytesIn: 0, bytesOut: 0, eagain: 0, budgetWaits: 0, batched: 0 };
  private readonly cfg: ArgoBackendConfig;
  private readonly endpoint: ArgoEndpoint;
  private readonly requests: RequestAssembler;
  private readonly completions: CompletionSender;
  private readonly ctrlHdr: ControlHeader = { type: 0, msgId: 0, devNum: 0, token: 0, msgSize: 0 };
  /** The model's queues; null for a queue the driver left at size 0. */
  private queues: Array<RequestQueue | null> = [];
  private readonly control: ControlEndpoint;
  /** Queues with requests the model has not been told about (one flag per queue). */
  private kicked: Uint8Array = new Uint8Array(0);
  private notifying = false;
  private stopped = false;

  constructor(cfg: ArgoBackendConfig) {
    this.cfg = cfg;
    this.entry = cfg.entry;
    const e = cfg.entry;
    this.endpoint = new ArgoEndpoint(cfg.argo, cfg.heap, {
      localPort: e.backendPort, peerDomid: cfg.frontendDomid, peerPort: e.frontendPort, ringLen: e.ringLen, maxMessage: e.maxMessage,
    }, KIND_REQUEST, this.drainHooks(), this.stats);
    const budget = cfg.budget ?? new OpenBudget(cfg.argo.domain.memory.buffer.byteLength / 4);
    this.requests = new RequestAssembler(this.endpoint, cfg.heap, budget, cfg.maxRequestBytes ?? (1 << 20) + 4096, {
      hasQueue: (q) => !!this.queues[q],
      submit: (req) => this.submit(req),
      fail: (req) => this.complete(req, 0, true),
      refuse: (id, q) => this.refuse(id, q),
    }, this.stats);
    this.completions = new CompletionSender(this.endpoint, this.stats, (req) => this.requests.release(req));
    this.control = new ControlEndpoint(cfg.model, {
      activate: (sizes, features) => this.activate(sizes, features),
      reset: () => this.resetDevice(),
      transportFeatures: (asked) => this.transportFeatures(asked),
    });
  }

  /** Registers the request ring (single partner: the frontend) and starts serving. Returns 0 or a negative errno. */
  start(): number {
    const rc = this.endpoint.start();
    if (rc < 0) return rc;
    this.endpoint.drain();
    return 0;
  }

  /**
   * Stops serving: unregisters the ring, drops what is in flight, and gives every page this
   * backend took back to its domain's heap (ring, gfn list, scratch, request buffers),
   * and their bytes to the frontend's budget.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.endpoint.stop();
    this.cfg.model.reset(); // the model drops its chains before their memory goes
    this.requests.stop();
    this.completions.queue.clear((req) => this.requests.release(req));
    this.closeQueues();
  }

  /** Sends an EVENT_CONFIG to the frontend (config space changed). */
  configChanged(): void {
    this.sendControl(CTRL_EVENT, Ctrl.EVENT_CONFIG, 0, new Uint8Array(0));
  }

  // --- what a drain of our ring does ---------------------------------------------

  /** The endpoint's hooks: private to this backend (made once, not per message). */
  private drainHooks(): EndpointHandler {
    return {
      flush: () => this.flush(),
      onControl: (at, n) => this.onControl(at, n),
      onData: (h, fragLen) => this.requests.onData(h, fragLen),
      drained: () => this.drained(),
    };
  }

  private flush(): void {
    const rc = this.endpoint.flushControl();
    if (rc < 0 && rc !== -EAGAIN) this.stats.protocolErrors++; // that reply is dropped; the rest go on
    this.flushCompletions();
  }

  /**
   * The model hears of every request this drain made available at once, as a device hears
   * one kick for a batch: one pass over its queue, one completion batch.
   */
  private drained(): void {
    this.notifyModel();
    this.flushCompletions();
  }

  /** SET_TRANSPORT_FEATURES: batches both ways if the frontend asked (our reply goes ahead of any batch). */
  private transportFeatures(asked: number): number {
    const accepted = asked & TF_BATCH;
    this.endpoint.batchesIn = this.endpoint.batchesOut = accepted !== 0;
    return accepted;
  }

  private onControl(at: number, n: number): void {
    const dv = this.endpoint.dv;
    if (!decodeControl(dv, at, n, this.ctrlHdr) || this.ctrlHdr.type !== CTRL_REQUEST || this.ctrlHdr.devNum !== this.entry.devNum) {
      this.stats.protocolErrors++;
      return;
    }
    const payload = new Uint8Array(dv.buffer, at + CONTROL_HEADER_SIZE, n - CONTROL_HEADER_SIZE);
    const reply = this.control.handle(this.ctrlHdr.msgId, payload);
    this.sendControl(CTRL_RESPONSE, reply.error ? Ctrl.ERROR : this.ctrlHdr.msgId, this.ctrlHdr.token, reply.data);
  }

  private sendControl(type: number, msgId: number, token: number, data: Uint8Array): void {
    // Kept until the frontend's ring or the rate limit takes it (a dropped reply would leave
    // the driver's call waiting forever); a frontend that never reads fills the outbox and
    // its further requests go unanswered, counted.
    if (this.endpoint.postControl(type, msgId, this.entry.devNum, token, data) < 0) this.stats.protocolErrors++;
  }

  // --- requests to the model ------------------------------------------------------

  /** Makes a complete request available to the device model. */
  private submit(req: Pending): void {
    req.head = -2; // with the model: no more fragments (RequestAssembler refuses them)
    this.queues[req.queue]!.add(req);
    this.kicked[req.queue] = 1;
    if (!this.endpoint.draining) this.notifyModel();
  }

  /**
   * queueNotify for every queue that got requests since the last call, round again until
   * nothing is flagged (a request submitted while the model serves is not left behind).
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
    if (!this.endpoint.draining) this.flushCompletions(); // inside a drain, drained() sends them
  }

  // --- completions ----------------------------------------------------------------

  /** A request refused before it had a buffer: an error completion by id, nothing held. */
  private refuse(requestId: number, queue: number): void {
    this.completions.post(pendingRecord(requestId, queue, 0, 0, -1, 0), 0, true);
    this.flushCompletions();
  }

  /**
   * Queues `req`'s completion. Inside a drain (the model serving what it just read) the
   * completions go out together at its end, as batches where the frontend agreed; a model
   * completing on its own time (console input, a network frame) sends at once.
   */
  private complete(req: Pending, written: number, error: boolean): void {
    this.requests.pending.delete(req.id);
    this.stats.completions++;
    this.completions.post(req, written, error);
    if (!this.endpoint.draining && !this.notifying) this.flushCompletions();
  }

  /** Sends queued completions in order until the frontend's ring is full. */
  private flushCompletions(): void {
    if (this.stopped) return;
    // -EAGAIN: the hypervisor queued us; its VIRQ brings us back to drain().
    if (this.completions.queue.flush() === -EAGAIN) this.stats.eagain++;
  }

  // --- device life cycle --------------------------------------------------------

  private activate(sizes: readonly number[], features: bigint): void {
    // Queues the driver left at size 0 get none; requests naming them are refused.
    const views = viewsOf(this.cfg.argo.domain.memory);
    const done = (req: Pending, written: number): void => this.complete(req, written, false);
    this.queues = sizes.map((size) => (size > 0 ? new RequestQueue(size, views, done) : null));
    this.kicked = new Uint8Array(sizes.length);
    const env: DeviceEnv = {
      queues: this.queues.map((q) => q ?? ABSENT_QUEUE),
      features,
      configChanged: () => this.configChanged(),
      deny: (perm, detail) => this.cfg.deny(perm, detail),
    };
    this.cfg.model.activate(env);
  }

  private resetDevice(): void {
    this.cfg.model.reset();
    const pending = this.requests.pending;
    for (const req of pending.values()) this.completions.post(req, 0, true);
    pending.clear();
    this.closeQueues(); // the model dropped its chains (reset above); a late push changes nothing
    this.flushCompletions();
  }

  private closeQueues(): void {
    for (const q of this.queues) q?.close();
    this.queues = [];
  }
}
