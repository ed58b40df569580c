// The ordered send queue both VirtIO-Argo halves use (host/transport/argo/send-queue.ts):
// a full peer ring (-EAGAIN) must neither reorder nor lose nor repeat a message, a failed
// send must not stall the items behind it, and a peer that reads slowly must not make the
// queue's array grow without bound.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { SendQueue, type Sender } from "../../host/transport/argo/send-queue.ts";
import { EAGAIN, ECONNREFUSED } from "../../host/abi/errno.ts";

interface Item { id: number; fragments: number; sent: number; failAt?: number }

/** A peer ring that takes `room` messages, then refuses with -EAGAIN until given more. */
function world() {
  const wire: string[] = [];
  const left: Array<[number, number]> = [];
  let room = Infinity;
  const sender: Sender<Item> = {
    sendNext(item) {
      if (item.failAt === item.sent) return -ECONNREFUSED;
      if (room <= 0) return -EAGAIN;
      room--;
      wire.push(`${item.id}.${item.sent++}`);
      return 24;
    },
    isSent: (item) => item.sent >= item.fragments,
    left: (item, rc) => void left.push([item.id, rc]),
  };
  const q = new SendQueue<Item>(sender);
  return { q, wire, left, setRoom: (n: number) => (room = n) };
}

describe("send queue", () => {
  it("a full peer ring neither reorders, loses nor repeats fragments (seeded)", () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 40 }),
      fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 60 }),
      (sizes, rooms) => {
        const w = world();
        sizes.forEach((fragments, id) => w.q.push({ id, fragments, sent: 0 }));
        for (const r of rooms) {
          w.setRoom(r);
          w.q.flush();
        }
        w.setRoom(Infinity);
        expect(w.q.flush()).toBe(0);
        const want = sizes.flatMap((n, id) => Array.from({ length: n }, (_, k) => `${id}.${k}`));
        expect(w.wire).toEqual(want);
        expect(w.left).toEqual(sizes.map((_, id) => [id, 0]));
        expect(w.q.length).toBe(0);
      },
    ), { seed: 0x5e9d, numRuns: 200 });
  });

  it("stops at -EAGAIN and says so; the same fragment goes first at the next flush", () => {
    const w = world();
    w.q.push({ id: 1, fragments: 3, sent: 0 });
    w.setRoom(2);
    expect(w.q.flush()).toBe(-EAGAIN);
    expect(w.q.length).toBe(1);
    w.setRoom(1);
    expect(w.q.flush()).toBe(0);
    expect(w.wire).toEqual(["1.0", "1.1", "1.2"]);
  });

  it("a refused send (peer gone) takes that item out with its errno; the ones behind it still go", () => {
    const w = world();
    w.q.push({ id: 1, fragments: 2, sent: 0, failAt: 1 });
    w.q.push({ id: 2, fragments: 1, sent: 0 });
    expect(w.q.flush()).toBe(0);
    expect(w.left).toEqual([[1, -ECONNREFUSED], [2, 0]]);
    expect(w.wire).toEqual(["1.0", "2.0"]);
  });

  it("an item completed early by a hostile peer is withdrawn: none of its fragments follow", () => {
    const w = world();
    const a = { id: 1, fragments: 4, sent: 0 };
    w.q.push(a);
    w.q.push({ id: 2, fragments: 1, sent: 0 });
    w.setRoom(1);
    w.q.flush();
    expect(w.q.remove(a)).toBe(true);
    expect(w.q.remove(a)).toBe(false);
    w.setRoom(Infinity);
    w.q.flush();
    expect(w.wire).toEqual(["1.0", "2.0"]);
    expect(w.left).toEqual([[2, 0]]);
  });

  it("a peer that reads one message per flush does not grow the queue's array without bound", () => {
    const w = world();
    let next = 0;
    for (let i = 0; i < 16; i++) w.q.push({ id: next++, fragments: 1, sent: 0 });
    for (let round = 0; round < 5000; round++) {
      w.q.push({ id: next++, fragments: 1, sent: 0 }); // one in, one out: never empty
      w.setRoom(1);
      w.q.flush();
    }
    expect(w.q.length).toBe(16);
    const items = (w.q as unknown as { items: unknown[] }).items;
    expect(items.length).toBeLessThan(4096);
    w.setRoom(Infinity);
    w.q.flush();
    expect(w.wire).toEqual(Array.from({ length: next }, (_, i) => `${i}.0`));
  });

  it("clear hands back what was unsent, in order, and leaves an empty queue", () => {
    const w = world();
    w.q.push({ id: 1, fragments: 2, sent: 0 });
    w.q.push({ id: 2, fragments: 2, sent: 0 });
    const got: number[] = [];
    w.q.clear((item) => got.push(item.id));
    expect(got).toEqual([1, 2]);
    expect(w.q.length).toBe(0);
    expect(w.q.flush()).toBe(0);
    expect(w.wire).toEqual([]);
  });
});
