// virtio-rng guest driver.
import type { DriverQueue, GuestVirtioDevice } from "../types.ts";

export class RngDriver {
  readonly dev: GuestVirtioDevice;
  private q: DriverQueue | null = null;
  private readonly waiting = new Map<number, { gpa: number; len: number; resolve: (b: Uint8Array | null) => void }>();
  private nextToken = 1;

  private readonly queueSize: number;

  /** `queueSize`: how many reads may be in flight at once (one descriptor each). */
  constructor(dev: GuestVirtioDevice, opts: { queueSize?: number } = {}) {
    this.dev = dev;
    this.queueSize = opts.queueSize ?? 64;
  }

  async init(): Promise<void> {
    await this.dev.negotiate(0n);
    this.q = await this.dev.setupQueue(0, this.queueSize, (token, written, error) => {
      const w = this.waiting.get(token);
      this.waiting.delete(token);
      if (!w) return;
      const out = error ? null : new Uint8Array(this.dev.memory.buffer).slice(w.gpa, w.gpa + Math.min(written, w.len));
      this.dev.free(w.gpa, w.len);
      w.resolve(out);
    });
    await this.dev.driverOk();
  }

  /** Unbinds the driver: resets the device; reads in flight resolve null and their buffers go back. */
  async close(): Promise<void> {
    const q = this.q;
    this.q = null;
    if (q && !this.dev.gone) await this.dev.reset().catch(() => {});
    for (const [token, w] of this.waiting) {
      this.waiting.delete(token);
      this.dev.free(w.gpa, w.len);
      w.resolve(null);
    }
  }

  /** Up to n random bytes from the device (it may return fewer), or null on error or when `queueSize` reads are already in flight. */
  read(n: number): Promise<Uint8Array | null> {
    if (!this.q) return Promise.resolve(null);
    const gpa = this.dev.alloc(n);
    const token = this.nextToken++;
    return new Promise((resolve) => {
      this.waiting.set(token, { gpa, len: n, resolve });
      if (!this.q!.add([{ gpa, len: n, writable: true }], token)) {
        this.waiting.delete(token);
        this.dev.free(gpa, n);
        resolve(null);
        return;
      }
      this.q!.kick();
    });
  }
}
