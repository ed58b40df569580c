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

  it("stale-handle unmap: a handle reused by another domain's mapping cannot be unmapped by the first holder", () => {
    const { hv, front, back, other } = world();
    const r1 = hv.grants.grantAccess(front, back.domid, 5, false);
    const r2 = hv.grants.grantAccess(front, other.domid, 6, false);
    const m1 = hv.grants.map(back, front.domid, r1, false) as GrantMapping;
    expect(hv.grants.unmap(back, m1.handle)).toBe(GNTST_okay);
    const m2 = hv.grants.map(other, front.domid, r2, false) as GrantMapping;
    expect(m2.handle).toBe(m1.handle); // maptrack handles are reused, as in Xen
    expect(hv.grants.unmap(back, m1.handle)).toBe(GNTST_bad_handle);
    expect(hv.grants.mappedCount(front.domid, r2)).toBe(1);
    expect(hv.grants.unmap(other, m2.handle)).toBe(GNTST_okay);
    expect(hv.grants.unmap(other, m2.handle)).toBe(GNTST_bad_handle); // double unmap
    for (const h of [0, -1, 1.5, NaN, 2 ** 40]) expect(hv.grants.unmap(other, h)).toBe(GNTST_bad_handle);
  });

  it("a batched map refused midway (read-only page in a writable range) leaves nothing mapped or pinned", () => {
    const { hv, front, back } = world();
    const first = hv.grants.grantAccessSeq(front, back.domid, 10, 2, false);
    const ro = hv.grants.grantAccess(front, back.domid, 12, true);
    expect(ro).toBe(first + 2);
    const handles = new Int32Array(4);
    const views: Uint8Array[] = [];
    expect(hv.grants.mapRange(back, front.domid, first, 3, false, handles, views, 0)).toBe(GNTST_permission_denied);
    for (const ref of [first, first + 1, ro]) expect(hv.grants.mappedCount(front.domid, ref)).toBe(0);
    for (const ref of [first, first + 1, ro]) expect(hv.grants.endAccess(front, ref)).toBe(GNTST_okay);
    // A range running past the table or into a free ref is bad_gntref, also with nothing left mapped.
    const again = hv.grants.grantAccessSeq(front, back.domid, 10, 2, false);
    expect(hv.grants.mapRange(back, front.domid, again, 3, true, handles, views, 0)).toBe(GNTST_bad_gntref);
    expect(hv.grants.mappedCount(front.domid, again)).toBe(0);
  });

  it("a batched map gives each page's own bytes, shared with the granter, and counts each page once as exposed", () => {
    const { hv, front, back } = world();
    const mem = new Uint8Array(front.memory.buffer);
    for (let p = 0; p < 3; p++) mem[(20 + p) * 4096 + 1] = 100 + p;
    const first = hv.grants.grantAccessSeq(front, back.domid, 20, 3, false);
    const handles = new Int32Array(3);
    const views: Uint8Array[] = [];
    for (let round = 0; round < 2; round++) {
      expect(hv.grants.mapRange(back, front.domid, first, 3, false, handles, views, 0)).toBe(GNTST_okay);
      for (let p = 0; p < 3; p++) expect(views[p][1]).toBe(100 + p);
      views[2][2] = 7;
      expect(mem[22 * 4096 + 2]).toBe(7);
      for (let p = 0; p < 3; p++) expect(hv.grants.unmap(back, handles[p])).toBe(GNTST_okay);
    }
    expect(hv.grants.exposedPages(back.domid, front.domid)).toBe(3);
    expect([...hv.grants.exposed].sort()).toEqual([`${front.domid}:20`, `${front.domid}:21`, `${front.domid}:22`]);
  });

  it("a destroyed mapper's mappings are released: the granter can end its grants again", () => {
    const { hv, front, back } = world();
    const ref = hv.grants.grantAccess(front, back.domid, 5, false);
    expect(typeof hv.grants.map(back, front.domid, ref, false)).toBe("object");
    expect(hv.grants.endAccess(front, ref)).toBe(GNTST_busy);
    hv.destroyDomain(back.domid);
    expect(hv.grants.mappedCount(front.domid, ref)).toBe(0);
    expect(hv.grants.endAccess(front, ref)).toBe(GNTST_okay);
  });

  it("a batch's single view spans only adjacent mapped pages: consecutive refs over scattered pages get none (no view of the pages between)", () => {
    const { hv, front, back } = world();
    const handles = new Int32Array(8);
    const views: Uint8Array[] = [];
    const out = { span: null as Uint8Array | null };
    const seq = hv.grants.grantAccessSeq(front, back.domid, 30, 3, false);
    expect(hv.grants.mapRange(back, front.domid, seq, 3, false, handles, views, 0, out)).toBe(GNTST_okay);
    expect(out.span?.byteOffset).toBe(30 * 4096);
    expect(out.span?.byteLength).toBe(3 * 4096);
    // Pages 40 and 42 under consecutive refs (two grants that happen to get adjacent refs).
    const r1 = hv.grants.grantAccess(front, back.domid, 40, false);
    const r2 = hv.grants.grantAccess(front, back.domid, 42, false);
    expect(r2).toBe(r1 + 1);
    expect(hv.grants.mapRange(back, front.domid, r1, 2, false, handles, views, 3, out)).toBe(GNTST_okay);
    expect(out.span).toBe(null);
    expect(views[3].byteOffset).toBe(40 * 4096);
    expect(views[4].byteOffset).toBe(42 * 4096);
    // A refused batch reports no span either.
    out.span = new Uint8Array(1);
    expect(hv.grants.mapRange(back, front.domid, r1, 3, false, handles, views, 5, out)).toBe(GNTST_bad_gntref);
    expect(out.span).toBe(null);
  });
});

