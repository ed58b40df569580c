// Driver-side results, split and packed, in Wasm and through the TypeScript sides: a ring
// that is full is back-pressure (ERR_RING_FULL: retry after a reclaim), a chain longer
// than the ring can never be added (ERR_CHAIN_TOO_LONG), and bad geometry is a bug
// (ERR_BAD_QUEUE). Before defs.ts all three were -1, so a caller waiting for room on a
// ring that could never take the chain waited forever.
import { describe, expect, it } from "vitest";
import { GuestHeap } from "../../host/guest/heap.ts";
import { splitQueue } from "../../host/transport/vring/split-sides.ts";
import { allocSplit } from "../../host/transport/vring/split-layout.ts";
import { allocPacked, packedQueue } from "../../host/transport/vring/packed-sides.ts";
import { vringEngine } from "../../host/transport/vring/engine.ts";
import { ERR_BAD_QUEUE, ERR_CHAIN_TOO_LONG, ERR_RING_FULL } from "../../host/transport/vring/errors.ts";
import { GuestDriverQueue, type DmaOps } from "../../host/transport/vring/guest-queue.ts";
import type { DeviceSide, DriverSide } from "../../host/transport/vring/queue-sides.ts";
import { viewsOf } from "../../host/guest/views.ts";

const SIZE = 4;

function arena() {
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
  const heap = new GuestHeap(memory.buffer.byteLength);
  const e = vringEngine(memory);
  const bufs = heap.alloc(12 * 8);
  new Uint32Array(memory.buffer).set([0x9000, 16, 0, 0x9100, 16, 0, 0x9200, 16, 0, 0x9300, 16, 0, 0x9400, 16, 0], bufs >>> 2);
  return { memory, heap, e, bufs, table: heap.alloc(4096), out: heap.alloc(4096), pastMemory: memory.buffer.byteLength - 8 };
}

describe("split driver (assembly/vring/driver.ts)", () => {
  function split() {
    const a = arena();
    const l = allocSplit(a.memory, a.heap, SIZE);
    const state = a.heap.alloc(a.e.vringDriverStateSize(SIZE));
    expect(a.e.vringDriverInit(l.desc, l.avail, l.used, SIZE, state)).toBe(0);
    const add = (n: number) => a.e.vringAdd(l.desc, l.avail, l.used, SIZE, state, a.bufs, n);
    return { ...a, l, state, add };
  }

  it("ring full: a chain needing more than the free descriptors is ERR_RING_FULL (back-pressure)", () => {
    const s = split();
    expect(s.add(3)).toBeGreaterThanOrEqual(0);
    expect(s.add(2)).toBe(ERR_RING_FULL); // 1 free
    expect(s.e.vringAddIndirect(s.l.desc, s.l.avail, s.l.used, SIZE, s.state, s.bufs, 1, s.table)).toBeGreaterThanOrEqual(0);
    expect(s.e.vringAddIndirect(s.l.desc, s.l.avail, s.l.used, SIZE, s.state, s.bufs, 1, s.table)).toBe(ERR_RING_FULL); // 0 free
  });

  it("chain longer than the ring: ERR_CHAIN_TOO_LONG, even on an empty ring (no reclaim makes room)", () => {
    expect(split().add(SIZE + 1)).toBe(ERR_CHAIN_TOO_LONG);
  });

  it("bad geometry or arguments: ERR_BAD_QUEUE from init, add, add indirect and reclaim", () => {
    const s = split();
    const { desc, avail, used } = s.l;
    expect(s.e.vringDriverInit(desc, avail, used, 3, s.state)).toBe(ERR_BAD_QUEUE); // not a power of two
    expect(s.e.vringDriverInit(s.pastMemory, avail, used, SIZE, s.state)).toBe(ERR_BAD_QUEUE);
    expect(s.add(0)).toBe(ERR_BAD_QUEUE);
    expect(s.e.vringAdd(desc, avail, used, SIZE, s.state, s.pastMemory, 2)).toBe(ERR_BAD_QUEUE);
    expect(s.e.vringAdd(desc, avail, s.pastMemory, SIZE, s.state, s.bufs, 1)).toBe(ERR_BAD_QUEUE);
    expect(s.e.vringAddIndirect(desc, avail, used, SIZE, s.state, s.bufs, 2, s.pastMemory)).toBe(ERR_BAD_QUEUE);
    expect(s.e.vringReclaim(desc, avail, used, SIZE, s.state, 0, s.pastMemory, 4)).toBe(ERR_BAD_QUEUE);
    expect(s.add(1)).toBeGreaterThanOrEqual(0); // nothing above touched the ring
  });
});

describe("packed driver (assembly/vring/packed.ts)", () => {
  function packed() {
    const a = arena();
    const l = allocPacked(a.memory, a.heap, SIZE);
    const state = a.heap.alloc(a.e.packedDriverStateSize(SIZE));
    expect(a.e.packedDriverInit(l.desc, l.driverEvent, SIZE, state, 0, 0)).toBe(0);
    const add = (n: number, table = 0) => a.e.packedAdd(l.desc, SIZE, state, a.bufs, n, table);
    return { ...a, l, state, add };
  }

  it("ring full: ERR_RING_FULL when fewer descriptors are free than the chain takes", () => {
    const p = packed();
    expect(p.add(3)).toBeGreaterThanOrEqual(0);
    expect(p.add(2)).toBe(ERR_RING_FULL);
    expect(p.add(2, p.table)).toBeGreaterThanOrEqual(0); // indirect: one ring descriptor
    expect(p.add(1, p.table)).toBe(ERR_RING_FULL);
  });

  it("chain longer than the ring: ERR_CHAIN_TOO_LONG (direct), while an indirect table of the same length fits", () => {
    const p = packed();
    expect(p.add(SIZE + 1)).toBe(ERR_CHAIN_TOO_LONG);
    expect(p.add(SIZE + 1, p.table)).toBeGreaterThanOrEqual(0);
  });

  it("bad geometry or arguments: ERR_BAD_QUEUE", () => {
    const p = packed();
    expect(p.add(0)).toBe(ERR_BAD_QUEUE);
    expect(p.e.packedAdd(p.l.desc, 0, p.state, p.bufs, 1, 0)).toBe(ERR_BAD_QUEUE);
    expect(p.e.packedAdd(p.l.desc, SIZE, p.pastMemory, p.bufs, 1, 0)).toBe(ERR_BAD_QUEUE);
    expect(p.e.packedAdd(p.l.desc, SIZE, p.state, p.bufs, 2, p.pastMemory)).toBe(ERR_BAD_QUEUE);
    expect(p.add(1)).toBeGreaterThanOrEqual(0);
  });
});

describe.each(["split", "packed"] as const)("%s DriverSide.add", (format) => {
  function side(): DriverSide {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
    const heap = new GuestHeap(memory.buffer.byteLength);
    return (format === "split" ? splitQueue(memory, heap, SIZE) : packedQueue(memory, heap, SIZE)).driver;
  }
  /** Adds `n` readable 16-byte buffers. */
  const addN = (d: DriverSide, n: number) => d.add(Array.from({ length: n }, (_, i) => 0x9000 + 256 * i), Array(n).fill(16), Array(n).fill(0), n);

  it("tells a full ring (ERR_RING_FULL) from a chain that never fits (ERR_CHAIN_TOO_LONG) and from no chain (ERR_BAD_QUEUE)", () => {
    const d = side();
    expect(addN(d, SIZE + 1)).toBe(ERR_CHAIN_TOO_LONG);
    expect(addN(d, 0)).toBe(ERR_BAD_QUEUE);
    expect(addN(d, SIZE)).toBeGreaterThanOrEqual(0);
    expect(addN(d, 1)).toBe(ERR_RING_FULL);
  });
});

/** A driver side that answers every add with `code` (and says it has room, as a buggy ring would). */
function refusing(code: number): DriverSide {
  return { size: SIZE, freeDescriptors: SIZE, add: () => code, needsKick: () => false, reclaim: () => 0 };
}

describe("callers tell back-pressure from a bug", () => {
  function dmaLog(): DmaOps & { log: string[] } {
    const log: string[] = [];
    return { log, addrFlags: 0, map: (gpa) => (log.push("map"), gpa), abort: () => log.push("abort"), commit: () => log.push("commit"), complete: () => {} };
  }

  it("GuestDriverQueue: ERR_RING_FULL is 'full' (false, maps undone); the driver retries after a completion", () => {
    const dma = dmaLog();
    const q = new GuestDriverQueue(refusing(ERR_RING_FULL), () => {}, () => {}, dma);
    expect(q.add([{ gpa: 0x9000, len: 16, writable: false }], 1)).toBe(false);
    expect(dma.log).toEqual(["map", "abort"]);
  });

  it("GuestDriverQueue: a broken ring (ERR_BAD_QUEUE) throws instead of posing as full, which a driver would wait on forever", () => {
    const dma = dmaLog();
    const q = new GuestDriverQueue(refusing(ERR_BAD_QUEUE), () => {}, () => {}, dma);
    expect(() => q.add([{ gpa: 0x9000, len: 16, writable: false }], 1)).toThrow(/BadQueue/);
    expect(dma.log).toEqual(["map", "abort"]); // nothing stays mapped
  });
});
