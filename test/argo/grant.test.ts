// Grant tables (the share baseline): Xen's checks on grantee, access and revocation.
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import {
  GNTST_bad_domain, GNTST_bad_gntref, GNTST_bad_handle, GNTST_bad_page, GNTST_busy, GNTST_okay,
  GNTST_permission_denied, type GrantMapping,
} from "../../host/hypervisor/grant.ts";

function world() {
  const hv = new Hypervisor({ policy: Policy.allowAll() });
  const front = hv.createDomain({ name: "front", label: "t", memoryBytes: 1 << 20 });
  const back = hv.createDomain({ name: "back", label: "t", memoryBytes: 1 << 20 });
  const other = hv.createDomain({ name: "other", label: "t", memoryBytes: 1 << 20 });
  return { hv, front, back, other };
}

describe("grant tables", () => {
  it("a grantee maps a granted page and sees the granter's bytes (that is sharing)", () => {
    const { hv, front, back } = world();
    new Uint8Array(front.memory.buffer)[5 * 4096 + 7] = 42;
    const ref = hv.grants.grantAccess(front, back.domid, 5, false);
    const m = hv.grants.map(back, front.domid, ref, false) as GrantMapping;
    expect(m.page[7]).toBe(42);
    m.page[8] = 9;
    expect(new Uint8Array(front.memory.buffer)[5 * 4096 + 8]).toBe(9);
    expect(hv.grants.unmap(back, m.handle)).toBe(GNTST_okay);
    expect(hv.grants.exposed.size).toBe(1);
  });

  it("refuses the wrong grantee", () => {
    const { hv, front, back, other } = world();
    const ref = hv.grants.grantAccess(front, back.domid, 5, false);
    expect(hv.grants.map(other, front.domid, ref, true)).toBe(GNTST_permission_denied);
  });

  it("refuses a writable mapping of a read-only grant", () => {
    const { hv, front, back } = world();
    const ref = hv.grants.grantAccess(front, back.domid, 5, true);
    expect(hv.grants.map(back, front.domid, ref, false)).toBe(GNTST_permission_denied);
    expect(typeof hv.grants.map(back, front.domid, ref, true)).toBe("object");
  });

  it("refuses a map after the grant ended, and bad refs, domains and pages", () => {
    const { hv, front, back } = world();
    const ref = hv.grants.grantAccess(front, back.domid, 5, false);
    expect(hv.grants.endAccess(front, ref)).toBe(GNTST_okay);
    expect(hv.grants.map(back, front.domid, ref, true)).toBe(GNTST_bad_gntref);
    expect(hv.grants.map(back, 999, 0, true)).toBe(GNTST_bad_domain);
    expect(hv.grants.map(back, front.domid, -1, true)).toBe(GNTST_bad_gntref);
    expect(hv.grants.grantAccess(front, back.domid, 256, false)).toBe(GNTST_bad_page);
    expect(hv.grants.unmap(back, 12345)).toBe(GNTST_bad_handle);
  });

  it("revoking a grant while it is mapped is refused (busy) until it is unmapped", () => {
    const { hv, front, back } = world();
    const ref = hv.grants.grantAccess(front, back.domid, 5, false);
    const m = hv.grants.map(back, front.domid, ref, true) as GrantMapping;
    expect(hv.grants.endAccess(front, ref)).toBe(GNTST_busy);
    expect(hv.grants.unmap(back, m.handle)).toBe(GNTST_okay);
    expect(hv.grants.endAccess(front, ref)).toBe(GNTST_okay);
  });
});
