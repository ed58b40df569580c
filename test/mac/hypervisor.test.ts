// The hooks as the hypervisor calls them: real hypercalls from guests under the example
// policy get the policy's answers, with Xen's errnos, and every denial is audited.
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { GuestArgo } from "../../host/guest/argo-driver.ts";
import { EACCES, Policy, PolicyError } from "../../host/mac/index.ts";
import { EINVAL, EMSGSIZE } from "../../host/mac/errors.ts";

function world() {
  const hv = new Hypervisor({ policy: Policy.load("policies/default.yaml") });
  const make = (name: string, label: string) => {
    const d = hv.createDomain({ name, label, memoryBytes: 4 << 20 });
    const g = new GuestArgo(d);
    return { d, g, buf: g.heap.alloc(128 << 10) };
  };
  return { hv, front: make("front", "guest_t"), back: make("back", "backend_t"), other: make("other", "guest_t") };
}

describe("XSM hooks under policies/default.yaml", () => {
  it("a paired guest and backend register rings and exchange messages", () => {
    const { front, back } = world();
    const ring = back.g.registerRing(100, front.d.domid, 128 << 10);
    expect(typeof ring).toBe("object");
    expect(front.g.send(back.d.domid, 100, front.buf, 64)).toBe(64);
  });

  it("limits: a ring over max_ring_bytes is -EINVAL, a message over max_message_bytes -EMSGSIZE", () => {
    const { hv, front, back } = world();
    expect(back.g.registerRing(100, front.d.domid, 2 << 20)).toBe(-EINVAL);
    expect(back.g.registerRing(101, front.d.domid, 128 << 10)).toMatchObject({});
    expect(front.g.send(back.d.domid, 101, front.buf, 65601)).toBe(-EMSGSIZE);
    expect(hv.audit.entries().map((e) => [e.perm, e.errno])).toEqual([
      ["register_single_source", -EINVAL],
      ["send", -EMSGSIZE],
    ]);
  });

  it("two guests have no pair: -EACCES from register and sendv, audited Flask-style", () => {
    const { hv, front, other } = world();
    expect(other.g.registerRing(100, front.d.domid, 4096)).toBe(-EACCES);
    expect(front.g.send(other.d.domid, 100, front.buf, 8)).toBe(-EACCES);
    const last = hv.audit.entries().at(-1)!;
    expect(last.text).toBe(
      `avc: denied { send } for scontext=guest_t tcontext=guest_t tclass=argo src=${front.d.domid} tgt=${other.d.domid} errno=-EACCES reason="no pair of guest_t and guest_t (either orientation)"`,
    );
  });

  it("a bad policy file never reaches the hypervisor; the old policy keeps working", () => {
    const { hv, front, back } = world();
    const before = hv.policy;
    back.g.registerRing(100, front.d.domid, 4096);
    expect(() => hv.loadPolicy(Policy.parse("domains: [guest_t]\npairs: [{ frontend: guest_t }]\n", "broken.yaml"))).toThrow(PolicyError);
    expect(hv.policy).toBe(before);
    expect(front.g.send(back.d.domid, 100, front.buf, 8)).toBe(8);
  });
});
