// The transport's split rings against Linux's own definitions, and hostile rings.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { oracleOutput } from "../oracle/compile.ts";
import { splitQueue } from "../../host/transport/vring/split-sides.ts";
import { vringNeedEvent } from "../../host/transport/vring/split-layout.ts";
import { ChainBuffers } from "../../host/transport/vring/queue-sides.ts";
import { GuestHeap } from "../../host/guest/heap.ts";
import { instantiate } from "../../host/wasm.ts";

describe("split ring vs linux/virtio_ring.h", () => {
  const out = oracleOutput("vring_event").trim().split("\n");
  it("vring_need_event agrees for every index triple (TypeScript driver side and Wasm device side)", () => {
    const wasm = instantiate<{ vringNeedEvent(e: number, n: number, o: number): number }>("vring", new WebAssembly.Memory({ initial: 1, maximum: 1 }));
    let n = 0;
    for (const line of out) {
      if (line.startsWith("layout")) continue;
      const [e, ni, o, want] = line.split(" ").map(Number);
      expect(vringNeedEvent(e, ni, o)).toBe(want === 1);
      expect(wasm.vringNeedEvent(e, ni, o)).toBe(want);
      n++;
    }
    expect(n).toBe(14 ** 3);
  });
  it("vring_size grows as the spec's sizes add up (desc 16, avail 6+2n, used 6+8n)", () => {
    for (const line of out.filter((l) => l.startsWith("layout"))) {
      const [, qs, avail, used] = line.split(" ").map(Number);
      expect(avail).toBe(16 * qs);
      expect(used).toBe(Math.ceil((16 * qs + 6 + 2 * qs) / 4096) * 4096);
    }
  });
});

function ring(size = 8, indirect = false) {
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
  const heap = new GuestHeap(memory.buffer.byteLength);
  const q = splitQueue(memory, heap, size, false, indirect);
  const dv = new DataView(memory.buffer);
  // Find the layout: desc is the first allocation after the heap base.
  return { memory, q, dv, desc: 4096, avail: 4096 * 2, used: 4096 * 3 };
}

describe("hostile driver rings (device side)", () => {
  const pop = (r: ReturnType<typeof ring>) => r.q.device.pop(new ChainBuffers(64));
  it("AvailIdxJump", () => {
    const r = ring();
    r.dv.setUint16(r.avail + 2, 9, true);
    expect(pop(r)).toBeLessThan(0);
    expect(r.q.device.error).toBe("AvailIdxJump");
  });
  it("IndexOutOfRange (head)", () => {
    const r = ring();
    r.dv.setUint16(r.avail + 4, 8, true);
    r.dv.setUint16(r.avail + 2, 1, true);
    expect(pop(r)).toBeLessThan(0);
    expect(r.q.device.error).toBe("IndexOutOfRange");
  });
  it("DescriptorLoop", () => {
    const r = ring();
    r.dv.setUint16(r.desc + 12, 1, true); // NEXT
    r.dv.setUint16(r.desc + 14, 0, true); // points at itself
    r.dv.setUint16(r.avail + 2, 1, true);
    expect(pop(r)).toBeLessThan(0);
    expect(r.q.device.error).toBe("DescriptorLoop");
  });
  it("AddressOutOfRange, including a high 32-bit half", () => {
    const r = ring();
    r.dv.setUint32(r.desc, r.memory.buffer.byteLength - 4, true);
    r.dv.setUint32(r.desc + 8, 8, true);
    r.dv.setUint16(r.avail + 2, 1, true);
    expect(pop(r)).toBeLessThan(0);
    expect(r.q.device.error).toBe("AddressOutOfRange");
    const r2 = ring();
    r2.dv.setUint32(r2.desc + 4, 1, true);
    r2.dv.setUint16(r2.avail + 2, 1, true);
    expect(pop(r2)).toBeLessThan(0);
    expect(r2.q.device.error).toBe("AddressOutOfRange");
  });
  it("ReadableAfterWritable", () => {
    const r = ring();
    r.dv.setUint16(r.desc + 12, 1 | 2, true);
    r.dv.setUint16(r.desc + 14, 1, true);
    r.dv.setUint16(r.desc + 16 + 12, 0, true);
    r.dv.setUint16(r.avail + 2, 1, true);
    expect(pop(r)).toBeLessThan(0);
    expect(r.q.device.error).toBe("ReadableAfterWritable");
  });
  it("IndirectNotSupported", () => {
    const r = ring();
    r.dv.setUint16(r.desc + 12, 4, true);
    r.dv.setUint16(r.avail + 2, 1, true);
    expect(pop(r)).toBeLessThan(0);
    expect(r.q.device.error).toBe("IndirectNotSupported");
  });
  describe("indirect tables (2.7.5.3)", () => {
    const TABLE = 4096 * 10;
    const setup = (indirect: boolean, tableLen: number, entries: Array<[number, number, number, number]>) => {
      const r = ring(8, indirect);
      r.dv.setUint32(r.desc, TABLE, true);
      r.dv.setUint32(r.desc + 8, tableLen, true);
      r.dv.setUint16(r.desc + 12, 4, true); // INDIRECT
      entries.forEach(([addr, len, flags, next], k) => {
        const d = TABLE + 16 * k;
        r.dv.setUint32(d, addr, true);
        r.dv.setUint32(d + 8, len, true);
        r.dv.setUint16(d + 12, flags, true);
        r.dv.setUint16(d + 14, next, true);
      });
      r.dv.setUint16(r.avail + 2, 1, true);
      return r;
    };
    it("walks a valid table: readable then writable", () => {
      const r = setup(true, 32, [[0x8000, 100, 1, 1], [0x9000, 50, 2, 0]]);
      const c = new ChainBuffers(64);
      expect(r.q.device.pop(c)).toBe(1);
      expect([c.count, c.readableBytes, c.writableBytes, c.gpa[0], c.gpa[1]]).toEqual([2, 100, 50, 0x8000, 0x9000]);
    });
    it("IndirectNotSupported when the driver did not negotiate it", () => {
      const r = setup(false, 32, [[0x8000, 100, 0, 0]]);
      expect(pop(r)).toBeLessThan(0);
      expect(r.q.device.error).toBe("IndirectNotSupported");
    });
    it("IndirectInIndirect", () => {
      const r = setup(true, 32, [[TABLE, 32, 4, 0]]);
      expect(pop(r)).toBeLessThan(0);
      expect(r.q.device.error).toBe("IndirectInIndirect");
    });
    it("InvalidIndirectLength: not a multiple of 16, or empty", () => {
      const r = setup(true, 24, [[0x8000, 100, 0, 0]]);
      expect(pop(r)).toBeLessThan(0);
      expect(r.q.device.error).toBe("InvalidIndirectLength");
      const r0 = setup(true, 0, []);
      expect(pop(r0)).toBeLessThan(0);
      expect(r0.q.device.error).toBe("InvalidIndirectLength");
    });
    it("DescriptorLoop inside a table, IndexOutOfRange past its end", () => {
      const r = setup(true, 32, [[0x8000, 1, 1, 1], [0x8000, 1, 1, 0]]);
      expect(pop(r)).toBeLessThan(0);
      expect(r.q.device.error).toBe("DescriptorLoop");
      const r2 = setup(true, 32, [[0x8000, 1, 1, 5]]);
      expect(pop(r2)).toBeLessThan(0);
      expect(r2.q.device.error).toBe("IndexOutOfRange");
    });
  });

  it("random bytes in desc, avail and used never throw, never loop, stay in bounds", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4096 * 3, maxLength: 4096 * 3 }), (bytes) => {
        const r = ring(8, bytes[0] % 2 === 0);
        new Uint8Array(r.memory.buffer).set(bytes, 4096);
        const c = new ChainBuffers(64);
        for (let i = 0; i < 20; i++) {
          const rc = r.q.device.pop(c);
          if (rc <= 0) break;
          for (let k = 0; k < c.count; k++) expect(c.gpa[k] + c.len[k]).toBeLessThanOrEqual(r.memory.buffer.byteLength);
          r.q.device.push(c.head, 0);
        }
        r.q.driver.reclaim(() => {});
      }),
      { numRuns: 300 },
    );
  });
});
