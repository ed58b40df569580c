// The backend's completion path: what the device model wrote goes back to the frontend
// as completion messages, in order, through the endpoint's send queue: the header, then
// the written bytes straight from the request buffer (the hypervisor copies them into the
// frontend's ring). A completion larger than one message goes as fragments; completions
// ready together (the model served a drain's requests) go as batches when the frontend
// agreed to them (TF_BATCH): one sendv for up to MAX_BATCH of them.
import { FLAG_ERROR, FLAG_FIRST, FLAG_LAST, KIND_COMPLETION, type DataHeader } from "../wire.ts";
import type { ArgoEndpoint } from "../endpoint.ts";
import { SendQueue, type Sender } from "../send-queue.ts";
import type { Pending } from "./requests.ts";

export class CompletionSender implements Sender<Pending> {
  readonly queue: SendQueue<Pending>;
  private readonly endpoint: ArgoEndpoint;
  private readonly stats: { bytesOut: number };
  /** A completion left the queue (sent, or its send refused): its buffer can go. */
  private readonly done: (req: Pending) => void;
  private readonly h: DataHeader = { kind: KIND_COMPLETION, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };

  constructor(endpoint: ArgoEndpoint, stats: { bytesOut: number }, done: (req: Pending) => void) {
    this.endpoint = endpoint;
    this.stats = stats;
    this.done = done;
    this.queue = new SendQueue<Pending>(this);
  }

  /** Queues `req`'s completion: `written` bytes of its writable room, or an error. */
  post(req: Pending, written: number, error: boolean): void {
    req.written = written;
    req.sent = 0;
    req.error = error;
    this.queue.push(req);
  }

  isSent(req: Pending): boolean {
    return req.sent >= req.written;
  }

  left(req: Pending): void {
    // A refused send (the frontend's ring is gone) drops the completion: nobody can read it.
    this.done(req);
  }

  beginBatch(): void {
    this.endpoint.beginBatch();
  }

  addToBatch(req: Pending): boolean {
    const ep = this.endpoint;
    const pieces = req.written > 0 ? 1 : 0;
    if (req.sent !== 0 || !ep.fitsRecord(req.written, pieces)) return false;
    const k = ep.nextIov;
    ep.iovGpa[k] = req.gpa + req.total;
    ep.iovLen[k] = req.written;
    const h = this.h;
    h.flags = FLAG_FIRST | FLAG_LAST | (req.error ? FLAG_ERROR : 0);
    h.queue = req.queue;
    h.requestId = req.id;
    h.offset = 0;
    h.total = h.writable = req.written;
    ep.addRecord(h, pieces);
    return true;
  }

  sendBatch(): number {
    return this.endpoint.sendBatch(); // counts bytesOut and batched in our stats
  }

  sendNext(req: Pending): number {
    const ep = this.endpoint;
    const chunk = Math.min(ep.maxPayload, req.written - req.sent);
    const h = this.h;
    h.flags = (req.sent === 0 ? FLAG_FIRST : 0) | (req.sent + chunk >= req.written ? FLAG_LAST : 0) | (req.error ? FLAG_ERROR : 0);
    h.queue = req.queue;
    h.requestId = req.id;
    h.offset = req.sent;
    h.total = h.writable = req.written;
    ep.iovGpa[1] = req.gpa + req.total + req.sent;
    ep.iovLen[1] = chunk;
    const rc = ep.sendData(h, chunk > 0 ? 2 : 1);
    if (rc >= 0) {
      req.sent += chunk;
      this.stats.bytesOut += chunk;
      if (chunk === 0) req.sent = req.written; // an empty completion is one message
    }
    return rc;
  }
}
