// A tiny device model for transport tests: queue 0 copies each request's readable bytes
// into its writable part, XORed with 0x5a, so a test can tell a real round trip from
// bytes that were merely left in place.
import type { DeviceChain, DeviceEnv, VirtioDeviceModel } from "../../host/devices/types.ts";

export class EchoModel implements VirtioDeviceModel {
  readonly type = "console" as const;
  readonly virtioId = 3;
  readonly numQueues = 1;
  readonly maxQueueSize = 256;
  readonly features = 1n << 0n;
  readonly configSize = 8;
  readonly config = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  env: DeviceEnv | null = null;
  served = 0;
  resets = 0;
  /** When set, requests are held (not completed) until release(). */
  hold = false;
  private held: DeviceChain[] = [];

  readConfig(offset: number, length: number): Uint8Array | null {
    if (offset + length > this.configSize) return null;
    return this.config.slice(offset, offset + length);
  }

  writeConfig(offset: number, data: Uint8Array): boolean {
    if (offset + data.length > this.configSize) return false;
    this.config.set(data, offset);
    return true;
  }

  activate(env: DeviceEnv): void {
    this.env = env;
  }

  queueNotify(queue: number): void {
    const q = this.env?.queues[queue];
    if (!q) return;
    for (let c = q.pop(); c; c = q.pop()) {
      if (this.hold) this.held.push(c);
      else this.serve(c);
    }
    q.notifyDriver();
  }

  release(): void {
    const q = this.env!.queues[0];
    for (const c of this.held.splice(0)) this.serve(c);
    q.notifyDriver();
  }

  private serve(c: DeviceChain): void {
    const q = this.env!.queues[0];
    const data = new Uint8Array(c.readableLength);
    c.read(0, data);
    for (let i = 0; i < data.length; i++) data[i] ^= 0x5a;
    const n = c.write(0, data);
    this.served++;
    q.push(c, n);
  }

  reset(): void {
    this.resets++;
    this.held = [];
    this.env = null;
  }
}
