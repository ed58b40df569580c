// Argo ops against Xen's semantics (xen/common/argo.c), driven through the real
// hypercall with structs laid out in guest memory.
import { describe, expect, it } from "vitest";
import { setup, guest, put, bytesAt, u32At, pattern } from "./helpers.ts";
import {
  DOMID_ANY, OP_SENDV, OP_REGISTER_RING, OP_NOTIFY, OP_UNREGISTER_RING, RING_EXISTS, RING_SHARED, RING_EMPTY,
  RING_SUFFICIENT, RING_EMSGSIZE, RING_EBUSY, REGISTER_FLAG_FAIL_EXIST, MAX_RINGS_PER_DOMAIN,
} from "../../host/abi/argo.ts";
import * as E from "../../host/abi/errno.ts";
import { READ_EMPTY } from "../../host/abi/argo-reader.ts";
import type { GuestRing } from "../../host/guest/argo-driver.ts";

const PORT = 0x10;

function ring(x: ReturnType<typeof setup>["a"], partner: number, len = 4096, port = PORT): GuestRing {
  const r = x.g.registerRing(port, partner, len);
  if (typeof r === "number") throw new Error(`register failed: ${E.errnoName(r)}`);
  return r;
}

describe("Xen's test vector", () => {
  it("one 23-byte message of type 0x12345678 lands as Xen writes it", () => {
    const { a, b } = setup();
    const r = ring(b, a.d.domid);
    const msg = pattern(23);
    put(a, a.buf, msg);
    expect(a.g.send(b.d.domid, PORT, a.buf, 23, 0x12345678, 0x99)).toBe(23);
    expect(u32At(b, r.ringGpa)).toBe(0); // rx_ptr
    expect(u32At(b, r.ringGpa + 4)).toBe(48); // tx_ptr: 16 + roundup(23)
    const hdr = r.ringGpa + 64;
    expect(u32At(b, hdr)).toBe(39); // len counts the header
    expect(u32At(b, hdr + 4)).toBe(0x99); // source.aport
    expect(u32At(b, hdr + 8) & 0xffff).toBe(a.d.domid); // source.domain_id
    expect(u32At(b, hdr + 8) >>> 16).toBe(0); // pad
    expect(u32At(b, hdr + 12)).toBe(0x12345678);
    expect(bytesAt(b, hdr + 16, 23)).toEqual(msg);
    // The guest-side reader consumes it.
    expect(b.g.read(r, b.buf, 4096)).toBe(23);
    expect(b.g.meta).toEqual({ payloadLen: 23, srcAport: 0x99, srcDomid: a.d.domid, messageType: 0x12345678 });
    expect(bytesAt(b, b.buf, 23)).toEqual(msg);
    expect(u32At(b, r.ringGpa)).toBe(48);
    expect(b.g.read(r, b.buf, 4096)).toBe(READ_EMPTY);
  });
});

describe("ring geometry", () => {
  it("wraps a payload around the end of the ring, never the header", () => {
    const { a, b } = setup();
    const r = ring(b, a.d.domid, 256);
    // 3 messages of 48 payload = 64 bytes each -> tx 192; read them all, then a 100-byte one wraps.
    for (let i = 0; i < 3; i++) {
      put(a, a.buf, pattern(48, i + 1));
      expect(a.g.send(b.d.domid, PORT, a.buf, 48)).toBe(48);
      expect(b.g.read(r, b.buf, 4096)).toBe(48);
      expect(bytesAt(b, b.buf, 48)).toEqual(pattern(48, i + 1));
    }
    expect(u32At(b, r.ringGpa + 4)).toBe(192);
    const big = pattern(100, 7);
    put(a, a.buf, big);
    expect(a.g.send(b.d.domid, PORT, a.buf, 100)).toBe(100);
    // header at 192..208, payload 208..256 then 0..52, tx = roundup(52) = 64
    expect(u32At(b, r.ringGpa + 4)).toBe(64);
    expect(bytesAt(b, r.ringGpa + 64 + 208, 48)).toEqual(big.subarray(0, 48));
    expect(bytesAt(b, r.ringGpa + 64, 52)).toEqual(big.subarray(48));
    expect(b.g.read(r, b.buf, 4096)).toBe(100);
    expect(bytesAt(b, b.buf, 100)).toEqual(big);
  });

  it("keeps one slot empty: a message that would fill the ring is -EAGAIN", () => {
    const { a, b } = setup();
    ring(b, a.d.domid, 256);
    // 256 bytes: the largest message is 256 - 16 - 16 = 224 payload bytes.
    expect(a.g.send(b.d.domid, PORT, a.buf, 224)).toBe(224);
    expect(a.g.send(b.d.domid, PORT, a.buf, 0)).toBe(-E.EAGAIN);
  });

  it("-EMSGSIZE for a message the ring can never hold; -EMSGSIZE beyond MAX_ARGO_MESSAGE_SIZE", () => {
    const { a, b } = setup();
    ring(b, a.d.domid, 256);
    expect(a.g.send(b.d.domid, PORT, a.buf, 225)).toBe(-E.EMSGSIZE);
    expect(a.g.send(b.d.domid, PORT, a.buf, 240)).toBe(-E.EMSGSIZE);
    // iov_count: 2 iovs summing past MAX_ARGO_MESSAGE_SIZE.
    expect(a.g.sendIovs(b.d.domid, PORT, [[a.buf, 0x800000], [a.buf, 0x800000]])).toBe(-E.EMSGSIZE);
    // A single iov_len past the maximum is -EINVAL (checked before the sum).
    expect(a.g.sendIovs(b.d.domid, PORT, [[a.buf, 0x1000000]])).toBe(-E.EINVAL);
  });

  it("gathers up to 8 iovs into one message and refuses 9", () => {
    const { a, b, hv } = setup();
    const r = ring(b, a.d.domid);
    const data = pattern(8 * 10, 3);
    put(a, a.buf, data);
    const iovs = Array.from({ length: 8 }, (_, i) => [a.buf + i * 10, 10] as const);
    expect(a.g.sendIovs(b.d.domid, PORT, iovs)).toBe(80);
    expect(b.g.read(r, b.buf, 4096)).toBe(80);
    expect(bytesAt(b, b.buf, 80)).toEqual(data);
    expect(a.d.hypercall(OP_SENDV, a.g.scratch, a.g.scratch + 64, 9, 0)).toBe(-E.EINVAL);
    void hv;
  });

  it("copies page by page into a ring on non-contiguous gfns", () => {
    const { a, b } = setup();
    const len = 3 * 4096;
    const r = b.g.registerRing(PORT, a.d.domid, len, { scatter: true });
    if (typeof r === "number") throw new Error(E.errnoName(r));
    expect(r.gfns[1]).not.toBe(r.gfns[0] + 1);
    let seed = 1;
    for (let round = 0; round < 12; round++) {
      const n = 1000 + round * 777;
      const data = pattern(n, seed++);
      put(a, a.buf, data);
      expect(a.g.send(b.d.domid, PORT, a.buf, n)).toBe(n);
      expect(b.g.read(r, b.buf, 65536)).toBe(n);
      expect(bytesAt(b, b.buf, n)).toEqual(data);
    }
  });

  it("copies NaN bit patterns exactly (word-loop copy path)", () => {
    const { a, b } = setup();
    const r = ring(b, a.d.domid);
    const bytes = new Uint8Array(64);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(0, 0x7ff00001, true); dv.setUint32(4, 0x7ff00000, true); // signalling NaN
    dv.setUint32(8, 0xfff7ffff, true); dv.setUint32(12, 0xfff7ffff, true); // V8's hole NaN
    dv.setUint32(16, 0x00000001, true); dv.setUint32(20, 0xfff80000, true);
    put(a, a.buf, bytes);
    expect(a.g.send(b.d.domid, PORT, a.buf, 64)).toBe(64);
    expect(b.g.read(r, b.buf, 64)).toBe(64);
    expect(bytesAt(b, b.buf, 64)).toEqual(bytes);
  });
});

describe("addressing", () => {
  it("refuses a forged source domid with -EPERM and fills in DOMID_ANY", () => {
    const { hv, a, b } = setup();
    const c = guest(hv, "c");
    const r = ring(b, DOMID_ANY);
    const dv = new DataView(a.d.memory.buffer);
    a.g.send(b.d.domid, PORT, a.buf, 1); // lays out the structs; then forge the source
    dv.setUint16(a.g.scratch + 4, c.d.domid, true);
    expect(a.d.hypercall(OP_SENDV, a.g.scratch, a.g.scratch + 64, 1, 0)).toBe(-E.EPERM);
    expect(b.g.read(r, b.buf, 64)).toBe(1);
    expect(b.g.meta.srcDomid).toBe(a.d.domid);
    expect(b.g.read(r, b.buf, 64)).toBe(READ_EMPTY);
  });

  it("-ESRCH for a missing domain, -ECONNREFUSED for a missing ring", () => {
    const { a, b } = setup();
    expect(a.g.send(999, PORT, a.buf, 1)).toBe(-E.ESRCH);
    expect(a.g.send(b.d.domid, PORT, a.buf, 1)).toBe(-E.ECONNREFUSED);
    ring(b, a.d.domid);
    expect(a.g.send(b.d.domid, PORT + 1, a.buf, 1)).toBe(-E.ECONNREFUSED);
  });

  it("a ring for a single partner refuses everyone else", () => {
    const { hv, a, b } = setup();
    const c = guest(hv, "c");
    ring(b, a.d.domid);
    expect(c.g.send(b.d.domid, PORT, c.buf, 1)).toBe(-E.ECONNREFUSED);
    expect(a.g.send(b.d.domid, PORT, a.buf, 1)).toBe(1);
  });

  it("looks up the partner's own ring before the wildcard ring", () => {
    const { hv, a, b } = setup();
    const c = guest(hv, "c");
    const specific = ring(b, a.d.domid, 4096);
    const wild = ring(b, DOMID_ANY, 4096);
    expect(a.g.send(b.d.domid, PORT, a.buf, 5)).toBe(5);
    expect(c.g.send(b.d.domid, PORT, c.buf, 7)).toBe(7);
    expect(b.g.read(specific, b.buf, 64)).toBe(5);
    expect(b.g.read(specific, b.buf, 64)).toBe(READ_EMPTY);
    expect(b.g.read(wild, b.buf, 64)).toBe(7);
    expect(b.g.meta.srcDomid).toBe(c.d.domid);
  });
});

describe("register_ring", () => {
  it("validates the length, pad, page count and flags", () => {
    const { a, b } = setup();
    const p = a.d.domid;
    expect(b.g.registerRing(PORT, p, 32)).toBe(-E.EINVAL); // < header + 2 slots
    expect(b.g.registerRing(PORT, p, 100)).toBe(-E.EINVAL); // not 16-aligned
    expect(b.g.registerRing(PORT, p, 48, { flags: 2 })).toBe(-E.EINVAL); // unknown flag
    expect(typeof b.g.registerRing(PORT, p, 48)).toBe("object"); // smallest ring
    const reg = b.g.scratch + 256;
    const dv = new DataView(b.d.memory.buffer);
    dv.setUint32(reg, PORT + 1, true); dv.setUint16(reg + 4, p, true); dv.setUint16(reg + 6, 0, true);
    dv.setUint32(reg + 8, 0x1000010, true); // > XEN_ARGO_MAX_RING_SIZE
    expect(b.d.hypercall(OP_REGISTER_RING, reg, b.buf, 4098, 0)).toBe(-E.EINVAL);
    dv.setUint32(reg + 8, 8192, true); // needs 3 pages (8192 + 64 header)
    expect(b.d.hypercall(OP_REGISTER_RING, reg, b.buf, 2, 0)).toBe(-E.EINVAL);
    dv.setUint16(reg + 6, 1, true); // pad must be zero
    expect(b.d.hypercall(OP_REGISTER_RING, reg, b.buf, 3, 0)).toBe(-E.EINVAL);
  });

  it("refuses gfns outside the domain's memory and unreadable gfn lists", () => {
    const { a, b } = setup();
    const reg = b.g.scratch + 256;
    const dv = new DataView(b.d.memory.buffer);
    dv.setUint32(reg, PORT, true); dv.setUint16(reg + 4, a.d.domid, true); dv.setUint16(reg + 6, 0, true);
    dv.setUint32(reg + 8, 4096, true);
    const list = b.buf;
    dv.setUint32(list, 0x10000, true); dv.setUint32(list + 4, 0, true); // gfn past 4 MiB
    dv.setUint32(list + 8, 5, true); dv.setUint32(list + 12, 0, true);
    expect(b.d.hypercall(OP_REGISTER_RING, reg, list, 2, 0)).toBe(-E.EINVAL);
    dv.setUint32(list, 5, true); dv.setUint32(list + 4, 1, true); // high half set
    expect(b.d.hypercall(OP_REGISTER_RING, reg, list, 2, 0)).toBe(-E.EINVAL);
    expect(b.d.hypercall(OP_REGISTER_RING, reg, b.d.memory.buffer.byteLength - 8, 2, 0)).toBe(-E.EFAULT);
    expect(b.d.hypercall(OP_REGISTER_RING, b.d.memory.buffer.byteLength - 4, list, 2, 0)).toBe(-E.EFAULT);
  });

  it("FAIL_EXIST gives -EEXIST; a resize gives -EEXIST; plain re-registration keeps tx_ptr", () => {
    const { a, b } = setup();
    const r = ring(b, a.d.domid, 4096);
    expect(a.g.send(b.d.domid, PORT, a.buf, 20)).toBe(20);
    const again = b.d.argo.register({ aport: PORT, partner: a.d.domid, len: 4096 }, r.gfns, REGISTER_FLAG_FAIL_EXIST);
    expect(again).toBe(-E.EEXIST);
    expect(b.d.argo.register({ aport: PORT, partner: a.d.domid, len: 8192 }, [...r.gfns, r.gfns[0] + 2])).toBe(-E.EEXIST);
    expect(b.d.argo.register({ aport: PORT, partner: a.d.domid, len: 4096 }, r.gfns)).toBe(0);
    expect(u32At(b, r.ringGpa + 4)).toBe(48);
    expect(a.g.send(b.d.domid, PORT, a.buf, 20)).toBe(20);
    expect(u32At(b, r.ringGpa + 4)).toBe(96);
  });

  it("flushes a garbage tx_ptr to the slot after rx_ptr", () => {
    const { a, b } = setup();
    const gpa = b.g.heap.allocPages(2);
    const dv = new DataView(b.d.memory.buffer);
    dv.setUint32(gpa, 37, true); // rx_ptr
    dv.setUint32(gpa + 4, 5, true); // tx_ptr unaligned
    expect(b.d.argo.register({ aport: PORT, partner: a.d.domid, len: 4096 }, [gpa / 4096, gpa / 4096 + 1])).toBe(0);
    expect(u32At(b, gpa + 4)).toBe(48);
  });

  it("-ESRCH for a missing partner, -ENOSPC past 128 rings", () => {
    const { a, b } = setup();
    expect(b.g.registerRing(PORT, 4242, 48)).toBe(-E.ESRCH);
    for (let i = 0; i < MAX_RINGS_PER_DOMAIN; i++) expect(typeof b.g.registerRing(1000 + i, a.d.domid, 48)).toBe("object");
    expect(b.g.registerRing(5000, a.d.domid, 48)).toBe(-E.ENOSPC);
  });

  it("-EPERM for wildcard rings when the hypervisor does not allow them", async () => {
    const { Hypervisor } = await import("../../host/hypervisor/hypervisor.ts");
    const { Policy } = await import("../../host/mac/index.ts");
    const hv = new Hypervisor({ policy: Policy.allowAll(), wildcardRings: false });
    const b = guest(hv, "b");
    expect(b.g.registerRing(PORT, DOMID_ANY, 48)).toBe(-E.EPERM);
  });
});

describe("unregister_ring and destroy", () => {
  it("unregisters once, then -ENOENT; sends are refused afterwards", () => {
    const { a, b } = setup();
    ring(b, a.d.domid);
    expect(b.g.unregisterRing(PORT, a.d.domid)).toBe(0);
    expect(b.g.unregisterRing(PORT, a.d.domid)).toBe(-E.ENOENT);
    expect(a.g.send(b.d.domid, PORT, a.buf, 1)).toBe(-E.ECONNREFUSED);
    expect(b.d.hypercall(OP_UNREGISTER_RING, b.g.scratch + 256, 4, 0, 0)).toBe(-E.EINVAL);
  });

  it("destroying a domain removes its rings and the rings only it could send to", () => {
    const { hv, a, b } = setup();
    const c = guest(hv, "c");
    ring(b, a.d.domid, 4096, PORT);
    ring(b, c.d.domid, 4096, PORT + 1);
    const revoked: string[] = [];
    hv.on("ringRevoked", (e) => revoked.push(`${e.owner.name}:${e.aport}:${e.reason}`));
    expect(hv.destroyDomain(a.d.domid)).toBe(true);
    expect(revoked).toEqual([`b:${PORT}:partner-destroyed`]);
    expect(b.d.argo.unregister({ aport: PORT, partner: a.d.domid })).toBe(-E.ENOENT);
    expect(c.g.send(b.d.domid, PORT + 1, c.buf, 1)).toBe(1);
    expect(hv.destroyDomain(b.d.domid)).toBe(true);
    expect(c.g.send(b.d.domid, PORT + 1, c.buf, 1)).toBe(-E.ESRCH);
    expect(b.d.hypercall(OP_NOTIFY, 0, 0, 0, 0)).toBe(-E.ENODEV);
    expect(hv.destroyDomain(b.d.domid)).toBe(false);
  });
});

describe("pending space and notify", () => {
  it("-EAGAIN queues the sender; the receiver's notify wakes it; the retry succeeds", async () => {
    const { a, b } = setup();
    const r = ring(b, a.d.domid, 256);
    expect(a.g.send(b.d.domid, PORT, a.buf, 200)).toBe(200);
    expect(a.g.send(b.d.domid, PORT, a.buf, 100)).toBe(-E.EAGAIN);
    expect(a.d.pollVirq()).toBe(false);
    expect(b.g.read(r, b.buf, 4096)).toBe(200);
    expect(b.g.notify()).toBe(0);
    expect(a.d.pollVirq()).toBe(true);
    expect(a.g.send(b.d.domid, PORT, a.buf, 100)).toBe(100);
    // The entry was consumed by the wake-up: a second notify wakes nobody.
    b.g.notify();
    expect(a.d.pollVirq()).toBe(false);
  });

  it("notify reports EXISTS, SHARED, EMPTY, SUFFICIENT and EMSGSIZE as Xen does", () => {
    const { a, b } = setup();
    ring(b, DOMID_ANY, 256);
    let q = a.g.query(b.d.domid, PORT, 10);
    expect(q.rc).toBe(0);
    expect(q.flags).toBe(RING_EXISTS | RING_SHARED | RING_EMPTY | RING_SUFFICIENT);
    expect(q.maxMessageSize).toBe(224);
    q = a.g.query(b.d.domid, PORT, 225);
    expect(q.flags).toBe(RING_EXISTS | RING_SHARED | RING_EMPTY | RING_EMSGSIZE);
    expect(a.g.send(b.d.domid, PORT, a.buf, 100)).toBe(100);
    q = a.g.query(b.d.domid, PORT, 200);
    expect(q.flags).toBe(RING_EXISTS | RING_SHARED); // not sufficient: queued
    q = a.g.query(b.d.domid, PORT + 9, 1);
    expect(q).toEqual({ rc: 0, flags: 0, maxMessageSize: 0 });
  });

  it("at most 32 waiters per ring: the 33rd gets RING_EBUSY from notify and -EBUSY from sendv", () => {
    const { hv, b } = setup();
    ring(b, DOMID_ANY, 48);
    const senders = Array.from({ length: 34 }, (_, i) => guest(hv, `s${i}`, 1 << 20));
    expect(senders[0].g.send(b.d.domid, PORT, senders[0].buf, 16)).toBe(16); // ring now full
    for (let i = 1; i <= 32; i++) expect(senders[i].g.send(b.d.domid, PORT, senders[i].buf, 1)).toBe(-E.EAGAIN);
    expect(senders[33].g.send(b.d.domid, PORT, senders[33].buf, 1)).toBe(-E.EBUSY);
    expect(senders[33].g.query(b.d.domid, PORT, 1).flags & RING_EBUSY).toBe(RING_EBUSY);
  });

  it("refuses more than 256 notify entries with -EACCES, as Xen does", () => {
    const { a } = setup();
    const dv = new DataView(a.d.memory.buffer);
    dv.setUint32(a.buf, 257, true);
    expect(a.d.hypercall(OP_NOTIFY, a.buf, 0, 0, 0)).toBe(-E.EACCES);
  });

  it("coalesces VIRQs: many sends, one callback", async () => {
    const { a, b } = setup();
    ring(b, a.d.domid);
    let calls = 0;
    b.d.onVirq(() => calls++);
    for (let i = 0; i < 5; i++) a.g.send(b.d.domid, PORT, a.buf, 8);
    await Promise.resolve();
    await Promise.resolve();
    expect(calls).toBe(1);
    expect(b.d.virq.raised).toBe(5);
  });
});

describe("hypercall entry", () => {
  it("rejects arg3/arg4 wider than 32 bits with -EINVAL and unknown ops with -EOPNOTSUPP", () => {
    const { a } = setup();
    expect(a.d.hypercall(OP_SENDV, a.g.scratch, a.g.scratch + 64, 1, 2 ** 32)).toBe(-E.EINVAL);
    expect(a.d.hypercall(OP_SENDV, a.g.scratch, a.g.scratch + 64, -1, 0)).toBe(-E.EINVAL);
    expect(a.d.hypercall(OP_NOTIFY, 0, 0, 2 ** 40, 0)).toBe(-E.EINVAL);
    expect(a.d.hypercall(5, 0, 0, 0, 0)).toBe(-E.EOPNOTSUPP);
    expect(a.d.hypercall(0, 0, 0, 0, 0)).toBe(-E.EOPNOTSUPP);
  });

  it("-EFAULT for structs outside the caller's memory", () => {
    const { a, b } = setup();
    ring(b, a.d.domid);
    const size = a.d.memory.buffer.byteLength;
    expect(a.d.hypercall(OP_SENDV, size - 8, a.g.scratch + 64, 1, 0)).toBe(-E.EFAULT);
    expect(a.d.hypercall(OP_SENDV, a.g.scratch, size - 8, 1, 0)).toBe(-E.EFAULT);
    expect(a.g.send(b.d.domid, PORT, size - 4, 8)).toBe(-E.EFAULT);
    expect(a.d.hypercall(OP_NOTIFY, size, 0, 0, 0)).toBe(-E.EFAULT);
  });

  it("-EOPNOTSUPP from every op when argo is off", async () => {
    const { Hypervisor } = await import("../../host/hypervisor/hypervisor.ts");
    const { Policy } = await import("../../host/mac/index.ts");
    const hv = new Hypervisor({ policy: Policy.allowAll(), argo: false });
    const a = guest(hv, "a");
    expect(a.g.registerRing(PORT, DOMID_ANY, 48)).toBe(-E.EOPNOTSUPP);
    expect(a.g.notify()).toBe(-E.EOPNOTSUPP);
  });
});
