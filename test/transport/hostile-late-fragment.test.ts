// A hostile frontend sends one more fragment for a request the backend has already handed
// to its device model. Failing that request on the spot would free (and, with the
// backend's spare buffers, hand out again) a buffer the model still reads and writes, and
// queue the request's record a second time. The fragment is refused; the request completes
// once, when the model serves it.
import { describe, expect, it } from "vitest";
import { world, rawDataSender } from "./helpers.ts";
import { EchoModel } from "./echo-model.ts";
import { KIND_REQUEST, FLAG_FIRST, FLAG_LAST } from "../../host/transport/argo/wire.ts";

describe("hostile frontend: a fragment after the last one", () => {
  it("is refused while the model holds the request; its buffer is not handed to the next request", async () => {
    const model = new EchoModel();
    const w = world({ model });
    const send = await rawDataSender(w);
    const server = w.pair.server;
    const pending = (server as unknown as { requests: { pending: Map<number, { gpa: number }> } }).requests.pending;
    // A first request that the backend completes and recycles, so that spare buffers exist.
    send({ kind: KIND_REQUEST, flags: FLAG_FIRST | FLAG_LAST, queue: 0, requestId: 6, offset: 0, total: 16, writable: 16 }, 16);
    await new Promise((r) => setImmediate(r));
    expect(server.stats.completions).toBe(1);
    model.hold = true;
    expect(send({ kind: KIND_REQUEST, flags: FLAG_FIRST | FLAG_LAST, queue: 0, requestId: 7, offset: 0, total: 16, writable: 16 }, 16)).toBeGreaterThan(0);
    await new Promise((r) => setImmediate(r));
    expect(pending.has(7)).toBe(true); // with the model
    const errors = server.stats.protocolErrors;
    send({ kind: KIND_REQUEST, flags: FLAG_LAST, queue: 0, requestId: 7, offset: 0, total: 16, writable: 16 }, 16);
    await new Promise((r) => setImmediate(r));
    expect(server.stats.protocolErrors).toBe(errors + 1);
    expect(server.stats.completions).toBe(1); // not failed under the model
    send({ kind: KIND_REQUEST, flags: FLAG_FIRST | FLAG_LAST, queue: 0, requestId: 8, offset: 0, total: 16, writable: 16 }, 16);
    await new Promise((r) => setImmediate(r));
    expect(pending.get(8)!.gpa).not.toBe(pending.get(7)!.gpa);
    model.release();
    await new Promise((r) => setImmediate(r));
    expect(server.stats.completions).toBe(3);
    expect(pending.size).toBe(0);
  });
});
