// Argo ABI edges where we differed from Xen on HVM and Arm guests, whose
// guest_handle_okay is always true (issue 17, item 12): arrays are read element by
// element, so a fault happens at the first unreadable element and not before; a
// zero-length array is never read at all; and the guest-side reader has no u32 address
// it cannot use.
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { EFAULT, EINVAL } from "../../host/abi/errno.ts";
import {
  ADDR_APORT, ADDR_DOMID, DOMID_ANY, ENT_FLAGS, ENT_MAX_MESSAGE_SIZE, ENT_RING, ENT_SPACE_REQUIRED, OP_NOTIFY,
  OP_REGISTER_RING, OP_SENDV, REGISTER_APORT, REGISTER_LEN, REGISTER_PARTNER, RING_DATA_ENT_SIZE, RING_DATA_ENTS,
  RING_DATA_NENT, RING_EXISTS, RING_RX_PTR, RING_TX_PTR, SEND_ADDR_DST, SEND_ADDR_SRC,
} from "../../host/abi/argo.ts";
import { guest, setup } from "./helpers.ts";

describe("Argo ABI edges, as Xen on HVM and Arm", () => {
  it("notify fills entries one by one: -EFAULT at the first entry outside memory, the earlier ones written", () => {
    const { a, b } = setup();
    for (const port of [10, 11]) expect(typeof b.g.registerRing(port, a.d.domid, 4096)).toBe("object");
    const size = a.d.memory.buffer.byteLength;
    // Two entries fit before the end of memory, the third does not.
    const rd = size - RING_DATA_ENTS - 2 * RING_DATA_ENT_SIZE;
    const dv = new DataView(a.d.memory.buffer);
    dv.setUint32(rd + RING_DATA_NENT, 3, true);
    dv.setUint32(rd + 4, 0, true);
    for (let i = 0; i < 2; i++) {
      const e = rd + RING_DATA_ENTS + i * RING_DATA_ENT_SIZE;
      dv.setUint32(e + ENT_RING + ADDR_APORT, 10 + i, true);
      dv.setUint32(e + ENT_RING + ADDR_DOMID, b.d.domid, true);
      dv.setUint16(e + ENT_FLAGS, 0, true);
      dv.setUint32(e + ENT_SPACE_REQUIRED, 0, true);
      dv.setUint32(e + ENT_MAX_MESSAGE_SIZE, 0, true);
    }
    expect(a.d.hypercall(OP_NOTIFY, rd, 0, 0, 0)).toBe(-EFAULT);
    for (let i = 0; i < 2; i++) {
      const e = rd + RING_DATA_ENTS + i * RING_DATA_ENT_SIZE;
      expect(dv.getUint16(e + ENT_FLAGS, true) & RING_EXISTS).toBe(RING_EXISTS);
      expect(dv.getUint32(e + ENT_MAX_MESSAGE_SIZE, true)).toBe(4096 - 32);
    }
  });

  it("sendv with niov 0 reads no iov array: a handle past the end of memory sends an empty message", () => {
    const { a, b } = setup();
    const ring = b.g.registerRing(20, a.d.domid, 4096);
    if (typeof ring === "number") throw new Error(`register: ${ring}`);
    const addr = a.buf;
    const dv = new DataView(a.d.memory.buffer);
    dv.setUint32(addr + SEND_ADDR_SRC + ADDR_APORT, 5, true);
    dv.setUint32(addr + SEND_ADDR_SRC + ADDR_DOMID, DOMID_ANY, true);
    dv.setUint32(addr + SEND_ADDR_DST + ADDR_APORT, 20, true);
    dv.setUint32(addr + SEND_ADDR_DST + ADDR_DOMID, b.d.domid, true);
    const pastEnd = a.d.memory.buffer.byteLength + 4096;
    expect(a.d.hypercall(OP_SENDV, addr, pastEnd, 0, 0)).toBe(0);
    expect(b.g.read(ring, b.buf, 64)).toBe(0);
    expect(b.g.meta.srcDomid).toBe(a.d.domid);
    expect(b.g.meta.srcAport).toBe(5);
    // One iov at that handle is a fault, as before.
    expect(a.d.hypercall(OP_SENDV, addr, pastEnd, 1, 0)).toBe(-EFAULT);
  });

  it("register with npage 0 reads no gfn: a list handle past the end of memory is register_ring's -EINVAL", () => {
    const { a, b } = setup();
    const reg = a.buf;
    const dv = new DataView(a.d.memory.buffer);
    dv.setUint32(reg + REGISTER_APORT, 1, true);
    dv.setUint32(reg + REGISTER_PARTNER, b.d.domid, true); // partner + pad 0
    dv.setUint32(reg + REGISTER_LEN, 4096, true);
    const pastEnd = a.d.memory.buffer.byteLength + 4096;
    expect(a.d.hypercall(OP_REGISTER_RING, reg, pastEnd, 0, 0)).toBe(-EINVAL);
    // The right page count with the list outside memory faults on the first gfn read.
    expect(a.d.hypercall(OP_REGISTER_RING, reg, pastEnd, 2, 0)).toBe(-EFAULT);
    // A list whose second entry runs off the end faults there (find_ring_mfns).
    const size = a.d.memory.buffer.byteLength;
    dv.setUint32(size - 8, 1, true);
    dv.setUint32(size - 4, 0, true);
    expect(a.d.hypercall(OP_REGISTER_RING, reg, size - 8, 2, 0)).toBe(-EFAULT);
  });

  it("a 4 GiB guest consumes a message whose bytes reach its last byte, 0xFFFFFFFF", () => {
    const hv = new Hypervisor({ policy: Policy.allowAll() });
    const sender = guest(hv, "sender", 1 << 20);
    const big = hv.createDomain({ name: "big", label: "guest_t", memoryBytes: 2 ** 32 });
    const dv = new DataView(big.memory.buffer);
    // Ring of 8128 data bytes on two pages: the header page low, the second page the last
    // page of memory, so data offset 8127 is gpa 0xFFFFFFFF.
    const len = 8192 - 64;
    const gfnList = 0x1000;
    const ringGpa = 0x2000;
    dv.setBigUint64(gfnList, 2n, true);
    dv.setBigUint64(gfnList + 8, 0xfffffn, true);
    // Start both pointers two slots before the end: the 16-byte payload is the ring's last 16 bytes.
    dv.setUint32(ringGpa + RING_RX_PTR, len - 32, true);
    dv.setUint32(ringGpa + RING_TX_PTR, len - 32, true);
    const reg = 0x3000;
    dv.setUint32(reg + REGISTER_APORT, 9, true);
    dv.setUint32(reg + REGISTER_PARTNER, sender.d.domid, true);
    dv.setUint32(reg + REGISTER_LEN, len, true);
    expect(big.hypercall(OP_REGISTER_RING, reg, gfnList, 2, 0)).toBe(0);
    const payload = new Uint8Array(16).map((_, i) => 0xa0 + i);
    new Uint8Array(sender.d.memory.buffer).set(payload, sender.buf);
    expect(sender.g.send(big.domid, 9, sender.buf, 16)).toBe(16);
    expect(new Uint8Array(big.memory.buffer)[2 ** 32 - 1]).toBe(0xaf);
    // Read payload bytes from 15 on into one 1-byte buffer: the copy starts at 0xFFFFFFFF.
    const meta = 0x4000;
    const iov = 0x5000;
    const out = 0x6000;
    dv.setUint32(iov, out, true);
    dv.setUint32(iov + 4, 1, true);
    expect(big.engine.argoRecv(gfnList, len, meta, iov, 1, 15, 1)).toBe(16);
    expect(dv.getUint8(out)).toBe(0xaf);
    expect(dv.getUint32(ringGpa + RING_RX_PTR, true)).toBe(0); // consumed, wrapped
    hv.destroyDomain(big.domid);
  });
});
