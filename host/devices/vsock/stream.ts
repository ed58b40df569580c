// The host end of a vsock stream connection (CID 2): what a VMM gets from VsockHub.listen
// and VsockHub.connect. Reads are pulled: bytes the VMM has not read keep occupying the
// buffer it advertised (HOST_BUF_ALLOC), so a guest writing faster than the VMM reads is
// held back by credit (5.10.6.3) instead of filling the backend's memory.
import * as V from "./layout.ts";
import type { Connection, Side, VsockHub } from "./hub.ts";

export type VsockErrorCode = "ECONNRESET" | "ECONNREFUSED" | "ETIMEDOUT" | "EPIPE" | "EHOSTUNREACH" | "EADDRINUSE" | "EAGAIN";

/** A vsock failure, named by the errno a socket would report. */
export class VsockError extends Error {
  readonly code: VsockErrorCode;

  constructor(code: VsockErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "VsockError";
    this.code = code;
  }
}

/** Bytes consumed since the last advertisement after which a CREDIT_UPDATE is sent. */
const CREDIT_UPDATE_EVERY = 16 << 10;

export class VsockStream {
  readonly peerCid: number;
  readonly peerPort: number;
  readonly localPort: number;
  private readonly hub: VsockHub;
  private readonly c: Connection;
  private readonly me: Side;
  private readonly peer: Side;
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  private advertisedFwd = 0;
  private eof = false;
  private peerNoRead = false;
  private closed = false;
  private error: VsockError | null = null;
  private readWaiter: (() => void) | null = null;
  private creditWaiters: Array<() => void> = [];
  private creditRequested = false;

  /** @internal made by the hub. */
  constructor(hub: VsockHub, c: Connection, me: Side, peer: Side) {
    this.hub = hub;
    this.c = c;
    this.me = me;
    this.peer = peer;
    this.peerCid = peer.cid;
    this.peerPort = peer.port;
    this.localPort = me.port;
  }

  /** The next bytes the guest sent (everything buffered), or null at end of stream. Rejects after a reset. */
  async read(): Promise<Uint8Array | null> {
    while (this.buffered === 0) {
      if (this.error) throw this.error;
      if (this.eof || this.closed) return null;
      await new Promise<void>((r) => (this.readWaiter = r));
    }
    const out = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    this.chunks.length = 0;
    this.me.fwdCnt = (this.me.fwdCnt + this.buffered) >>> 0;
    this.buffered = 0;
    // Tell the guest about the room once enough was consumed. A guest out of credit has
    // HOST_BUF_ALLOC (> CREDIT_UPDATE_EVERY) unacknowledged, so it always hears of it.
    if (!this.eof && ((this.me.fwdCnt - this.advertisedFwd) >>> 0) >= CREDIT_UPDATE_EVERY) this.advertise(V.OP_CREDIT_UPDATE, 0, null);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Reads until `n` bytes or end of stream. */
  async readExactly(n: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < n) {
      const b = await this.read();
      if (!b) break;
      parts.push(b);
      got += b.length;
    }
    return new Uint8Array(Buffer.concat(parts, got));
  }

  /** Sends all of `data`, waiting for the guest's credit; rejects on reset or after shutdown. */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.error) throw this.error;
      if (this.closed || this.me.shut & V.SHUTDOWN_SEND) throw new VsockError("EPIPE", "stream was shut down for sending");
      if (this.peerNoRead) throw new VsockError("EPIPE", "the guest shut its receive side");
      const credit = this.peer.bufAlloc - ((this.me.txCnt - this.peer.fwdCnt) >>> 0);
      if (credit <= 0) {
        if (!this.creditRequested) {
          this.creditRequested = true;
          this.advertise(V.OP_CREDIT_REQUEST, 0, null);
        }
        await new Promise<void>((r) => this.creditWaiters.push(r));
        continue;
      }
      // One CREDIT_REQUEST per time the credit ran out: asking again on every update that
      // frees nothing would ping-pong with the peer's answers forever.
      this.creditRequested = false;
      const n = Math.min(credit, data.length - off, V.MAX_PKT_PAYLOAD);
      this.advertise(V.OP_RW, 0, data.slice(off, off + n));
      off += n;
    }
    if (this.error) throw this.error;
  }

  /** No more sending (SHUTDOWN SEND): the guest reads end of stream after the data. */
  shutdown(): void {
    if (!this.closed && !this.error) this.advertise(V.OP_SHUTDOWN, V.SHUTDOWN_SEND, null);
  }

  /** Closes both directions: SHUTDOWN both, then RST, and the connection is forgotten. */
  close(): void {
    if (this.closed) return;
    if (!this.error) {
      this.advertise(V.OP_SHUTDOWN, V.SHUTDOWN_BOTH, null);
      this.hub.hostReset(this.c);
    }
    this.closed = true;
    this.wake();
  }

  /** Still connected (no reset, not closed). */
  get open(): boolean {
    return !this.closed && !this.error && this.hub.isOpen(this.c);
  }

  /** Payload bytes received and not read yet. */
  get pending(): number {
    return this.buffered;
  }

  // --- from the hub -----------------------------------------------------------------

  /** @internal */
  data(payload: Uint8Array): void {
    this.chunks.push(payload);
    this.buffered += payload.length;
    this.wake();
  }

  /** @internal */
  peerShutdown(flags: number): void {
    if (flags & V.SHUTDOWN_SEND) this.eof = true;
    if (flags & V.SHUTDOWN_RCV) this.peerNoRead = true;
    this.wake();
  }

  /** @internal */
  creditChanged(): void {
    this.wake();
  }

  /** @internal */
  fail(e: VsockError): void {
    if (this.closed || this.error) return;
    this.error = e;
    this.wake();
  }

  private advertise(op: number, flags: number, payload: Uint8Array | null): void {
    this.advertisedFwd = this.me.fwdCnt;
    if (!this.hub.hostSend(this.c, op, flags, payload) && !this.closed) this.fail(new VsockError("ECONNRESET", "connection reset"));
  }

  private wake(): void {
    const r = this.readWaiter;
    this.readWaiter = null;
    r?.();
    for (const w of this.creditWaiters.splice(0)) w();
  }
}
