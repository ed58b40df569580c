// A hostile backend answering control requests: every reply field is bounded before it is
// read. Short replies and an ERROR without a code reject the driver's call with a
// TransportError; none throws a RangeError inside the frontend's VIRQ handler.
import { describe, expect, it } from "vitest";
import { world, settle } from "./helpers.ts";
import { CONTROL_HEADER_SIZE, CTRL_RESPONSE, Ctrl, MSG_CONTROL, decodeControl, encodeControl, type ControlHeader } from "../../host/transport/argo/wire.ts";
import { TransportError } from "../../host/transport/argo/control-client.ts";
import { READ_EMPTY } from "../../host/abi/argo-reader.ts";

/** Replaces the pair's backend by one that answers each request with `answer(msgId)` (payload bytes, and the msg id to reply with). */
function fakeBackend(answer: (msgId: number) => { msgId?: number; payload: Uint8Array }) {
  const w = world();
  w.pair.server.stop();
  const k = w.ts.kernel(w.backend);
  const e = w.pair.entry;
  const ring = k.argo.registerRing(e.backendPort, w.guest.domid, e.ringLen);
  if (typeof ring === "number") throw new Error(`register: ${ring}`);
  const buf = k.heap.alloc(4096);
  const dv = new DataView(w.backend.memory.buffer);
  const h: ControlHeader = { type: 0, msgId: 0, devNum: 0, token: 0, msgSize: 0 };
  const errors: unknown[] = [];
  w.backend.onVirq(() => {
    try {
      for (let n = k.argo.read(ring, buf, 1024); n !== READ_EMPTY && n >= 0; n = k.argo.read(ring, buf, 1024)) {
        if (k.argo.meta.messageType !== MSG_CONTROL || !decodeControl(dv, buf, n, h)) continue;
        const a = answer(h.msgId);
        const out = buf + 2048;
        encodeControl(dv, out, { type: CTRL_RESPONSE, msgId: a.msgId ?? h.msgId, devNum: h.devNum, token: h.token, msgSize: CONTROL_HEADER_SIZE + a.payload.length });
        new Uint8Array(w.backend.memory.buffer).set(a.payload, out + CONTROL_HEADER_SIZE);
        k.argo.send(w.guest.domid, e.frontendPort, out, CONTROL_HEADER_SIZE + a.payload.length, MSG_CONTROL, e.backendPort);
      }
    } catch (err) {
      errors.push(err);
    }
  });
  return { w, errors };
}

async function outcome(p: Promise<unknown>): Promise<unknown> {
  let result: unknown = "pending";
  p.then((v) => (result = v), (e) => (result = e));
  await settle(() => result !== "pending", 500);
  return result;
}

describe("hostile backend: control replies", () => {
  it("an ERROR reply with no payload rejects the call with a TransportError (no read past the message)", async () => {
    const { w } = fakeBackend(() => ({ msgId: Ctrl.ERROR, payload: new Uint8Array(0) }));
    const r = await outcome(w.fe.negotiate(1n));
    expect(r).toBeInstanceOf(TransportError);
    expect(String(r)).toMatch(/refused the request \(code none\)/);
  });

  it.each([
    ["setStatus (SET_DEVICE_STATUS)", Ctrl.SET_DEVICE_STATUS, (fe: ReturnType<typeof world>["fe"]) => fe.negotiate(1n)],
    ["deviceInfo (GET_DEVICE_INFO)", Ctrl.GET_DEVICE_INFO, (fe: ReturnType<typeof world>["fe"]) => fe.deviceInfo()],
    ["negotiate (GET_DEVICE_FEATURES)", Ctrl.GET_DEVICE_FEATURES, (fe: ReturnType<typeof world>["fe"]) => fe.negotiate(1n)],
    ["readConfig (GET_CONFIG)", Ctrl.GET_CONFIG, (fe: ReturnType<typeof world>["fe"]) => fe.readConfig(0, 8)],
  ])("a short reply to %s is a TransportError, not a RangeError", async (_name, victim, call) => {
    // Honest-looking answers to everything else, so the call reaches the victim request.
    const { w } = fakeBackend((msgId) => {
      if (msgId === victim) return { payload: new Uint8Array(2) };
      if (msgId === Ctrl.SET_DEVICE_STATUS) return { payload: new Uint8Array([0xff, 0, 0, 0]) };
      if (msgId === Ctrl.GET_DEVICE_FEATURES) return { payload: new Uint8Array([1, 0, 0, 0, 1, 0, 0, 0]) };
      return { payload: new Uint8Array(0) };
    });
    const r = await outcome(call(w.fe));
    expect(r).toBeInstanceOf(TransportError);
    expect(String(r)).toMatch(/bytes, \d+ expected/);
  });

  it("a reply naming another request's message id is refused", async () => {
    const { w } = fakeBackend(() => ({ msgId: Ctrl.GET_CONFIG, payload: new Uint8Array(32) }));
    const r = await outcome(w.fe.deviceInfo());
    expect(r).toBeInstanceOf(TransportError);
    expect(w.fe.stats.protocolErrors).toBe(1);
  });
});
