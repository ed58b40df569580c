// The same drivers and device models over the `foreign` baseline (shared memory): what
// argo is compared against. Same requests, same checks.
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { ForeignDevice } from "../../host/transport/share/foreign.ts";
import { GuestHeap } from "../../host/guest/heap.ts";
import { BlkDriver, BlkModel, ConsoleDriver, ConsoleModel, RngDriver, RngModel } from "../../host/devices/index.ts";
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from "../../host/devices/blk/layout.ts";

function guestMemory() {
  const memory = new WebAssembly.Memory({ initial: 512, maximum: 512 });
  return { memory, heap: new GuestHeap(memory.buffer.byteLength, 8192) };
}

describe("devices over foreign mappings", () => {
  it("blk: 1 MiB written and read back; read-only refuses writes", async () => {
    const { memory, heap } = guestMemory();
    const disk = new Uint8Array(4 << 20);
    const dev = new ForeignDevice({ memory, heap, model: new BlkModel({ image: disk }) });
    const blk = new BlkDriver(dev);
    await blk.init();
    const data = new Uint8Array(randomBytes(1 << 20));
    const buf = dev.alloc(1 << 20);
    new Uint8Array(memory.buffer).set(data, buf);
    const ws: Promise<number>[] = [];
    for (let off = 0; off < data.length; off += 65536) ws.push(blk.write(off / 512, buf + off, 65536));
    for (const s of await Promise.all(ws)) expect(s).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.compare(disk.subarray(0, 1 << 20), data)).toBe(0);
    const back = dev.alloc(1 << 20);
    expect(await blk.read(0, back, 1 << 20)).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.compare(new Uint8Array(memory.buffer, back, 1 << 20), data)).toBe(0);
    expect(dev.exposedPages).toBe(memory.buffer.byteLength / 4096);

    const ro = guestMemory();
    const denied: string[] = [];
    const rodev = new ForeignDevice({ ...ro, model: new BlkModel({ image: new Uint8Array(1 << 20), readOnly: true }), deny: (p) => denied.push(p) });
    const roblk = new BlkDriver(rodev);
    await roblk.init();
    expect(await roblk.write(0, rodev.alloc(512), 512)).toBe(VIRTIO_BLK_S_IOERR);
    expect(denied).toEqual(["blk_write"]);
  });

  it("console echo and rng", async () => {
    const { memory, heap } = guestMemory();
    const out: number[] = [];
    const model = new ConsoleModel({ onOutput: (b) => out.push(...b) });
    const con = new ConsoleDriver(new ForeignDevice({ memory, heap, model }));
    await con.init();
    const got: number[] = [];
    con.onData((b) => got.push(...b));
    expect(await con.write(new TextEncoder().encode("hi"))).toBe(true);
    model.input(new Uint8Array(out));
    await new Promise((r) => setImmediate(r));
    expect(new TextDecoder().decode(new Uint8Array(got))).toBe("hi");
    const rng = new RngDriver(new ForeignDevice({ memory, heap, model: new RngModel() }));
    await rng.init();
    expect((await rng.read(32))!.length).toBe(32);
  });
});
