// What is particular to each sharing baseline: grant's checks (Xen's encoding, grantee,
// access, ended grants, revoke while mapped), bounce's slot pool (exhaustion, limits,
// no double free), and what each exposes to the backend. The device behaviour itself is
// the parameterised suite in devices.test.ts.
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack, type ShareTransportName } from "../../host/transport/bus/toolstack.ts";
import { BlkDriver, BlkModel, ConsoleDriver, ConsoleModel } from "../../host/devices/index.ts";
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN } from "../../host/devices/blk/layout.ts";
import { GNTST_busy, GNTST_okay } from "../../host/hypervisor/grant.ts";
import type { GrantDevice } from "../../host/transport/share/grant.ts";
import { IO_TLB_SIZE, MAX_MAPPING_BYTES, SwiotlbPool, type BounceDevice } from "../../host/transport/share/bounce.ts";
import type { DriverQueue } from "../../host/devices/types.ts";

function world(transport: ShareTransportName, model: BlkModel | ConsoleModel) {
  const hv = new Hypervisor({ policy: Policy.allowAll() });
  const guest = hv.createDomain({ name: "guest", label: "guest_t", memoryBytes: 8 << 20 });
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 8 << 20 });
  const other = hv.createDomain({ name: "other", label: "other_t", memoryBytes: 1 << 20 });
  const ts = new Toolstack(hv);
  const pair = ts.addSharedDevice({ type: model.type, frontend: guest, backend, model }, transport);
  return { hv, guest, backend, other, ts, pair, mem: new Uint8Array(guest.memory.buffer), dv: new DataView(guest.memory.buffer) };
}

/** A raw blk queue driven by hand, so that a test can tamper with descriptors before the kick. */
async function rawBlkQueue(w: ReturnType<typeof world>) {
  const dev = w.pair.device;
  await dev.negotiate(0n);
  const probe = dev.alloc(4096); // the rings come next from the same page allocator
  const used: Array<[number, number, boolean]> = [];
  const q: DriverQueue = await dev.setupQueue(0, 8, (token, written, error) => used.push([token, written, error]));
  await dev.driverOk();
  const desc = probe + 4096;
  const req = dev.alloc(4096);
  const data = dev.alloc(4096);
  w.dv.setUint32(req, VIRTIO_BLK_T_IN, true);
  w.dv.setBigUint64(req + 8, 0n, true);
  w.mem.fill(0xaa, data, data + 4096);
  const add = () =>
    q.add([{ gpa: req, len: 16, writable: false }, { gpa: data, len: 512, writable: true }, { gpa: req + 64, len: 1, writable: true }], 7);
  return { q, used, desc, data, add };
}

describe("grant transport (virtio-grant, Xen's grant tables)", () => {
  it("descriptors carry grant handles in Xen's encoding, never guest-physical addresses", async () => {
    const w = world("grant", new ConsoleModel());
    const con = new ConsoleDriver(w.pair.device);
    await con.init(); // posts receive buffers the model holds, mapped
    const dev = w.pair.device as GrantDevice;
    let handles = 0;
    // Scan the guest's first pages for descriptor-shaped entries: every address the device sees has bit 63 set.
    for (let at = 8192; at < 64 * 4096; at += 16) {
      if (w.dv.getUint32(at + 4, true) === 0x80000000) {
        const ref = w.dv.getUint32(at, true) >>> 12;
        expect(w.hv.grants.gfnOf(w.guest.domid, ref)).toBeGreaterThan(0);
        handles++;
      }
    }
    expect(handles).toBeGreaterThan(0);
    expect(dev.outstandingGrants).toBeGreaterThan(0);
  });

  it("revoking a grant the backend still has mapped is refused (busy) until the backend unmaps it", async () => {
    const w = world("grant", new ConsoleModel());
    const model = w.pair.model as ConsoleModel;
    const con = new ConsoleDriver(w.pair.device);
    await con.init();
    // A receive buffer's grant: mapped by the backend while the model waits for input.
    let ref = -1;
    for (let at = 8192; at < 64 * 4096 && ref < 0; at += 16) {
      if (w.dv.getUint32(at + 4, true) === 0x80000000 && (w.dv.getUint16(at + 12, true) & 2) !== 0) ref = w.dv.getUint32(at, true) >>> 12;
    }
    expect(ref).toBeGreaterThanOrEqual(0);
    expect(w.hv.grants.mappedCount(w.guest.domid, ref)).toBe(1);
    expect(w.hv.grants.endAccess(w.guest, ref)).toBe(GNTST_busy);
    const got: number[] = [];
    con.onData((b) => got.push(...b));
    model.input(new TextEncoder().encode("x")); // completes one receive buffer: unmapped, then ended
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([120]);
  });

  const hostile: Array<[string, (w: ReturnType<typeof world>, data: number) => { lo: number; hi: number }]> = [
    ["a grant to another domain (wrong grantee)", (w, data) => ({ lo: w.hv.grants.grantAccess(w.guest, w.other.domid, data / 4096, false) << 12, hi: 0x80000000 })],
    ["a read-only grant for a writable buffer", (w, data) => ({ lo: w.hv.grants.grantAccess(w.guest, w.backend.domid, data / 4096, true) << 12, hi: 0x80000000 })],
    ["a grant the guest already ended (map after end)", (w, data) => {
      const ref = w.hv.grants.grantAccess(w.guest, w.backend.domid, data / 4096, false);
      expect(w.hv.grants.endAccess(w.guest, ref)).toBe(GNTST_okay);
      return { lo: ref << 12, hi: 0x80000000 };
    }],
  ];
  for (const [name, forge] of hostile) {
    it(`the hypervisor refuses ${name}: the queue breaks, nothing is written, the denial is audited`, async () => {
      const w = world("grant", new BlkModel({ image: new Uint8Array(1 << 20).fill(0x55) }));
      const r = await rawBlkQueue(w);
      expect(r.add()).toBe(true);
      const { lo, hi } = forge(w, r.data);
      w.dv.setUint32(r.desc + 16, lo, true); // descriptor 1: the data buffer
      w.dv.setUint32(r.desc + 16 + 4, hi, true);
      r.q.kick();
      expect(r.used).toEqual([]);
      expect(w.mem.subarray(r.data, r.data + 512).every((b) => b === 0xaa)).toBe(true);
      expect(w.hv.audit.entries().some((e) => e.perm === "grant_map")).toBe(true);
    });
  }

  it("a chain claiming more pages than any request is refused before any map (no map storm)", async () => {
    const w = world("grant", new BlkModel({ image: new Uint8Array(1 << 20).fill(0x55) }));
    const r = await rawBlkQueue(w);
    expect(r.add()).toBe(true);
    // The hostile guest grants 1500 more pages right after the chain's refs, so every page
    // of an over-long buffer would map: only the bound stops the backend mapping them all.
    expect(w.hv.grants.grantAccessSeq(w.guest, w.backend.domid, 300, 1500, false)).toBeGreaterThan(0);
    w.dv.setUint32(r.desc + 16 + 8, 1500 * 4096, true); // the data buffer's len
    const maps = w.hv.grants.exposedPages(w.backend.domid, w.guest.domid);
    const t0 = performance.now();
    r.q.kick();
    expect(performance.now() - t0).toBeLessThan(50);
    expect(r.used).toEqual([]);
    expect(w.hv.grants.exposedPages(w.backend.domid, w.guest.domid)).toBe(maps); // nothing new mapped
    expect(w.hv.audit.entries().some((e) => e.perm === "grant_map")).toBe(true);
  });

  it("a raw guest-physical address (bit 63 clear) is refused before any access", async () => {
    const w = world("grant", new BlkModel({ image: new Uint8Array(1 << 20).fill(0x55) }));
    const r = await rawBlkQueue(w);
    expect(r.add()).toBe(true);
    w.dv.setUint32(r.desc + 16, r.data, true);
    w.dv.setUint32(r.desc + 16 + 4, 0, true);
    r.q.kick();
    expect(r.used).toEqual([]);
    expect(w.mem.subarray(r.data, r.data + 512).every((b) => b === 0xaa)).toBe(true);
  });

  it("an honest request maps, completes, and leaves no grant behind but the rings'", async () => {
    const w = world("grant", new BlkModel({ image: new Uint8Array(1 << 20).fill(0x55) }));
    const r = await rawBlkQueue(w);
    const dev = w.pair.device as GrantDevice;
    const rings = dev.outstandingGrants;
    expect(r.add()).toBe(true);
    expect(dev.outstandingGrants).toBeGreaterThan(rings);
    r.q.kick();
    expect(r.used).toEqual([[7, 513, false]]);
    expect(w.mem.subarray(r.data, r.data + 512).every((b) => b === 0x55)).toBe(true);
    expect(dev.outstandingGrants).toBe(rings);
  });
});

describe("bounce transport (swiotlb)", () => {
  it("slot pool: exhaustion returns -1 and takes nothing; a double free throws; no mapping over 256 KiB", () => {
    const pool = new SwiotlbPool(0, 256);
    expect(pool.alloc(MAX_MAPPING_BYTES + 1)).toBe(-1);
    const a = pool.alloc(MAX_MAPPING_BYTES);
    const b = pool.alloc(MAX_MAPPING_BYTES);
    expect([a, b].sort()).toEqual([0, 128]);
    expect(pool.free).toBe(0);
    expect(pool.alloc(1)).toBe(-1);
    expect(pool.stats.exhausted).toBe(1);
    pool.release(a, MAX_MAPPING_BYTES);
    expect(() => pool.release(a, IO_TLB_SIZE)).toThrow(/freed twice/);
    expect(pool.free).toBe(128);
    // A mapping never crosses a 128-slot segment: 2 slots free at 126..127 and 128..129 do not make a run.
    const p2 = new SwiotlbPool(0, 256);
    const big = p2.alloc(126 * IO_TLB_SIZE);
    expect(big).toBe(0);
    const rest = p2.alloc(128 * IO_TLB_SIZE);
    expect(rest).toBe(128);
    p2.release(rest, 2 * IO_TLB_SIZE); // frees 128..129
    expect(p2.alloc(4 * IO_TLB_SIZE)).toBe(-1);
  });

  it("more requests than slots: they wait for slots, none is lost, every slot comes back", async () => {
    const hv = new Hypervisor({ policy: Policy.allowAll() });
    const guest = hv.createDomain({ name: "guest", label: "g", memoryBytes: 16 << 20 });
    const backend = hv.createDomain({ name: "backend", label: "b", memoryBytes: 1 << 20 });
    const ts = new Toolstack(hv);
    const disk = new Uint8Array(8 << 20);
    // A backend that serves on its own schedule (as a real one does), so requests pile up.
    class LaterBlk extends BlkModel {
      override queueNotify(q: number): void {
        setImmediate(() => super.queueNotify(q));
      }
    }
    const pair = ts.addSharedDevice({ type: "blk", frontend: guest, backend, model: new LaterBlk({ image: disk }) }, "bounce", { sharedBytes: 2 << 20 });
    const dev = pair.device as BounceDevice;
    const slots = dev.pool.free;
    const blk = new BlkDriver(dev);
    await blk.init();
    // 4 MiB in 1 MiB requests through a pool of a few MiB: split into 256 KiB segments, and queued when slots run out.
    const data = new Uint8Array(randomBytes(4 << 20));
    const buf = dev.alloc(4 << 20);
    new Uint8Array(guest.memory.buffer).set(data, buf);
    const writes = [0, 1, 2, 3].map((i) => blk.write(i * 2048, buf + i * (1 << 20), 1 << 20));
    expect(await Promise.all(writes)).toEqual([0, 0, 0, 0].map(() => VIRTIO_BLK_S_OK));
    expect(Buffer.compare(disk.subarray(0, 4 << 20), data)).toBe(0);
    const back = dev.alloc(4 << 20);
    const reads = [0, 1, 2, 3].map((i) => blk.read(i * 2048, back + i * (1 << 20), 1 << 20));
    expect(await Promise.all(reads)).toEqual([0, 0, 0, 0].map(() => VIRTIO_BLK_S_OK));
    expect(Buffer.compare(new Uint8Array(guest.memory.buffer, back, 4 << 20), data)).toBe(0);
    expect(dev.pool.free).toBe(slots);
    expect(dev.pool.stats.tooLarge).toBe(0);
    expect(dev.pool.stats.exhausted).toBeGreaterThan(0); // the pool did run out on the way
  });
});

describe("what each transport exposes to its backend", () => {
  it("argo none, grant only the pages it granted, bounce the shared region, foreign everything", async () => {
    const exposed: Record<string, number> = {};
    for (const t of ["grant", "bounce", "foreign"] as const) {
      const w = world(t, new BlkModel({ image: new Uint8Array(1 << 20) }));
      const blk = new BlkDriver(w.pair.device);
      await blk.init();
      const buf = w.pair.device.alloc(65536);
      expect(await blk.write(0, buf, 65536)).toBe(VIRTIO_BLK_S_OK);
      exposed[t] = w.pair.device.exposedPages;
    }
    const guestPages = (8 << 20) / 4096;
    expect(exposed.foreign).toBe(guestPages);
    expect(exposed.grant).toBeGreaterThan(16); // the 64 KiB buffer's pages + rings + request pages
    expect(exposed.grant).toBeLessThan(64);
    expect(exposed.bounce).toBe((64 << 20) / 4096); // the whole shared region, whatever was used
  });
});
