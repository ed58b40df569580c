// Ring layouts and constants against the real linux/virtio_ring.h (linux-libc-dev), through
// a C oracle's committed output (test/oracle/expected/, checked against the header where it is
// installed): vring_init / vring_size for many sizes and alignments, and the packed ring's
// descriptor and event structures used through our Wasm on bytes placed at Linux's offsets.
import { describe, expect, it } from "vitest";
import { oracleOutput, parseKeyValues } from "../oracle/compile.ts";
import { splitQueueAt } from "../../host/transport/vring/split-sides.ts";
import { vringLayout } from "../../host/transport/vring/split-layout.ts";
import { packedQueue } from "../../host/transport/vring/packed-sides.ts";
import { ChainBuffers } from "../../host/transport/vring/queue-sides.ts";
import { GuestHeap } from "../../host/guest/heap.ts";

const out = oracleOutput("vring_layout");
const k = parseKeyValues(out);
const get = (name: string) => {
  const v = k.get(name);
  if (v === undefined) throw new Error(`oracle did not print ${name}`);
  return v;
};

describe("split ring layout vs vring_init / vring_size", () => {
  it("struct sizes and offsets are the spec's", () => {
    expect([get("sizeof.vring_desc"), get("vring_desc.addr"), get("vring_desc.len"), get("vring_desc.flags"), get("vring_desc.next")]).toEqual([16, 0, 8, 12, 14]);
    expect([get("vring_avail.flags"), get("vring_avail.idx"), get("vring_avail.ring")]).toEqual([0, 2, 4]);
    expect([get("sizeof.vring_used_elem"), get("vring_used_elem.id"), get("vring_used_elem.len"), get("vring_used.idx"), get("vring_used.ring")]).toEqual([8, 0, 4, 2, 4]);
    expect([get("VRING_DESC_F_NEXT"), get("VRING_DESC_F_WRITE"), get("VRING_DESC_F_INDIRECT")]).toEqual([1, 2, 4]);
  });

  it("vringLayout matches vring_init and vring_size for every size and alignment", () => {
    const lines = out.split("\n").filter((l) => l.startsWith("layout "));
    expect(lines.length).toBeGreaterThan(60);
    for (const line of lines) {
      const [, qs, align, desc, avail, used, size] = line.split(" ").map(Number);
      const l = vringLayout(0x10000, qs, align);
      expect([l.desc - 0x10000, l.avail - 0x10000, l.used - 0x10000, l.bytes], line).toEqual([desc, avail, used, size]);
    }
  });
});

describe("a ring placed where a legacy driver puts it (vring_init layout)", () => {
  it("splitQueueAt runs both sides over a vringLayout", () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
    const heap = new GuestHeap(memory.buffer.byteLength, 65536); // the ring below the heap
    const l = vringLayout(4096, 64, 4096);
    expect(l.desc + l.bytes).toBeLessThanOrEqual(65536);
    const q = splitQueueAt(memory, heap, l);
    const head = q.driver.add([0x20000, 0x21000], [100, 200], [0, 1], 2);
    const c = new ChainBuffers(4);
    expect(q.device.pop(c)).toBe(1);
    expect([c.head, c.gpa[1], c.len[1], c.writable[1]]).toEqual([head, 0x21000, 200, 1]);
    // The avail ring entry is where vring_init says it is.
    expect(new DataView(memory.buffer).getUint16(l.avail + 4, true)).toBe(head);
  });
});

describe("packed ring vs struct vring_packed_desc / vring_packed_desc_event", () => {
  it("a chain written at Linux's offsets with Linux's flag bits is popped as written", () => {
    expect(get("sizeof.vring_packed_desc")).toBe(16);
    expect(get("sizeof.vring_packed_desc_event")).toBe(4);
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
    const heap = new GuestHeap(memory.buffer.byteLength);
    const q = packedQueue(memory, heap, 4);
    const dv = new DataView(memory.buffer);
    const avail = 1 << get("VRING_PACKED_DESC_F_AVAIL");
    const put = (i: number, addr: number, len: number, id: number, flags: number) => {
      const d = q.layout.desc + get("sizeof.vring_packed_desc") * i;
      dv.setBigUint64(d + get("vring_packed_desc.addr"), BigInt(addr), true);
      dv.setUint32(d + get("vring_packed_desc.len"), len, true);
      dv.setUint16(d + get("vring_packed_desc.id"), id, true);
      dv.setUint16(d + get("vring_packed_desc.flags"), flags, true);
    };
    put(1, 8192, 32, 2, avail | get("VRING_DESC_F_WRITE"));
    put(0, 4096, 16, 2, avail | get("VRING_DESC_F_NEXT"));
    const c = new ChainBuffers(8);
    expect(q.device.pop(c)).toBe(1);
    expect([c.head, c.count, c.gpa[0], c.len[0], c.writable[0], c.gpa[1], c.len[1], c.writable[1]]).toEqual([2, 2, 4096, 16, 0, 8192, 32, 1]);
    // The used descriptor: both AVAIL and USED set to the device's wrap counter (1), id and len in place.
    q.device.push(2, 7);
    const d0 = q.layout.desc;
    const used = 1 << get("VRING_PACKED_DESC_F_USED");
    expect(dv.getUint16(d0 + get("vring_packed_desc.flags"), true) & (avail | used)).toBe(avail | used);
    expect(dv.getUint16(d0 + get("vring_packed_desc.id"), true)).toBe(2);
    expect(dv.getUint32(d0 + get("vring_packed_desc.len"), true)).toBe(7);
  });

  it("event suppression: our driver publishes Linux's DESC flag and off_wrap, and honours DISABLE", () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
    const heap = new GuestHeap(memory.buffer.byteLength);
    const q = packedQueue(memory, heap, 4, true);
    const dv = new DataView(memory.buffer);
    const ev = q.layout.driverEvent;
    expect(dv.getUint16(ev + get("vring_packed_desc_event.flags"), true)).toBe(get("VRING_PACKED_EVENT_FLAG_DESC"));
    expect(dv.getUint16(ev + get("vring_packed_desc_event.off_wrap"), true) >> get("VRING_PACKED_EVENT_F_WRAP_CTR")).toBe(1);
    // The device asks for no kicks at all: the driver does not kick.
    dv.setUint16(q.layout.deviceEvent + get("vring_packed_desc_event.flags"), get("VRING_PACKED_EVENT_FLAG_DISABLE"), true);
    q.driver.add([4096], [8], [0], 1);
    expect(q.driver.needsKick()).toBe(false);
    dv.setUint16(q.layout.deviceEvent + get("vring_packed_desc_event.flags"), get("VRING_PACKED_EVENT_FLAG_ENABLE"), true);
    q.driver.add([4096], [8], [0], 1);
    expect(q.driver.needsKick()).toBe(true);
  });
});
