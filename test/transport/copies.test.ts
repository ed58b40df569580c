// Copies per request on the argo path, as README's "Copies per request" says: each
// request's readable bytes cross once (the hypervisor's copy into the backend's ring) and
// are copied once out of that ring into the request buffer; each completion's bytes cross
// once (into the frontend's ring) and are copied once into the driver's buffers. The
// hypervisor's cross-domain copies are counted where they happen (copyBetween, the only
// function that moves bytes between two domains' memories); the in-domain ones by each
// side's own count of what its reader scattered.
import { describe, expect, it, vi } from "vitest";
import { world, Requester, xor5a } from "./helpers.ts";
import { pattern } from "../argo/helpers.ts";
import { DATA_HEADER_SIZE } from "../../host/transport/argo/wire.ts";

const crossed = vi.hoisted(() => ({ bytes: 0, calls: 0 }));
vi.mock("../../host/hypervisor/guest-memory.ts", async (importOriginal) => {
  const mod = await importOriginal<typeof import("../../host/hypervisor/guest-memory.ts")>();
  return {
    ...mod,
    copyBetween: (...args: Parameters<typeof mod.copyBetween>) => {
      crossed.bytes += args[4];
      crossed.calls++;
      return mod.copyBetween(...args);
    },
  };
});

describe("copies per request (argo)", () => {
  it("one request at a time: readable bytes cross once and leave the ring once; completions likewise", async () => {
    const w = world();
    await w.fe.negotiate(1n);
    const r = await new Requester(w.fe).setup(0, 64);
    await w.fe.driverOk();
    const sizes = [1, 16, 100, 4096, 8000];
    let readable = 0;
    const before = { crossed: crossed.bytes, fe: { ...w.fe.stats }, be: { ...w.pair.server.stats } };
    for (const n of sizes) {
      const data = pattern(n, n);
      const c = await r.submit(data, n).done;
      expect(c.out).toEqual(xor5a(data));
      readable += n;
    }
    const written = readable; // the echo model writes back as many bytes as it read
    const messages = 2 * sizes.length; // one request and one completion each: none needs a fragment or a batch here
    // Across domains: the payload once each way, plus each message's 24-byte transport header.
    expect(crossed.bytes - before.crossed).toBe(readable + written + messages * DATA_HEADER_SIZE);
    // Handed to the hypervisor by each side: exactly the payload (no second send of anything).
    expect(w.fe.stats.bytesOut - before.fe.bytesOut).toBe(readable);
    expect(w.pair.server.stats.bytesOut - before.be.bytesOut).toBe(written);
    // Out of each ring, once: into the request buffer (backend), into the driver's buffers (frontend).
    expect(w.pair.server.stats.bytesIn - before.be.bytesIn).toBe(readable);
    expect(w.fe.stats.bytesIn - before.fe.bytesIn).toBe(written);
  });

  it("requests ready together go in batches: the payload still crosses once, with one header per record and one per batch", async () => {
    const w = world();
    await w.fe.negotiate(1n);
    const r = await new Requester(w.fe).setup(0, 64);
    await w.fe.driverOk();
    const inputs = Array.from({ length: 14 }, (_, i) => pattern(64 + i, i));
    const before = { crossed: crossed.bytes, feBatched: w.fe.stats.batched, beBatched: w.pair.server.stats.batched };
    const outs = await Promise.all(inputs.map((d) => r.submit(d, d.length).done));
    outs.forEach((o, i) => expect(o.out).toEqual(xor5a(inputs[i])));
    const payload = 2 * inputs.reduce((s, d) => s + d.length, 0);
    // The first request goes alone (nothing was in flight to batch it with), the other 13
    // in two batches; the backend's 14 completions, read in one drain, in two.
    expect(w.fe.stats.batched - before.feBatched).toBeGreaterThanOrEqual(12);
    expect(w.pair.server.stats.batched - before.beBatched).toBeGreaterThanOrEqual(12);
    // Every byte crosses once: the payloads, 28 records' headers, and one header per batch (2 to 4 batches).
    const batchHeaders = (crossed.bytes - before.crossed - payload - 28 * DATA_HEADER_SIZE) / DATA_HEADER_SIZE;
    expect(Number.isInteger(batchHeaders)).toBe(true);
    expect(batchHeaders).toBeGreaterThanOrEqual(2);
    expect(batchHeaders).toBeLessThanOrEqual(4);
  });
});
