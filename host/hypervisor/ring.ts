// The hypervisor's private record of one registered ring (struct argo_ring_info).
// Nothing here is readable or writable by any guest: tx_ptr in particular is kept
// here and only copied out to the ring header, never read back from it.
import { DOMID_ANY, PAGE_SHIFT, PAGE_SIZE, RING_HEADER_SIZE } from "../abi/argo.ts";
import type { Domain } from "./domain.ts";
import { copyBetween, type GuestMemory } from "./guest-memory.ts";

/** A sender waiting for space (struct pending_ent). */
export interface PendingEnt {
  domid: number;
  /** Payload bytes the sender is waiting to be able to send. */
  len: number;
}

/** Key of a ring in its owner's table: (aport, partner). aport < 2^32, partner < 2^16. */
export function ringKey(aport: number, partnerId: number): number {
  return aport * 0x10000 + partnerId;
}

export class RingInfo {
  readonly owner: Domain;
  readonly aport: number;
  readonly partnerId: number;
  /** Data bytes (the `len` registered); constant for the ring's life. */
  readonly len: number;
  /** Private tx_ptr (ring_info->tx_ptr). */
  txPtr = 0;
  /** gpa of each 4 KiB page of the ring, in ring order; page 0 holds xen_argo_ring_t. */
  readonly pages: Float64Array;
  /** gpa of the ring header (pages[0]). */
  readonly ringGpa: number;
  /** True when the pages are adjacent, so ring offsets map linearly to gpas. */
  readonly contiguous: boolean;
  readonly pending: PendingEnt[] = [];

  constructor(owner: Domain, aport: number, partnerId: number, len: number, pages: Float64Array, txPtr: number) {
    this.owner = owner;
    this.aport = aport;
    this.partnerId = partnerId;
    this.len = len;
    this.pages = pages;
    this.ringGpa = pages[0];
    let contiguous = true;
    for (let i = 1; i < pages.length; i++) if (pages[i] !== pages[i - 1] + PAGE_SIZE) contiguous = false;
    this.contiguous = contiguous;
    this.txPtr = txPtr;
  }

  get wildcard(): boolean {
    return this.partnerId === DOMID_ANY;
  }

  /** gpa of data offset `off` (< len), within the owner's memory. */
  dataGpa(off: number): number {
    const ringByte = RING_HEADER_SIZE + off;
    if (this.contiguous) return this.ringGpa + ringByte;
    return this.pages[ringByte >>> PAGE_SHIFT] + (ringByte & (PAGE_SIZE - 1));
  }

  /**
   * memcpy_to_guest_ring: copies n bytes from `src` at srcGpa into the data area at
   * `off`. The caller splits at the wrap, so off + n <= len; non-adjacent pages are
   * copied one page at a time.
   */
  copyIn(off: number, src: GuestMemory, srcGpa: number, n: number): void {
    const dst = this.owner.mem;
    if (this.contiguous) {
      const at = this.ringGpa + RING_HEADER_SIZE + off;
      copyBetween(src, srcGpa, dst, at, n);
      if (dst.onWrite !== null) dst.onWrite(at, n);
      return;
    }
    while (n > 0) {
      const ringByte = RING_HEADER_SIZE + off;
      const inPage = ringByte & (PAGE_SIZE - 1);
      const chunk = Math.min(n, PAGE_SIZE - inPage);
      copyBetween(src, srcGpa, dst, this.pages[ringByte >>> PAGE_SHIFT] + inPage, chunk);
      if (dst.onWrite !== null) dst.onWrite(this.pages[ringByte >>> PAGE_SHIFT] + inPage, chunk);
      off += chunk;
      srcGpa += chunk;
      n -= chunk;
    }
  }

  describe(): string {
    const partner = this.wildcard ? "any" : `d${this.partnerId}`;
    return `ring d${this.owner.domid}:${this.aport} from ${partner}`;
  }
}
