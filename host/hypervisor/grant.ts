// Grant tables (Xen's grant_table v1 semantics, the baseline "share" transport): a domain
// grants another domain access to one of its pages, read-only or read-write; the grantee
// maps the grant through the hypervisor, which checks the reference, the grantee and the
// access. A mapping IS shared memory: the grantee gets a view of the granter's page.
// That is the point of this module: to measure what sharing costs and exposes.
import type { Domain } from "./domain.ts";
import { PAGE_SIZE } from "./layout.ts";

// GNTST_* status codes (xen/include/public/grant_table.h).
export const GNTST_okay = 0;
export const GNTST_general_error = -1;
export const GNTST_bad_domain = -2;
export const GNTST_bad_gntref = -3;
export const GNTST_bad_handle = -4;
export const GNTST_permission_denied = -8;
export const GNTST_bad_page = -9;
/** Ending access to a grant that is still mapped (Linux's gnttab_end_foreign_access_ref fails). */
export const GNTST_busy = -16;

/** Grant table size per domain (refs 0..NR_GRANTS-1). */
export const NR_GRANTS = 4096;

interface GrantEntry {
  grantee: number;
  gfn: number;
  readOnly: boolean;
  /** Live mappings of this grant by the grantee. */
  mapped: number;
}

/** A mapping held by a grantee: its view of exactly one page of the granter. */
export interface GrantMapping {
  readonly handle: number;
  readonly granter: number;
  readonly ref: number;
  readonly readOnly: boolean;
  /** The granted page, as a view of the granter's memory (shared on purpose). */
  readonly page: Uint8Array;
}

export class GrantTables {
  private readonly tables = new Map<number, Array<GrantEntry | undefined>>();
  private readonly mappings = new Map<number, GrantMapping & { mapper: number }>();
  private nextHandle = 1;
  /** Distinct (granter, gfn) pages ever mapped: what grantees could reach. */
  readonly exposed = new Set<string>();
  constructor(private readonly lookup: (domid: number) => Domain | undefined) {}

  private table(domid: number): Array<GrantEntry | undefined> {
    let t = this.tables.get(domid);
    if (!t) this.tables.set(domid, (t = []));
    return t;
  }

  /** Granter: offers page `gfn` to `grantee`; returns a grant ref or a GNTST error. */
  grantAccess(granter: Domain, grantee: number, gfn: number, readOnly: boolean): number {
    if (!Number.isInteger(gfn) || gfn < 0 || (gfn + 1) * PAGE_SIZE > granter.memory.buffer.byteLength) return GNTST_bad_page;
    const t = this.table(granter.domid);
    for (let ref = 0; ref < NR_GRANTS; ref++) {
      if (!t[ref]) {
        t[ref] = { grantee, gfn, readOnly, mapped: 0 };
        return ref;
      }
    }
    return GNTST_general_error;
  }

  /** Granter: revokes a grant; GNTST_busy while the grantee still has it mapped. */
  endAccess(granter: Domain, ref: number): number {
    const t = this.table(granter.domid);
    const e = t[ref];
    if (!e) return GNTST_bad_gntref;
    if (e.mapped > 0) return GNTST_busy;
    t[ref] = undefined;
    return GNTST_okay;
  }

  /** Grantee: maps `ref` of `granterId`; write access needs a writable grant. */
  map(mapper: Domain, granterId: number, ref: number, readOnly: boolean): GrantMapping | number {
    const granter = this.lookup(granterId);
    if (!granter) return GNTST_bad_domain;
    const e = Number.isInteger(ref) && ref >= 0 && ref < NR_GRANTS ? this.table(granterId)[ref] : undefined;
    if (!e) return GNTST_bad_gntref;
    if (e.grantee !== mapper.domid) return GNTST_permission_denied;
    if (!readOnly && e.readOnly) return GNTST_permission_denied;
    e.mapped++;
    const page = new Uint8Array(granter.memory.buffer, e.gfn * PAGE_SIZE, PAGE_SIZE);
    const m = { handle: this.nextHandle++, granter: granterId, ref, readOnly, page, mapper: mapper.domid };
    this.mappings.set(m.handle, m);
    this.exposed.add(`${granterId}:${e.gfn}`);
    return m;
  }

  /** Grantee: drops a mapping. */
  unmap(mapper: Domain, handle: number): number {
    const m = this.mappings.get(handle);
    if (!m || m.mapper !== mapper.domid) return GNTST_bad_handle;
    this.mappings.delete(handle);
    const e = this.table(m.granter)[m.ref];
    if (e) e.mapped--;
    return GNTST_okay;
  }

  /** Domain destruction: its grants go; mappings others hold of them stay valid views until unmapped (as in Xen). */
  destroy(domid: number): void {
    this.tables.delete(domid);
  }

  /** gfn of a grant, for the granter's own bookkeeping; -1 if none. */
  gfnOf(granterId: number, ref: number): number {
    return this.table(granterId)[ref]?.gfn ?? -1;
  }
}
