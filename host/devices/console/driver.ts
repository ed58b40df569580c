// virtio-console guest driver: keeps receive buffers posted and writes output through the
// transmit queue. Transport-neutral (GuestVirtioDevice).
import type { DriverQueue, GuestVirtioDevice } from "../types.ts";
import { RECEIVEQ, TRANSMITQ } from "./model.ts";

const RX_BUFFERS = 8;
const RX_BUFFER_SIZE = 4096;

export class ConsoleDriver {
  readonly dev: GuestVirtioDevice;
  private rx: DriverQueue | null = null;
  private tx: DriverQueue | null = null;
  private readonly rxBufs: number[] = [];
  private readonly listeners: Array<(bytes: Uint8Array) => void> = [];
  private readonly txDone = new Map<number, { gpa: number; len: number; resolve: (ok: boolean) => void }>();
  private nextToken = 1;
  private closed = false;

  constructor(dev: GuestVirtioDevice) {
    this.dev = dev;
  }

  async init(): Promise<void> {
    await this.dev.negotiate(0n);
    this.rx = await this.dev.setupQueue(RECEIVEQ, 16, (token, written, error) => this.received(token, written, error));
    this.tx = await this.dev.setupQueue(TRANSMITQ, 16, (token, _w, error) => {
      const t = this.txDone.get(token);
      this.txDone.delete(token);
      if (t) {
        this.dev.free(t.gpa, t.len);
        t.resolve(!error);
      }
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
    for (const [token, t] of this.txDone) {
      this.txDone.delete(token);
      this.dev.free(t.gpa, t.len);
      t.resolve(false);
    }
    for (const gpa of this.rxBufs.splice(0)) this.dev.free(gpa, RX_BUFFER_SIZE);
    this.rx = this.tx = null;
  }

  onData(cb: (bytes: Uint8Array) => void): void {
    this.listeners.push(cb);
  }

  /** Sends bytes to the host; resolves true once the device took them. */
  write(bytes: Uint8Array): Promise<boolean> {
    if (!this.tx || bytes.length === 0) return Promise.resolve(bytes.length === 0);
    const gpa = this.dev.alloc(bytes.length);
    new Uint8Array(this.dev.memory.buffer).set(bytes, gpa);
    const token = this.nextToken++;
    return new Promise((resolve) => {
      this.txDone.set(token, { gpa, len: bytes.length, resolve });
      if (!this.tx!.add([{ gpa, len: bytes.length, writable: false }], token)) {
        this.txDone.delete(token);
        this.dev.free(gpa, bytes.length);
        resolve(false);
        return;
      }
      this.tx!.kick();
    });
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
