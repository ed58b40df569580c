// Spec rules both ring formats got wrong (issue 17, items 10 and 11), one test per rule,
// named after the clause: INDIRECT with NEXT has its own error, a direct-then-indirect
// chain is served alike by split and packed, packed used descriptors carry WRITE exactly
// when len means something, packed event suppression sees an event when one chain covers
// the whole ring, and split honours the flags words when EVENT_IDX is off.
import { describe, expect, it } from "vitest";
import { GuestHeap } from "../../host/guest/heap.ts";
import { packedQueue } from "../../host/transport/vring/packed-sides.ts";
import { splitQueue } from "../../host/transport/vring/split-sides.ts";
import { ChainBuffers } from "../../host/transport/vring/queue-sides.ts";
import { AVAIL, EVENT_DESC, INDIRECT, NEXT, USED, WRITE } from "./flags.ts";

function mem() {
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
  const heap = new GuestHeap(memory.buffer.byteLength);
  return { memory, heap, dv: new DataView(memory.buffer) };
}

/** Writes a 16-byte descriptor {addr, len, a: split flags | packed id, b: split next | packed flags}. */
function desc(dv: DataView, at: number, addr: number, len: number, a: number, b: number): void {
  dv.setUint32(at, addr, true);
  dv.setUint32(at + 4, 0, true);
  dv.setUint32(at + 8, len, true);
  dv.setUint16(at + 12, a, true);
  dv.setUint16(at + 14, b, true);
}

function split(size: number, opts: { eventIdx?: boolean; indirect?: boolean } = {}) {
  const m = mem();
  const q = splitQueue(m.memory, m.heap, size, opts.eventIdx ?? false, opts.indirect ?? false);
  const table = m.heap.alloc(4096);
  /** Publishes head as the next avail entry, as a hostile driver would (no driver side). */
  const publish = (head: number, n = 1) => {
    const idx = m.dv.getUint16(q.layout.avail + 2, true);
    m.dv.setUint16(q.layout.avail + 4 + 2 * (idx % size), head, true);
    m.dv.setUint16(q.layout.avail + 2, (idx + n) & 0xffff, true);
  };
  return { ...m, q, table, publish };
}

function packed(size: number, opts: { eventIdx?: boolean; indirect?: boolean } = {}) {
  const m = mem();
  const q = packedQueue(m.memory, m.heap, size, opts.eventIdx ?? false, opts.indirect ?? false);
  return { ...m, q, table: m.heap.alloc(4096) };
}

function popped(c: ChainBuffers): Array<[number, number, boolean]> {
  return Array.from({ length: c.count }, (_, i) => [c.gpa[i], c.len[i], c.writable[i] === 1]);
}

describe("2.7.5.3.1 / 2.8.8: indirect descriptors", () => {
  it("IndirectWithNext: INDIRECT and NEXT together (split and packed), not IndirectInIndirect", () => {
    const s = split(8, { indirect: true });
    desc(s.dv, s.table, 0x9000, 16, 0, 0);
    desc(s.dv, s.q.layout.desc, s.table, 16, INDIRECT | NEXT, 1);
    desc(s.dv, s.q.layout.desc + 16, 0x9100, 16, 0, 0);
    s.publish(0);
    expect(s.q.device.pop(new ChainBuffers(16))).toBeLessThan(0);
    expect(s.q.device.error).toBe("IndirectWithNext");

    const p = packed(8, { indirect: true });
    desc(p.dv, p.table, 0x9000, 16, 0, 0);
    desc(p.dv, p.q.layout.desc + 16, 0x9100, 16, 0, AVAIL);
    desc(p.dv, p.q.layout.desc, p.table, 16, 0, INDIRECT | NEXT | AVAIL);
    expect(p.q.device.pop(new ChainBuffers(16))).toBeLessThan(0);
    expect(p.q.device.error).toBe("IndirectWithNext");
  });

  it("a direct descriptor then an indirect table: both formats serve the same buffers", () => {
    // The same table in each format's layout: split entries link by NEXT/next, packed
    // entries are walked in order with WRITE the only flag (at offset 14).
    const s = split(8, { indirect: true });
    desc(s.dv, s.table, 0xa000, 32, NEXT, 1); // readable
    desc(s.dv, s.table + 16, 0xb000, 64, WRITE, 0); // writable
    desc(s.dv, s.q.layout.desc, 0x9000, 16, NEXT, 1);
    desc(s.dv, s.q.layout.desc + 16, s.table, 32, INDIRECT, 0);
    s.publish(0);
    const cs = new ChainBuffers(16);
    expect(s.q.device.pop(cs)).toBe(1);

    const p = packed(8, { indirect: true });
    desc(p.dv, p.table, 0xa000, 32, 0, 0);
    desc(p.dv, p.table + 16, 0xb000, 64, 0, WRITE);
    // Packed: the second descriptor first, the head's flags last; the id sits in the last one.
    desc(p.dv, p.q.layout.desc + 16, p.table, 32, 5, INDIRECT | AVAIL);
    desc(p.dv, p.q.layout.desc, 0x9000, 16, 5, NEXT | AVAIL);
    const cp = new ChainBuffers(16);
    expect(p.q.device.pop(cp)).toBe(1);
    expect(p.q.device.error).toBeNull();
    const want: Array<[number, number, boolean]> = [[0x9000, 16, false], [0xa000, 32, false], [0xb000, 64, true]];
    expect(popped(cs)).toEqual(want);
    expect(popped(cp)).toEqual(want);
    expect(cp.head).toBe(5);
    // The chain took two ring descriptors: its used descriptor makes the driver skip both.
    p.q.device.push(5, 64);
    expect(p.dv.getUint16(p.q.layout.desc + 12, true)).toBe(5);
  });

  it("a direct-then-indirect chain longer than the ring is ChainTooLong in packed (the out block's bound)", () => {
    const p = packed(4, { indirect: true });
    for (let k = 0; k < 4; k++) desc(p.dv, p.table + 16 * k, 0xa000, 8, 0, 0);
    desc(p.dv, p.q.layout.desc + 16, p.table, 64, 0, INDIRECT | AVAIL);
    desc(p.dv, p.q.layout.desc, 0x9000, 16, 0, NEXT | AVAIL);
    expect(p.q.device.pop(new ChainBuffers(16))).toBeLessThan(0);
    expect(p.q.device.error).toBe("ChainTooLong");
  });
});

describe("2.8.4 / 2.8.5: WRITE in packed used descriptors", () => {
  it("the device sets WRITE when it wrote bytes, and only then", () => {
    const p = packed(4);
    const add = (writable: number) => p.q.driver.add([0x9000], [64], [writable], 1);
    const flagsAt = (i: number) => p.dv.getUint16(p.q.layout.desc + 16 * i + 14, true);
    const c = new ChainBuffers(4);
    const a = add(1);
    const b = add(0);
    expect(p.q.device.pop(c)).toBe(1);
    p.q.device.push(a, 40);
    expect(p.q.device.pop(c)).toBe(1);
    p.q.device.push(b, 0);
    expect(flagsAt(0) & WRITE).toBe(WRITE);
    expect(flagsAt(1) & WRITE).toBe(0);
    const got: Array<[number, number]> = [];
    p.q.driver.reclaim((id, written) => got.push([id, written]));
    expect(got).toEqual([[a, 40], [b, 0]]);
  });

  it("the driver ignores len in a used descriptor without WRITE (a device claiming bytes it never wrote)", () => {
    const p = packed(4);
    const id = p.q.driver.add([0x9000], [64], [1], 1);
    // A lying device: used on lap 1, len 64, no WRITE.
    desc(p.dv, p.q.layout.desc, 0, 64, id, AVAIL | USED);
    const got: Array<[number, number]> = [];
    p.q.driver.reclaim((i, written) => got.push([i, written]));
    expect(got).toEqual([[id, 0]]);
  });
});

describe("2.8.10: packed event suppression when one chain covers the whole ring", () => {
  it("used side: the driver's event at its next used descriptor fires though the indices came back round", () => {
    for (const size of [1, 4, 7]) {
      const p = packed(size, { eventIdx: true });
      const bufs = Array.from({ length: size }, (_, k) => 0x9000 + 64 * k);
      const id = p.q.driver.add(bufs, bufs.map(() => 64), bufs.map(() => 1), size);
      expect(id).toBeGreaterThanOrEqual(0);
      const c = new ChainBuffers(size);
      expect(p.q.device.pop(c)).toBe(1);
      expect(c.count).toBe(size);
      p.q.device.push(c.head, 8);
      // The driver asked (driverInit: off 0, wrap 1, DESC) for the descriptor at 0 of lap 1.
      expect(p.q.device.needsInterrupt()).toBe(true);
      expect(p.q.device.needsInterrupt()).toBe(false); // nothing new
    }
  });

  it("available side: the device's event at the next avail descriptor fires after a whole-ring chain", () => {
    const size = 4;
    const p = packed(size, { eventIdx: true });
    p.dv.setUint16(p.q.layout.deviceEvent, 1 << 15, true); // off 0, wrap 1
    p.dv.setUint16(p.q.layout.deviceEvent + 2, EVENT_DESC, true);
    const bufs = [0x9000, 0x9100, 0x9200, 0x9300];
    expect(p.q.driver.add(bufs, [8, 8, 8, 8], [0, 0, 0, 0], size)).toBeGreaterThanOrEqual(0);
    expect(p.q.driver.needsKick()).toBe(true);
    expect(p.q.driver.needsKick()).toBe(false);
  });

  it("an event on the other lap, or past what moved, does not fire; one inside it does", () => {
    const size = 8;
    const p = packed(size, { eventIdx: true });
    const c = new ChainBuffers(size);
    const one = () => {
      const id = p.q.driver.add([0x9000], [8], [1], 1);
      expect(p.q.device.pop(c)).toBe(1);
      p.q.device.push(id, 1);
    };
    const want = (off: number, wrap: number) => {
      p.dv.setUint16(p.q.layout.driverEvent, off | (wrap << 15), true);
      p.dv.setUint16(p.q.layout.driverEvent + 2, EVENT_DESC, true);
    };
    one(); // position 0 of lap 1
    want(0, 0); // same offset, next lap: not yet
    expect(p.q.device.needsInterrupt()).toBe(false);
    one();
    one(); // positions 1 and 2
    want(2, 1);
    expect(p.q.device.needsInterrupt()).toBe(true);
    one(); // position 3
    want(5, 1);
    expect(p.q.device.needsInterrupt()).toBe(false);
  });
});

describe("2.7.7.2: split notification flags without EVENT_IDX", () => {
  it("the device sends no interrupt while the driver sets VIRTQ_AVAIL_F_NO_INTERRUPT", () => {
    const s = split(8);
    const c = new ChainBuffers(8);
    const round = () => {
      const head = s.q.driver.add([0x9000], [8], [1], 1);
      expect(s.q.device.pop(c)).toBe(1);
      s.q.device.push(head, 1);
      return s.q.device.needsInterrupt();
    };
    s.dv.setUint16(s.q.layout.avail, 1, true); // NO_INTERRUPT
    expect(round()).toBe(false);
    s.dv.setUint16(s.q.layout.avail, 0, true);
    expect(round()).toBe(true);
    expect(s.q.device.needsInterrupt()).toBe(false); // nothing pushed since
  });

  it("with EVENT_IDX the flag is ignored and used_event decides", () => {
    const s = split(8, { eventIdx: true });
    const c = new ChainBuffers(8);
    const head = s.q.driver.add([0x9000], [8], [1], 1);
    expect(s.q.device.pop(c)).toBe(1);
    s.dv.setUint16(s.q.layout.avail, 1, true); // NO_INTERRUPT: must be ignored
    s.dv.setUint16(s.q.layout.avail + 4 + 2 * 8, 0, true); // used_event 0: interrupt me after entry 0
    s.q.device.push(head, 1);
    expect(s.q.device.needsInterrupt()).toBe(true);
  });

  it("the driver sends no kick while the device sets VIRTQ_USED_F_NO_NOTIFY", () => {
    const s = split(8);
    s.dv.setUint16(s.q.layout.used, 1, true);
    s.q.driver.add([0x9000], [8], [0], 1);
    expect(s.q.driver.needsKick()).toBe(false);
    s.dv.setUint16(s.q.layout.used, 0, true);
    s.q.driver.add([0x9000], [8], [0], 1);
    expect(s.q.driver.needsKick()).toBe(true);
  });
});
