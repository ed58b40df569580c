// Hostile guests: a receiver that writes anything into its ring header and data, and a
// sender that passes anything as iovs. The hypervisor never throws, never hangs and
// never writes outside the ring's data area and tx_ptr; the guest-side reader never
// traps and never writes outside its buffer, metadata block and rx_ptr.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { setup, assertUnchangedOutside } from "./helpers.ts";
import { DOMID_ANY } from "../../host/abi/argo.ts";
import * as E from "../../host/abi/errno.ts";

const PORT = 9;

describe("hostile receiver", () => {
  const rxValues = [0, 1, 15, 16, 17, 240, 255, 256, 4096, 0x7fffffff, 0x80000000, 0xfffffff0, 0xfffffff1, 0xffffffff];

  it("any rx_ptr and any ring garbage: sends stay inside the ring", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...rxValues), fc.nat({ max: 0xffffffff })),
        fc.uint8Array({ minLength: 0, maxLength: 320 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 6 }),
        (rx, garbage, sizes) => {
          const { a, b } = setup();
          const r = b.g.registerRing(PORT, a.d.domid, 256);
          if (typeof r === "number") throw new Error(`register ${r}`);
          const mem = new Uint8Array(b.d.memory.buffer);
          const dv = new DataView(b.d.memory.buffer);
          mem.set(garbage.subarray(0, 256), r.ringGpa + 64);
          dv.setUint32(r.ringGpa, rx, true);
          const before = mem.slice();
          for (const n of sizes) {
            const rc = a.g.send(b.d.domid, PORT, a.buf, n);
            expect([n, -E.EAGAIN, -E.EMSGSIZE]).toContain(rc);
            const tx = dv.getUint32(r.ringGpa + 4, true);
            expect(tx % 16).toBe(0);
            expect(tx).toBeLessThan(256);
          }
          // Only the data area and tx_ptr may differ.
          assertUnchangedOutside(before, mem, [[r.ringGpa + 64, r.ringGpa + 64 + 256], [r.ringGpa + 4, r.ringGpa + 8]]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("the guest reader survives any ring contents without trapping or straying", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64 + 256, maxLength: 64 + 256 }), fc.nat({ max: 300 }), (bytes, cap) => {
        const { a, b } = setup();
        const r = b.g.registerRing(PORT, a.d.domid, 256);
        if (typeof r === "number") throw new Error(`register ${r}`);
        const mem = new Uint8Array(b.d.memory.buffer);
        mem.set(bytes, r.ringGpa);
        const before = mem.slice();
        for (let i = 0; i < 40; i++) {
          const n = b.g.read(r, b.buf, cap);
          if (n < 0) break;
          expect(n).toBeLessThan(256);
        }
        // Allowed: the output buffer, rx_ptr and the 24-byte metadata block.
        assertUnchangedOutside(before, mem, [[b.buf, b.buf + cap], [r.ringGpa, r.ringGpa + 4], [b.g.scratch + 320, b.g.scratch + 344]]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("hostile sender", () => {
  it("garbage send_addr and iov structs give errnos, never exceptions", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16 + 8 * 16, maxLength: 16 + 8 * 16 }), fc.nat({ max: 12 }), fc.nat(), (bytes, niov, type) => {
        const { a, b } = setup();
        b.g.registerRing(PORT, DOMID_ANY, 4096);
        new Uint8Array(a.d.memory.buffer).set(bytes, a.buf);
        const rc = a.d.hypercall(3, a.buf, a.buf + 16, niov, type);
        expect(Number.isInteger(rc)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("iovs pointing past the end of memory, huge or negative handles: -EFAULT or -EINVAL", () => {
    const { a, b } = setup();
    b.g.registerRing(PORT, a.d.domid, 4096);
    const size = a.d.memory.buffer.byteLength;
    expect(a.g.send(b.d.domid, PORT, size, 1)).toBe(-E.EFAULT);
    expect(a.g.send(b.d.domid, PORT, size - 1, 2)).toBe(-E.EFAULT);
    expect(a.d.argo.sendv({ aport: 0 }, { aport: PORT, domid: b.d.domid }, [{ gpa: -5, len: 4 }])).toBe(-E.EFAULT);
    expect(a.d.argo.sendv({ aport: 0 }, { aport: PORT, domid: b.d.domid }, [{ gpa: 1.5, len: 4 }])).toBe(-E.EFAULT);
    expect(a.d.argo.sendv({ aport: 0 }, { aport: PORT, domid: b.d.domid }, [{ gpa: 2 ** 60, len: 4 }])).toBe(-E.EFAULT);
  });
});
