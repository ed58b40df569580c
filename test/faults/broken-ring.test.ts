// A driver's bad chain breaks its ring (VirtIO 1.2 2.1.1): on every transport the device
// reports DEVICE_NEEDS_RESET with a config change notification, what was in flight on the
// queue fails (nothing hangs), later requests fail, and a reset brings the device back.
import { describe, expect, it } from "vitest";
import { EchoClient, EchoModel, TRANSPORT_NAMES, rig, rng, until } from "./helpers.ts";

describe.each(TRANSPORT_NAMES)("a ring broken by the driver over %s", (transport) => {
  it("NEEDS_RESET and a config event; requests in flight and later ones fail; a reset recovers", async () => {
    const { v, guest, backend } = rig();
    const model = new EchoModel();
    const dev = await v.attach({ type: "console", frontend: guest, backend, transport, model });
    const d = dev.device;
    let configEvents = 0;
    d.onConfigChange(() => configEvents++);
    await d.negotiate(1n);
    const done: Array<{ token: number; error: boolean }> = [];
    const q = await d.setupQueue(0, 16, (token, _w, error) => done.push({ token, error }));
    await d.driverOk();
    model.hold = true; // request 1 is taken by the device and held
    const buf = d.alloc(8192);
    expect(q.add([{ gpa: buf, len: 16, writable: false }, { gpa: buf + 4096, len: 16, writable: true }], 1)).toBe(true);
    q.kick();
    expect(await until(() => model.env !== null && (transport !== "argo" || model.served === 0))).toBe(true);
    await until(() => false, 20);
    // Request 2 puts a readable buffer after a writable one: the device side refuses the chain (ReadableAfterWritable).
    expect(q.add([{ gpa: buf + 4096, len: 16, writable: true }, { gpa: buf, len: 16, writable: false }], 2)).toBe(true);
    q.kick();
    expect(await until(() => done.length === 2, 3000), `completions: ${JSON.stringify(done)}`).toBe(true);
    expect(done.every((c) => c.error)).toBe(true);
    expect(d.needsReset).toBe(true);
    expect(configEvents).toBe(1);
    // A request on the broken queue fails at once instead of hanging.
    expect(q.add([{ gpa: buf, len: 16, writable: false }, { gpa: buf + 4096, len: 16, writable: true }], 3)).toBe(true);
    expect(await until(() => done.length === 3)).toBe(true);
    expect(done[2]).toEqual({ token: 3, error: true });
    // Reset and set up again: the device works.
    model.hold = false;
    const c = await new EchoClient(d, rng(7)).setup(16);
    expect(d.needsReset).toBe(false);
    c.run(4, 8);
    expect(await until(() => c.finished === 8)).toBe(true);
    expect(c.result).toEqual({ ok: 8, failed: 0, wrong: [] });
    v.shutdown();
  });
});
