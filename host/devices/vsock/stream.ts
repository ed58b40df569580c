// The host end of a vsock stream connection (CID 2): what a VMM gets from VsockHub.listen
// and VsockHub.connect. Reads are pulled: bytes the VMM has not read keep occupying the
// buffer it advertised (HOST_BUF_ALLOC), so a guest writing faster than the VMM reads is
// held back by credit (5.10.6.3) instead of filling the backend's memory.
import * as V from "./layout.ts";
import type { Connection, Side, VsockHub } from "./hub.ts";
import { CreditStream, VsockError } from "./credit-stream.ts";

export { VsockError, type VsockErrorCode } from "./credit-stream.ts";

/**
 * Bytes consumed since the last advertisement after which a CREDIT_UPDATE is sent. A
 * guest out of credit has HOST_BUF_ALLOC (more than this) unacknowledged, so it always hears.
 */
const CREDIT_UPDATE_EVERY = 16 << 10;

export class VsockStream extends CreditStream {
  readonly peerCid: number;
  readonly peerPort: number;
  readonly localPort: number;
  private readonly hub: VsockHub;
  private readonly c: Connection;
  /** This end's counters, shared with the hub (which checks the guest's credit against them). */
  private readonly me: Side;
  private readonly peer: Side;
  private advertisedFwd = 0;
  private closed = false;

  /** @internal made by the hub. */
  constructor(hub: VsockHub, c: Connection, me: Side, peer: Side) {
    super();
    this.hub = hub;
    this.c = c;
    this.me = me;
    this.peer = peer;
    this.peerCid = peer.cid;
    this.peerPort = peer.port;
    this.localPort = me.port;
  }

  /** No more sending (SHUTDOWN SEND): the guest reads end of stream after the data. */
  shutdown(): void {
    if (!this.closed && !this.error) this.packet(V.OP_SHUTDOWN, V.SHUTDOWN_SEND, null);
  }

  /** Closes both directions: SHUTDOWN both, then RST, and the connection is forgotten. */
  close(): void {
    if (this.closed) return;
    if (!this.error) {
      this.packet(V.OP_SHUTDOWN, V.SHUTDOWN_BOTH, null);
      this.hub.hostReset(this.c);
    }
    this.closed = true;
    this.wake();
  }

  /** Still connected (no reset, not closed). */
  get open(): boolean {
    return !this.closed && !this.error && this.hub.isOpen(this.c);
  }

  /** @internal the guest sent RW. */
  data(payload: Uint8Array): void {
    this.receive(payload, this.me.bufAlloc); // the hub already held the guest to this credit
  }

  /** @internal */
  override fail(e: VsockError): void {
    if (!this.closed) super.fail(e);
  }

  protected credit(): number {
    return this.peer.bufAlloc - ((this.me.txCnt - this.peer.fwdCnt) >>> 0);
  }

  protected consumed(n: number): void {
    this.me.fwdCnt = (this.me.fwdCnt + n) >>> 0;
    if (!this.eof && ((this.me.fwdCnt - this.advertisedFwd) >>> 0) >= CREDIT_UPDATE_EVERY) this.packet(V.OP_CREDIT_UPDATE, 0, null);
  }

  protected packet(op: number, flags: number, payload: Uint8Array | null): void {
    this.advertisedFwd = this.me.fwdCnt; // every header carries fwd_cnt
    if (!this.hub.hostSend(this.c, op, flags, payload) && !this.closed) this.fail(new VsockError("ECONNRESET", "connection reset"));
  }

  protected sendBlocked(): VsockError | null {
    return this.closed || this.me.shut & V.SHUTDOWN_SEND ? new VsockError("EPIPE", "stream was shut down for sending") : null;
  }

  protected get closedHere(): boolean {
    return this.closed;
  }

  protected get maxChunk(): number {
    return V.MAX_PKT_PAYLOAD;
  }
}
