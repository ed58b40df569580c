// virtio-console device model, one port, no MULTIPORT (VirtIO 1.2 section 5.3):
// receiveq (0) carries host->guest bytes, transmitq (1) guest->host bytes.
import type { DeviceChain, DeviceEnv, VirtioDeviceModel } from "../types.ts";
import { VIRTIO_ID_CONSOLE } from "../types.ts";

export const RECEIVEQ = 0;
export const TRANSMITQ = 1;
/** Input kept while the driver has no receive buffer posted; beyond it bytes are dropped and counted. */
export const MAX_PENDING_INPUT = 64 << 10;
/** Largest transmit request taken in one go. */
const MAX_TX_BYTES = 64 << 10;

export interface ConsoleOptions {
  /** Where the guest's output goes. */
  onOutput?: (bytes: Uint8Array) => void;
}

export class ConsoleModel implements VirtioDeviceModel {
  readonly type = "console" as const;
  readonly virtioId = VIRTIO_ID_CONSOLE;
  readonly numQueues = 2;
  readonly maxQueueSize = 256;
  readonly features = 0n;
  readonly configSize = 8; // cols, rows, max_nr_ports (unused without MULTIPORT)
  /** dropped: input kept nowhere (no buffer posted, MAX_PENDING_INPUT full); truncated: output cut past MAX_TX_BYTES per buffer. */
  readonly stats = { bytesIn: 0, bytesOut: 0, dropped: 0, truncated: 0 };
  private env: DeviceEnv | null = null;
  private readonly onOutput: (bytes: Uint8Array) => void;
  /** Receive buffers the driver posted, waiting for input. */
  private readonly posted: DeviceChain[] = [];
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(opts: ConsoleOptions = {}) {
    this.onOutput = opts.onOutput ?? (() => {});
  }

  readConfig(offset: number, length: number): Uint8Array | null {
    if (offset < 0 || length < 0 || offset + length > this.configSize) return null;
    return new Uint8Array(length);
  }

  writeConfig(): boolean {
    return false;
  }

  activate(env: DeviceEnv): void {
    this.env = env;
  }

  reset(): void {
    this.env = null;
    this.posted.length = 0;
  }

  /** Host input for the guest: delivered into posted buffers, or kept (bounded) until some are. */
  input(bytes: Uint8Array): void {
    const room = MAX_PENDING_INPUT - this.pendingBytes;
    if (bytes.length > room) this.stats.dropped += bytes.length - Math.max(0, room);
    if (room > 0) {
      const keep = bytes.slice(0, room);
      this.pending.push(keep);
      this.pendingBytes += keep.length;
    }
    this.deliver();
  }

  queueNotify(queue: number): void {
    const q = this.env?.queues[queue];
    if (!q) return;
    if (queue === RECEIVEQ) {
      for (let c = q.pop(); c; c = q.pop()) {
        if (c.readableLength > 0 || c.writableLength === 0) q.push(c, 0); // not a receive buffer
        else this.posted.push(c);
      }
      this.deliver();
    } else if (queue === TRANSMITQ) {
      for (let c = q.pop(); c; c = q.pop()) {
        // A buffer longer than MAX_TX_BYTES is cut (host cost is bounded); what is cut is counted.
        const n = Math.min(c.readableLength, MAX_TX_BYTES);
        const out = new Uint8Array(n);
        c.read(0, out);
        this.stats.bytesOut += n;
        this.stats.truncated += c.readableLength - n;
        q.push(c, 0);
        this.onOutput(out);
      }
    }
    q.notifyDriver();
  }

  private deliver(): void {
    const q = this.env?.queues[RECEIVEQ];
    if (!q) return;
    let delivered = false;
    while (this.posted.length && this.pending.length) {
      const c = this.posted.shift()!;
      let written = 0;
      while (this.pending.length && written < c.writableLength) {
        const head = this.pending[0];
        const n = c.write(written, head.subarray(0, c.writableLength - written));
        written += n;
        if (n === head.length) this.pending.shift();
        else this.pending[0] = head.subarray(n);
      }
      this.pendingBytes -= written;
      this.stats.bytesIn += written;
      q.push(c, written);
      delivered = true;
    }
    if (delivered) q.notifyDriver();
  }
}
