// Set-up for transport tests: a guest, a backend domain, the toolstack, and a way to
// push requests through a GuestVirtioDevice and await their completions.
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack, type DevicePair } from "../../host/transport/bus/toolstack.ts";
import { GuestTransport } from "../../host/transport/bus/guest-transport.ts";
import type { ArgoFrontend } from "../../host/transport/argo/frontend/frontend.ts";
import type { DriverQueue, GuestVirtioDevice, VirtioDeviceModel } from "../../host/devices/types.ts";
import { EchoModel } from "./echo-model.ts";
import { DATA_HEADER_SIZE, MSG_DATA, encodeData, type DataHeader } from "../../host/transport/argo/wire.ts";

export const POLICY = `
domains: [guest_t, backend_t, stranger_t]
pairs:
  - frontend: guest_t
    backend: backend_t
    device: console
    allow: [enable, send, register_single_source, register_any_source]
`;

export interface World {
  hv: Hypervisor;
  ts: Toolstack;
  guest: ReturnType<Hypervisor["createDomain"]>;
  backend: ReturnType<Hypervisor["createDomain"]>;
  model: EchoModel;
  pair: DevicePair;
  gt: GuestTransport;
  fe: ArgoFrontend;
}

export function world(opts: { ringLen?: number; model?: VirtioDeviceModel } = {}): World {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "transport-test.yaml") });
  const guest = hv.createDomain({ name: "guest", label: "guest_t", memoryBytes: 16 << 20 });
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 16 << 20 });
  const ts = new Toolstack(hv);
  const model = (opts.model as EchoModel) ?? new EchoModel();
  const pair = ts.addDevice({ type: "console", frontend: guest, backend, model, ringLen: opts.ringLen });
  ts.writeDeviceTable(guest);
  const gt = new GuestTransport(ts.kernel(guest));
  const probed = gt.probe();
  if (!Array.isArray(probed)) throw new Error(`probe: ${JSON.stringify(probed)}`);
  const fe = gt.devices.get(pair.entry.devNum)!;
  return { hv, ts, guest, backend, model, pair, gt, fe };
}

/**
 * A hostile frontend's raw data messages: `send(header, payloadLen)` puts an encoded data
 * header (and `payloadLen` bytes after it, whatever the buffer holds) on the backend's
 * ring, past the ArgoFrontend, after a driver set queue 0 up (64 entries).
 */
export async function rawDataSender(w: World): Promise<(h: DataHeader, payloadLen?: number) => number> {
  await w.fe.negotiate(1n);
  await new Requester(w.fe).setup(0, 64);
  await w.fe.driverOk();
  const k = w.ts.kernel(w.guest);
  const buf = k.heap.alloc(4096);
  const dv = new DataView(w.guest.memory.buffer);
  return (h, payloadLen = 0) => {
    encodeData(dv, buf, h);
    return k.argo.send(w.backend.domid, w.pair.entry.backendPort, buf, DATA_HEADER_SIZE + payloadLen, MSG_DATA, w.pair.entry.frontendPort);
  };
}

/** Lets microtask-driven VIRQ delivery run until `cond` holds (bounded). */
export async function settle(cond: () => boolean = () => false, rounds = 2000): Promise<void> {
  for (let i = 0; i < rounds && !cond(); i++) await new Promise<void>((r) => setImmediate(r));
}

export interface Completion {
  written: number;
  error: boolean;
}

/** A queue set up on `dev` whose completions resolve promises by token. */
export class Requester {
  queue!: DriverQueue;
  private readonly waiting = new Map<number, (c: Completion) => void>();
  private nextToken = 1;

  constructor(readonly dev: GuestVirtioDevice) {}

  async setup(index = 0, size = 64): Promise<this> {
    this.queue = await this.dev.setupQueue(index, size, (token, written, error) => {
      const w = this.waiting.get(token);
      this.waiting.delete(token);
      w?.({ written, error });
    });
    return this;
  }

  get outstanding(): number {
    return this.waiting.size;
  }

  /**
   * Sends `data` split into `pieces` readable buffers, with `writable` bytes of room in
   * `wpieces` buffers; resolves with the completion and the bytes written back.
   */
  submit(data: Uint8Array, writable: number, pieces = 1, wpieces = 1): { done: Promise<Completion & { out: Uint8Array }> } {
    const mem = new Uint8Array(this.dev.memory.buffer);
    const bufs: Array<{ gpa: number; len: number; writable: boolean }> = [];
    const split = (total: number, n: number) => {
      const out: number[] = [];
      let left = total;
      for (let i = 0; i < n; i++) {
        const take = i === n - 1 ? left : Math.max(1, Math.floor(total / n));
        out.push(Math.min(take, left));
        left -= out[i];
      }
      return out.filter((x) => x > 0);
    };
    let off = 0;
    for (const len of split(data.length, pieces)) {
      const gpa = this.dev.alloc(len);
      mem.set(data.subarray(off, off + len), gpa);
      bufs.push({ gpa, len, writable: false });
      off += len;
    }
    const wbufs: Array<{ gpa: number; len: number }> = [];
    for (const len of split(writable, wpieces)) {
      const gpa = this.dev.alloc(len);
      mem.fill(0, gpa, gpa + len);
      bufs.push({ gpa, len, writable: true });
      wbufs.push({ gpa, len });
    }
    const token = this.nextToken++;
    const done = new Promise<Completion & { out: Uint8Array }>((resolve) => {
      this.waiting.set(token, (c) => {
        const out = new Uint8Array(writable);
        let at = 0;
        for (const w of wbufs) {
          out.set(new Uint8Array(this.dev.memory.buffer, w.gpa, w.len), at);
          at += w.len;
        }
        resolve({ ...c, out: out.subarray(0, c.written) });
      });
    });
    if (!this.queue.add(bufs, token)) throw new Error("queue full");
    this.queue.kick();
    return { done };
  }
}

export function xor5a(b: Uint8Array): Uint8Array {
  return b.map((x) => x ^ 0x5a);
}
