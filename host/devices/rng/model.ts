// virtio-rng device model (VirtIO 1.2 section 5.4): fills each writable buffer with bytes
// from node:crypto, capped per request so a huge (or overlapping) buffer list cannot
// make the backend generate unbounded entropy.
import { randomFillSync } from "node:crypto";
import type { DeviceEnv, VirtioDeviceModel } from "../types.ts";
import { VIRTIO_ID_RNG } from "../types.ts";

export const MAX_RNG_BYTES = 64 << 10;

export class RngModel implements VirtioDeviceModel {
  readonly type = "rng" as const;
  readonly virtioId = VIRTIO_ID_RNG;
  readonly numQueues = 1;
  readonly maxQueueSize = 64;
  readonly features = 0n;
  readonly configSize = 0;
  readonly stats = { requests: 0, bytes: 0, rejected: 0 };
  private env: DeviceEnv | null = null;
  private readonly scratch = new Uint8Array(MAX_RNG_BYTES);

  readConfig(offset: number, length: number): Uint8Array | null {
    return offset === 0 && length === 0 ? new Uint8Array(0) : null;
  }
  writeConfig(): boolean {
    return false;
  }
  activate(env: DeviceEnv): void {
    this.env = env;
  }
  reset(): void {
    this.env = null;
  }

  queueNotify(queue: number): void {
    const q = this.env?.queues[queue];
    if (!q) return;
    for (let c = q.pop(); c; c = q.pop()) {
      this.stats.requests++;
      // Readable descriptors in an entropy request are a driver bug: answer with nothing.
      if (c.readableLength > 0) {
        this.stats.rejected++;
        q.push(c, 0);
        continue;
      }
      const n = Math.min(c.writableLength, MAX_RNG_BYTES);
      const bytes = this.scratch.subarray(0, n);
      randomFillSync(bytes);
      this.stats.bytes += n;
      q.push(c, c.write(0, bytes));
    }
    q.notifyDriver();
  }
}
