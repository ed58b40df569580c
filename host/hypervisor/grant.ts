// Grant tables (Xen's grant_table v1 semantics, the baseline "share" transport): a domain
// grants another domain access to one of its pages, read-only or read-write; the grantee
// maps the grant through the hypervisor, which checks the reference, the grantee and the
// access. A mapping IS shared memory: the grantee gets a view of the granter's page.
// That is the point of this module: to measure what sharing costs and exposes.
import type { Domain } from "./domain.ts";
import { PAGE_SIZE } from "../abi/argo.ts";

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

/**
 * Grant table size per domain (refs 0..NR_GRANTS-1): Xen's default of 64 frames of 512
 * v1 entries (gnttab_max_frames), 128 MiB of pages granted at once.
 */
export const NR_GRANTS = 32768;

/** Grantee of a grant whose grantee was destroyed: matches no domid (they are < 0x7FF0). */
const GRANTEE_GONE = -1;

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
  /** Distinct pages of each granter ever mapped by each mapper, keyed `mapper:granter`. */
  private readonly exposedBy = new Map<string, Set<number>>();
  private readonly cursor = new Map<number, number>();
  constructor(private readonly lookup: (domid: number) => Domain | undefined) {}

  private table(domid: number): Array<GrantEntry | undefined> {
    let t = this.tables.get(domid);
    if (!t) this.tables.set(domid, (t = []));
    return t;
  }

  /** Granter: offers page `gfn` to `grantee`; returns a grant ref or a GNTST error. */
  grantAccess(granter: Domain, grantee: number, gfn: number, readOnly: boolean): number {
    return this.grantAccessSeq(granter, grantee, gfn, 1, readOnly);
  }

  /**
   * Granter: offers `pages` adjacent pages from `gfn` under consecutive refs (Linux's
   * gnttab_alloc_grant_reference_seq, which grant-dma-ops uses so that one DMA handle
   * covers a multi-page buffer); returns the first ref or a GNTST error.
   */
  grantAccessSeq(granter: Domain, grantee: number, gfn: number, pages: number, readOnly: boolean): number {
    if (!Number.isInteger(pages) || pages < 1 || pages > NR_GRANTS) return GNTST_general_error;
    if (!Number.isInteger(gfn) || gfn < 0 || (gfn + pages) * PAGE_SIZE > granter.memory.buffer.byteLength) return GNTST_bad_page;
    const t = this.table(granter.domid);
    // First fit from a rotating cursor: bounded by one pass over the table.
    const start = this.cursor.get(granter.domid) ?? 0;
    let run = 0;
    for (let k = 0; k < NR_GRANTS + pages; k++) {
      const ref = (start + k) % NR_GRANTS;
      if (ref === 0) run = 0; // a run may not wrap past the end of the table
      if (t[ref]) {
        run = 0;
        continue;
      }
      if (++run < pages) continue;
      const first = ref - pages + 1;
      for (let i = 0; i < pages; i++) t[first + i] = { grantee, gfn: gfn + i, readOnly, mapped: 0 };
      this.cursor.set(granter.domid, (ref + 1) % NR_GRANTS);
      return first;
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
    const key = `${mapper.domid}:${granterId}`;
    let pages = this.exposedBy.get(key);
    if (!pages) this.exposedBy.set(key, (pages = new Set()));
    pages.add(e.gfn);
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

  /**
   * Domain destruction: its grants go; mappings others hold of them stay valid views until
   * unmapped (as in Xen). The mappings it held are released (gnttab_release_mappings), and
   * grants that named it as grantee can no longer be mapped by anyone: its domid may later
   * be given to another domain, which must not inherit them. The granter can still end them.
   */
  destroy(domid: number): void {
    this.tables.delete(domid);
    for (const [handle, m] of this.mappings) {
      if (m.mapper !== domid) continue;
      this.mappings.delete(handle);
      const e = this.tables.get(m.granter)?.[m.ref];
      if (e) e.mapped--;
    }
    for (const t of this.tables.values()) {
      t.forEach((e) => {
        if (e && e.grantee === domid) e.grantee = GRANTEE_GONE;
      });
    }
  }

  /** Distinct pages of `granter` that `mapper` has ever mapped. */
  exposedPages(mapper: number, granter: number): number {
    return this.exposedBy.get(`${mapper}:${granter}`)?.size ?? 0;
  }

  /** Live mappings of `ref` (0 when none or no such grant). */
  mappedCount(granter: number, ref: number): number {
    return this.table(granter)[ref]?.mapped ?? 0;
  }

  /** gfn of a grant, for the granter's own bookkeeping; -1 if none. */
  gfnOf(granterId: number, ref: number): number {
    return this.table(granterId)[ref]?.gfn ?? -1;
  }
}
