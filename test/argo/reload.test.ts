// Hot policy reload: what the new policy no longer allows is revoked at once, and no
// message the hypervisor already accepted is lost.
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { GuestArgo } from "../../host/guest/argo-driver.ts";
import * as E from "../../host/abi/errno.ts";
import { READ_EMPTY } from "../../host/abi/argo-reader.ts";

const both = (extra = "") => `
domains: [guest_t, backend_t, other_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [enable, send, register_single_source] }
${extra}`;

function world() {
  const hv = new Hypervisor({ policy: Policy.parse(both("  - { frontend: other_t, backend: backend_t, device: console, allow: [enable, send, register_single_source] }"), "p1.yaml") });
  const g = hv.createDomain({ name: "guest", label: "guest_t", memoryBytes: 2 << 20 });
  const o = hv.createDomain({ name: "other", label: "other_t", memoryBytes: 2 << 20 });
  const b = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 2 << 20 });
  return { hv, g: new GuestArgo(g), o: new GuestArgo(o), b: new GuestArgo(b) };
}

describe("policy reload", () => {
  it("revokes a live ring mid-traffic; every accepted message stays readable", () => {
    const { hv, g, o, b } = world();
    const fromGuest = b.registerRing(10, g.domain.domid, 4096);
    const fromOther = b.registerRing(11, o.domain.domid, 4096);
    if (typeof fromGuest === "number" || typeof fromOther === "number") throw new Error("register");
    const src = o.heap.alloc(4096);
    const dst = b.heap.alloc(4096);
    const revoked: string[] = [];
    hv.on("ringRevoked", (e) => revoked.push(`${e.owner.name}:${e.aport}:${e.reason}`));
    let accepted = 0;
    for (let i = 0; i < 10; i++) {
      new DataView(o.domain.memory.buffer).setUint32(src, i, true);
      if (o.send(b.domain.domid, 11, src, 4, 1) === 4) accepted++;
    }
    expect(accepted).toBe(10);
    // The new policy drops the other_t pair.
    hv.loadPolicy(Policy.parse(both(), "p2.yaml"));
    expect(revoked).toEqual(["backend:11:policy"]);
    expect(b.domain.pollVirq()).toBe(true);
    // New sends are refused by the policy before anything else.
    expect(o.send(b.domain.domid, 11, src, 4, 1)).toBe(-E.EACCES);
    expect(hv.audit.entries().at(-1)?.text).toContain("scontext=other_t");
    // Every message accepted before the reload is still in the backend's memory, in order.
    for (let i = 0; i < 10; i++) {
      expect(b.read(fromOther, dst, 64)).toBe(4);
      expect(new DataView(b.domain.memory.buffer).getUint32(dst, true)).toBe(i);
    }
    expect(b.read(fromOther, dst, 64)).toBe(READ_EMPTY);
    // The allowed pair is untouched.
    const gsrc = g.heap.alloc(64);
    expect(g.send(b.domain.domid, 10, gsrc, 8)).toBe(8);
    expect(b.read(fromGuest, dst, 64)).toBe(8);
  });

  it("drops waiters that may no longer send and wakes them to learn it", () => {
    const { hv, o, b } = world();
    const r = b.registerRing(11, o.domain.domid, 48);
    if (typeof r === "number") throw new Error("register");
    const src = o.heap.alloc(64);
    expect(o.send(b.domain.domid, 11, src, 16)).toBe(16);
    expect(o.send(b.domain.domid, 11, src, 16)).toBe(-E.EAGAIN); // queued for space
    hv.loadPolicy(Policy.parse(both(), "p2.yaml"));
    expect(o.domain.pollVirq()).toBe(true);
    expect(o.send(b.domain.domid, 11, src, 16)).toBe(-E.EACCES);
  });

  it("a domain that may no longer use Argo loses its rings; an allowed one regains Argo", () => {
    const { hv, o, b } = world();
    expect(typeof o.registerRing(20, b.domain.domid, 48)).toBe("object");
    hv.loadPolicy(Policy.parse(both(), "p2.yaml"));
    expect(hv.argoOf(o.domain)).toBeNull();
    expect(o.registerRing(20, b.domain.domid, 48)).toBe(-E.EACCES); // enable denied
    hv.loadPolicy(Policy.parse(both("  - { frontend: other_t, backend: backend_t, device: rng, allow: [enable, send, register_single_source] }"), "p3.yaml"));
    expect(typeof o.registerRing(20, b.domain.domid, 48)).toBe("object");
  });

  it("a bad file never half-loads: the previous policy stays in force", () => {
    const { hv, g, b } = world();
    expect(() => hv.loadPolicy(Policy.parse("domains: [guest_t\npairs: []", "bad.yaml"))).toThrow(/bad\.yaml:\d+:\d+/);
    expect(hv.policy.source).toBe("p1.yaml");
    const ring = b.registerRing(10, g.domain.domid, 4096);
    expect(typeof ring).toBe("object");
  });
});
