// Our driver side and our device side talking to each other, split and packed, with
// random chains (fast-check): every buffer arrives as added, every written length comes
// back to the right request, across many laps of the ring (16-bit indices and wrap
// counters wrap), in and out of order.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GuestHeap } from "../../host/guest/heap.ts";
import { splitQueue } from "../../host/transport/vring/split-sides.ts";
import { packedQueue } from "../../host/transport/vring/packed-sides.ts";
import { ChainBuffers, type DeviceSide, type DriverSide } from "../../host/transport/vring/queue-sides.ts";
import { ERR_CHAIN_TOO_LONG, ERR_RING_FULL } from "../../host/transport/vring/errors.ts";

type Format = "split" | "packed" | "packed-in-order";

function queue(format: Format, size: number, eventIdx: boolean) {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 64 });
  const heap = new GuestHeap(memory.buffer.byteLength);
  const q = format === "split" ? splitQueue(memory, heap, size, eventIdx) : packedQueue(memory, heap, size, eventIdx, false, format === "packed-in-order");
  return { driver: q.driver as DriverSide, device: q.device as DeviceSide };
}

interface Buf { gpa: number; len: number; writable: boolean }

const chain = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
  .filter(([r, w]) => r + w > 0)
  .chain(([r, w]) => fc.tuple(
    fc.array(fc.tuple(fc.integer({ min: 4096, max: 3 << 20 }), fc.integer({ min: 1, max: 65536 })), { minLength: r + w, maxLength: r + w }),
    fc.constant(r),
  ))
  .map(([bufs, r]) => bufs.map(([gpa, len], i): Buf => ({ gpa, len, writable: i >= r })));

const op = fc.oneof(
  fc.record({ kind: fc.constant("add" as const), bufs: chain }),
  fc.record({ kind: fc.constant("serve" as const), count: fc.integer({ min: 1, max: 8 }), pick: fc.integer({ min: 0, max: 1000 }) }),
  fc.record({ kind: fc.constant("reclaim" as const) }),
);

type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function run(format: Format, size: number, eventIdx: boolean, ops: Op[]) {
  const { driver, device } = queue(format, size, eventIdx);
  const added = new Map<number, Buf[]>(); // by head / buffer id, from add until reclaimed
  const popped: Array<{ head: number; writable: number }> = [];
  const pushed = new Map<number, number>(); // head -> written, until reclaimed
  const c = new ChainBuffers(size);
  let token = 0;
  let completed = 0;
  const reclaim = () =>
    driver.reclaim((head, written) => {
      expect(pushed.has(head), `reclaimed head ${head} was pushed`).toBe(true);
      expect(written).toBe(pushed.get(head));
      pushed.delete(head);
      added.delete(head);
      completed++;
    });
  for (const o of ops) {
    if (o.kind === "add") {
      const bufs = o.bufs;
      const free = driver.freeDescriptors;
      const head = driver.add(bufs.map((b) => b.gpa), bufs.map((b) => b.len), bufs.map((b) => (b.writable ? 1 : 0)), bufs.length);
      if (bufs.length > free) {
        // More than the ring holds can never be added; more than is free now is back-pressure.
        expect(head).toBe(bufs.length > size ? ERR_CHAIN_TOO_LONG : ERR_RING_FULL);
        continue;
      }
      expect(head).toBeGreaterThanOrEqual(0);
      expect(added.has(head)).toBe(false);
      added.set(head, bufs);
      token++;
      driver.needsKick();
    } else if (o.kind === "serve") {
      for (let k = 0; k < o.count; k++) {
        const rc = device.pop(c);
        expect(rc, String(device.error)).toBeGreaterThanOrEqual(0);
        if (rc === 0) break;
        const want = added.get(c.head)!;
        expect(want, `popped head ${c.head} was added`).toBeDefined();
        expect(c.count).toBe(want.length);
        for (let i = 0; i < c.count; i++) {
          expect([c.gpa[i], c.len[i], c.writable[i] === 1]).toEqual([want[i].gpa, want[i].len, want[i].writable]);
        }
        popped.push({ head: c.head, writable: c.writableBytes });
      }
      // Complete some of what was popped: in order for in-order rings, any order otherwise.
      while (popped.length) {
        const i = format === "packed-in-order" ? 0 : o.pick % popped.length;
        const p = popped.splice(i, 1)[0];
        const written = p.writable === 0 ? 0 : (o.pick * 7919) % (p.writable + 1);
        device.push(p.head, written);
        pushed.set(p.head, written);
        if (o.pick % 3 === 0) break;
      }
      device.needsInterrupt();
    } else {
      reclaim();
    }
  }
  // Drain: everything added comes back.
  for (let guard = 0; guard < 4 * size && (added.size || popped.length); guard++) {
    for (let rc = device.pop(c); rc === 1; rc = device.pop(c)) popped.push({ head: c.head, writable: c.writableBytes });
    for (const p of popped.splice(0)) {
      device.push(p.head, p.writable);
      pushed.set(p.head, p.writable);
    }
    reclaim();
  }
  expect(device.error).toBeNull();
  expect(added.size).toBe(0);
  expect(driver.freeDescriptors).toBe(size);
  return { token, completed };
}

describe.each(["split", "packed", "packed-in-order"] as const)("%s ring: our driver side <-> our device side", (format) => {
  it("random chains arrive whole and complete with their written lengths (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...(format === "split" ? [1, 2, 4, 8, 16] : [1, 2, 3, 5, 8, 13])),
        fc.boolean(),
        fc.array(op, { minLength: 1, maxLength: 120 }),
        (size, eventIdx, ops) => {
          const r = run(format, size, eventIdx, ops);
          expect(r.completed).toBe(r.token);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("many laps: 16-bit indices and wrap counters wrap and nothing is lost", () => {
    const { driver, device } = queue(format, format === "split" ? 4 : 3, true);
    const c = new ChainBuffers(8);
    let done = 0;
    let bad = "";
    const gpa = [0], len = [0], flags = [0];
    for (let i = 0; i < 70000 && !bad; i++) {
      gpa[0] = 4096 + (i % 100);
      len[0] = 1 + (i % 7);
      flags[0] = i % 2;
      const head = driver.add(gpa, len, flags, 1);
      if (head < 0 || device.pop(c) !== 1 || c.len[0] !== len[0] || c.gpa[0] !== gpa[0]) bad = `cycle ${i}: add/pop`;
      device.push(c.head, i % 2);
      driver.reclaim((h, w) => {
        if (h !== head || w !== i % 2) bad = `cycle ${i}: reclaimed ${h}/${w}`;
        done++;
      });
    }
    expect(bad).toBe("");
    expect(done).toBe(70000);
  });
});
