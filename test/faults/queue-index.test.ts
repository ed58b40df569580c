// A queue index is bounded by the device's queue count (and the 256 queues a frontend
// tracks): an index of 256 or more used to be accepted with its interrupts dropped, so the
// queue hung. Refused with a TransportError on every transport.
import { describe, expect, it } from "vitest";
import { TransportError } from "../../host/index.ts";
import { EchoModel, TRANSPORT_NAMES, rig } from "./helpers.ts";

/** An echo device claiming 300 queues (more than any frontend tracks). */
function manyQueues(): EchoModel {
  const m = new EchoModel();
  Object.defineProperty(m, "numQueues", { value: 300 });
  return m;
}

describe.each(TRANSPORT_NAMES)("queue indexes over %s", (transport) => {
  it("an index past the device's queue count, or 256 and above, is refused; index 0 works", async () => {
    const { v, guest, backend } = rig();
    const one = await v.attach({ type: "console", frontend: guest, backend, transport, model: new EchoModel() });
    await one.device.negotiate(1n);
    await expect(one.device.setupQueue(1, 16, () => {})).rejects.toBeInstanceOf(TransportError);
    await expect(one.device.setupQueue(-1, 16, () => {})).rejects.toBeInstanceOf(TransportError);
    const many = await v.attach({ type: "console", frontend: guest, backend, transport, model: manyQueues() });
    await many.device.negotiate(1n);
    await expect(many.device.setupQueue(256, 16, () => {})).rejects.toThrow(/queue 256 does not exist: the device has 256/);
    let done = 0;
    const q = await many.device.setupQueue(0, 16, () => done++);
    await many.device.driverOk();
    const gpa = many.device.alloc(8192);
    expect(q.add([{ gpa, len: 8, writable: false }, { gpa: gpa + 4096, len: 8, writable: true }], 1)).toBe(true);
    q.kick();
    for (let i = 0; i < 1000 && done === 0; i++) await new Promise((r) => setImmediate(r));
    expect(done).toBe(1);
    v.shutdown();
  });
});
