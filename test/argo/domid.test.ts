// Domain ids are reused, Xen-style (xen/common/domid.c): round-robin from the last id
// handed out, so a freed id comes back only after the others (issue 17, item 6: ids were
// never reused and createDomain failed after 32,751 create/destroy cycles).
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { GNTST_permission_denied } from "../../host/hypervisor/grant.ts";

const LAST_DOMID = 0x7fef;

function hv(): Hypervisor {
  return new Hypervisor({ policy: Policy.allowAll() });
}

describe("domain id reuse", () => {
  it("33,000 create/destroy cycles with no domain alive keep working: ids wrap and are reused", () => {
    const h = hv();
    const keep = h.createDomain({ name: "dom-keep", label: "guest_t", memoryBytes: 1 << 16 });
    const seen = new Set<number>();
    let wraps = 0;
    let prev = keep.domid;
    for (let i = 0; i < 33_000; i++) {
      const d = h.createDomain({ name: "cycle", label: "guest_t", memoryBytes: 1 << 16 });
      expect(d.domid).not.toBe(keep.domid); // a live id is never handed out
      if (d.domid < prev) wraps++;
      prev = d.domid;
      seen.add(d.domid);
      h.destroyDomain(d.domid);
    }
    expect(wraps).toBe(1);
    expect(seen.size).toBe(LAST_DOMID - 1); // every id but the live one, 1..0x7FEF
    expect(Math.max(...seen)).toBe(LAST_DOMID);
    expect(h.listDomains()).toEqual([keep]);
  });

  it("a just-freed id is not handed to the next domain", () => {
    const h = hv();
    const a = h.createDomain({ name: "a", label: "guest_t", memoryBytes: 1 << 16 });
    h.destroyDomain(a.domid);
    const b = h.createDomain({ name: "b", label: "guest_t", memoryBytes: 1 << 16 });
    expect(b.domid).toBe(a.domid + 1);
  });

  it("a domain that inherits a dead domain's id inherits none of its grants", () => {
    const h = hv();
    const granter = h.createDomain({ name: "granter", label: "guest_t", memoryBytes: 1 << 16 });
    const old = h.createDomain({ name: "old", label: "guest_t", memoryBytes: 1 << 16 });
    const ref = h.grants.grantAccess(granter, old.domid, 0, false);
    expect(ref).toBeGreaterThanOrEqual(0);
    const m = h.grants.map(old, granter.domid, ref, false);
    expect(typeof m).toBe("object");
    expect(h.grants.mappedCount(granter.domid, ref)).toBe(1);
    h.destroyDomain(old.domid);
    // The dead domain's mapping is released (gnttab_release_mappings).
    expect(h.grants.mappedCount(granter.domid, ref)).toBe(0);
    // Cycle until the id comes round again.
    let heir = h.createDomain({ name: "heir", label: "guest_t", memoryBytes: 1 << 16 });
    for (let i = 0; heir.domid !== old.domid; i++) {
      if (i > LAST_DOMID) throw new Error("the id never came back");
      h.destroyDomain(heir.domid);
      heir = h.createDomain({ name: "heir", label: "guest_t", memoryBytes: 1 << 16 });
    }
    expect(h.grants.map(heir, granter.domid, ref, false)).toBe(GNTST_permission_denied);
    expect(h.grants.endAccess(granter, ref)).toBe(0); // the granter can still end it
  });
});
