// The VirtIO-Argo transport end to end: a guest driver's requests reach a device model in
// another domain and come back, with Argo as the only path between them.
import { describe, expect, it } from "vitest";
import { world, settle, Requester, xor5a } from "./helpers.ts";
import { pattern } from "../argo/helpers.ts";
import { PairDenied, Toolstack } from "../../host/transport/bus/toolstack.ts";
import { EchoModel } from "./echo-model.ts";
import { STATUS_NEEDS_RESET } from "../../host/devices/types.ts";
import { encodeData, KIND_COMPLETION, FLAG_FIRST, FLAG_LAST, MSG_DATA, DATA_HEADER_SIZE } from "../../host/transport/argo/wire.ts";

async function ready(w: ReturnType<typeof world>, size = 64): Promise<Requester> {
  const accepted = await w.fe.negotiate(1n);
  expect(accepted & 1n).toBe(1n);
  const r = await new Requester(w.fe).setup(0, size);
  await w.fe.driverOk();
  return r;
}

describe("control plane", () => {
  it("negotiates features, reads and writes config, reaches DRIVER_OK", async () => {
    const w = world();
    const info = await w.fe.deviceInfo();
    expect(info).toMatchObject({ virtioId: 3, numQueues: 1, configSize: 8, maxQueueSize: 256 });
    const accepted = await w.fe.negotiate(1n | (1n << 5n)); // bit 5 is not offered
    expect(accepted).toBe(1n | (1n << 32n));
    expect([...(await w.fe.readConfig(0, 8))]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await w.fe.writeConfig(2, new Uint8Array([9, 9]));
    expect([...w.model.config.subarray(0, 4)]).toEqual([1, 2, 9, 9]);
    await expect(w.fe.readConfig(6, 8)).rejects.toThrow(/refused/);
    await new Requester(w.fe).setup(0, 16);
    await w.fe.driverOk();
    expect(w.model.env).not.toBeNull();
  });

  it("delivers config-change events from the device to the driver", async () => {
    const w = world();
    await ready(w);
    let changes = 0;
    w.fe.onConfigChange(() => changes++);
    w.model.env!.configChanged();
    await settle(() => changes > 0);
    expect(changes).toBe(1);
  });

  it("refuses a queue size that is not a power of two or too large", async () => {
    const w = world();
    await w.fe.negotiate(1n);
    await expect(w.fe.setupQueue(0, 24, () => {})).rejects.toThrow(/refused/);
    await expect(w.fe.setupQueue(0, 512, () => {})).rejects.toThrow(/refused/);
    await expect(w.fe.setupQueue(3, 16, () => {})).rejects.toThrow(/queue 3 does not exist/);
  });

  it("a driver that clears status bits gets NEEDS_RESET, not a crash", async () => {
    const w = world();
    await w.fe.negotiate(1n);
    const ep = (w.pair.server as unknown as { control: { handle(id: number, p: Uint8Array): { data: Uint8Array } } }).control;
    const r = ep.handle(0x08, new Uint8Array([1, 0, 0, 0]));
    expect(new DataView(r.data.buffer).getUint32(0, true) & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
  });
});

describe("data plane", () => {
  it("round-trips requests of many sizes and layouts; every byte arrives", async () => {
    const w = world({ ringLen: 4096 + 64 }); // small ring: forces fragmentation both ways
    const r = await ready(w);
    for (const [size, pieces, wpieces] of [[1, 1, 1], [100, 3, 2], [4000, 1, 1], [5000, 2, 5], [70000, 9, 3], [200000, 20, 12]] as const) {
      const data = pattern(size, size);
      const { done } = r.submit(data, size, pieces, wpieces);
      await settle(() => r.outstanding === 0);
      const c = await done;
      expect(c.error).toBe(false);
      expect(c.written).toBe(size);
      expect(c.out).toEqual(xor5a(data));
    }
    expect(w.fe.stats.protocolErrors).toBe(0);
    expect(w.pair.server.stats.protocolErrors).toBe(0);
  });

  it("keeps many requests in flight and completes them all", async () => {
    const w = world();
    const r = await ready(w, 256);
    const reqs = Array.from({ length: 100 }, (_, i) => {
      const data = pattern(64 + i * 37, i + 1);
      return { data, done: r.submit(data, data.length).done };
    });
    await settle(() => r.outstanding === 0);
    for (const q of reqs) expect((await q.done).out).toEqual(xor5a(q.data));
  });

  it("with EVENT_IDX negotiated, interrupts are suppressed while the driver has not caught up, and nothing is lost", async () => {
    const w = world();
    const { VIRTIO_F_EVENT_IDX } = await import("../../host/devices/types.ts");
    const accepted = await w.fe.negotiate(1n | VIRTIO_F_EVENT_IDX);
    expect(accepted & VIRTIO_F_EVENT_IDX).toBe(VIRTIO_F_EVENT_IDX);
    const r = await new Requester(w.fe).setup(0, 256);
    await w.fe.driverOk();
    const reqs = Array.from({ length: 60 }, (_, i) => {
      const data = pattern(10 + i, i + 5);
      return { data, done: r.submit(data, data.length).done };
    });
    await settle(() => r.outstanding === 0);
    for (const q of reqs) expect((await q.done).out).toEqual(xor5a(q.data));
  });

  it("no domain object holds a view of another domain's memory on the argo path", async () => {
    const w = world();
    const r = await ready(w);
    await r.submit(pattern(1000), 1000).done.catch(() => {});
    await settle(() => r.outstanding === 0);
    const foreign = (root: object, own: ArrayBufferLike): string[] => {
      const bad: string[] = [];
      const seen = new Set<unknown>();
      const walk = (x: unknown, path: string, depth: number) => {
        if (x === null || typeof x !== "object" || seen.has(x) || depth > 12) return;
        seen.add(x);
        // Reaching the hypervisor or the toolstack from guest or backend state would itself be the leak.
        if (x === w.hv || x === w.ts) { bad.push(`${path} (hypervisor/toolstack)`); return; }
        if (ArrayBuffer.isView(x)) {
          if (x.buffer !== own && (x.buffer === w.guest.memory.buffer || x.buffer === w.backend.memory.buffer)) bad.push(path);
          return;
        }
        if (x instanceof WebAssembly.Memory) {
          if (x.buffer !== own) bad.push(path);
          return;
        }
        for (const k of Object.getOwnPropertyNames(x)) walk((x as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
        if (x instanceof Map || x instanceof Set) for (const v of x.values()) walk(v, `${path}[]`, depth + 1);
      };
      walk(root, "root", 0);
      return bad;
    };
    expect(foreign(w.fe, w.guest.memory.buffer)).toEqual([]);
    expect(foreign(w.gt, w.guest.memory.buffer)).toEqual([]);
    expect(foreign(w.pair.server, w.backend.memory.buffer)).toEqual([]);
    expect(foreign(w.model, w.backend.memory.buffer)).toEqual([]);
  });
});

describe("failure and hostility", () => {
  it("a device reset completes every request in flight with an error", async () => {
    const w = world();
    const r = await ready(w);
    w.model.hold = true;
    const pending = [r.submit(pattern(10), 10).done, r.submit(pattern(20), 20).done];
    await settle(() => false, 20);
    await w.fe.reset();
    await settle(() => r.outstanding === 0);
    for (const p of pending) expect((await p).error).toBe(true);
    expect(w.model.resets).toBeGreaterThan(0);
  });

  it("unplug mid-traffic: every request completes, IOERR where it could not be served", async () => {
    const w = world();
    expect(w.gt.listen()).toBe(0);
    const r = await ready(w);
    const served = r.submit(pattern(30), 30).done;
    await settle(() => r.outstanding === 0);
    w.model.hold = true;
    const stuck = [r.submit(pattern(40), 40).done, r.submit(pattern(50), 50).done];
    await settle(() => false, 20);
    const removed: number[] = [];
    w.gt.onDevice((ev, fe) => ev === "removed" && removed.push(fe.entry.devNum));
    w.ts.unplug(w.pair);
    await settle(() => r.outstanding === 0);
    expect((await served).error).toBe(false);
    for (const p of stuck) expect((await p).error).toBe(true);
    expect(removed).toEqual([w.pair.entry.devNum]);
    expect(w.fe.gone).toBe(true);
    // New requests on a removed device fail at once.
    const late = r.submit(pattern(5), 5).done;
    await settle(() => r.outstanding === 0);
    expect((await late).error).toBe(true);
  });

  it("hotplug: a device announced on the bus is usable", async () => {
    const w = world();
    expect(w.gt.listen()).toBe(0);
    const model = new EchoModel();
    const pair = w.ts.hotplug({ type: "console", frontend: w.guest, backend: w.backend, model });
    await settle(() => w.gt.devices.has(pair.entry.devNum));
    const fe = w.gt.devices.get(pair.entry.devNum)!;
    await fe.negotiate(1n);
    const r = await new Requester(fe).setup(0, 16);
    await fe.driverOk();
    const data = pattern(333, 9);
    const c = r.submit(data, 333).done;
    await settle(() => r.outstanding === 0);
    expect((await c).out).toEqual(xor5a(data));
  });

  it("the backend domain dies mid-request: requests complete with an error promptly", async () => {
    const w = world();
    const r = await ready(w);
    w.model.hold = true;
    const stuck = r.submit(pattern(64), 64).done;
    await settle(() => false, 20);
    w.hv.destroyDomain(w.backend.domid);
    await settle(() => r.outstanding === 0);
    expect((await stuck).error).toBe(true);
    expect(w.fe.gone).toBe(true);
  });

  it("malformed or oversized completions are rejected and the transport stays up", async () => {
    const w = world();
    const r = await ready(w);
    w.model.hold = true;
    const victim = r.submit(pattern(16), 16).done;
    await settle(() => false, 20);
    // Forge completions from the backend domain itself (the only sender the ring accepts).
    const k = w.ts.kernel(w.backend);
    const buf = k.heap.alloc(8192);
    const dv = new DataView(w.backend.memory.buffer);
    const forge = (id: number, total: number, payload: number, reserved = 0) => {
      encodeData(dv, buf, { kind: KIND_COMPLETION, flags: FLAG_FIRST | FLAG_LAST, queue: 0, requestId: id, offset: 0, total, writable: total });
      dv.setUint32(buf + 20, reserved, true);
      return k.argo.send(w.guest.domid, w.pair.entry.frontendPort, buf, DATA_HEADER_SIZE + payload, MSG_DATA, w.pair.entry.backendPort);
    };
    const before = w.fe.stats.protocolErrors;
    forge(0xdeadbeef, 4, 4); // unknown request id
    forge(0, 4, 4, 7); // reserved bits set
    forge(0, 8, 100); // payload longer than total
    await settle(() => w.fe.stats.protocolErrors >= before + 3);
    expect(w.fe.stats.protocolErrors).toBeGreaterThanOrEqual(before + 3);
    // An oversized completion for the real request fails it (capacity 16).
    const inflight = [...(w.fe as unknown as { requests: { ids(): number[] } }).requests.ids()];
    forge(inflight[0], 4096, 4096);
    await settle(() => r.outstanding === 0);
    expect((await victim).error).toBe(true);
    // Still up: new traffic flows.
    w.model.hold = false;
    w.model.release();
    const data = pattern(77);
    const ok = r.submit(data, 77).done;
    await settle(() => r.outstanding === 0);
    expect((await ok).out).toEqual(xor5a(data));
  });

  it("a pair the policy does not allow is not even enumerated", () => {
    const w = world();
    const stranger = w.hv.createDomain({ name: "s", label: "stranger_t", memoryBytes: 1 << 20 });
    const ts = new Toolstack(w.hv);
    expect(() => ts.addDevice({ type: "console", frontend: stranger, backend: w.backend, model: new EchoModel() })).toThrow(PairDenied);
    expect(() => ts.addDevice({ type: "blk", frontend: w.guest, backend: w.backend, model: new EchoModel() })).toThrow(/no blk pair/);
  });
});
