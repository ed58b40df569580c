// Hostile packed rings (device side): one test per named error from a concrete ring, and
// random bytes that must never throw, loop or yield a buffer outside memory. And lying
// devices (driver side, split and packed): used entries the driver never handed out.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GuestHeap } from "../../host/guest/heap.ts";
import { packedQueue } from "../../host/transport/vring/packed-sides.ts";
import { splitQueue } from "../../host/transport/vring/split-sides.ts";
import { ChainBuffers } from "../../host/transport/vring/queue-sides.ts";
import { AVAIL, INDIRECT, NEXT, USED, WRITE } from "./flags.ts";

function packed(size = 8, indirect = false) {
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
  const heap = new GuestHeap(memory.buffer.byteLength);
  const q = packedQueue(memory, heap, size, false, indirect);
  const dv = new DataView(memory.buffer);
  /** Writes descriptor i as a hostile driver would, available on the first lap. */
  const put = (i: number, addr: number, len: number, flags: number, id = 0, hi = 0) => {
    const d = q.layout.desc + 16 * i;
    dv.setUint32(d, addr, true);
    dv.setUint32(d + 4, hi, true);
    dv.setUint32(d + 8, len, true);
    dv.setUint16(d + 12, id, true);
    dv.setUint16(d + 14, flags, true);
  };
  const pop = () => q.device.pop(new ChainBuffers(64));
  return { memory, q, dv, put, pop, table: heap.alloc(4096) };
}

describe("hostile driver, packed ring (device side)", () => {
  it("an honest chain pops (the baseline the hostile ones break)", () => {
    const r = packed();
    r.put(1, 8192, 16, WRITE | AVAIL, 3);
    r.put(0, 4096, 16, NEXT | AVAIL, 3);
    expect(r.pop()).toBe(1);
    expect(r.q.device.error).toBeNull();
  });
  it("IncompleteChain: a head published before its tail", () => {
    const r = packed();
    r.put(0, 4096, 16, NEXT | AVAIL);
    expect(r.pop()).toBeLessThan(0);
    expect(r.q.device.error).toBe("IncompleteChain");
  });
  it("ChainTooLong: NEXT on every descriptor of the ring (a walk that would lap)", () => {
    const r = packed(4);
    for (let i = 0; i < 4; i++) r.put(i, 4096, 16, NEXT | AVAIL);
    expect(r.pop()).toBeLessThan(0);
    // The 5th step lands on descriptor 0 of the next lap, where AVAIL no longer matches:
    // either way the walk stops at the ring's size.
    expect(["ChainTooLong", "IncompleteChain"]).toContain(r.q.device.error);
  });
  it("IndexOutOfRange: a buffer id past the ring", () => {
    const r = packed();
    r.put(0, 4096, 16, AVAIL, 8);
    expect(r.pop()).toBeLessThan(0);
    expect(r.q.device.error).toBe("IndexOutOfRange");
  });
  it("AddressOutOfRange: past the end, wrapping, or a high 32-bit half", () => {
    for (const [addr, len, hi] of [[4 * 65536 - 8, 16, 0], [0xfffffff0, 0x20, 0], [4096, 16, 1]]) {
      const r = packed();
      r.put(0, addr, len, AVAIL, 0, hi);
      expect(r.pop()).toBeLessThan(0);
      expect(r.q.device.error).toBe("AddressOutOfRange");
    }
  });
  it("ReadableAfterWritable", () => {
    const r = packed();
    r.put(1, 8192, 16, AVAIL);
    r.put(0, 4096, 16, WRITE | NEXT | AVAIL);
    expect(r.pop()).toBeLessThan(0);
    expect(r.q.device.error).toBe("ReadableAfterWritable");
  });
  it("LengthOverflow: buffers summing past 4 GiB (each inside memory)", () => {
    // 1 MiB of memory, an 8192-entry ring, and an indirect table of 4100 entries that each
    // cover all of memory: every buffer is in bounds, their sum is 4100 MiB.
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 16 });
    const heap = new GuestHeap(memory.buffer.byteLength);
    const q = packedQueue(memory, heap, 8192, false, true);
    const dv = new DataView(memory.buffer);
    const entries = 4100;
    const table = heap.alloc(16 * entries);
    for (let k = 0; k < entries; k++) {
      dv.setUint32(table + 16 * k, 0, true);
      dv.setUint32(table + 16 * k + 8, 1 << 20, true);
      dv.setUint16(table + 16 * k + 14, WRITE, true);
    }
    const d = q.layout.desc;
    dv.setUint32(d, table, true);
    dv.setUint32(d + 8, 16 * entries, true);
    dv.setUint16(d + 14, INDIRECT | AVAIL, true);
    expect(q.device.pop(new ChainBuffers(8192))).toBeLessThan(0);
    expect(q.device.error).toBe("LengthOverflow");
  });
  it("IndirectNotSupported, IndirectInIndirect, IndirectWithNext, InvalidIndirectLength", () => {
    const a = packed(8, false);
    a.put(0, a.table, 16, INDIRECT | AVAIL);
    expect(a.pop()).toBeLessThan(0);
    expect(a.q.device.error).toBe("IndirectNotSupported");

    const b = packed(8, true);
    b.dv.setUint16(b.table + 14, INDIRECT, true); // an entry that is itself indirect
    b.put(0, b.table, 16, INDIRECT | AVAIL);
    expect(b.pop()).toBeLessThan(0);
    expect(b.q.device.error).toBe("IndirectInIndirect");

    const c = packed(8, true);
    c.put(0, c.table, 16, INDIRECT | NEXT | AVAIL); // NEXT beside INDIRECT
    c.put(1, 4096, 16, AVAIL);
    expect(c.pop()).toBeLessThan(0);
    expect(c.q.device.error).toBe("IndirectWithNext");

    for (const len of [0, 24]) {
      const d = packed(8, true);
      d.put(0, d.table, len, INDIRECT | AVAIL);
      expect(d.pop()).toBeLessThan(0);
      expect(d.q.device.error).toBe("InvalidIndirectLength");
    }
  });
  it("ChainTooLong: an indirect table with more entries than the ring", () => {
    const r = packed(4, true);
    r.put(0, r.table, 16 * 5, INDIRECT | AVAIL);
    expect(r.pop()).toBeLessThan(0);
    expect(r.q.device.error).toBe("ChainTooLong");
  });
  it("after an error the queue stays broken (NEEDS_RESET), even if the ring is fixed", () => {
    const r = packed();
    r.put(0, 4096, 16, AVAIL, 99);
    expect(r.pop()).toBeLessThan(0);
    r.put(0, 4096, 16, AVAIL, 1);
    expect(r.pop()).toBeLessThan(0);
  });

  it("random bytes in the ring and event structures never throw, never loop, stay in bounds", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4096 * 3, maxLength: 4096 * 3 }), fc.integer({ min: 1, max: 16 }), (bytes, size) => {
        const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
        const heap = new GuestHeap(memory.buffer.byteLength);
        const q = packedQueue(memory, heap, size, bytes[0] % 2 === 0, bytes[1] % 2 === 0);
        // Scribble over everything the driver writes (the ring, both event structures)
        // and the indirect tables it might point at.
        const u8 = new Uint8Array(memory.buffer);
        u8.set(bytes.subarray(0, 16 * size), q.layout.desc);
        u8.set(bytes.subarray(4096, 4104), q.layout.driverEvent);
        u8.set(bytes.subarray(4096, 4096 * 3), 4096 * 8);
        const c = new ChainBuffers(64);
        for (let i = 0; i < 3 * size; i++) {
          const rc = q.device.pop(c);
          if (rc <= 0) break;
          for (let k = 0; k < c.count; k++) expect(c.gpa[k] + c.len[k]).toBeLessThanOrEqual(memory.buffer.byteLength);
          q.device.push(c.head, 0);
          q.device.needsInterrupt();
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("lying device (driver side)", () => {
  it("split: used ids that were never outstanding are skipped; the free list stays whole", () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
    const heap = new GuestHeap(memory.buffer.byteLength);
    const q = splitQueue(memory, heap, 8);
    const dv = new DataView(memory.buffer);
    expect(q.driver.add([4096], [16], [0], 1)).toBe(0);
    const used = q.layout.used;
    // Five used entries: ids 7 (never added), 0 (real), 0 again (a replay), 9999, 3.
    [7, 0, 0, 9999, 3].forEach((id, k) => dv.setUint32(used + 4 + 8 * k, id, true));
    dv.setUint16(used + 2, 5, true);
    const got: number[] = [];
    expect(q.driver.reclaim((h) => got.push(h))).toBe(1);
    expect(got).toEqual([0]);
    expect(q.driver.freeDescriptors).toBe(8);
    // A used idx far ahead: bounded by the ring size, no hang.
    dv.setUint16(used + 2, 40000, true);
    expect(q.driver.reclaim(() => {})).toBe(0);
    expect(q.driver.freeDescriptors).toBe(8);
  });

  it("packed: a used id that is not outstanding breaks the queue instead of corrupting it", () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
    const heap = new GuestHeap(memory.buffer.byteLength);
    const q = packedQueue(memory, heap, 8);
    const dv = new DataView(memory.buffer);
    expect(q.driver.add([4096, 8192], [16, 16], [0, 1], 2)).toBe(0);
    // The device claims id 5 is used (never added).
    dv.setUint16(q.layout.desc + 12, 5, true);
    dv.setUint16(q.layout.desc + 14, AVAIL | USED, true);
    expect(q.driver.reclaim(() => { throw new Error("nothing may be delivered"); })).toBe(0);
    expect(q.driver.broken).toBe(true);
    expect(q.driver.freeDescriptors).toBe(6); // the real chain stays outstanding, nothing freed twice
  });

  it("packed: random bytes in used descriptors never throw and never free more than was added", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16 * 8, maxLength: 16 * 8 }), fc.integer({ min: 0, max: 8 }), (bytes, adds) => {
        const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
        const heap = new GuestHeap(memory.buffer.byteLength);
        const q = packedQueue(memory, heap, 8, bytes[0] % 2 === 0, false, bytes[1] % 2 === 0);
        for (let i = 0; i < adds; i++) q.driver.add([4096], [16], [1], 1);
        new Uint8Array(memory.buffer).set(bytes, q.layout.desc);
        let delivered = 0;
        q.driver.reclaim(() => delivered++);
        expect(delivered).toBeLessThanOrEqual(adds);
        expect(q.driver.freeDescriptors).toBeLessThanOrEqual(8);
      }),
      { numRuns: 300 },
    );
  });
});
