// Buffers re-added from inside completion callbacks, at every queue depth up to the ring
// size, on all four transports: every completion carries its own request's bytes (a reclaim
// that freed its batch before the callbacks ran handed new requests' tokens to old ones).
import { describe, expect, it } from "vitest";
import { BlkDriver, ConsoleDriver, VIRTIO_F_RING_PACKED, type ConsoleModel } from "../../host/devices/index.ts";
import { VIRTIO_BLK_S_OK } from "../../host/devices/blk/layout.ts";
import { EchoClient, TRANSPORT_NAMES, attachEcho, rig, rng, seedFor, until, withSeed } from "./helpers.ts";

const RING = 16;

describe.each(TRANSPORT_NAMES)("re-adding buffers inside completion callbacks over %s", (transport) => {
  // grant puts grant handles in split descriptors only: no packed rings there.
  it.each(transport === "grant" ? ["split"] : ["split", "packed"])(`every depth 1..${RING} on a ${RING}-entry %s ring: no crossed completions`, async (format) => {
    const seed = seedFor();
    await withSeed(`re-add in callback (${format})`, seed, async () => {
      const random = rng(seed);
      for (let depth = 1; depth <= RING; depth++) {
        const { v, guest, backend } = rig();
        const { dev } = await attachEcho(v, guest, backend, transport);
        const c = await new EchoClient(dev.device, random).setup(RING, format === "packed" ? 1n | VIRTIO_F_RING_PACKED : 1n);
        expect(c.features & VIRTIO_F_RING_PACKED, format).toBe(format === "packed" ? VIRTIO_F_RING_PACKED : 0n);
        const total = 4 * RING;
        c.run(depth, total);
        expect(await until(() => c.finished === total), `depth ${depth}: ${c.finished}/${total} completed`).toBe(true);
        expect(c.result.wrong, `depth ${depth}`).toEqual([]);
        expect(c.result.failed, `depth ${depth}`).toBe(0);
        v.shutdown();
      }
    });
  });

  it("BlkDriver with a full 64-deep queue on 128 descriptors: every write lands, every read returns its own sector", async () => {
    const seed = seedFor();
    await withSeed("blk deep queue", seed, async () => {
      const random = rng(seed);
      const { v, guest, backend } = rig({ backendBytes: 64 << 20 });
      const disk = new Uint8Array(1 << 20);
      const dev = await v.attach({ type: "blk", frontend: guest, backend, transport, disk: { image: disk } });
      const blk = new BlkDriver(dev.device);
      await blk.init();
      const sectors = 256;
      const buf = dev.device.alloc(sectors * 512);
      const mem = new Uint8Array(guest.memory.buffer);
      for (let s = 0; s < sectors; s++) mem.fill((s * 37 + 11) & 0xff, buf + s * 512, buf + s * 512 + 512);
      // 256 one-sector writes at once: 64 in flight (128 descriptors / 2), the rest queued
      // and resubmitted from completion callbacks, in a random order.
      const order = [...Array(sectors).keys()].sort(() => random() - 0.5);
      const writes = await Promise.all(order.map((s) => blk.write(s, buf + s * 512, 512)));
      expect(writes.every((st) => st === VIRTIO_BLK_S_OK)).toBe(true);
      for (let s = 0; s < sectors; s++) expect(disk[s * 512 + 511], `sector ${s} on disk`).toBe((s * 37 + 11) & 0xff);
      const back = dev.device.alloc(sectors * 512);
      const reads = await Promise.all(order.map((s) => blk.read(s, back + s * 512, 512)));
      expect(reads.every((st) => st === VIRTIO_BLK_S_OK)).toBe(true);
      for (let s = 0; s < sectors; s++) expect(mem[back + s * 512], `sector ${s} read back`).toBe((s * 37 + 11) & 0xff);
      v.shutdown();
    });
  });

  it("console input longer than one receive buffer arrives whole and in order", async () => {
    const { v, guest, backend } = rig();
    const dev = await v.attach({ type: "console", frontend: guest, backend, transport });
    const con = new ConsoleDriver(dev.device);
    await con.init();
    const got: number[] = [];
    con.onData((b) => got.push(...b));
    const input = new Uint8Array(40000).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
    (dev.model as ConsoleModel).input(input);
    expect(await until(() => got.length >= input.length)).toBe(true);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(input))).toBe(0);
    v.shutdown();
  });
});

describe.each(TRANSPORT_NAMES)("console output longer than the device takes per buffer over %s", (transport) => {
  it("ConsoleDriver.write of 80 KiB, and of 1 MiB (more pieces than the queue holds), delivers every byte in order", async () => {
    const { v, guest, backend } = rig({ guestBytes: 64 << 20, backendBytes: 64 << 20 });
    const out: Uint8Array[] = [];
    const dev = await v.attach({ type: "console", frontend: guest, backend, transport, console: { onOutput: (b) => out.push(b.slice()) } });
    const con = new ConsoleDriver(dev.device);
    await con.init();
    for (const size of [80 << 10, 1 << 20]) {
      out.length = 0;
      const data = new Uint8Array(size).map((_, i) => (i * 13 + (i >> 10)) & 0xff);
      expect(await con.write(data)).toBe(true);
      expect(Buffer.compare(Buffer.concat(out), Buffer.from(data)), `${size} bytes`).toBe(0);
    }
    expect((dev.model as ConsoleModel).stats.truncated).toBe(0);
    v.shutdown();
  });
});
