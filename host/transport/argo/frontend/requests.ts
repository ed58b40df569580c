// The frontend's request path: a chain popped from a guest vring becomes a request record
// (ids from a counter, records reused), and goes to the backend as Argo messages whose
// iovs point straight at the driver's readable buffers (no staging copy): the hypervisor
// copies them once into the backend's ring. A request larger than one message goes as
// fragments, in order, through the endpoint's send queue; requests popped together go as
// batches when the backend agreed to them (TF_BATCH): one sendv for up to MAX_BATCH.
import type { ChainBuffers } from "../../vring/queue-sides.ts";
import { FLAG_FIRST, FLAG_LAST, KIND_REQUEST, type DataHeader } from "../wire.ts";
import { MAXIOV } from "../../../abi/argo.ts";
import type { ArgoEndpoint } from "../endpoint.ts";
import { SendQueue, type Sender } from "../send-queue.ts";

/** A request popped from a guest vring, being sent or waiting for its completion. */
export interface InFlight {
  id: number;
  queue: number;
  head: number;
  /** Readable pieces: [gpa, len] pairs; rIndex/rSkip say where the next fragment starts. */
  rGpa: number[];
  rLen: number[];
  rIndex: number;
  rSkip: number;
  readableTotal: number;
  sentBytes: number;
  /** Writable pieces of the chain, where the completion's bytes go. */
  wGpa: number[];
  wLen: number[];
  capacity: number;
  received: number;
  completionTotal: number;
  /** In the send queue (fragments still to send). */
  queued: boolean;
}

function newInFlight(): InFlight {
  return {
    id: 0, queue: 0, head: 0, rGpa: [], rLen: [], rIndex: 0, rSkip: 0, readableTotal: 0, sentBytes: 0,
    wGpa: [], wLen: [], capacity: 0, received: 0, completionTotal: 0, queued: false,
  };
}

/**
 * The requests in flight, by id. This side chooses the ids, so it chooses one whose slot
 * (id & mask) is free, and a lookup is one array read and an id compare: no hashing, and
 * no Map delete per completion (a set and a delete per request showed as 5% of blk 4 KiB
 * at QD1). A backend's id is checked against the record in its slot, so an invented id
 * finds nothing. The table doubles when half full; ids of one slot under the old mask
 * cannot share a slot under the new one, so growing never collides.
 */
export class RequestTable {
  private slots: Array<InFlight | null> = new Array<InFlight | null>(64).fill(null);
  private mask = 63;
  private count = 0;
  /** Finished records, reused: no allocation per request on the data path. */
  private readonly spare: InFlight[] = [];
  /**
   * Next request id. Ids come from a counter, never from the chain head: a request failed
   * here (bad completion, reset) frees its head at once while the backend may still answer
   * it, and a head-derived id would deliver that stale answer into the next chain.
   */
  private nextId = 1;

  get size(): number {
    return this.count;
  }

  get(id: number): InFlight | undefined {
    const req = this.slots[id & this.mask];
    return req !== null && req.id === id ? req : undefined;
  }

  /** Records chain `c` of queue `q` under a fresh id. */
  track(q: number, c: ChainBuffers): InFlight {
    const req = this.spare.pop() ?? newInFlight();
    req.id = this.allocId();
    req.queue = q;
    req.head = c.head;
    req.rIndex = req.rSkip = req.sentBytes = req.received = req.completionTotal = 0;
    req.readableTotal = c.readableBytes;
    req.capacity = c.writableBytes;
    req.queued = false;
    // Written by index into the record's own arrays, cut to length once: a length reset and
    // pushes per request showed as 2% of blk 4 KiB QD32 (V8's array length setter).
    const { rGpa, rLen, wGpa, wLen } = req;
    let r = 0;
    let w = 0;
    for (let i = 0; i < c.count; i++) {
      const len = c.len[i];
      if (len === 0) continue;
      if (c.writable[i]) { wGpa[w] = c.gpa[i]; wLen[w++] = len; }
      else { rGpa[r] = c.gpa[i]; rLen[r++] = len; }
    }
    if (rGpa.length !== r) rGpa.length = rLen.length = r;
    if (wGpa.length !== w) wGpa.length = wLen.length = w;
    this.slots[req.id & this.mask] = req;
    this.count++;
    return req;
  }

  /** Forgets `req` (it completed or failed); false if it was not open. */
  close(req: InFlight): boolean {
    const at = req.id & this.mask;
    if (this.slots[at] !== req) return false;
    this.slots[at] = null;
    this.count--;
    this.spare.push(req);
    return true;
  }

  /** The open requests, copied (callers close them while they walk). */
  snapshot(): InFlight[] {
    const out: InFlight[] = [];
    for (const req of this.slots) if (req !== null) out.push(req);
    return out;
  }

  /** The ids in flight (for tests and diagnostics). */
  ids(): number[] {
    return this.snapshot().map((r) => r.id);
  }

  /**
   * A 32-bit id, nonzero, whose slot is free. The table is at most half full (it grows
   * first), so the walk from the counter ends within mask + 1 steps.
   */
  private allocId(): number {
    if (2 * (this.count + 1) > this.slots.length) this.grow();
    let id = this.nextId;
    while (this.slots[id & this.mask] !== null) id = (id + 1) >>> 0 || 1;
    this.nextId = (id + 1) >>> 0 || 1;
    return id;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Array<InFlight | null>(old.length * 2).fill(null);
    this.mask = this.slots.length - 1;
    for (const req of old) if (req !== null) this.slots[req.id & this.mask] = req;
  }
}

/** Sends requests' fragments in order: one message is the header and up to 7 readable pieces. */
export class RequestSender implements Sender<InFlight> {
  readonly queue: SendQueue<InFlight>;
  private readonly endpoint: ArgoEndpoint;
  private readonly stats: { bytesOut: number };
  private readonly failed: (req: InFlight, rc: number) => void;
  private readonly h: DataHeader = { kind: KIND_REQUEST, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };

  /** `failed` hears of a request whose send the hypervisor refused (not -EAGAIN). */
  constructor(endpoint: ArgoEndpoint, stats: { bytesOut: number }, failed: (req: InFlight, rc: number) => void) {
    this.endpoint = endpoint;
    this.stats = stats;
    this.failed = failed;
    this.queue = new SendQueue<InFlight>(this);
  }

  send(req: InFlight): void {
    req.queued = true;
    this.queue.push(req);
  }

  /** Takes `req` out of the queue (it completed before all its fragments went). */
  withdraw(req: InFlight): void {
    if (!req.queued) return;
    req.queued = false;
    this.queue.remove(req);
  }

  isSent(req: InFlight): boolean {
    return req.sentBytes >= req.readableTotal && req.rIndex >= req.rGpa.length;
  }

  left(req: InFlight, rc: number): void {
    req.queued = false;
    if (rc < 0) this.failed(req, rc);
  }

  beginBatch(): void {
    this.endpoint.beginBatch();
  }

  /** A request goes whole into the batch if nothing of it went yet and its pieces and bytes fit. */
  addToBatch(req: InFlight): boolean {
    const ep = this.endpoint;
    const pieces = req.rGpa.length;
    if (req.sentBytes !== 0 || !ep.fitsRecord(req.readableTotal, pieces)) return false;
    let k = ep.nextIov;
    for (let i = 0; i < pieces; i++, k++) {
      ep.iovGpa[k] = req.rGpa[i];
      ep.iovLen[k] = req.rLen[i];
    }
    const h = this.h;
    h.flags = FLAG_FIRST | FLAG_LAST;
    h.queue = req.queue;
    h.requestId = req.id;
    h.offset = 0;
    h.total = req.readableTotal;
    h.writable = req.capacity;
    ep.addRecord(h, pieces);
    return true;
  }

  sendBatch(): number {
    return this.endpoint.sendBatch(); // counts bytesOut and batched in our stats
  }

  /** One message: header + up to 7 readable pieces, at most maxPayload bytes. */
  sendNext(req: InFlight): number {
    const ep = this.endpoint;
    const iovGpa = ep.iovGpa;
    const iovLen = ep.iovLen;
    const maxPayload = ep.maxPayload;
    let n = 1;
    let bytes = 0;
    let idx = req.rIndex;
    let skip = req.rSkip;
    while (idx < req.rGpa.length && n < MAXIOV && bytes < maxPayload) {
      const take = Math.min(req.rLen[idx] - skip, maxPayload - bytes);
      iovGpa[n] = req.rGpa[idx] + skip;
      iovLen[n] = take;
      bytes += take;
      n++;
      if (skip + take === req.rLen[idx]) { idx++; skip = 0; } else skip += take;
    }
    const h = this.h;
    h.flags = (req.sentBytes === 0 ? FLAG_FIRST : 0) | (req.sentBytes + bytes >= req.readableTotal ? FLAG_LAST : 0);
    h.queue = req.queue;
    h.requestId = req.id;
    h.offset = req.sentBytes;
    h.total = req.readableTotal;
    h.writable = req.capacity;
    const rc = ep.sendData(h, n);
    if (rc >= 0) {
      req.sentBytes += bytes;
      req.rIndex = idx;
      req.rSkip = skip;
      this.stats.bytesOut += bytes;
    }
    return rc;
  }
}
