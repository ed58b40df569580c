// Property test: random sequences of register / send / read / notify against a small
// reference model of an Argo ring (a FIFO with Xen's space accounting). Results, ring
// contents and wake-ups always agree.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { setup, guest, put, bytesAt, pattern, type Guest } from "./helpers.ts";
import * as E from "../../host/abi/errno.ts";
import { READ_EMPTY } from "../../host/abi/argo-reader.ts";
import { DOMID_ANY } from "../../host/abi/argo.ts";
import type { GuestRing } from "../../host/guest/argo-driver.ts";

const PORT = 3;
const roundup = (n: number) => (n + 15) & ~15;

type Op =
  | { kind: "send"; sender: number; len: number; seed: number }
  | { kind: "read" }
  | { kind: "notify" }
  | { kind: "reregister" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("send" as const), sender: fc.integer({ min: 0, max: 2 }), len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 700 })), seed: fc.integer({ min: 1, max: 1e6 }) }) },
  { weight: 4, arbitrary: fc.constant({ kind: "read" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "notify" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "reregister" as const }) },
);

/** The reference model: what Xen's ring accounting says must happen. */
class RingModel {
  queue: { len: number; seed: number; src: number }[] = [];
  pending = new Map<number, number>();
  constructor(readonly len: number) {}
  used(): number {
    return this.queue.reduce((s, m) => s + 16 + roundup(m.len), 0);
  }
  send(src: number, len: number, seed: number): number {
    if (this.len <= 16 + roundup(len)) return -E.EMSGSIZE;
    const sp = this.len - this.used();
    if (roundup(len) + 16 >= sp) {
      this.pending.set(src, Math.max(this.pending.get(src) ?? 0, len));
      return -E.EAGAIN;
    }
    this.queue.push({ len, seed, src });
    return len;
  }
  /** Senders woken by the receiver's notify. */
  notify(): Set<number> {
    const space = Math.max(0, this.len - this.used() - 32);
    const woken = new Set<number>();
    // notify_ring only looks for waiters when some payload space exists (`if ( space )`),
    // so a zero-length waiter on a ring with no payload space keeps waiting.
    if (space === 0) return woken;
    for (const [d, want] of this.pending) if (space >= want) { woken.add(d); this.pending.delete(d); }
    return woken;
  }
}

describe("Argo ring vs reference model", () => {
  it("agrees on results, bytes and wake-ups for random op sequences", () => {
    fc.assert(
      fc.property(fc.constantFrom(256, 512, 1024, 4096 + 64), fc.boolean(), fc.array(opArb, { minLength: 1, maxLength: 60 }), (ringLen, scatter, ops) => {
        const { hv, b } = setup();
        const senders: Guest[] = [0, 1, 2].map((i) => guest(hv, `s${i}`, 1 << 20));
        const register = (): GuestRing => {
          const r = b.g.registerRing(PORT, DOMID_ANY, ringLen, { scatter });
          if (typeof r === "number") throw new Error(`register ${r}`);
          return r;
        };
        let ring = register();
        let model = new RingModel(ringLen);
        for (const op of ops) {
          if (op.kind === "send") {
            const s = senders[op.sender];
            put(s, s.buf, pattern(op.len, op.seed));
            const got = s.g.send(b.d.domid, PORT, s.buf, op.len, op.seed);
            expect(got).toBe(model.send(s.d.domid, op.len, op.seed));
          } else if (op.kind === "read") {
            const got = b.g.read(ring, b.buf, 4096);
            const want = model.queue.shift();
            if (!want) {
              expect(got).toBe(READ_EMPTY);
            } else {
              expect(got).toBe(want.len);
              expect(b.g.meta.srcDomid).toBe(want.src);
              expect(b.g.meta.messageType).toBe(want.seed);
              expect(bytesAt(b, b.buf, want.len)).toEqual(pattern(want.len, want.seed));
            }
          } else if (op.kind === "notify") {
            for (const s of senders) s.d.pollVirq();
            expect(b.g.notify()).toBe(0);
            const woken = model.notify();
            for (const s of senders) expect(s.d.pollVirq()).toBe(woken.has(s.d.domid));
          } else {
            expect(b.g.unregisterRing(PORT, DOMID_ANY)).toBe(0);
            ring = register();
            model = new RingModel(ringLen);
          }
        }
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 150) },
    );
  });
});
