// A guest's Argo driver: what runs inside a guest to use Argo. It lays out Xen's structs
// in the guest's own memory, makes the real hypercall (so every byte goes through the
// hypervisor's decoding and checks), and reads its rings with the Wasm reader over its
// own memory. No per-message allocation: the argument structs live in one scratch page.
import { viewsOf, type MemoryViews } from "./views.ts";
import type { GuestDomain } from "../abi/guest-domain.ts";
import {
  ADDR_APORT, ADDR_DOMID, DOMID_ANY, GFN_SIZE, IOV_HND, IOV_LEN, IOV_SIZE, MAXIOV, OP_NOTIFY, OP_REGISTER_RING,
  OP_SENDV, OP_UNREGISTER_RING, PAGE_SIZE, REGISTER_APORT, REGISTER_LEN, REGISTER_PARTNER,
  RING_DATA_ENTS, RING_DATA_NENT, ENT_RING, ENT_FLAGS, ENT_SPACE_REQUIRED, ENT_MAX_MESSAGE_SIZE,
  SEND_ADDR_DST, SEND_ADDR_SRC, npagesRing,
} from "../abi/argo.ts";
import { GuestHeap } from "./heap.ts";

/** A ring this guest registered: where it lives in the guest's memory. */
export interface GuestRing {
  readonly aport: number;
  readonly partner: number;
  readonly len: number;
  /** gpa of the ring header (page 0). */
  readonly ringGpa: number;
  /** gpa of the u64 gfn list passed to register_ring (the reader walks it). */
  readonly gfnListGpa: number;
  readonly gfns: readonly number[];
}

/** Metadata of the last message read (a view on the driver's meta block). */
export interface MessageMeta {
  payloadLen: number;
  srcAport: number;
  srcDomid: number;
  messageType: number;
}

const SCRATCH_SEND_ADDR = 0; // xen_argo_send_addr_t
const SCRATCH_IOVS = 64; // xen_argo_iov_t[8]
const SCRATCH_REG = 256; // xen_argo_register_ring_t / unregister
const SCRATCH_META = 320; // reader's metadata block (16 B) + its single iov (8 B)
const SCRATCH_NOTIFY = 384; // xen_argo_ring_data_t with one entry

/** `D` lets a toolstack or test that created the domain keep its full handle type. */
export class GuestArgo<D extends GuestDomain = GuestDomain> {
  readonly domain: D;
  readonly heap: GuestHeap;
  /** One page of hypercall argument structs, owned by this driver. */
  readonly scratch: number;
  readonly meta: MessageMeta = { payloadLen: 0, srcAport: 0, srcDomid: 0, messageType: 0 };
  /** This guest's memory views (made again after an emulator's memory grew). */
  private readonly views: MemoryViews;
  /** Destination currently laid out in the send_addr struct (a driver reuses it). */
  private addrDomid = -1;
  private addrAport = -1;
  private addrSrcAport = -1;
  private readonly gatherGpa = new Float64Array(MAXIOV);
  private readonly gatherLen = new Float64Array(MAXIOV);

  constructor(domain: D, heap = new GuestHeap(domain.memory.buffer.byteLength)) {
    this.domain = domain;
    this.heap = heap;
    this.scratch = heap.allocPages(1);
    this.views = viewsOf(domain.memory);
  }

  private get dv(): DataView {
    return this.views.fresh().dv;
  }

  private get u32(): Uint32Array {
    return this.views.fresh().u32;
  }

  /**
   * Allocates and registers a ring. `scatter` places its pages non-contiguously (every
   * other page, in reverse), to exercise the hypervisor's page-by-page copies.
   * Returns the ring, or the negative errno of register_ring.
   */
  registerRing(aport: number, partner: number, len: number, opts: { scatter?: boolean; flags?: number } = {}): GuestRing | number {
    const npages = npagesRing(len);
    const gfns: number[] = [];
    if (opts.scatter) {
      const base = this.heap.allocPages(npages * 2);
      for (let i = npages - 1; i >= 0; i--) gfns.push(base / PAGE_SIZE + 2 * i);
    } else {
      const base = this.heap.allocPages(npages);
      for (let i = 0; i < npages; i++) gfns.push(base / PAGE_SIZE + i);
    }
    const gfnListGpa = this.heap.alloc(npages * GFN_SIZE);
    for (let i = 0; i < npages; i++) {
      this.dv.setUint32(gfnListGpa + i * GFN_SIZE, gfns[i], true);
      this.dv.setUint32(gfnListGpa + i * GFN_SIZE + 4, 0, true);
    }
    const ringGpa = gfns[0] * PAGE_SIZE;
    this.views.fresh().u8.fill(0, ringGpa, ringGpa + 64); // rx_ptr = tx_ptr = 0
    const reg = this.scratch + SCRATCH_REG;
    this.dv.setUint32(reg + REGISTER_APORT, aport, true);
    this.dv.setUint16(reg + REGISTER_PARTNER, partner, true);
    this.dv.setUint16(reg + REGISTER_PARTNER + 2, 0, true);
    this.dv.setUint32(reg + REGISTER_LEN, len, true);
    const rc = this.domain.hypercall(OP_REGISTER_RING, reg, gfnListGpa, npages, opts.flags ?? 0);
    if (rc < 0) return rc;
    return { aport, partner, len, ringGpa, gfnListGpa, gfns };
  }

  unregisterRing(aport: number, partner: number): number {
    const reg = this.scratch + SCRATCH_REG;
    this.dv.setUint32(reg + REGISTER_APORT, aport, true);
    this.dv.setUint16(reg + REGISTER_PARTNER, partner, true);
    this.dv.setUint16(reg + REGISTER_PARTNER + 2, 0, true);
    return this.domain.hypercall(OP_UNREGISTER_RING, reg, 0, 0, 0);
  }

  /** sendv of one buffer in this guest's memory. */
  send(dstDomid: number, dstAport: number, gpa: number, len: number, messageType = 0, srcAport = 0): number {
    // The one-buffer case is the 64 B hot path: written out rather than through
    // sendGather's loop (one A/B run of a send+consume loop: ~225 vs ~275 ns per message).
    this.setAddrs(dstDomid, dstAport, srcAport);
    const iov = this.scratch + SCRATCH_IOVS; // page-aligned scratch: aligned u32 stores
    this.u32[(iov + IOV_HND) >>> 2] = gpa;
    this.u32[(iov + IOV_HND + 4) >>> 2] = 0;
    this.u32[(iov + IOV_LEN) >>> 2] = len;
    this.u32[(iov + IOV_LEN + 4) >>> 2] = 0;
    return this.domain.hypercall(OP_SENDV, this.scratch + SCRATCH_SEND_ADDR, iov, 1, messageType);
  }

  /** sendv of up to 8 buffers, each [gpa, len]. */
  sendIovs(dstDomid: number, dstAport: number, iovs: ReadonlyArray<readonly [number, number]>, messageType = 0, srcAport = 0): number {
    if (iovs.length > MAXIOV) throw new RangeError(`at most ${MAXIOV} iovs`);
    for (let i = 0; i < iovs.length; i++) {
      this.gatherGpa[i] = iovs[i][0];
      this.gatherLen[i] = iovs[i][1];
    }
    return this.sendGather(dstDomid, dstAport, this.gatherGpa, this.gatherLen, iovs.length, messageType, srcAport);
  }

  /** sendv of `n` (<= 8) buffers given as parallel arrays; allocates nothing (for per-message paths). */
  sendGather(dstDomid: number, dstAport: number, gpa: ArrayLike<number>, len: ArrayLike<number>, n: number, messageType = 0, srcAport = 0): number {
    if (n > MAXIOV) throw new RangeError(`at most ${MAXIOV} iovs`);
    this.setAddrs(dstDomid, dstAport, srcAport);
    const base = this.scratch + SCRATCH_IOVS;
    // The scratch page is page-aligned, so every field is an aligned u32 store.
    for (let i = 0; i < n; i++) {
      const at = base + i * IOV_SIZE;
      this.u32[(at + IOV_HND) >>> 2] = gpa[i];
      this.u32[(at + IOV_HND + 4) >>> 2] = 0; // high half: buffers are below 4 GiB
      this.u32[(at + IOV_LEN) >>> 2] = len[i];
      this.u32[(at + IOV_LEN + 4) >>> 2] = 0; // pad
    }
    return this.domain.hypercall(OP_SENDV, this.scratch + SCRATCH_SEND_ADDR, base, n, messageType);
  }

  private setAddrs(dstDomid: number, dstAport: number, srcAport: number): void {
    if (dstDomid === this.addrDomid && dstAport === this.addrAport && srcAport === this.addrSrcAport) return;
    this.addrDomid = dstDomid;
    this.addrAport = dstAport;
    this.addrSrcAport = srcAport;
    const a = this.scratch + SCRATCH_SEND_ADDR;
    this.dv.setUint32(a + SEND_ADDR_SRC + ADDR_APORT, srcAport, true);
    this.dv.setUint32(a + SEND_ADDR_SRC + ADDR_DOMID, DOMID_ANY, true); // domid + pad
    this.dv.setUint32(a + SEND_ADDR_DST + ADDR_APORT, dstAport, true);
    this.dv.setUint32(a + SEND_ADDR_DST + ADDR_DOMID, dstDomid, true);
  }

  /**
   * Consumes one message from `ring` into [bufGpa, bufGpa + cap). Returns the payload
   * length (meta is filled in), or a negative READ_* code (READ_EMPTY when empty).
   */
  read(ring: GuestRing, bufGpa: number, cap: number): number {
    const metaGpa = this.scratch + SCRATCH_META;
    const n = this.domain.engine.argoReadMessage(ring.gfnListGpa, ring.len, metaGpa, bufGpa, cap);
    if (n >= 0) {
      this.loadMeta(n);
      const onWrite = this.views.onWrite; // an emulated guest's compiled code must see the bytes
      if (onWrite !== null && n > 0) onWrite(bufGpa, Math.min(n, cap));
    }
    return n;
  }

  /**
   * Reads the next message of `ring`: payload bytes from `skip` on go into the `niov`
   * {le32 gpa, le32 len} buffers at iovGpa; `consume` moves rx_ptr past it (false: peek).
   */
  recv(ring: GuestRing, iovGpa: number, niov: number, skip: number, consume: boolean): number {
    const metaGpa = this.scratch + SCRATCH_META;
    const n = this.domain.engine.argoRecv(ring.gfnListGpa, ring.len, metaGpa, iovGpa, niov, skip, consume ? 1 : 0);
    if (n >= 0) {
      this.loadMeta(n);
      if (this.views.onWrite !== null) this.wrote(iovGpa, niov);
    }
    return n;
  }

  /** Reports the iov buffers a recv scattered into (their whole lengths: an upper bound). */
  private wrote(iovGpa: number, niov: number): void {
    for (let i = 0; i < niov; i++) {
      const len = this.dv.getUint32(iovGpa + 8 * i + 4, true);
      if (len > 0) this.views.onWrite!(this.dv.getUint32(iovGpa + 8 * i, true), len);
    }
  }

  private loadMeta(n: number): void {
    const w = (this.scratch + SCRATCH_META) >>> 2;
    this.meta.payloadLen = n;
    this.meta.srcAport = this.u32[w + 1];
    this.meta.srcDomid = this.u32[w + 2];
    this.meta.messageType = this.u32[w + 3];
  }

  /** notify with no query: wakes senders waiting for space on this guest's rings. */
  notify(): number {
    return this.domain.hypercall(OP_NOTIFY, 0, 0, 0, 0);
  }

  /** notify asking about one ring; returns the hypercall's rc with flags and max message size. */
  query(domid: number, aport: number, spaceRequired = 0): { rc: number; flags: number; maxMessageSize: number } {
    const rd = this.scratch + SCRATCH_NOTIFY;
    const ent = rd + RING_DATA_ENTS;
    this.dv.setUint32(rd + RING_DATA_NENT, 1, true);
    this.dv.setUint32(rd + 4, 0, true);
    this.dv.setUint32(ent + ENT_RING + ADDR_APORT, aport, true);
    this.dv.setUint32(ent + ENT_RING + ADDR_DOMID, domid, true);
    this.dv.setUint32(ent + ENT_FLAGS, 0, true);
    this.dv.setUint32(ent + ENT_SPACE_REQUIRED, spaceRequired, true);
    this.dv.setUint32(ent + ENT_MAX_MESSAGE_SIZE, 0, true);
    const rc = this.domain.hypercall(OP_NOTIFY, rd, 0, 0, 0);
    return { rc, flags: this.dv.getUint16(ent + ENT_FLAGS, true), maxMessageSize: this.dv.getUint32(ent + ENT_MAX_MESSAGE_SIZE, true) };
  }
}

