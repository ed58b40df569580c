// Grant tables (Xen's grant_table v1 semantics, the baseline "share" transport): a domain
// grants another domain access to one of its pages, read-only or read-write; the grantee
// maps the grant through the hypervisor, which checks the reference, the grantee and the
// access. A mapping IS shared memory: the grantee gets a view of the granter's page.
// That is the point of this module: to measure what sharing costs and exposes.
//
// Cost model: what Xen's batched GNTTABOP_map_grant_ref pays per page (a table entry
// check, a pin count, a maptrack handle, a page-table entry), no more, so that argo is
// compared with a grant path as lean as its own. Entries and mappings live in typed
// arrays (no object per grant or per map), handles come from a free list (Xen's
// maptrack), each page's view is made once per granter page and reused, and what was
// exposed is a bitmap per (mapper, granter) looked up once per batch.
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

/** Grantee of a free entry. */
const GRANTEE_FREE = -2;
/** Grantee of a grant whose grantee was destroyed: matches no domid (they are < 0x7FF0). */
const GRANTEE_GONE = -1;

/** A mapping held by a grantee: its view of exactly one page of the granter. */
export interface GrantMapping {
  readonly handle: number;
  readonly granter: number;
  readonly ref: number;
  readonly readOnly: boolean;
  /** The granted page, as a view of the granter's memory (shared on purpose). */
  readonly page: Uint8Array;
}

/** One granter's grant table (struct grant_table), entries by ref, as parallel arrays. */
class GrantTable {
  /** Domid allowed to map the entry; GRANTEE_FREE for a free entry. */
  readonly grantee = new Int32Array(NR_GRANTS).fill(GRANTEE_FREE);
  readonly gfn = new Int32Array(NR_GRANTS);
  readonly readOnly = new Uint8Array(NR_GRANTS);
  /** Live mappings of the entry (Xen's pin count): ending access is refused while > 0. */
  readonly mapped = new Int32Array(NR_GRANTS);
  /** First-fit search starts here (rotating, so freed refs are not reused at once). */
  cursor = 0;
  /** One view per granter page ever mapped, by gfn, over `buffer`. */
  views: Array<Uint8Array | undefined> = [];
  buffer: ArrayBufferLike | null = null;

  constructor(readonly domain: Domain) {}

  /** The view of page `gfn` (made once; again only if the memory's buffer changed). */
  view(gfn: number): Uint8Array {
    const buf = this.domain.memory.buffer;
    if (buf !== this.buffer) {
      this.buffer = buf;
      this.views = [];
    }
    let v = this.views[gfn];
    if (v === undefined) this.views[gfn] = v = new Uint8Array(buf, gfn * PAGE_SIZE, PAGE_SIZE);
    return v;
  }
}

/** Pages of one granter a mapper has ever mapped: a bit per page and their count. */
interface Exposure {
  bits: Uint8Array;
  count: number;
}

export class GrantTables {
  private readonly tables = new Map<number, GrantTable>();
  // Maptrack: mapping i (handle i + 1) as parallel arrays; mapTable[i] null when free.
  private mapMapper = new Int32Array(64);
  private mapRef = new Int32Array(64);
  private mapTable: Array<GrantTable | null> = new Array<GrantTable | null>(64).fill(null);
  /** Free maptrack slots (a stack) and how many it holds. */
  private freeSlots = new Int32Array(64);
  private nFree = 0;
  /** Slots ever handed out (the high-water mark): slot `used` is the next never-used one. */
  private used = 0;
  /** Pages of each granter ever mapped by each mapper, keyed mapper * 2^16 + granter. */
  private readonly exposure = new Map<number, Exposure>();
  /** The last exposure record used, for a run of maps by the same pair. */
  private lastExposureKey = -1;
  private lastExposure: Exposure | null = null;

  constructor(private readonly lookup: (domid: number) => Domain | undefined) {}

  private table(domid: number): GrantTable | undefined {
    return this.tables.get(domid);
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
    let t = this.tables.get(granter.domid);
    if (t === undefined || t.domain !== granter) this.tables.set(granter.domid, (t = new GrantTable(granter)));
    const entries = t.grantee;
    // First fit from a rotating cursor: bounded by one pass over the table.
    const start = t.cursor;
    let run = 0;
    for (let k = 0; k < NR_GRANTS + pages; k++) {
      const ref = (start + k) % NR_GRANTS;
      if (ref === 0) run = 0; // a run may not wrap past the end of the table
      if (entries[ref] !== GRANTEE_FREE) {
        run = 0;
        continue;
      }
      if (++run < pages) continue;
      const first = ref - pages + 1;
      for (let i = 0; i < pages; i++) {
        entries[first + i] = grantee;
        t.gfn[first + i] = gfn + i;
        t.readOnly[first + i] = readOnly ? 1 : 0;
        t.mapped[first + i] = 0;
      }
      t.cursor = (ref + 1) % NR_GRANTS;
      return first;
    }
    return GNTST_general_error;
  }

  /** Granter: revokes a grant; GNTST_busy while the grantee still has it mapped. */
  endAccess(granter: Domain, ref: number): number {
    const t = this.table(granter.domid);
    if (t === undefined || !validRef(ref) || t.grantee[ref] === GRANTEE_FREE) return GNTST_bad_gntref;
    if (t.mapped[ref] > 0) return GNTST_busy;
    t.grantee[ref] = GRANTEE_FREE;
    return GNTST_okay;
  }

  /** Grantee: maps `ref` of `granterId`; write access needs a writable grant. */
  map(mapper: Domain, granterId: number, ref: number, readOnly: boolean): GrantMapping | number {
    const granter = this.lookup(granterId);
    if (!granter) return GNTST_bad_domain;
    const t = this.table(granterId);
    const rc = this.mapOne(mapper, t, ref, readOnly);
    if (rc < 0) return rc;
    return { handle: rc, granter: granterId, ref, readOnly, page: t!.view(t!.gfn[ref]) };
  }

  /**
   * Grantee: maps refs firstRef .. firstRef + count - 1 of `granterId` in one call (a
   * batched GNTTABOP_map_grant_ref over consecutive refs), each with the checks map()
   * makes. Writes each handle to handles[at + i] and each page's view to views[at + i].
   * On the first refusal the pages this call mapped are unmapped again and that page's
   * GNTST error is returned; GNTST_okay otherwise.
   *
   * With `out`, out.span is set to one view over all `count` pages when they are adjacent
   * in the granter's memory (what a batch mapped at adjacent virtual addresses gives a
   * Linux backend: one memcpy per buffer, not one per page), null otherwise; it covers
   * exactly the pages just mapped, nothing more.
   */
  mapRange(
    mapper: Domain, granterId: number, firstRef: number, count: number, readOnly: boolean,
    handles: Int32Array, views: Uint8Array[], at: number, out?: { span: Uint8Array | null },
  ): number {
    if (out) out.span = null;
    const granter = this.lookup(granterId);
    if (!granter) return GNTST_bad_domain;
    const t = this.table(granterId);
    for (let i = 0; i < count; i++) {
      const ref = firstRef + i;
      const h = this.mapOne(mapper, t, ref, readOnly);
      if (h < 0) {
        for (let k = 0; k < i; k++) this.unmap(mapper, handles[at + k]);
        return h;
      }
      handles[at + i] = h;
      views[at + i] = t!.view(t!.gfn[ref]);
    }
    if (out && count > 1) {
      const gfn0 = t!.gfn[firstRef];
      let adjacent = true;
      for (let i = 1; i < count; i++) if (t!.gfn[firstRef + i] !== gfn0 + i) adjacent = false;
      if (adjacent) out.span = new Uint8Array(views[at].buffer, gfn0 * PAGE_SIZE, count * PAGE_SIZE);
    }
    return GNTST_okay;
  }

  /** Checks one ref of table `t` for `mapper`, pins it and returns its new handle (> 0), or a GNTST error. */
  private mapOne(mapper: Domain, t: GrantTable | undefined, ref: number, readOnly: boolean): number {
    if (t === undefined || !validRef(ref) || t.grantee[ref] === GRANTEE_FREE) return GNTST_bad_gntref;
    if (t.grantee[ref] !== mapper.domid) return GNTST_permission_denied;
    if (!readOnly && t.readOnly[ref] !== 0) return GNTST_permission_denied;
    t.mapped[ref]++;
    const slot = this.nFree > 0 ? this.freeSlots[--this.nFree] : this.newSlot();
    this.mapMapper[slot] = mapper.domid;
    this.mapRef[slot] = ref;
    this.mapTable[slot] = t;
    this.expose(mapper.domid, t, t.gfn[ref]);
    return slot + 1;
  }

  /** A maptrack slot never used before, growing the arrays by doubling. */
  private newSlot(): number {
    const slot = this.used++;
    if (slot === this.mapMapper.length) {
      const n = slot * 2;
      const grow = (a: Int32Array) => {
        const b = new Int32Array(n);
        b.set(a);
        return b;
      };
      this.mapMapper = grow(this.mapMapper);
      this.mapRef = grow(this.mapRef);
      this.freeSlots = grow(this.freeSlots);
      for (let i = slot; i < n; i++) this.mapTable.push(null);
    }
    return slot;
  }

  private expose(mapperId: number, t: GrantTable, gfn: number): void {
    const key = mapperId * 0x10000 + t.domain.domid;
    let e = this.lastExposure;
    if (key !== this.lastExposureKey || e === null) {
      e = this.exposure.get(key) ?? null;
      if (e === null) {
        this.exposure.set(key, (e = { bits: new Uint8Array(Math.ceil(t.domain.memory.buffer.byteLength / PAGE_SIZE)), count: 0 }));
      }
      this.lastExposureKey = key;
      this.lastExposure = e;
    }
    if (e.bits.length <= gfn) {
      // The granter's memory grew (an emulator's window): room for its new pages.
      const bits = new Uint8Array(gfn + 1);
      bits.set(e.bits);
      e.bits = bits;
    }
    if (e.bits[gfn] === 0) {
      e.bits[gfn] = 1;
      e.count++;
    }
  }

  /** Grantee: drops a mapping. */
  unmap(mapper: Domain, handle: number): number {
    const slot = handle - 1;
    if (!(slot >= 0 && slot < this.used && (slot | 0) === slot)) return GNTST_bad_handle;
    const t = this.mapTable[slot];
    if (t === null || this.mapMapper[slot] !== mapper.domid) return GNTST_bad_handle;
    this.release(slot, t);
    return GNTST_okay;
  }

  private release(slot: number, t: GrantTable): void {
    this.mapTable[slot] = null;
    // Unpinned only while the table is still the granter's (a destroyed granter's table is gone).
    if (this.tables.get(t.domain.domid) === t) t.mapped[this.mapRef[slot]]--;
    this.freeSlots[this.nFree++] = slot;
  }

  /**
   * Domain destruction: its grants go; mappings others hold of them stay valid views until
   * unmapped (as in Xen). The mappings it held are released (gnttab_release_mappings), and
   * grants that named it as grantee can no longer be mapped by anyone: its domid may later
   * be given to another domain, which must not inherit them. The granter can still end them.
   */
  destroy(domid: number): void {
    this.tables.delete(domid);
    for (let slot = 0; slot < this.used; slot++) {
      const t = this.mapTable[slot];
      if (t !== null && this.mapMapper[slot] === domid) this.release(slot, t);
    }
    for (const t of this.tables.values()) {
      const g = t.grantee;
      for (let ref = 0; ref < NR_GRANTS; ref++) if (g[ref] === domid) g[ref] = GRANTEE_GONE;
    }
  }

  /** Distinct (granter, gfn) pages ever mapped, as "granter:gfn" (built on demand, for tests and reports). */
  get exposed(): ReadonlySet<string> {
    const out = new Set<string>();
    for (const [key, e] of this.exposure) {
      const granter = key % 0x10000;
      for (let gfn = 0; gfn < e.bits.length; gfn++) if (e.bits[gfn]) out.add(`${granter}:${gfn}`);
    }
    return out;
  }

  /** Distinct pages of `granter` that `mapper` has ever mapped. */
  exposedPages(mapper: number, granter: number): number {
    return this.exposure.get(mapper * 0x10000 + granter)?.count ?? 0;
  }

  /** Live mappings of `ref` (0 when none or no such grant). */
  mappedCount(granter: number, ref: number): number {
    const t = this.table(granter);
    return t !== undefined && validRef(ref) && t.grantee[ref] !== GRANTEE_FREE ? t.mapped[ref] : 0;
  }

  /** gfn of a grant, for the granter's own bookkeeping; -1 if none. */
  gfnOf(granterId: number, ref: number): number {
    const t = this.table(granterId);
    return t !== undefined && validRef(ref) && t.grantee[ref] !== GRANTEE_FREE ? t.gfn[ref] : -1;
  }
}

/** A ref the table can hold: an integer in [0, NR_GRANTS) (guest-written: anything else is bad_gntref). */
function validRef(ref: number): boolean {
  return ref >= 0 && ref < NR_GRANTS && (ref | 0) === ref;
}
