// Set-up for the fault-injection suite: a Vmm with one guest and one backend, a device pair
// over any of the four transports, a seeded random source, and an echo client that keeps
// a chosen number of requests in flight and checks every completion against its request.
import { readdirSync } from "node:fs";
import { Vmm, Policy, TRANSPORT_NAMES, type AttachedDevice, type TransportName } from "../../host/index.ts";
import type { DriverQueue, GuestVirtioDevice } from "../../host/devices/types.ts";
import { EchoModel } from "../transport/echo-model.ts";

export { TRANSPORT_NAMES, EchoModel };
export type { TransportName };

/** One guest_t -> backend_t pair of a test policy: its device, and optional limits / rules (YAML flow maps). */
export interface TestPair {
  device: "blk" | "console" | "rng";
  limits?: string;
  rules?: string;
}

/** A policy text with one guest_t -> backend_t pair per entry (hotplug allowed: register_any_source). */
export function policyText(...pairs: TestPair[]): string {
  const lines = pairs.map((p) =>
    `  - { frontend: guest_t, backend: backend_t, device: ${p.device}, allow: [enable, send, register_single_source, register_any_source]` +
    `${p.limits ? `, limits: ${p.limits}` : ""}${p.rules ? `, rules: ${p.rules}` : ""} }`);
  return `domains: [guest_t, backend_t]\npairs:\n${lines.join("\n")}\n`;
}

export const FAULT_POLICY = policyText({ device: "console" }, { device: "blk" }, { device: "rng" });

export function policy(text = FAULT_POLICY): Policy {
  return Policy.parse(text, "faults.yaml");
}

export function rig(opts: { policy?: Policy; guestBytes?: number; backendBytes?: number } = {}) {
  const v = new Vmm({ policy: opts.policy ?? policy() });
  const backend = v.createDomain({ name: "backend", label: "backend_t", memoryBytes: opts.backendBytes ?? (32 << 20) });
  const guest = v.createDomain({ name: "guest", label: "guest_t", memoryBytes: opts.guestBytes ?? (32 << 20) });
  return { v, backend, guest };
}

/** Open file descriptors of this process (Linux procfs); 0 where there is none, so checks hold trivially there. */
export function openFds(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}

/** mulberry32: a small seeded generator, so a failing run can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed for this run: FAULT_SEED from the environment, or a fresh one. */
export function seedFor(): number {
  const env = process.env.FAULT_SEED;
  return env ? Number(env) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0;
}

/** Runs `body` with `seed`; a failure names the seed and the command that replays it. */
export async function withSeed(name: string, seed: number, body: (seed: number) => Promise<void>): Promise<void> {
  try {
    await body(seed);
  } catch (e) {
    const err = e as Error;
    err.message = `${err.message}\n  ${name}: seed ${seed}; replay with FAULT_SEED=${seed} npx vitest run test/faults`;
    throw err;
  }
}

/** Lets VIRQ delivery (microtasks) and timers run until `cond` holds or `ms` pass. */
export async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise<void>((r) => setImmediate(r));
  }
  return true;
}

export interface EchoResult {
  ok: number;
  failed: number;
  /** Completions whose bytes were not their own request's (crossed completions). */
  wrong: string[];
}

/**
 * Keeps `depth` echo requests in flight on `queue`, each one's reply checked against its own
 * request, and submits each next request from inside the completion callback until `total`
 * were issued. Request bytes are unique per token, so a completion handed another
 * request's token shows up as wrong bytes or a wrong length.
 */
export class EchoClient {
  queue!: DriverQueue;
  readonly result: EchoResult = { ok: 0, failed: 0, wrong: [] };
  issued = 0;
  /** What negotiate accepted. */
  features = 0n;
  private readonly open = new Map<number, { inGpa: number; outGpa: number; len: number }>();
  private readonly spare: Array<{ inGpa: number; outGpa: number }> = [];
  private total = 0;
  private nextToken = 1;
  private readonly mem: () => Uint8Array;
  /** Runs after each completion is checked (fault injection from inside a callback). */
  onComplete: ((finished: number) => void) | null = null;

  constructor(readonly dev: GuestVirtioDevice, private readonly random: () => number) {
    this.mem = () => new Uint8Array(dev.memory.buffer);
  }

  /** Negotiates `features` (the echo device's bit 0, plus e.g. VIRTIO_F_RING_PACKED), sets queue 0 up, DRIVER_OK. */
  async setup(size: number, features = 1n): Promise<this> {
    this.features = await this.dev.negotiate(features);
    this.queue = await this.dev.setupQueue(0, size, (token, written, error) => this.done(token, written, error));
    await this.dev.driverOk();
    return this;
  }

  get outstanding(): number {
    return this.open.size;
  }

  get finished(): number {
    return this.result.ok + this.result.failed;
  }

  /** Starts `depth` requests; completions keep the depth until `total` were issued. */
  run(depth: number, total: number): void {
    this.total = total;
    for (let i = 0; i < depth && this.issued < this.total; i++) if (!this.submit()) break;
    this.queue.kick();
  }

  private submit(): boolean {
    const token = this.nextToken++;
    const len = 1 + Math.floor(this.random() * 600);
    const bufs = this.spare.pop() ?? { inGpa: this.dev.alloc(4096), outGpa: this.dev.alloc(4096) };
    const mem = this.mem();
    for (let i = 0; i < len; i++) mem[bufs.inGpa + i] = (token * 131 + i * 7) & 0xff;
    mem.fill(0, bufs.outGpa, bufs.outGpa + 4096);
    const ok = this.queue.add([{ gpa: bufs.inGpa, len, writable: false }, { gpa: bufs.outGpa, len, writable: true }], token);
    if (!ok) {
      this.spare.push(bufs);
      return false;
    }
    this.open.set(token, { ...bufs, len });
    this.issued++;
    return true;
  }

  private done(token: number, written: number, error: boolean): void {
    const r = this.open.get(token);
    if (!r) {
      this.result.wrong.push(`token ${token} completed but not in flight`);
      return;
    }
    this.open.delete(token);
    if (error) this.result.failed++;
    else {
      const mem = this.mem();
      let bad = written !== r.len;
      for (let i = 0; i < r.len && !bad; i++) if (mem[r.outGpa + i] !== (((token * 131 + i * 7) & 0xff) ^ 0x5a)) bad = true;
      if (bad) this.result.wrong.push(`token ${token}: ${written} bytes, not its own ${r.len}-byte echo`);
      else this.result.ok++;
    }
    this.spare.push({ inGpa: r.inGpa, outGpa: r.outGpa });
    this.onComplete?.(this.finished);
    // Re-added from inside the callback: the case that crossed completions.
    if (!this.dev.gone && this.issued < this.total && this.submit()) this.queue.kick();
  }

  /** Gives the client's buffers back (after everything completed). */
  release(): void {
    for (const b of this.spare.splice(0)) {
      this.dev.free(b.inGpa, 4096);
      this.dev.free(b.outGpa, 4096);
    }
  }
}

export async function attachEcho(v: Vmm, guest: AttachedDevice["frontend"], backend: AttachedDevice["backend"], transport: TransportName) {
  const model = new EchoModel();
  const dev = await v.attach({ type: "console", frontend: guest, backend, transport, model });
  return { dev, model };
}
