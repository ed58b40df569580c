// virtio-console guest driver: keeps receive buffers posted and writes output through the
// transmit queue. Transport-neutral (GuestVirtioDevice).
import type { DriverQueue, GuestVirtioDevice } from "../types.ts";
import { RECEIVEQ, TRANSMITQ } from "./model.ts";

const RX_BUFFERS = 8;
const RX_BUFFER_SIZE = 4096;
/** Largest piece of output one transmit buffer carries (below the device's 64 KiB per buffer). */
const TX_CHUNK = 32 << 10;

export class ConsoleDriver {
  readonly dev: GuestVirtioDevice;
  private rx: DriverQueue | null = null;
  private tx: DriverQueue | null = null;
  private readonly rxBufs: number[] = [];
  private readonly listeners: Array<(bytes: Uint8Array) => void> = [];
  private readonly txDone = new Map<number, { gpa: number; len: number; resolve: (ok: boolean) => void }>();
  private nextToken = 1;
  private closed = false;
  /** Transmit pieces (tokens in txDone) not yet on the queue, in order. */
  private readonly txWaiting: number[] = [];

  constructor(dev: GuestVirtioDevice) {
    this.dev = dev;
  }

  async init(): Promise<void> {
    await this.dev.negotiate(0n);
    this.rx = await this.dev.setupQueue(RECEIVEQ, 16, (token, written, error) => this.received(token, written, error));
    this.tx = await this.dev.setupQueue(TRANSMITQ, 16, (token, _w, error) => {
      this.txCompleted(token, error);
      this.postTx(); // room for what waits
    });
    await this.dev.driverOk();
    for (let i = 0; i < RX_BUFFERS; i++) {
      this.rxBufs.push(this.dev.alloc(RX_BUFFER_SIZE));
      this.post(i);
    }
  }

  /**
   * Unbinds the driver: resets the device (pending writes resolve false, the device stops
   * writing into the receive buffers), then gives the receive buffers back.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.dev.gone) await this.dev.reset().catch(() => {});
    this.txWaiting.length = 0;
    for (const token of [...this.txDone.keys()]) this.txCompleted(token, true);
    for (const gpa of this.rxBufs.splice(0)) this.dev.free(gpa, RX_BUFFER_SIZE);
    this.rx = this.tx = null;
  }

  onData(cb: (bytes: Uint8Array) => void): void {
    this.listeners.push(cb);
  }

  /**
   * Sends bytes to the host; resolves true once the device took all of them, false if any
   * part failed. Output is cut into TX_CHUNK pieces (the device takes at most 64 KiB per
   * buffer and would drop the rest); pieces the queue cannot take yet wait, in order, for
   * earlier ones to complete.
   */
  write(bytes: Uint8Array): Promise<boolean> {
    if (!this.tx || this.closed) return Promise.resolve(bytes.length === 0);
    if (bytes.length === 0) return Promise.resolve(true);
    const pieces: Array<Promise<boolean>> = [];
    for (let at = 0; at < bytes.length; at += TX_CHUNK) {
      const piece = bytes.subarray(at, Math.min(bytes.length, at + TX_CHUNK));
      const gpa = this.dev.alloc(piece.length);
      new Uint8Array(this.dev.memory.buffer).set(piece, gpa);
      const token = this.nextToken++;
      pieces.push(new Promise((resolve) => {
        this.txDone.set(token, { gpa, len: piece.length, resolve });
        this.txWaiting.push(token);
      }));
    }
    this.postTx();
    return Promise.all(pieces).then((oks) => oks.every(Boolean));
  }

  /** Adds waiting transmit pieces in order while the queue takes them. */
  private postTx(): void {
    let added = false;
    while (this.txWaiting.length && this.tx) {
      const token = this.txWaiting[0];
      const t = this.txDone.get(token)!;
      if (!this.tx.add([{ gpa: t.gpa, len: t.len, writable: false }], token)) break;
      this.txWaiting.shift();
      added = true;
    }
    if (added) this.tx!.kick();
    // Nothing in flight to make room: what waits can never be added.
    if (this.txWaiting.length && this.txDone.size === this.txWaiting.length) {
      for (const token of this.txWaiting.splice(0)) this.txCompleted(token, true);
    }
  }

  private txCompleted(token: number, error: boolean): void {
    const t = this.txDone.get(token);
    this.txDone.delete(token);
    if (!t) return;
    this.dev.free(t.gpa, t.len);
    t.resolve(!error);
  }

  private post(i: number): void {
    if (this.rx?.add([{ gpa: this.rxBufs[i], len: RX_BUFFER_SIZE, writable: true }], i)) this.rx.kick();
  }

  private received(i: number, written: number, error: boolean): void {
    if (error || this.dev.gone || this.closed) return; // the device is going away: nothing to repost
    const n = Math.min(written, RX_BUFFER_SIZE);
    const bytes = new Uint8Array(this.dev.memory.buffer).slice(this.rxBufs[i], this.rxBufs[i] + n);
    for (const l of this.listeners) l(bytes);
    this.post(i);
  }
}
