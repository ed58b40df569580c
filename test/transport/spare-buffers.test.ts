// The backend keeps the request buffers of finished requests for the next requests of the
// same size (host/transport/argo/backend/backend.ts: SPARE_MAX_PAGES) instead of a heap alloc and free
// per request: at most 64 pages of them, all given back when the backend stops.
import { describe, expect, it } from "vitest";
import { Requester, settle, world } from "./helpers.ts";

async function ready(w: ReturnType<typeof world>): Promise<Requester> {
  await w.fe.negotiate(1n);
  const r = await new Requester(w.fe).setup(0, 64);
  await w.fe.driverOk();
  return r;
}

describe("backend request buffers", () => {
  it("are reused: after the first of 100 requests one after another, none takes the heap", async () => {
    const w = world();
    const heap = w.ts.kernel(w.backend).heap;
    let allocs = 0;
    const alloc = heap.alloc.bind(heap);
    heap.alloc = (bytes: number) => (allocs++, alloc(bytes));
    const r = await ready(w);
    for (let i = 0; i < 100; i++) {
      const c = await r.submit(new Uint8Array(100).fill(i), 100).done;
      expect(c.error).toBe(false);
      expect(c.out[0]).toBe(i ^ 0x5a); // the echo model's answer, not a stale buffer's
      if (i === 0) allocs = 0; // set-up and the first request's buffer
    }
    expect(allocs).toBe(0);
  });

  it("a burst of large requests leaves at most 64 spare pages held, and stop() gives every page back", async () => {
    const w = world();
    const heap = w.ts.kernel(w.backend).heap;
    const r = await ready(w);
    await r.submit(new Uint8Array(8), 8).done;
    const idle = heap.pagesFree; // rings, shadow queue, scratch, one spare page
    // 24 requests of ~6 pages each in flight at once: 144 pages, over the cap.
    const done = Array.from({ length: 24 }, (_, i) => r.submit(new Uint8Array(12 << 10).fill(i), 12 << 10).done);
    for (const c of await Promise.all(done)) expect(c.error).toBe(false);
    await settle();
    expect(idle - heap.pagesFree).toBeLessThanOrEqual(64);
    expect(idle - heap.pagesFree).toBeGreaterThan(0); // some were kept: that is the point
    // The same world stopped without any traffic: its backend heap is the reference.
    const ref = world();
    await ready(ref);
    ref.pair.server.stop();
    w.pair.server.stop();
    expect(heap.pagesFree).toBe(ref.ts.kernel(ref.backend).heap.pagesFree);
  });
});
