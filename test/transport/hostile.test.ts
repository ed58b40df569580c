// A hostile frontend: random and malformed messages on the backend's ring. The backend
// never throws, never serves garbage as a request, and keeps serving honest traffic.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { world, settle, Requester, xor5a, rawDataSender } from "./helpers.ts";
import { EchoModel } from "./echo-model.ts";
import { GuestTransport } from "../../host/transport/bus/guest-transport.ts";
import { pattern } from "../argo/helpers.ts";
import { MSG_CONTROL, MSG_DATA, MSG_BUS, encodeData, KIND_REQUEST, FLAG_FIRST, FLAG_LAST } from "../../host/transport/argo/wire.ts";

describe("hostile frontend", () => {
  it("random message bodies of every type are rejected and counted; service continues", async () => {
    const w = world();
    await w.fe.negotiate(1n);
    const r = await new Requester(w.fe).setup(0, 64);
    await w.fe.driverOk();
    const k = w.ts.kernel(w.guest);
    const buf = k.heap.alloc(65536);
    const mem = new Uint8Array(w.guest.memory.buffer);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ type: fc.constantFrom(MSG_CONTROL, MSG_DATA, MSG_BUS, 0, 0xffffffff), body: fc.uint8Array({ maxLength: 600 }) }), { minLength: 1, maxLength: 20 }),
        async (msgs) => {
          for (const m of msgs) {
            mem.set(m.body, buf);
            k.argo.send(w.backend.domid, w.pair.entry.backendPort, buf, m.body.length, m.type, w.pair.entry.frontendPort);
          }
          await settle(() => false, 5);
        },
      ),
      { numRuns: 60 },
    );
    expect(w.pair.server.stats.protocolErrors).toBeGreaterThan(0);
    // Honest traffic still flows.
    const data = pattern(500, 3);
    const done = r.submit(data, 500).done;
    await settle(() => r.outstanding === 0);
    expect((await done).out).toEqual(xor5a(data));
  });

  it("requests for absent queues, oversized requests and out-of-order fragments are failed back, not served", async () => {
    const w = world();
    const send = await rawDataSender(w);
    const served = w.model.served;
    send({ kind: KIND_REQUEST, flags: FLAG_FIRST | FLAG_LAST, queue: 5, requestId: 1, offset: 0, total: 0, writable: 8 });
    send({ kind: KIND_REQUEST, flags: FLAG_FIRST | FLAG_LAST, queue: 0, requestId: 2, offset: 0, total: 0, writable: 64 << 20 });
    send({ kind: KIND_REQUEST, flags: FLAG_FIRST, queue: 0, requestId: 3, offset: 0, total: 100, writable: 8 }, 10);
    send({ kind: KIND_REQUEST, flags: FLAG_LAST, queue: 0, requestId: 3, offset: 50, total: 100, writable: 8 }, 10);
    await settle(() => w.pair.server.stats.protocolErrors >= 3);
    expect(w.pair.server.stats.protocolErrors).toBeGreaterThanOrEqual(3);
    expect(w.model.served).toBe(served);
  });
});

describe("hostile frontend: resource exhaustion", () => {
  it("requests opened and never finished cannot exhaust the backend's memory: another guest's device on it still completes", async () => {
    const w = world();
    await w.fe.negotiate(1n);
    await new Requester(w.fe).setup(0, 64);
    await w.fe.driverOk();
    // A second guest with its own device on the same backend.
    const g2 = w.hv.createDomain({ name: "guest2", label: "guest_t", memoryBytes: 16 << 20 });
    const pair2 = w.ts.addDevice({ type: "console", frontend: g2, backend: w.backend, model: new EchoModel() });
    w.ts.writeDeviceTable(g2);
    const gt2 = new GuestTransport(w.ts.kernel(g2));
    expect(Array.isArray(gt2.probe())).toBe(true);
    const backendHeap = w.ts.kernel(w.backend).heap;
    const k = w.ts.kernel(w.guest);
    const buf = k.heap.alloc(4096);
    const dv = new DataView(w.guest.memory.buffer);
    // Each FIRST fragment announces ~1 MiB and never sends the rest; the hostile guest keeps
    // sending while the backend takes anything (it stops reading once the guest's budget is spent).
    let refusedInARow = 0;
    for (let id = 100; id < 1200 && refusedInARow < 50; id++) {
      encodeData(dv, buf, { kind: KIND_REQUEST, flags: FLAG_FIRST, queue: 0, requestId: id, offset: 0, total: 1 << 20, writable: 4096 });
      while (k.argo.send(w.backend.domid, w.pair.entry.backendPort, buf, 24 + 8, MSG_DATA, w.pair.entry.frontendPort) < 0) {
        if (++refusedInARow >= 50) break;
        await settle(() => false, 2);
      }
      if (refusedInARow < 50) refusedInARow = 0;
    }
    await settle(() => false, 50);
    expect(w.pair.server.stats.budgetWaits).toBeGreaterThan(0); // held at its budget, not served into OOM
    expect(backendHeap.usedPages * 4096).toBeLessThan((16 << 20) / 2);
    // The other guest's device negotiates, sets its queue up and echoes.
    const fe2 = gt2.devices.get(pair2.entry.devNum)!;
    await fe2.negotiate(1n);
    const r2 = await new Requester(fe2).setup(0, 64);
    await fe2.driverOk();
    const data = pattern(200_000, 9);
    const done = r2.submit(data, data.length).done;
    await settle(() => r2.outstanding === 0, 20000);
    const c = await done;
    expect(c.error).toBe(false);
    expect(Buffer.compare(c.out, xor5a(data))).toBe(0);
  });
});

describe("hostile backend: bus flooding", () => {
  it("endless DEVICE_READY announcements attach at most MAX_DEVICES and never crash the guest", async () => {
    const w = world();
    expect(w.gt.listen()).toBe(0);
    const k = w.ts.kernel(w.backend);
    const buf = k.heap.alloc(4096);
    const dv = new DataView(w.backend.memory.buffer);
    const { writeEntry } = await import("../../host/transport/bus/enumeration.ts");
    const { BUS_PORT, BUS_DEVICE_READY, BUS_MESSAGE_SIZE } = await import("../../host/transport/argo/wire.ts");
    for (let n = 100; n < 300; n++) {
      dv.setUint32(buf, BUS_DEVICE_READY, true);
      writeEntry(dv, buf + 4, { ...w.pair.entry, devNum: n, frontendPort: 0x40000 + 2 * n, backendPort: 0x40001 + 2 * n });
      while (k.argo.send(w.guest.domid, BUS_PORT, buf, BUS_MESSAGE_SIZE, MSG_BUS, 0) < 0) await settle(() => false, 2);
      if (n % 16 === 0) await settle(() => false, 2);
    }
    await settle(() => false, 20);
    expect(w.gt.devices.size).toBeLessThanOrEqual(64);
  });
});
