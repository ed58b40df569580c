// Set-up for the net and vsock tests: three guests and one backend domain under a policy
// with net and vsock pairs, over any of the four transports, plus a raw driver that
// plays a hostile (or merely slow) guest with exact bytes.
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import type { Domain } from "../../host/hypervisor/domain.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack, type DevicePairSpec } from "../../host/transport/bus/toolstack.ts";
import { GuestTransport } from "../../host/transport/bus/guest-transport.ts";
import type { DeviceTypeName, DriverQueue, GuestVirtioDevice, VirtioDeviceModel } from "../../host/devices/types.ts";
import { settle } from "../transport/helpers.ts";

export const TRANSPORTS = ["argo", "grant", "foreign", "bounce"] as const;
export type Transport = (typeof TRANSPORTS)[number];

export const MAC1 = "52:54:00:00:00:01";
export const MAC2 = "52:54:00:00:00:02";
export const MAC2B = "52:54:00:00:00:22";

const ARGO = "allow: [enable, send, register_single_source]";
export const POLICY = `
domains: [guest_t, guest2_t, guest3_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: net, ${ARGO}, rules: { allowed_macs: ["${MAC1}"] } }
  - { frontend: guest2_t, backend: backend_t, device: net, ${ARGO}, rules: { allowed_macs: ["${MAC2}", "${MAC2B}"] } }
  - { frontend: guest3_t, backend: backend_t, device: net, ${ARGO} }
  - { frontend: guest_t, backend: backend_t, device: vsock, ${ARGO}, rules: { allowed_ports: [1024, 5000] } }
  - { frontend: guest2_t, backend: backend_t, device: vsock, ${ARGO} }
`;

/** POLICY without one pair (a reload that removes it). */
export function policyWithout(frontend: string, device: DeviceTypeName): Policy {
  const lines = POLICY.split("\n").filter((l) => !(l.includes(`frontend: ${frontend},`) && l.includes(`device: ${device},`)));
  return Policy.parse(lines.join("\n"), "reloaded.yaml");
}

export interface NetVsockWorld {
  hv: Hypervisor;
  ts: Toolstack;
  be: Domain;
  guests: Domain[];
  dev(guest: number, type: "net" | "vsock"): GuestVirtioDevice;
  model<T extends VirtioDeviceModel>(guest: number, type: "net" | "vsock"): T;
}

/** Boots guests g1 (guest_t), g2 (guest2_t), g3 (guest3_t) with the devices in `want`, over `transport`. */
export function boot(transport: Transport, want: Array<[number, "net" | "vsock"]>, policy = POLICY): NetVsockWorld {
  const hv = new Hypervisor({ policy: Policy.parse(policy, "netvsock.yaml") });
  const labels = ["guest_t", "guest2_t", "guest3_t"];
  const guests = labels.map((label, i) => hv.createDomain({ name: `g${i + 1}`, label, memoryBytes: 32 << 20 }));
  const be = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 64 << 20 });
  const ts = new Toolstack(hv);
  const devices = new Map<string, GuestVirtioDevice>();
  const models = new Map<string, VirtioDeviceModel>();
  const argoPairs: Array<{ key: string; guest: number; devNum: number }> = [];
  for (const [g, type] of want) {
    const spec: DevicePairSpec = { type, frontend: guests[g - 1], backend: be };
    const key = `${g}/${type}`;
    if (transport === "argo") {
      const pair = ts.addDevice(spec);
      models.set(key, pair.model);
      argoPairs.push({ key, guest: g, devNum: pair.entry.devNum });
    } else {
      const pair = ts.addSharedDevice(spec, transport);
      devices.set(key, pair.device);
      models.set(key, pair.model);
    }
  }
  if (transport === "argo") {
    const gts = new Map<number, GuestTransport>();
    for (const p of argoPairs) {
      let gt = gts.get(p.guest);
      if (!gt) {
        ts.writeDeviceTable(guests[p.guest - 1]);
        gt = new GuestTransport(ts.kernel(guests[p.guest - 1]));
        if (!Array.isArray(gt.probe())) throw new Error("probe failed");
        gts.set(p.guest, gt);
      }
      devices.set(p.key, gt.devices.get(p.devNum)!);
    }
  }
  return {
    hv, ts, be, guests,
    dev: (g, type) => devices.get(`${g}/${type}`)!,
    model: <T extends VirtioDeviceModel>(g: number, type: "net" | "vsock") => models.get(`${g}/${type}`) as T,
  };
}

/** Awaits `p` while letting VIRQ delivery run (bounded); throws if it never settles. */
export async function drive<T>(p: Promise<T>, rounds = 100000): Promise<T> {
  let done = false;
  let value!: T;
  let error: unknown;
  let failed = false;
  p.then(
    (v) => { done = true; value = v; },
    (e) => { done = true; failed = true; error = e; },
  );
  await settle(() => done, rounds);
  if (!done) throw new Error("never settled");
  if (failed) throw error;
  return value;
}

/**
 * What `p` failed with, or "resolved" (a socket that connected would be printed whole by a
 * failing `rejects` matcher, guest memory and all).
 */
export async function failure(p: Promise<unknown>): Promise<unknown> {
  return drive(p).then(() => "resolved", (e: unknown) => e);
}

/** Lets deliveries run for a while (for "nothing arrives" checks). */
export const quiet = (rounds = 200) => settle(() => false, rounds);

/**
 * A driver that does exactly what it is told: posts `rxBuffers` receive buffers of
 * `rxSize` bytes once (never reposting), sends raw chains. Completions are recorded.
 */
export class RawDriver {
  readonly rxDone: Array<{ token: number; written: number; bytes: Uint8Array }> = [];
  readonly txDone: number[] = [];
  private queues: DriverQueue[] = [];
  private rxBufs: number[] = [];

  constructor(readonly dev: GuestVirtioDevice, private readonly rxSize: number) {}

  async init(numQueues: number, rxQueue = 0, txQueue = 1): Promise<this> {
    await this.dev.negotiate(0n);
    for (let q = 0; q < numQueues; q++) {
      this.queues[q] = await this.dev.setupQueue(q, 64, (token, written) => {
        if (q === rxQueue) {
          const gpa = this.rxBufs[token];
          this.rxDone.push({ token, written, bytes: new Uint8Array(this.dev.memory.buffer).slice(gpa, gpa + this.rxSize) });
        } else if (q === txQueue) this.txDone.push(token);
      });
    }
    await this.dev.driverOk();
    this.txQueue = txQueue;
    this.rxQueue = rxQueue;
    return this;
  }

  private txQueue = 1;
  private rxQueue = 0;
  private nextTx = 1;

  /** Posts `n` receive buffers, each filled with 0xEE first. */
  post(n: number): void {
    const mem = new Uint8Array(this.dev.memory.buffer);
    for (let i = 0; i < n; i++) {
      const gpa = this.dev.alloc(this.rxSize);
      mem.fill(0xee, gpa, gpa + this.rxSize);
      const token = this.rxBufs.length;
      this.rxBufs.push(gpa);
      if (!this.queues[this.rxQueue].add([{ gpa, len: this.rxSize, writable: true }], token)) throw new Error("rx queue full");
    }
    this.queues[this.rxQueue].kick();
  }

  /** Sends `parts` as one chain of readable buffers. */
  send(...parts: Uint8Array[]): number {
    const mem = new Uint8Array(this.dev.memory.buffer);
    const bufs = parts.map((p) => {
      const gpa = this.dev.alloc(Math.max(1, p.length));
      mem.set(p, gpa);
      return { gpa, len: p.length, writable: false };
    });
    const token = this.nextTx++;
    if (!this.queues[this.txQueue].add(bufs, token)) throw new Error("tx queue full");
    this.queues[this.txQueue].kick();
    return token;
  }
}
