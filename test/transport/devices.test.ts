// blk, console and rng end to end over the argo transport: two guests and a backend
// domain, under a policy with per-pair limits and device rules.
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack } from "../../host/transport/bus/toolstack.ts";
import { GuestTransport } from "../../host/transport/bus/guest-transport.ts";
import { BlkDriver, BlkModel, ConsoleDriver, RngDriver, type ConsoleModel, type GuestVirtioDevice, type VirtioDeviceModel } from "../../host/devices/index.ts";
import type { DevicePairSpec } from "../../host/transport/bus/toolstack.ts";
import { VIRTIO_F_RING_PACKED } from "../../host/devices/types.ts";
import type { ArgoFrontend } from "../../host/transport/argo/frontend/frontend.ts";
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from "../../host/devices/blk/layout.ts";
import { settle } from "./helpers.ts";

const POLICY = `
domains: [guest_t, guest2_t, backend_t]
pairs:
  - frontend: guest_t
    backend: backend_t
    device: blk
    allow: [enable, send, register_single_source]
    limits: { max_ring_bytes: 1048576, max_message_bytes: 65600 }
  - { frontend: guest_t, backend: backend_t, device: console, allow: [send, register_single_source] }
  - { frontend: guest_t, backend: backend_t, device: rng, allow: [send, register_single_source] }
  - frontend: guest2_t
    backend: backend_t
    device: blk
    allow: [enable, send, register_single_source]
    rules: { read_only: true }
`;

/** The transports every device test runs over: argo and the three sharing baselines. */
const TRANSPORTS = ["argo", "grant", "foreign", "bounce"] as const;
type Transport = (typeof TRANSPORTS)[number];

function boot(transport: Transport = "argo") {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "devices.yaml") });
  const g1 = hv.createDomain({ name: "guest1", label: "guest_t", memoryBytes: 32 << 20 });
  const g2 = hv.createDomain({ name: "guest2", label: "guest2_t", memoryBytes: 16 << 20 });
  const be = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 64 << 20 });
  const ts = new Toolstack(hv);
  const disk1 = new Uint8Array(4 << 20);
  const disk2 = new Uint8Array(1 << 20).fill(7);
  const output: number[] = [];
  const specs = {
    blk1: { type: "blk", frontend: g1, backend: be, options: { blk: { image: disk1, id: "disk-one" } } },
    con: { type: "console", frontend: g1, backend: be, options: { console: { onOutput: (b: Uint8Array) => output.push(...b) } } },
    rng: { type: "rng", frontend: g1, backend: be },
    blk2: { type: "blk", frontend: g2, backend: be, options: { blk: { image: disk2 } } },
  } satisfies Record<string, DevicePairSpec>;
  const devices = new Map<keyof typeof specs, GuestVirtioDevice>();
  const models = new Map<keyof typeof specs, VirtioDeviceModel>();
  if (transport === "argo") {
    const pairs = (Object.entries(specs) as Array<[keyof typeof specs, DevicePairSpec]>).map(([name, spec]) => [name, ts.addDevice(spec)] as const);
    ts.writeDeviceTable(g1);
    ts.writeDeviceTable(g2);
    const t1 = new GuestTransport(ts.kernel(g1));
    const t2 = new GuestTransport(ts.kernel(g2));
    expect(Array.isArray(t1.probe())).toBe(true);
    expect(Array.isArray(t2.probe())).toBe(true);
    for (const [name, pair] of pairs) {
      devices.set(name, (pair.frontend === g1 ? t1 : t2).devices.get(pair.entry.devNum)!);
      models.set(name, pair.model);
    }
  } else {
    for (const [name, spec] of Object.entries(specs) as Array<[keyof typeof specs, DevicePairSpec]>) {
      const pair = ts.addSharedDevice(spec, transport);
      devices.set(name, pair.device);
      models.set(name, pair.model);
    }
  }
  return { hv, ts, g1, g2, be, disk1, disk2, output, dev: (n: keyof typeof specs) => devices.get(n)!, model: (n: keyof typeof specs) => models.get(n)! };
}

const drive = async <T>(p: Promise<T>): Promise<T> => {
  let done = false;
  let value!: T;
  p.then((v) => { done = true; value = v; });
  await settle(() => done, 100000);
  if (!done) throw new Error("request never completed");
  return value;
};

describe.each(TRANSPORTS)("devices over %s", (transport) => {
  it("blk: 1 MiB of random data written and read back in requests of 512 B .. 256 KiB", async () => {
    const w = boot(transport);
    const blk = new BlkDriver(w.dev("blk1"));
    await drive(blk.init());
    expect(blk.capacity).toBe((4 << 20) / 512);
    expect(await drive(blk.getId())).toBe("disk-one");
    const data = new Uint8Array(randomBytes(1 << 20));
    const mem = new Uint8Array(w.g1.memory.buffer);
    const buf = blk.dev.alloc(1 << 20);
    mem.set(data, buf);
    const sizes = [512, 1024, 4096, 8192, 65536, 131072, 262144];
    let off = 0;
    let i = 0;
    const writes: Promise<number>[] = [];
    while (off < data.length) {
      const len = Math.min(sizes[i++ % sizes.length], data.length - off);
      writes.push(blk.write(off / 512, buf + off, len));
      off += len;
    }
    for (const s of await drive(Promise.all(writes))) expect(s).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.compare(w.disk1.subarray(0, 1 << 20), data)).toBe(0); // toEqual on 1 MiB is seconds
    const back = blk.dev.alloc(1 << 20);
    off = 0;
    i = 3;
    const reads: Promise<number>[] = [];
    while (off < data.length) {
      const len = Math.min(sizes[i++ % sizes.length], data.length - off);
      reads.push(blk.read(off / 512, back + off, len));
      off += len;
    }
    for (const s of await drive(Promise.all(reads))) expect(s).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.compare(mem.subarray(back, back + (1 << 20)), data)).toBe(0);
    expect(await drive(blk.flush())).toBe(VIRTIO_BLK_S_OK);
    expect(await drive(blk.writeZeroes(0, 8))).toBe(VIRTIO_BLK_S_OK);
    expect(w.disk1.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect(await drive(blk.read(8192, back, 512))).toBe(VIRTIO_BLK_S_IOERR); // past the end
    // argo: large requests were fragmented (max_message_bytes 65600) and nothing was malformed.
    if (transport === "argo") expect((w.dev("blk1") as ArgoFrontend).stats.protocolErrors).toBe(0);
  });

  it("blk read-only by policy: OUT fails with IOERR and an audit entry; reads work", async () => {
    const w = boot(transport);
    const blk = new BlkDriver(w.dev("blk2"));
    await drive(blk.init());
    expect(blk.readOnly).toBe(true);
    const buf = blk.dev.alloc(4096);
    expect(await drive(blk.write(0, buf, 4096))).toBe(VIRTIO_BLK_S_IOERR);
    expect(await drive(blk.discard(0, 8))).toBe(VIRTIO_BLK_S_IOERR);
    expect(w.disk2.every((b) => b === 7)).toBe(true);
    const denial = w.hv.audit.entries().find((e) => e.perm === "blk_write");
    expect(denial?.text).toMatch(/avc: denied \{ blk_write \} for scontext=guest2_t tcontext=backend_t tclass=blk/);
    expect(await drive(blk.read(0, buf, 4096))).toBe(VIRTIO_BLK_S_OK);
    expect(new Uint8Array(w.g2.memory.buffer, buf, 4096).every((b) => b === 7)).toBe(true);
  });

  it("console: guest output reaches the host, host input reaches the guest (echo)", async () => {
    const w = boot(transport);
    const con = new ConsoleDriver(w.dev("con"));
    await drive(con.init());
    const got: number[] = [];
    con.onData((b) => got.push(...b));
    expect(await drive(con.write(new TextEncoder().encode("ping from guest")))).toBe(true);
    expect(new TextDecoder().decode(new Uint8Array(w.output))).toBe("ping from guest");
    // Echo it back through the model's input.
    (w.model("con") as ConsoleModel).input(new Uint8Array(w.output));
    await settle(() => got.length >= w.output.length);
    expect(new TextDecoder().decode(new Uint8Array(got))).toBe("ping from guest");
  });

  it("rng: returns the requested number of bytes, different each time", async () => {
    const w = boot(transport);
    const rng = new RngDriver(w.dev("rng"));
    await drive(rng.init());
    const a = (await drive(rng.read(64)))!;
    const b = (await drive(rng.read(64)))!;
    expect(a.length).toBe(64);
    expect(b.length).toBe(64);
    expect(a).not.toEqual(b);
  });

  it("a pair the policy does not have is refused on every transport, and a blk pair for guest2 must be read-only", () => {
    const w = boot(transport);
    const spec = { type: "console", frontend: w.g2, backend: w.be } as const;
    expect(() => (transport === "argo" ? w.ts.addDevice(spec) : w.ts.addSharedDevice(spec, transport))).toThrow(/no console pair/);
    const rw = { type: "blk", frontend: w.g2, backend: w.be, model: new BlkModel({ image: new Uint8Array(4096) }) } as const;
    expect(() => (transport === "argo" ? w.ts.addDevice(rw) : w.ts.addSharedDevice(rw, transport))).toThrow(/read-only/);
  });
});

describe.each(["argo", "foreign", "bounce"] as const)("packed virtqueues over %s (VIRTIO_F_RING_PACKED)", (transport) => {
  it("blk: 1 MiB written and read back in 64 KiB requests on packed rings", async () => {
    const w = boot(transport);
    const blk = new BlkDriver(w.dev("blk1"), { packed: true, queueSize: 64 });
    await drive(blk.init());
    expect(blk.features & VIRTIO_F_RING_PACKED).toBe(VIRTIO_F_RING_PACKED);
    const data = new Uint8Array(randomBytes(1 << 20));
    const buf = blk.dev.alloc(1 << 20);
    new Uint8Array(w.g1.memory.buffer).set(data, buf);
    const writes: Promise<number>[] = [];
    for (let off = 0; off < data.length; off += 65536) writes.push(blk.write(off / 512, buf + off, 65536));
    for (const st of await drive(Promise.all(writes))) expect(st).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.compare(w.disk1.subarray(0, 1 << 20), data)).toBe(0);
    const back = blk.dev.alloc(1 << 20);
    const reads: Promise<number>[] = [];
    for (let off = 0; off < data.length; off += 65536) reads.push(blk.read(off / 512, back + off, 65536));
    for (const st of await drive(Promise.all(reads))) expect(st).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.compare(new Uint8Array(w.g1.memory.buffer, back, 1 << 20), data)).toBe(0);
  });
});

describe.each(TRANSPORTS)("queue memory over %s", (transport) => {
  it("a driver that resets and sets its queue up 50 times uses no more guest (or backend) pages than once", async () => {
    const w = boot(transport);
    const dev = w.dev("rng");
    const guestHeap = w.ts.kernel(w.g1).heap;
    const backendHeap = w.ts.kernel(w.be).heap;
    const cycle = async () => {
      const rng = new RngDriver(dev, { queueSize: 64 });
      await drive(rng.init());
      expect((await drive(rng.read(16)))!.length).toBe(16);
      await drive(dev.reset());
    };
    await cycle();
    await cycle(); // the first set-up's pages are back: steady state from here
    const guestPages = guestHeap.usedPages;
    const backendPages = backendHeap.usedPages;
    for (let i = 0; i < 50; i++) await cycle();
    expect(guestHeap.usedPages).toBeLessThanOrEqual(guestPages);
    expect(backendHeap.usedPages).toBeLessThanOrEqual(backendPages);
  });
});

describe("blk on a file", () => {
  it("reads and writes a disk image file (in the OS temp dir, never the repo)", async () => {
    const { mkdtempSync, writeFileSync, readFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "virtio-argo-blk-"));
    try {
      const path = join(dir, "disk.img");
      writeFileSync(path, new Uint8Array(1 << 20).fill(3));
      const hv = new Hypervisor({ policy: Policy.parse(POLICY, "devices.yaml") });
      const g = hv.createDomain({ name: "g", label: "guest_t", memoryBytes: 8 << 20 });
      const be = hv.createDomain({ name: "b", label: "backend_t", memoryBytes: 8 << 20 });
      const ts = new Toolstack(hv);
      const pair = ts.addDevice({ type: "blk", frontend: g, backend: be, options: { blk: { image: { path } } } });
      ts.writeDeviceTable(g);
      const gt = new GuestTransport(ts.kernel(g));
      gt.probe();
      const blk = new BlkDriver(gt.devices.get(pair.entry.devNum)!);
      await drive(blk.init());
      const buf = blk.dev.alloc(8192);
      const mem = new Uint8Array(g.memory.buffer);
      mem.fill(9, buf, buf + 4096);
      expect(await drive(blk.write(8, buf, 4096))).toBe(VIRTIO_BLK_S_OK);
      expect(await drive(blk.flush())).toBe(VIRTIO_BLK_S_OK);
      expect(await drive(blk.read(0, buf, 8192))).toBe(VIRTIO_BLK_S_OK);
      expect(mem[buf]).toBe(3);
      expect(mem[buf + 4096]).toBe(9);
      const file = readFileSync(path);
      expect(file[4096]).toBe(9);
      expect(file[4095]).toBe(3);
      (pair.model as BlkModel).close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
