// One side of a VirtIO-Argo device pair on Argo: the ring it registered for its peer's
// messages, its scratch pages, the budgeted drain that reads that ring and hands each
// message to the side by plane, and the sends of data and control messages. The frontend
// and the backend are two users of this; what a peer may write into the ring and how it
// is checked is written once, here.
//
// The peer is another domain and is not trusted. The ring itself is written only by the
// hypervisor (the reader in Wasm validates every header it finds), and its messages carry
// the sender's domid, set by the hypervisor: a message from anyone but the peer, of an
// unknown plane, or with a malformed data header is consumed and counted, never acted on.
import { viewsOf, type MemoryViews } from "../../guest/views.ts";
import type { GuestArgo, GuestRing } from "../../guest/argo-driver.ts";
import type { GuestHeap } from "../../guest/heap.ts";
import { READ_EMPTY } from "../../abi/argo-reader.ts";
import { MSG_HEADER_SIZE, MSG_SLOT_SIZE, MAXIOV, PAGE_SIZE, RING_EXISTS } from "../../abi/argo.ts";
import {
  CONTROL_HEADER_SIZE, DATA_HEADER_SIZE, FLAG_FIRST, FLAG_LAST, KIND_BATCH, MAX_BATCH, MAX_CONTROL_PAYLOAD,
  MSG_CONTROL, MSG_DATA, decodeData, encodeData, type DataHeader,
} from "./wire.ts";
import { ControlOutbox } from "./control-outbox.ts";
import { releaseRing } from "../bus/kernel.ts";

/** Where the two rings of a pair are and how large a message may be. */
export interface EndpointAddress {
  /** Our ring's port, and the port our messages come from. */
  localPort: number;
  peerDomid: number;
  peerPort: number;
  /** Both rings' data length (the device table gives one length for the pair). */
  ringLen: number;
  /** Largest message the pair's policy allows. */
  maxMessage: number;
}

/** What a side does with the messages its endpoint reads. */
export interface EndpointHandler {
  /** Before a drain reads: send what waits (fragments, control messages). */
  flush(): void;
  /** A control message (consumed): `n` bytes at `at` in the side's memory, at most CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD of them there. */
  onControl(at: number, n: number): void;
  /**
   * A data message of the kind this side receives (or one record of a batch), its header
   * decoded and checked (its fragment lies inside its stream). The payload is still in
   * the ring: the side takes it with `receive` or `drop` and returns true, or returns
   * false to leave it where it is (it waits for a resource; a later drain reads it again,
   * and a batch goes on from that record).
   */
  onData(h: DataHeader, fragLen: number): boolean;
  /** After the reads of one drain (`got` messages handled), still inside it. */
  drained(got: number): void;
  /** After the drain (draining is false again). */
  drainEnded?(): void;
}

/** Counted in the side's own stats: protocol errors, and what went in batches (records, their payload bytes). */
export interface EndpointStats {
  protocolErrors: number;
  bytesOut: number;
  batched: number;
}

/** Work per VIRQ is bounded; the rest runs in a later microtask so one peer cannot starve others. */
export const DRAIN_BUDGET = 256;

// Scratch layout (page-aligned; every offset is u32-aligned).
const OUTBOX_AT = 0; // one control message being sent: CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD bytes
const DATA_HEADER_AT = 512; // the data header of the message being sent (a batch: its MAX_BATCH + 1 headers)
const PEEK_IOV_AT = 1024; // the reader's one {le32 gpa, le32 len} for a peek
const PEEK_AT = 1536; // a message's first bytes: data header, a batch's headers, or a whole control message
const SCATTER_AT = 2048; // the {gpa, len} list a data payload is scattered into

export class ArgoEndpoint {
  readonly address: EndpointAddress;
  /** Largest payload of one data message after its header (the peer's ring and the policy bound it). */
  readonly maxPayload: number;
  /** iovs of the next data message; slot 0 is the header (sendData fills it). */
  readonly iovGpa = new Float64Array(MAXIOV);
  readonly iovLen = new Float64Array(MAXIOV);
  /** Pieces a received payload may be scattered into at most. */
  readonly maxScatter: number;
  private readonly argo: GuestArgo;
  private readonly heap: GuestHeap;
  private readonly views: MemoryViews;
  private readonly handler: EndpointHandler;
  private readonly stats: EndpointStats;
  /** The kind of data message this side receives (KIND_REQUEST or KIND_COMPLETION). */
  private readonly recvKind: number;
  private readonly scratch: number;
  private readonly scratchPages: number;
  private readonly outbox: ControlOutbox;
  private readonly hdr: DataHeader = { kind: 0, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };
  private ring: GuestRing | null = null;
  private unsubscribe: (() => void) | null = null;
  private isDraining = false;
  private readonly redrain = (): void => this.drain();
  /** Batches (TF_BATCH): accepted from the peer, and sent to it. Both false until the control plane agreed. */
  batchesIn = false;
  batchesOut = false;
  /** Inside a batch being read: where the current record's payload starts in the message. */
  private inBatch = false;
  private recordSkip = 0;
  /** The record a batch left in the ring (waiting for a resource) goes on from. */
  private batchResume = 0;
  /** The batch being built: records, iovs used (iov 0 is the headers), payload bytes. */
  private batchCount = 0;
  private batchIovs = 1;
  private batchBytes = 0;
  private readonly batchHdr: DataHeader = { kind: KIND_BATCH, flags: 0, queue: 0, requestId: 0, offset: 0, total: 0, writable: 0 };

  constructor(
    argo: GuestArgo, heap: GuestHeap, address: EndpointAddress, recvKind: number,
    handler: EndpointHandler, stats: EndpointStats, maxScatter = 2,
  ) {
    this.argo = argo;
    this.heap = heap;
    this.address = address;
    this.recvKind = recvKind;
    this.handler = handler;
    this.stats = stats;
    this.maxScatter = maxScatter;
    this.maxPayload = Math.min(address.maxMessage, address.ringLen - MSG_HEADER_SIZE - MSG_SLOT_SIZE) - DATA_HEADER_SIZE;
    this.scratchPages = Math.ceil((SCATTER_AT + 8 * maxScatter) / PAGE_SIZE);
    this.scratch = heap.allocPages(this.scratchPages);
    this.views = viewsOf(argo.domain.memory);
    this.outbox = new ControlOutbox(this.views, this.scratch + OUTBOX_AT, (gpa, size) =>
      argo.send(address.peerDomid, address.peerPort, gpa, size, MSG_CONTROL, address.localPort));
  }

  /** This side's memory as a DataView (made again after an emulator's memory grew). */
  get dv(): DataView {
    return this.views.fresh().dv;
  }

  /** Inside a drain: completions wait for its end to make one interrupt decision. */
  get draining(): boolean {
    return this.isDraining;
  }

  /** Registers our ring for the peer's messages and drains it on every VIRQ. Returns 0 or a negative errno. */
  start(): number {
    const a = this.address;
    const r = this.argo.registerRing(a.localPort, a.peerDomid, a.ringLen);
    if (typeof r === "number") return r;
    this.ring = r;
    this.batchResume = 0;
    this.unsubscribe = this.argo.domain.onVirq(() => this.drain());
    return 0;
  }

  /** Unregisters the ring and gives its pages and the scratch pages back to the heap. Reads nothing more. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.ring) releaseRing(this.argo, this.heap, this.ring);
    this.ring = null;
    this.outbox.clear();
    this.heap.freePagesAt(this.scratch, this.scratchPages);
  }

  // --- receive ------------------------------------------------------------------

  /** Reads what the ring holds, at most DRAIN_BUDGET messages now and the rest from a microtask. */
  drain(): void {
    if (this.isDraining || this.ring === null) return;
    this.isDraining = true;
    try {
      this.handler.flush();
      let got = 0;
      let budget = DRAIN_BUDGET;
      while (budget > 0 && this.ring !== null && this.readOne()) {
        got++;
        budget--;
      }
      if (budget === 0) queueMicrotask(this.redrain);
      // Senders waiting for space on our ring may go on now (only consuming frees space).
      if (got > 0 && this.ring !== null) this.argo.notify();
      this.handler.drained(got);
    } finally {
      this.isDraining = false;
      this.handler.drainEnded?.();
    }
  }

  /**
   * Reads one message's first bytes without consuming it and hands it to the side by
   * plane. Only the 24-byte data header is peeked: the payload is read once, by receive(),
   * straight into where it belongs. False when the ring is empty or unusable.
   */
  private readOne(): boolean {
    const argo = this.argo;
    const dv = this.dv;
    const peekIov = this.scratch + PEEK_IOV_AT;
    const peekAt = this.scratch + PEEK_AT;
    dv.setUint32(peekIov, peekAt, true);
    dv.setUint32(peekIov + 4, DATA_HEADER_SIZE, true);
    const n = argo.recv(this.ring!, peekIov, 1, 0, false);
    if (n === READ_EMPTY) return false;
    if (n < 0) {
      // Our own ring is corrupt (only the hypervisor and we write it): count and stop reading.
      this.stats.protocolErrors++;
      return false;
    }
    const meta = argo.meta;
    if (meta.srcDomid !== this.address.peerDomid) return this.drop();
    const type = meta.messageType;
    if (type === MSG_DATA) {
      const h = this.hdr;
      if (!decodeData(dv, peekAt, n, h)) return this.drop();
      if (h.kind === this.recvKind) return this.handler.onData(h, n - DATA_HEADER_SIZE);
      if (h.kind === KIND_BATCH && this.batchesIn) return this.readBatch(n, h);
      return this.drop();
    }
    if (type === MSG_CONTROL) {
      // Control messages are rare and small: read again whole (at most the largest valid
      // one; the side's decoder refuses any n above that) and consume.
      dv.setUint32(peekIov + 4, CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD, true);
      argo.recv(this.ring!, peekIov, 1, 0, true);
      this.handler.onControl(peekAt, n);
      return true;
    }
    return this.drop();
  }

  /**
   * One batch (wire.ts): its headers are peeked at once and checked to add up to the
   * message; then each record is handled as a message of its own, its payload read from
   * where it sits (skip), and the message is consumed after the last. A malformed record
   * is refused alone: the totals were checked, so the records after it are where their
   * headers say. Bounded: at most MAX_BATCH records.
   */
  private readBatch(n: number, b: DataHeader): boolean {
    const count = b.requestId; // the batch header's record count
    const headBytes = DATA_HEADER_SIZE * (1 + count);
    if (count < 2 || count > MAX_BATCH || b.flags !== 0 || b.queue !== 0 || b.offset !== 0 || b.writable !== 0 ||
      b.total !== n - DATA_HEADER_SIZE || n < headBytes) {
      this.batchResume = 0;
      return this.drop();
    }
    const argo = this.argo;
    const dv = this.dv;
    const peekIov = this.scratch + PEEK_IOV_AT;
    const peekAt = this.scratch + PEEK_AT;
    dv.setUint32(peekIov + 4, headBytes, true);
    argo.recv(this.ring!, peekIov, 1, 0, false);
    // The records' totals must add up to the message: each is a le32, seven of them cannot overflow a double.
    let sum = headBytes;
    for (let i = 0; i < count; i++) sum += dv.getUint32(peekAt + DATA_HEADER_SIZE * (1 + i) + 12, true);
    if (sum !== n) {
      this.batchResume = 0;
      return this.drop();
    }
    const h = this.hdr;
    let skip = headBytes;
    for (let i = 0; i < count; i++) {
      const at = peekAt + DATA_HEADER_SIZE * (1 + i);
      const len = dv.getUint32(at + 12, true);
      const recordSkip = skip;
      skip += len;
      if (i < this.batchResume) continue; // handled before this message waited
      if (!decodeData(dv, at, DATA_HEADER_SIZE + len, h) || h.kind !== this.recvKind ||
        (h.flags & (FLAG_FIRST | FLAG_LAST)) !== (FLAG_FIRST | FLAG_LAST) || h.offset !== 0) {
        this.stats.protocolErrors++;
        continue;
      }
      this.inBatch = true;
      this.recordSkip = recordSkip;
      const handled = this.handler.onData(h, len);
      this.inBatch = false;
      if (!handled) {
        this.batchResume = i;
        return false;
      }
      if (this.ring === null) return true; // stopped by what the record did
    }
    this.batchResume = 0;
    argo.recv(this.ring!, peekIov, 0, 0, true);
    return true;
  }

  /**
   * Refuses the message being handled (or the batch record): consumes it unused and
   * counts a protocol error. Returns true (handled). A record is not consumed alone: the
   * batch is, after its last record.
   */
  drop(): boolean {
    if (!this.inBatch) this.argo.recv(this.ring!, this.scratch + PEEK_IOV_AT, 0, 0, true);
    this.stats.protocolErrors++;
    return true;
  }

  /** Sets piece `i` (< maxScatter) of the list the next receive() scatters into. */
  setPiece(i: number, gpa: number, len: number): void {
    const dv = this.dv;
    const at = this.scratch + SCATTER_AT + 8 * i;
    dv.setUint32(at, gpa, true);
    dv.setUint32(at + 4, len, true);
  }

  /**
   * Takes the payload of the message being handled, scattered into the first `pieces` set
   * by setPiece, and consumes the message (a batch record: reads its payload where it
   * sits; the batch is consumed after its last record).
   */
  receive(pieces: number): void {
    if (this.inBatch) this.argo.recv(this.ring!, this.scratch + SCATTER_AT, pieces, this.recordSkip, false);
    else this.argo.recv(this.ring!, this.scratch + SCATTER_AT, pieces, DATA_HEADER_SIZE, true);
  }

  // --- send ---------------------------------------------------------------------

  /** Sends a data message: header `h`, then iovGpa/iovLen[1 .. n). Returns sendv's rc. */
  sendData(h: DataHeader, n: number): number {
    const a = this.address;
    const hdrAt = this.scratch + DATA_HEADER_AT;
    encodeData(this.dv, hdrAt, h);
    this.iovGpa[0] = hdrAt;
    this.iovLen[0] = DATA_HEADER_SIZE;
    return this.argo.sendGather(a.peerDomid, a.peerPort, this.iovGpa, this.iovLen, n, MSG_DATA, a.localPort);
  }

  /** Starts building a batch (only when batchesOut; see fitsRecord). */
  beginBatch(): void {
    this.batchCount = 0;
    this.batchIovs = 1;
    this.batchBytes = 0;
  }

  /** Would a whole record of `bytes` payload in `pieces` iovs still fit in the batch being built? */
  fitsRecord(bytes: number, pieces: number): boolean {
    return this.batchesOut && this.batchCount < MAX_BATCH && this.batchIovs + pieces <= MAXIOV &&
      DATA_HEADER_SIZE * (2 + this.batchCount) + this.batchBytes + bytes <= this.maxPayload + DATA_HEADER_SIZE;
  }

  /** Where the next record's payload iovs go in iovGpa/iovLen. */
  get nextIov(): number {
    return this.batchIovs;
  }

  /** Adds a record (fitsRecord said yes): header `h`, whose h.total payload bytes the caller put in `pieces` iovs from nextIov on. */
  addRecord(h: DataHeader, pieces: number): void {
    encodeData(this.dv, this.scratch + DATA_HEADER_AT + DATA_HEADER_SIZE * (1 + this.batchCount), h);
    this.batchCount++;
    this.batchIovs += pieces;
    this.batchBytes += h.total;
  }

  /** Sends the batch built: one message, the headers in iov 0 and the payloads after. Returns sendv's rc; counts what went. */
  sendBatch(): number {
    const a = this.address;
    const b = this.batchHdr;
    const headBytes = DATA_HEADER_SIZE * (1 + this.batchCount);
    b.requestId = this.batchCount;
    b.total = headBytes - DATA_HEADER_SIZE + this.batchBytes;
    encodeData(this.dv, this.scratch + DATA_HEADER_AT, b);
    this.iovGpa[0] = this.scratch + DATA_HEADER_AT;
    this.iovLen[0] = headBytes;
    const rc = this.argo.sendGather(a.peerDomid, a.peerPort, this.iovGpa, this.iovLen, this.batchIovs, MSG_DATA, a.localPort);
    if (rc >= 0) {
      this.stats.bytesOut += this.batchBytes;
      this.stats.batched += this.batchCount;
    }
    return rc;
  }

  /** Sends a control message, or keeps it in order until the peer's ring takes it (ControlOutbox.post). */
  postControl(type: number, msgId: number, devNum: number, token: number, payload: Uint8Array): number {
    return this.outbox.post(type, msgId, devNum, token, payload);
  }

  /** Sends the control messages that wait: 0, -EAGAIN, or the errno that dropped one. */
  flushControl(): number {
    return this.outbox.waiting ? this.outbox.flush() : 0;
  }

  /** Drops the control messages that wait (the peer is gone). */
  clearControl(): void {
    this.outbox.clear();
  }

  /**
   * Is the peer's ring still there? space_required larger than any ring: Xen answers
   * EMSGSIZE and leaves our pending-space entry alone (a satisfiable size would cancel it:
   * fill_ring_data).
   */
  peerRingExists(): boolean {
    const q = this.argo.query(this.address.peerDomid, this.address.peerPort, 0xffffffff);
    return q.rc >= 0 && (q.flags & RING_EXISTS) !== 0;
  }
}
