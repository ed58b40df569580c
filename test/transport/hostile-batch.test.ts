// Batches (wire.ts KIND_BATCH, transport feature TF_BATCH) are read from a peer's bytes:
// a count, N record headers and N payloads that must add up. Each test is an attack on
// that reading, from a hostile frontend (against the backend) or a hostile backend
// (against the frontend), and what must hold: nothing served that was not sent whole and
// well-formed, nothing read past the message, no record served twice, service goes on.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { world, settle, Requester, xor5a, rawDataSender, type World } from "./helpers.ts";
import { EchoModel } from "./echo-model.ts";
import { pattern } from "../argo/helpers.ts";
import {
  CONTROL_HEADER_SIZE, CTRL_REQUEST, Ctrl, DATA_HEADER_SIZE, FLAG_ERROR, FLAG_FIRST, FLAG_LAST, KIND_BATCH,
  KIND_COMPLETION, KIND_REQUEST, MSG_CONTROL, MSG_DATA, encodeControl, encodeData, type DataHeader,
} from "../../host/transport/argo/wire.ts";

interface Record {
  h: DataHeader;
  payload: Uint8Array;
}

const whole = (kind: number, queue: number, requestId: number, payload: Uint8Array, writable: number, flags = FLAG_FIRST | FLAG_LAST): Record => ({
  h: { kind, flags, queue, requestId, offset: 0, total: payload.length, writable }, payload,
});

/** The bytes of a batch message; `batch` overrides fields of the batch header (an attacker's lies). */
function batchBytes(records: Record[], batch: Partial<DataHeader> = {}): Uint8Array {
  const head = DATA_HEADER_SIZE * (1 + records.length);
  const size = head + records.reduce((s, r) => s + r.payload.length, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  encodeData(dv, 0, { kind: KIND_BATCH, flags: 0, queue: 0, requestId: records.length, offset: 0, total: size - DATA_HEADER_SIZE, writable: 0, ...batch });
  let at = head;
  records.forEach((r, i) => {
    encodeData(dv, DATA_HEADER_SIZE * (1 + i), r.h);
    out.set(r.payload, at);
    at += r.payload.length;
  });
  return out;
}

/** A hostile frontend: raw messages from the guest's domain onto the backend's ring. */
async function hostileFrontend() {
  const w = world();
  await rawDataSender(w); // for its set-up: negotiated (TF_BATCH agreed), queue 0 of 64, DRIVER_OK
  const k = w.ts.kernel(w.guest);
  const buf = k.heap.alloc(1 << 16);
  const send = (bytes: Uint8Array, type = MSG_DATA): number => {
    new Uint8Array(w.guest.memory.buffer).set(bytes, buf);
    return k.argo.send(w.backend.domid, w.pair.entry.backendPort, buf, bytes.length, type, w.pair.entry.frontendPort);
  };
  return { w, send };
}

/** Requests the model served (their completions reach the real frontend, which never asked: it counts them). */
const served = (w: World) => w.model.served;

describe("hostile frontend: batches", () => {
  it("a batch whose records' totals do not add up to the message is refused whole: nothing reaches the model", async () => {
    const { w, send } = await hostileFrontend();
    const errors = w.pair.server.stats.protocolErrors;
    const bytes = batchBytes([whole(KIND_REQUEST, 0, 101, pattern(16, 1), 16), whole(KIND_REQUEST, 0, 102, pattern(16, 2), 16)]);
    // Record 2 claims 4 KiB more than the message holds: trusting it would read past the message.
    new DataView(bytes.buffer).setUint32(2 * DATA_HEADER_SIZE + 12, 16 + 4096, true);
    expect(send(bytes)).toBeGreaterThan(0);
    await settle(() => w.pair.server.stats.protocolErrors > errors);
    expect(w.pair.server.stats.protocolErrors).toBe(errors + 1);
    expect(served(w)).toBe(0);
  });

  it.each([
    ["no records", 0], ["one record", 1], ["eight records (MAX_BATCH is 7)", 8], ["2^32-1 records", 0xffffffff],
  ])("a batch header claiming %s is refused whole", async (_name, count) => {
    const { w, send } = await hostileFrontend();
    const errors = w.pair.server.stats.protocolErrors;
    const recs = [whole(KIND_REQUEST, 0, 201, pattern(8, 3), 8), whole(KIND_REQUEST, 0, 202, pattern(8, 4), 8)];
    send(batchBytes(recs, { requestId: count }));
    await settle(() => w.pair.server.stats.protocolErrors > errors);
    expect(w.pair.server.stats.protocolErrors).toBe(errors + 1);
    expect(served(w)).toBe(0);
  });

  it("a batch header with a total that is not the message's length, or stray fields, is refused whole", async () => {
    const { w, send } = await hostileFrontend();
    const recs = [whole(KIND_REQUEST, 0, 301, pattern(8, 5), 8), whole(KIND_REQUEST, 0, 302, pattern(8, 6), 8)];
    const errors = w.pair.server.stats.protocolErrors;
    const size = DATA_HEADER_SIZE * 3 + 16;
    send(batchBytes(recs, { total: size })); // one more than what follows the header: decodeData refuses, nothing is read
    send(batchBytes(recs, { flags: FLAG_LAST }));
    send(batchBytes(recs, { queue: 1 }));
    send(batchBytes(recs, { writable: 4 }));
    await settle(() => w.pair.server.stats.protocolErrors >= errors + 4);
    expect(w.pair.server.stats.protocolErrors).toBe(errors + 4);
    expect(served(w)).toBe(0);
  });

  it("a malformed record (a completion, a fragment, an offset) is refused alone; the well-formed records around it are served once", async () => {
    const { w, send } = await hostileFrontend();
    const errors = w.pair.server.stats.protocolErrors;
    const recs = [
      whole(KIND_REQUEST, 0, 401, pattern(32, 7), 32),
      whole(KIND_COMPLETION, 0, 402, pattern(8, 8), 8), // the wrong direction
      whole(KIND_REQUEST, 0, 403, pattern(8, 9), 8, FLAG_FIRST), // a first fragment: records are whole
      // offset 4 of a stream of 8, with 8 bytes: a record is a whole request, from offset 0.
      { h: { kind: KIND_REQUEST, flags: FLAG_FIRST | FLAG_LAST, queue: 0, requestId: 404, offset: 4, total: 8, writable: 8 }, payload: pattern(8, 10) },
      whole(KIND_REQUEST, 0, 405, pattern(24, 11), 24),
    ];
    send(batchBytes(recs));
    await settle(() => served(w) >= 2 && w.pair.server.stats.protocolErrors >= errors + 3);
    await settle(() => false, 5);
    expect(served(w)).toBe(2);
    expect(w.pair.server.stats.protocolErrors).toBe(errors + 3);
    expect(w.pair.server.stats.requests).toBe(2);
  });

  it("a frontend that turned batches off (SET_TRANSPORT_FEATURES 0) and then sends one has it refused", async () => {
    const { w, send } = await hostileFrontend();
    const ctl = new Uint8Array(CONTROL_HEADER_SIZE + 4);
    encodeControl(new DataView(ctl.buffer), 0, { type: CTRL_REQUEST, msgId: Ctrl.SET_TRANSPORT_FEATURES, devNum: w.pair.entry.devNum, token: 0x7777, msgSize: ctl.length });
    send(ctl, MSG_CONTROL); // bits 0
    await settle(() => false, 5);
    const errors = w.pair.server.stats.protocolErrors;
    send(batchBytes([whole(KIND_REQUEST, 0, 501, pattern(8, 12), 8), whole(KIND_REQUEST, 0, 502, pattern(8, 13), 8)]));
    await settle(() => w.pair.server.stats.protocolErrors > errors);
    expect(w.pair.server.stats.protocolErrors).toBe(errors + 1);
    expect(served(w)).toBe(0);
  });

  it("random batches (seeded) never throw, never serve a record that was not whole and well-formed, and service goes on", async () => {
    const { w, send } = await hostileFrontend();
    let wellFormed = 0;
    let nextId = 1000;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({
          len: fc.integer({ min: 0, max: 64 }),
          kind: fc.constantFrom(KIND_REQUEST, KIND_REQUEST, KIND_REQUEST, KIND_COMPLETION, 9),
          flags: fc.constantFrom(FLAG_FIRST | FLAG_LAST, FLAG_FIRST | FLAG_LAST, FLAG_FIRST, FLAG_LAST | FLAG_ERROR, 0),
          offset: fc.constantFrom(0, 0, 0, 1),
          lie: fc.constantFrom(0, 0, 0, 0, 1, -1, 4096),
        }), { minLength: 0, maxLength: 9 }),
        fc.constantFrom(0, 0, 0, 1, -1),
        async (specs, countLie) => {
          const recs = specs.map((s) => {
            const payload = pattern(s.len, s.len);
            return { h: { kind: s.kind, flags: s.flags, queue: 0, requestId: nextId++, offset: s.offset, total: s.len, writable: 8 }, payload, lie: s.lie };
          });
          const bytes = batchBytes(recs, { requestId: recs.length + countLie });
          const dv = new DataView(bytes.buffer);
          recs.forEach((r, i) => {
            if (r.lie !== 0) dv.setUint32(DATA_HEADER_SIZE * (1 + i) + 12, Math.max(0, r.payload.length + r.lie), true);
          });
          // What the receiver must check, and all it can: the headers' totals add up to the message.
          let sum = DATA_HEADER_SIZE * (1 + recs.length);
          recs.forEach((_, i) => (sum += dv.getUint32(DATA_HEADER_SIZE * (1 + i) + 12, true)));
          const sumOk = sum === bytes.length;
          const countOk = countLie === 0 && recs.length >= 2 && recs.length <= 7;
          if (sumOk && countOk) {
            // A record is served if it is a whole request: FIRST | LAST, offset 0 (its length is its total).
            wellFormed += recs.filter((r) => r.h.kind === KIND_REQUEST && r.h.flags === (FLAG_FIRST | FLAG_LAST) && r.h.offset === 0).length;
          }
          if (bytes.length <= 65536) send(bytes);
          await settle(() => false, 3);
        },
      ),
      { seed: 0xba7c4, numRuns: 150 },
    );
    await settle(() => served(w) >= wellFormed, 200);
    expect(served(w)).toBe(wellFormed);
    // Service goes on: a well-formed batch after all that is served, both records.
    send(batchBytes([whole(KIND_REQUEST, 0, 1, pattern(8, 1), 8), whole(KIND_REQUEST, 0, 2, pattern(8, 2), 8)]));
    await settle(() => served(w) >= wellFormed + 2);
    expect(served(w)).toBe(wellFormed + 2);
  });
});

describe("batches and the frontend's budget", () => {
  it("a batch whose records run out of budget waits in the ring and goes on from the record that waited: none served twice, none lost", async () => {
    const model = new EchoModel();
    const w = world({ model });
    await rawDataSender(w);
    const k = w.ts.kernel(w.guest);
    const buf = k.heap.alloc(1 << 16);
    // The backend's budget for this guest is a quarter of its 16 MiB: 4 MiB. Each record asks
    // for 1 MiB of writable room, so the 4th or 5th of a batch of 7 must wait for a completion.
    model.hold = true;
    const recs = Array.from({ length: 7 }, (_, i) => whole(KIND_REQUEST, 0, 900 + i, pattern(8, i), 1 << 20));
    const bytes = batchBytes(recs);
    new Uint8Array(w.guest.memory.buffer).set(bytes, buf);
    expect(k.argo.send(w.backend.domid, w.pair.entry.backendPort, buf, bytes.length, MSG_DATA, w.pair.entry.frontendPort)).toBeGreaterThan(0);
    await settle(() => w.pair.server.stats.budgetWaits > 0);
    const firstWave = w.pair.server.stats.requests;
    expect(firstWave).toBeGreaterThanOrEqual(3);
    expect(firstWave).toBeLessThan(7);
    // Completions give budget back; the waiting records go on, each once.
    model.hold = false;
    model.release();
    await settle(() => w.pair.server.stats.requests === 7);
    await settle(() => false, 10);
    expect(w.pair.server.stats.requests).toBe(7);
    expect(model.served).toBe(7);
    expect(w.pair.server.stats.protocolErrors).toBe(0);
  });
});

describe("hostile backend: batches of completions", () => {
  it("a forged record for an unknown id is refused alone; the real request's record in the same batch completes with its bytes", async () => {
    const model = new EchoModel();
    const w = world({ model });
    await w.fe.negotiate(1n);
    const req = await new Requester(w.fe).setup(0, 64);
    await w.fe.driverOk();
    model.hold = true;
    const data = pattern(40, 21);
    const victim = req.submit(data, 40).done;
    await settle(() => w.pair.server.stats.requests === 1);
    const id = [...(w.fe as unknown as { requests: { ids(): number[] } }).requests.ids()][0];
    const k = w.ts.kernel(w.backend);
    const buf = k.heap.alloc(4096);
    const forged = batchBytes([
      whole(KIND_COMPLETION, 0, id ^ 0x5555, pattern(40, 22), 40),
      whole(KIND_COMPLETION, 0, id, xor5a(data), 40),
      whole(KIND_COMPLETION, 0, id, pattern(40, 23), 40, FLAG_FIRST | FLAG_LAST | FLAG_ERROR), // a second answer for the same id
    ]);
    new Uint8Array(w.backend.memory.buffer).set(forged, buf);
    const errors = w.fe.stats.protocolErrors;
    expect(k.argo.send(w.guest.domid, w.pair.entry.frontendPort, buf, forged.length, MSG_DATA, w.pair.entry.backendPort)).toBeGreaterThan(0);
    const c = await victim;
    expect(c.error).toBe(false);
    expect(c.out).toEqual(xor5a(data));
    await settle(() => w.fe.stats.protocolErrors >= errors + 2);
    expect(w.fe.stats.protocolErrors).toBe(errors + 2);
  });

  it("an honest pair batches both ways: requests ready together go as one message, and every byte arrives", async () => {
    const w = world();
    await w.fe.negotiate(1n);
    const req = await new Requester(w.fe).setup(0, 64);
    await w.fe.driverOk();
    const inputs = Array.from({ length: 20 }, (_, i) => pattern(100 + i * 13, i));
    const outs = await Promise.all(inputs.map((d) => req.submit(d, d.length).done));
    outs.forEach((o, i) => expect(o.out).toEqual(xor5a(inputs[i])));
    expect(w.fe.stats.batched).toBeGreaterThanOrEqual(14); // 20 requests popped together: batches of up to 7
    expect(w.pair.server.stats.batched).toBeGreaterThanOrEqual(14);
  });
});
