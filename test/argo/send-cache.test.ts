// sendv's ring lookup cache (ArgoState.sendCacheKeys): a sender's cached (domid, aport)
// -> ring answer must never outlive the ring, the receiver or the policy that made it.
// Each test first sends once so the lookup is cached, then changes the world, then sends
// again: a stale entry would write into pages the receiver no longer offers, or route
// around Xen's lookup order.
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { GuestArgo } from "../../host/guest/argo-driver.ts";
import { DOMID_ANY, OP_SENDV } from "../../host/abi/argo.ts";
import * as E from "../../host/abi/errno.ts";
import { setup, bytesAt, pattern, put } from "./helpers.ts";

const PORT = 5;

describe("sendv ring lookup cache", () => {
  it("unregister-then-reuse: a ring given back gets no more bytes, its pages stay as the receiver left them", () => {
    const { a, b } = setup();
    const r = b.g.registerRing(PORT, a.d.domid, 4096);
    if (typeof r === "number") throw new Error(`register ${r}`);
    expect(a.g.send(b.d.domid, PORT, a.buf, 64)).toBe(64);
    expect(b.g.unregisterRing(PORT, a.d.domid)).toBe(0);
    // The receiver reuses the pages for something else.
    const reused = pattern(4096 + 64, 7);
    put(b, r.ringGpa, reused);
    expect(a.g.send(b.d.domid, PORT, a.buf, 64)).toBe(-E.ECONNREFUSED);
    expect(bytesAt(b, r.ringGpa, 4096 + 64)).toEqual(reused);
  });

  it("re-registered on other pages: the next message lands in the new ring, not the old pages", () => {
    const { a, b } = setup();
    const old = b.g.registerRing(PORT, a.d.domid, 4096);
    if (typeof old === "number") throw new Error(`register ${old}`);
    expect(a.g.send(b.d.domid, PORT, a.buf, 32)).toBe(32);
    expect(b.g.unregisterRing(PORT, a.d.domid)).toBe(0);
    const fresh = b.g.registerRing(PORT, a.d.domid, 4096);
    if (typeof fresh === "number") throw new Error(`register ${fresh}`);
    const oldBytes = bytesAt(b, old.ringGpa, 4096 + 64);
    put(a, a.buf, pattern(32, 3));
    expect(a.g.send(b.d.domid, PORT, a.buf, 32)).toBe(32);
    expect(bytesAt(b, old.ringGpa, 4096 + 64)).toEqual(oldBytes);
    expect(b.g.read(fresh, b.buf, 32)).toBe(32);
    expect(bytesAt(b, b.buf, 32)).toEqual(pattern(32, 3));
  });

  it("wildcard then exact: once an exact-partner ring exists it takes the sender's messages (Xen's lookup order)", () => {
    const { a, b } = setup();
    const any = b.g.registerRing(PORT, DOMID_ANY, 4096);
    if (typeof any === "number") throw new Error(`register ${any}`);
    expect(a.g.send(b.d.domid, PORT, a.buf, 16)).toBe(16); // cached: the wildcard ring
    const exact = b.g.registerRing(PORT, a.d.domid, 4096);
    if (typeof exact === "number") throw new Error(`register ${exact}`);
    expect(a.g.send(b.d.domid, PORT, a.buf, 48)).toBe(48);
    expect(b.g.read(exact, b.buf, 64)).toBe(48);
    expect(b.g.read(any, b.buf, 64)).toBe(16);
  });

  it("destroyed receiver: -ESRCH at once, nothing written into the dead domain's ring", () => {
    const { hv, a, b } = setup();
    const r = b.g.registerRing(PORT, a.d.domid, 4096);
    if (typeof r === "number") throw new Error(`register ${r}`);
    expect(a.g.send(b.d.domid, PORT, a.buf, 64)).toBe(64);
    const before = bytesAt(b, r.ringGpa, 4096 + 64);
    hv.destroyDomain(b.d.domid);
    expect(a.g.send(b.d.domid, PORT, a.buf, 64)).toBe(-E.ESRCH);
    expect(bytesAt(b, r.ringGpa, 4096 + 64)).toEqual(before);
  });

  it("revocation by reload: a policy that still allows send but no longer the ring refuses the next message", () => {
    const text = (rings: boolean) => `
domains: [guest_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [enable, send${rings ? ", register_single_source" : ""}] }
`;
    const hv = new Hypervisor({ policy: Policy.parse(text(true), "p1.yaml") });
    const g = new GuestArgo(hv.createDomain({ name: "guest", label: "guest_t", memoryBytes: 1 << 20 }));
    const be = new GuestArgo(hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 1 << 20 }));
    const r = be.registerRing(PORT, g.domain.domid, 4096);
    if (typeof r === "number") throw new Error(`register ${r}`);
    const src = g.heap.alloc(64);
    expect(g.send(be.domain.domid, PORT, src, 64)).toBe(64);
    hv.loadPolicy(Policy.parse(text(false), "p2.yaml"));
    const before = new Uint8Array(be.domain.memory.buffer).slice(r.ringGpa, r.ringGpa + 4096 + 64);
    expect(g.send(be.domain.domid, PORT, src, 64)).toBe(-E.ECONNREFUSED);
    expect(new Uint8Array(be.domain.memory.buffer).slice(r.ringGpa, r.ringGpa + 4096 + 64)).toEqual(before);
  });

  it("slot collisions: a sender alternating over 24 rings (3 per cache slot) delivers each message to its own ring", () => {
    const { a, b } = setup();
    const rings = [];
    for (let p = 0; p < 24; p++) {
      const r = b.g.registerRing(100 + p, a.d.domid, 256);
      if (typeof r === "number") throw new Error(`register ${r}`);
      rings.push(r);
    }
    for (let round = 0; round < 3; round++) {
      for (let p = 0; p < 24; p++) {
        put(a, a.buf, pattern(16, 1 + p));
        expect(a.g.send(b.d.domid, 100 + p, a.buf, 16)).toBe(16);
      }
      for (let p = 0; p < 24; p++) {
        expect(b.g.read(rings[p], b.buf, 16)).toBe(16);
        expect(bytesAt(b, b.buf, 16)).toEqual(pattern(16, 1 + p));
      }
    }
  });

  it("typed-API destinations beyond u16/u32 never alias a cached ring", () => {
    const { a, b } = setup();
    const r = b.g.registerRing(8, a.d.domid, 4096);
    if (typeof r === "number") throw new Error(`register ${r}`);
    expect(a.g.send(b.d.domid, 8, a.buf, 16)).toBe(16); // key 8 * 2^16 + domid, slot (8 ^ domid) & 7
    // Same key and slot: aport 0 with domid + 8 * 2^16 (not a domid at all).
    expect(a.d.argo.sendv({ aport: 0 }, { aport: 0, domid: b.d.domid + 8 * 0x10000 }, [{ gpa: a.buf, len: 16 }])).toBe(-E.ESRCH);
  });
});

describe("sendv struct decoding", () => {
  // opSendv reads word-aligned structs with plain u32 loads and others through read32:
  // both must decode every field the same way, so a guest cannot reach a different
  // check (or skip one) by placing its structs at an odd address.
  const cases: Array<[string, { hndLo: number; hndHi: number; len: number; pad: number; srcWord: number; rc: number }]> = [
    ["a plain message", { hndLo: 0, hndHi: 0, len: 40, pad: 0, srcWord: DOMID_ANY, rc: 40 }],
    ["an iov address above 4 GiB (high word set)", { hndLo: 0, hndHi: 1, len: 40, pad: 0, srcWord: DOMID_ANY, rc: -E.EFAULT }],
    ["an iov address of 2^53 and up", { hndLo: 0, hndHi: 0x200000, len: 40, pad: 0, srcWord: DOMID_ANY, rc: -E.EFAULT }],
    ["a non-zero iov pad", { hndLo: 0, hndHi: 0, len: 40, pad: 1, srcWord: DOMID_ANY, rc: -E.EINVAL }],
    ["a forged source domid", { hndLo: 0, hndHi: 0, len: 40, pad: 0, srcWord: 0x1234, rc: -E.EPERM }],
    ["a non-zero source pad", { hndLo: 0, hndHi: 0, len: 40, pad: 0, srcWord: DOMID_ANY | (1 << 16), rc: -E.EINVAL }],
    ["an oversized iov", { hndLo: 0, hndHi: 0, len: 0x1000001, pad: 0, srcWord: DOMID_ANY, rc: -E.EINVAL }],
  ];
  it.each(cases)("%s: same result at an aligned and an odd address", (_name, c) => {
    const results: Array<[number, number]> = [];
    for (const misalign of [0, 1, 2, 3]) {
      const { a, b } = setup();
      const r = b.g.registerRing(PORT, a.d.domid, 4096);
      if (typeof r === "number") throw new Error(`register ${r}`);
      put(a, a.buf, pattern(40, 9));
      const dv = new DataView(a.d.memory.buffer);
      const base = a.buf + 4096 + misalign;
      const addr = base;
      const iov = base + 16;
      dv.setUint32(addr, 0, true); // src aport
      dv.setUint32(addr + 4, c.srcWord, true); // src domid + pad
      dv.setUint32(addr + 8, PORT, true); // dst aport
      dv.setUint32(addr + 12, b.d.domid, true); // dst domid + pad 0
      dv.setUint32(iov, c.hndLo || a.buf, true);
      dv.setUint32(iov + 4, c.hndHi, true);
      dv.setUint32(iov + 8, c.len, true);
      dv.setUint32(iov + 12, c.pad, true);
      const rc = a.d.hypercall(OP_SENDV, addr, iov, 1, 0);
      expect(rc).toBe(c.rc);
      const got = b.g.read(r, b.buf, 64);
      results.push([rc, got]);
      if (rc === 40) expect(bytesAt(b, b.buf, 40)).toEqual(pattern(40, 9));
    }
    for (const r of results) expect(r).toEqual(results[0]);
  });
});
