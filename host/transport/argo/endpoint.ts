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
  CONTROL_HEADER_SIZE, DATA_HEADER_SIZE, MAX_CONTROL_PAYLOAD, MSG_CONTROL, MSG_DATA, decodeData, encodeData,
  type DataHeader,
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
   * A data message of the kind this side receives, its header decoded and checked (its
   * fragment lies inside its stream). The payload is still in the ring: the side takes it
   * with `receive` or `drop` and returns true, or returns false to leave the message
   * where it is (it waits for a resource; a later drain reads it again).
   */
  onData(h: DataHeader, fragLen: number): boolean;
  /** After the reads of one drain (`got` messages handled), still inside it. */
  drained(got: number): void;
  /** After the drain (draining is false again). */
  drainEnded?(): void;
}

/** Protocol errors are counted in the side's own stats. */
export interface EndpointStats {
  protocolErrors: number;
}

/** Work per VIRQ is bounded; the rest runs in a later microtask so one peer cannot starve others. */
export const DRAIN_BUDGET = 256;

// Scratch layout (page-aligned; every offset is u32-aligned).
const OUTBOX_AT = 0; // one control message being sent: CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD bytes
const DATA_HEADER_AT = 512; // the data header of the message being sent
const PEEK_IOV_AT = 1024; // the reader's one {le32 gpa, le32 len} for a peek
const PEEK_AT = 1536; // a message's first bytes: data header, or a whole control message
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

  get started(): boolean {
    return this.ring !== null;
  }

  /** Registers our ring for the peer's messages and drains it on every VIRQ. Returns 0 or a negative errno. */
  start(): number {
    const a = this.address;
    const r = this.argo.registerRing(a.localPort, a.peerDomid, a.ringLen);
    if (typeof r === "number") return r;
    this.ring = r;
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
      if (!decodeData(dv, peekAt, n, h) || h.kind !== this.recvKind) return this.drop();
      return this.handler.onData(h, n - DATA_HEADER_SIZE);
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

  /** Consumes the message being handled without using it, and counts a protocol error. Returns true (handled). */
  drop(): boolean {
    this.argo.recv(this.ring!, this.scratch + PEEK_IOV_AT, 0, 0, true);
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

  /** Consumes the message being handled, its payload scattered into the first `pieces` set by setPiece. */
  receive(pieces: number): void {
    this.argo.recv(this.ring!, this.scratch + SCATTER_AT, pieces, DATA_HEADER_SIZE, true);
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

  /** Sends a control message, or keeps it in order until the peer's ring takes it (ControlOutbox.post). */
  postControl(type: number, msgId: number, devNum: number, token: number, payload: Uint8Array): number {
    return this.outbox.post(type, msgId, devNum, token, payload);
  }

  /** Control messages kept waiting. */
  get controlWaiting(): number {
    return this.outbox.waiting;
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
