// Attach/detach churn: 1000 cycles per transport of a file-backed disk (attach, driver
// init, a write and a read back, driver close, detach) leave guest pages, backend pages,
// file descriptors and the JS heap flat. Each cycle used to keep ~71 guest and ~68 backend
// pages (rings, gfn lists, scratch, request buffers, shadow queues, BlkDriver's slots), one
// file descriptor, and a dead frontend in the guest's device map (the 65th attach failed).
import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { BlkDriver } from "../../host/devices/index.ts";
import { VIRTIO_BLK_S_OK } from "../../host/devices/blk/layout.ts";
import { TRANSPORT_NAMES, openFds, rig } from "./helpers.ts";

const CYCLES = Number(process.env.CHURN_CYCLES ?? 1000);

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

function jsHeap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe.each(TRANSPORT_NAMES)("attach/detach churn over %s", (transport) => {
  it(`${CYCLES} cycles leave pages, file descriptors and the JS heap flat`, { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "virtio-argo-churn-"));
    try {
      const path = join(dir, "disk.img");
      writeFileSync(path, new Uint8Array(1 << 20));
      const { v, guest, backend } = rig({ guestBytes: 16 << 20, backendBytes: 16 << 20 });
      const guestHeap = v.toolstack.kernel(guest).heap;
      const backendHeap = v.toolstack.kernel(backend).heap;
      const cycle = async (i: number) => {
        const dev = await v.attach({ type: "blk", frontend: guest, backend, transport, disk: { image: { path } } });
        const blk = new BlkDriver(dev.device, { queueSize: 16 });
        await blk.init();
        const buf = dev.device.alloc(4096);
        new Uint8Array(guest.memory.buffer).fill(i & 0xff, buf, buf + 4096);
        expect(await blk.write(8, buf, 4096)).toBe(VIRTIO_BLK_S_OK);
        expect(await blk.read(8, buf, 4096)).toBe(VIRTIO_BLK_S_OK);
        dev.device.free(buf, 4096);
        await blk.close();
        v.detach(dev);
      };
      for (let i = 0; i < 5; i++) await cycle(i); // warm-up: lazily made state (kernels, engines, caches)
      const before = { guest: guestHeap.usedPages, backend: backendHeap.usedPages, fds: openFds(), heap: jsHeap() };
      for (let i = 0; i < CYCLES; i++) await cycle(i);
      const after = { guest: guestHeap.usedPages, backend: backendHeap.usedPages, fds: openFds(), heap: jsHeap() };
      expect(after.guest, "guest pages").toBe(before.guest);
      expect(after.backend, "backend pages").toBe(before.backend);
      expect(after.fds, "file descriptors").toBe(before.fds);
      // A leak of even one small object per cycle grows by tens of KiB over 1000 cycles;
      // allow 4 MiB for V8's own noise.
      expect(after.heap - before.heap, "JS heap growth (bytes)").toBeLessThan(4 << 20);
      expect(v.list()).toEqual([]);
      v.shutdown();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
