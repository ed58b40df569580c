// One end of a vsock stream with credit-based flow control (VirtIO 1.2 5.10.6.3), what the
// guest's socket (driver.ts) and the VMM's stream (stream.ts) have in common: received
// bytes wait until read (they occupy the buffer this end advertised), and writes wait for
// the peer's credit. The subclass says how packets leave and where the counters live.
import * as V from "./layout.ts";

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

export abstract class CreditStream {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  /** The peer sent SHUTDOWN SEND: end of stream after the buffered bytes. */
  protected eof = false;
  /** The peer sent SHUTDOWN RCV: writing is pointless. */
  private peerNoRead = false;
  protected error: VsockError | null = null;
  private readWaiter: (() => void) | null = null;
  private creditWaiters: Array<() => void> = [];
  private creditRequested = false;

  /** Bytes this end may send now: the peer's buf_alloc minus what it has not consumed. */
  protected abstract credit(): number;
  /** `n` received bytes were read: advance fwd_cnt, and tell the peer when it should hear. */
  protected abstract consumed(n: number): void;
  /** Sends one packet on the connection (an RW counts towards this end's tx_cnt). */
  protected abstract packet(op: number, flags: number, payload: Uint8Array | null): void;
  /** Why this end cannot send now (closed, shut down for sending), or null. */
  protected abstract sendBlocked(): VsockError | null;
  /** Closed by this end: reads return end of stream. */
  protected abstract get closedHere(): boolean;
  /** Largest payload of one packet. */
  protected abstract get maxChunk(): number;

  /** Payload bytes received and not read yet. */
  get pending(): number {
    return this.buffered;
  }

  /** The next bytes received (everything buffered), or null at end of stream; rejects after a reset. */
  async read(): Promise<Uint8Array | null> {
    while (this.buffered === 0) {
      if (this.error) throw this.error;
      if (this.eof || this.closedHere) return null;
      await new Promise<void>((r) => (this.readWaiter = r));
    }
    const out = this.chunks.length === 1 ? this.chunks[0] : new Uint8Array(Buffer.concat(this.chunks, this.buffered));
    const n = this.buffered;
    this.chunks.length = 0;
    this.buffered = 0;
    this.consumed(n);
    return out;
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

  /** Sends all of `data` within the peer's credit; rejects on reset (ECONNRESET) or once sending is shut (EPIPE). */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.error) throw this.error;
      const blocked = this.sendBlocked();
      if (blocked) throw blocked;
      if (this.peerNoRead) throw new VsockError("EPIPE", "the peer shut its receive side");
      const credit = this.credit();
      if (credit <= 0) {
        if (!this.creditRequested) {
          this.creditRequested = true;
          this.packet(V.OP_CREDIT_REQUEST, 0, null);
        }
        await new Promise<void>((r) => this.creditWaiters.push(r));
        continue;
      }
      // One CREDIT_REQUEST per time the credit ran out: asking again on every update that
      // frees nothing would ping-pong with the peer's answers forever.
      this.creditRequested = false;
      const n = Math.min(credit, data.length - off, this.maxChunk);
      this.packet(V.OP_RW, 0, data.slice(off, off + n));
      off += n;
    }
    if (this.error) throw this.error;
  }

  /** @internal false when the peer sent beyond the buffer this end advertised, or after its end of stream. */
  receive(payload: Uint8Array, bufAlloc: number): boolean {
    if (this.eof || this.buffered + payload.length > bufAlloc) return false;
    this.chunks.push(payload);
    this.buffered += payload.length;
    this.wake();
    return true;
  }

  /** @internal */
  peerShutdown(flags: number): void {
    if (flags & V.SHUTDOWN_SEND) this.eof = true;
    if (flags & V.SHUTDOWN_RCV) this.peerNoRead = true;
    this.wake();
  }

  /** @internal the peer's credit may have grown. */
  creditChanged(): void {
    this.wake();
  }

  /** @internal the connection is gone: pending and later reads and writes reject with `e`. */
  fail(e: VsockError): void {
    if (this.error) return;
    this.error = e;
    this.wake();
  }

  protected wake(): void {
    const r = this.readWaiter;
    this.readWaiter = null;
    r?.();
    for (const w of this.creditWaiters.splice(0)) w();
  }
}
