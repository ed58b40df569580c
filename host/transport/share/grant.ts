// `grant`: VirtIO over Xen grants (virtio-grant, as Linux's xen/grant-dma-ops.c does it).
// The guest's DMA layer grants the pages of every buffer to the backend domain, read-only
// for readable buffers, under consecutive refs, and the descriptor carries the handle
// (bit 63 set, ref << 12 | offset in page) instead of a guest-physical address. The backend
// maps each page through the hypervisor, which checks the ref, the grantee and the access,
// uses it in place, and unmaps it before returning the chain. The rings' own pages are
// granted once at queue setup and stay mapped, as a backend keeps them.
//
// What the backend can reach: the ring pages plus the pages of requests in flight. That is
// the isolation this transport buys, at the price of a map and an unmap per page.
import type { DeviceChain, DeviceQueue, UsedHandler } from "../../devices/types.ts";
import { VIRTIO_F_EVENT_IDX } from "../../devices/types.ts";
import type { Domain } from "../../hypervisor/domain.ts";
import { GNTST_busy, GNTST_general_error, GNTST_okay, type GrantMapping, type GrantTables } from "../../hypervisor/grant.ts";
import { PAGE_SIZE } from "../../abi/argo.ts";
import { GuestDriverQueue, type DmaOps } from "../vring/guest-queue.ts";
import type { DeviceSide } from "../vring/queue-sides.ts";
import { ChainStream } from "../vring/device-queue.ts";
import { splitQueue } from "../vring/split-sides.ts";
import { SharedDevice, type SharedDeviceConfig, type SharedQueue } from "./shared-device.ts";

/** vringAdd flag: the address is a grant DMA handle. */
const BUF_GRANT_ADDR = 2;

export interface GrantConfig extends SharedDeviceConfig {
  grants: GrantTables;
  guest: Domain;
  backend: Domain;
}

const pagesOf = (offset: number, len: number) => Math.max(1, Math.ceil((offset + len) / PAGE_SIZE));

/** Most pages one chain may map (4 MiB + rings' worth: more than any device model takes in one request). */
const MAX_CHAIN_PAGES = 1100;

/** The guest's grant DMA layer: grants on map, ends access on completion (deferring busy refs, as Linux does). */
class GrantDma implements DmaOps {
  readonly addrFlags = BUF_GRANT_ADDR;
  /**
   * Refs granted for the chain being added: first ref and page count, in pairs. commit()
   * swaps it with the head's (empty) list, so after warm-up no request allocates a list.
   */
  private pending: number[] = [];
  private readonly byHead: Array<number[] | undefined>;
  /** Emptied per-head lists, for the next chains. */
  private readonly spareLists: number[][] = [];
  /** Refs whose end of access found them still mapped: retried later, never reused before. */
  private readonly deferred: number[] = [];
  readonly stats = { granted: 0, deferred: 0 };

  constructor(private readonly grants: GrantTables, private readonly guest: Domain, private readonly backendDomid: number, size: number) {
    this.byHead = new Array(size);
  }

  map(gpa: number, len: number, writable: boolean): number {
    const offset = gpa % PAGE_SIZE;
    const pages = pagesOf(offset, len);
    const ref = this.grants.grantAccessSeq(this.guest, this.backendDomid, Math.floor(gpa / PAGE_SIZE), pages, !writable);
    if (ref < 0) return -1;
    this.stats.granted += pages;
    this.pending.push(ref, pages);
    return ((ref << 12) | offset) >>> 0;
  }

  abort(): void {
    this.end(this.pending);
    this.pending.length = 0;
  }

  commit(head: number): void {
    this.byHead[head] = this.pending;
    this.pending = this.spareLists.pop() ?? [];
  }

  complete(head: number, _written: number): void {
    const refs = this.byHead[head];
    this.byHead[head] = undefined;
    // Earlier refs the backend still had mapped: try again now.
    if (this.deferred.length) this.retryDeferred();
    if (refs) {
      this.end(refs);
      refs.length = 0;
      this.spareLists.push(refs);
    }
  }

  /** Ends the deferred refs again; those still mapped stay deferred. */
  private retryDeferred(): void {
    const refs = this.deferred.splice(0);
    for (const r of refs) {
      if (this.grants.endAccess(this.guest, r) === GNTST_busy) {
        this.deferred.push(r);
        this.stats.deferred++;
      }
    }
  }

  /** Ends every ref of (first, pages) pairs; a ref still mapped (busy) is kept for later. */
  private end(pairs: number[]): void {
    for (let i = 0; i < pairs.length; i += 2) {
      for (let k = 0; k < pairs[i + 1]; k++) {
        const rc = this.grants.endAccess(this.guest, pairs[i] + k);
        if (rc === GNTST_busy) {
          this.deferred.push(pairs[i] + k);
          this.stats.deferred++;
        }
      }
    }
  }

  /** The queue is gone: ends every ref (the backend unmapped its chains first). */
  release(): void {
    const all: number[] = this.deferred.splice(0).flatMap((r) => [r, 1]);
    for (let h = 0; h < this.byHead.length; h++) {
      const refs = this.byHead[h];
      if (refs) all.push(...refs);
      this.byHead[h] = undefined;
    }
    this.end(all);
  }

  /** Refs not yet ended (in flight or deferred). */
  get outstanding(): number {
    let n = this.deferred.length + this.pending.length / 2;
    for (const refs of this.byHead) if (refs) for (let i = 1; i < refs.length; i += 2) n += refs[i];
    return n;
  }
}

/**
 * A popped chain whose buffers are grant handles, mapped page by page. Reused per pop:
 * `handles` and `pages` hold the chain's mappings in order (handle and the page's view),
 * `firstPage[i]` where buffer i's start; nothing is allocated per map.
 */
class GrantChain extends ChainStream {
  /** Mappings held: handles[0 .. mapped) and their pages. */
  readonly handles = new Int32Array(MAX_CHAIN_PAGES);
  private readonly pages: Uint8Array[] = [];
  mapped = 0;
  private readonly firstPage: Uint32Array;
  /** Per buffer: one view over all its pages when they are adjacent (mapRange's span), else null. */
  private readonly spans: Array<Uint8Array | null>;
  private readonly span: { span: Uint8Array | null } = { span: null };

  constructor(size: number) {
    super(size);
    this.firstPage = new Uint32Array(size + 1);
    this.spans = new Array<Uint8Array | null>(size).fill(null);
  }

  /**
   * Maps every page of every buffer, one batched map per buffer (its refs are
   * consecutive); returns a GNTST error (and unmaps what it mapped) on the first refusal.
   * A chain may span at most MAX_CHAIN_PAGES pages: lengths come from the guest, and
   * without the bound one descriptor of 4 GiB would cost a million map calls.
   */
  mapAll(grants: GrantTables, backend: Domain, guestDomid: number): number {
    const b = this.buffers;
    let total = 0;
    for (let i = 0; i < b.count; i++) total += pagesOf(b.gpa[i] % PAGE_SIZE, b.len[i]);
    if (total > MAX_CHAIN_PAGES) return GNTST_general_error;
    for (let i = 0; i < b.count; i++) {
      this.firstPage[i] = this.mapped;
      const handle = b.gpa[i]; // ref << 12 | offset: from the driver, checked by mapRange()
      const pages = pagesOf(handle % PAGE_SIZE, b.len[i]);
      const rc = grants.mapRange(backend, guestDomid, Math.floor(handle / PAGE_SIZE), pages, b.writable[i] === 0, this.handles, this.pages, this.mapped, this.span);
      if (rc !== GNTST_okay) {
        this.unmapAll(grants, backend);
        return rc;
      }
      this.spans[i] = this.span.span;
      this.mapped += pages;
    }
    this.firstPage[b.count] = this.mapped;
    return GNTST_okay;
  }

  unmapAll(grants: GrantTables, backend: Domain): void {
    for (let k = 0; k < this.mapped; k++) grants.unmap(backend, this.handles[k]);
    this.mapped = 0;
    for (let i = 0; i < this.buffers.count; i++) this.spans[i] = null; // no span outlives its mappings
  }

  /** Buffer i starts at its handle's offset in its first page; a copy may span pages. */
  protected move(i: number, skip: number, bytes: Uint8Array, done: number, n: number, toBuffer: boolean): void {
    let pos = (this.buffers.gpa[i] % PAGE_SIZE) + skip;
    const span = this.spans[i];
    if (span !== null) {
      // Adjacent pages: one copy (ChainStream keeps pos + n inside the buffer, so inside the span).
      if (toBuffer) span.set(bytes.subarray(done, done + n), pos);
      else bytes.set(span.subarray(pos, pos + n), done);
      return;
    }
    let left = n;
    const first = this.firstPage[i];
    while (left > 0) {
      const page = this.pages[first + (pos >>> 12)];
      const at = pos & (PAGE_SIZE - 1);
      const k = Math.min(PAGE_SIZE - at, left);
      if (toBuffer) page.set(bytes.subarray(done, done + k), at);
      else bytes.set(page.subarray(at, at + k), done);
      done += k;
      pos += k;
      left -= k;
    }
  }
}

/** The backend's device queue: pops grant-addressed chains and maps them for the model. */
class GrantDeviceQueue implements DeviceQueue {
  error: string | null = null;
  private readonly spare: GrantChain[] = [];
  /** Chains the model holds (e.g. console receive buffers): still mapped. */
  private readonly held = new Set<GrantChain>();

  constructor(
    private readonly side: DeviceSide,
    private readonly cfg: GrantConfig,
    private readonly interrupt: () => void,
    /** Told once when the ring breaks or a chain cannot be mapped (DEVICE_NEEDS_RESET). */
    private readonly broken: () => void = () => {},
  ) {}

  get size(): number {
    return this.side.size;
  }

  pop(): DeviceChain | null {
    if (this.error) return null;
    const chain = this.spare.pop() ?? new GrantChain(this.side.size);
    const popped = this.side.pop(chain.buffers);
    if (popped !== 1) {
      this.spare.push(chain);
      this.error = this.side.error;
      if (popped < 0) this.broken();
      return null;
    }
    const rc = chain.mapAll(this.cfg.grants, this.cfg.backend, this.cfg.guest.domid);
    if (rc !== GNTST_okay) {
      // A chain the hypervisor refuses to map (wrong grantee, writable buffer on a
      // read-only grant, ended grant) is a broken driver: NEEDS_RESET, as QEMU's
      // virtio_error does; the model never sees it.
      this.error = "GrantMapFailed";
      this.cfg.deny?.("grant_map", `chain ${chain.head}: grant map refused (GNTST ${rc})`);
      this.spare.push(chain);
      this.broken();
      return null;
    }
    this.held.add(chain);
    return chain;
  }

  /** Reset or removal: the model dropped its chains; their pages are unmapped. */
  release(): void {
    for (const c of this.held) c.unmapAll(this.cfg.grants, this.cfg.backend);
    this.held.clear();
  }

  push(chain: DeviceChain, written: number): void {
    const c = chain as GrantChain;
    if (!this.held.delete(c)) return; // not ours, or already returned
    // Unmap before the used entry is visible: the guest ends access on completion.
    c.unmapAll(this.cfg.grants, this.cfg.backend);
    this.side.push(c.head, Math.max(0, Math.min(written, c.writableLength)));
    this.spare.push(c);
  }

  notifyDriver(): void {
    if (this.side.needsInterrupt()) this.interrupt();
  }
}

export class GrantDevice extends SharedDevice {
  protected declare readonly cfg: GrantConfig;
  private readonly dmas: GrantDma[] = [];

  constructor(cfg: GrantConfig) {
    super(cfg);
  }

  /** Guest pages the backend has ever mapped: ring pages and the pages of requests. */
  get exposedPages(): number {
    return this.cfg.grants.exposedPages(this.cfg.backend.domid, this.cfg.guest.domid);
  }

  /** Grant refs the guest has not ended yet (requests in flight, rings, deferred). */
  get outstandingGrants(): number {
    return this.dmas.reduce((n, d) => n + d.outstanding, 0);
  }

  /**
   * Indirect tables would need their own grants and maps; not offered (as virtio-grant
   * backends commonly do not). Packed rings are not offered either: grant handles in
   * descriptors are implemented for split rings only.
   */
  protected get ringFeatures(): bigint {
    return VIRTIO_F_EVENT_IDX;
  }

  protected createQueue(_index: number, size: number, onUsed: UsedHandler, notify: () => void, broken: () => void): SharedQueue {
    const { grants, guest, backend } = this.cfg;
    const pair = splitQueue(this.memory, this.cfg.heap, size, this.eventIdx, false, true);
    // The rings: granted read-write (the backend writes the used ring) and mapped for the
    // queue's lifetime. The device side reads them through those pages.
    const l = pair.layout;
    const ringRefs: number[] = [];
    const ringMaps: GrantMapping[] = [];
    for (const [gpa, bytes] of [[l.desc, 16 * size], [l.avail, 6 + 2 * size], [l.used, 6 + 8 * size]]) {
      const pages = pagesOf(0, bytes);
      const ref = grants.grantAccessSeq(guest, backend.domid, gpa / PAGE_SIZE, pages, false);
      if (ref < 0) throw new RangeError(`grant table full: cannot grant the rings (${ref})`);
      for (let k = 0; k < pages; k++) {
        ringRefs.push(ref + k);
        const m = grants.map(backend, guest.domid, ref + k, false);
        if (typeof m === "number") throw new Error(`backend could not map ring grant ${ref + k}: ${m}`);
        ringMaps.push(m);
      }
    }
    const dma = new GrantDma(grants, guest, backend.domid, size);
    this.dmas.push(dma);
    const driver = new GuestDriverQueue(pair.driver, onUsed, notify, dma);
    const device = new GrantDeviceQueue(pair.device, this.cfg, () => driver.interrupt(), broken);
    return {
      driver,
      device,
      release: () => {
        device.release();
        dma.release();
        for (const m of ringMaps) grants.unmap(backend, m.handle);
        for (const ref of ringRefs) grants.endAccess(guest, ref);
        this.dmas.splice(this.dmas.indexOf(dma), 1);
        pair.release();
      },
    };
  }
}
