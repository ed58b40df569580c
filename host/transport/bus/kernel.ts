// The per-domain "guest kernel" that transports run on: the domain's Argo driver and
// its page allocator. One per domain, so every driver and backend in a domain shares
// one scratch page and one heap, as they would share one kernel.
import type { GuestDomain } from "../../abi/guest-domain.ts";
import { GuestArgo, type GuestRing } from "../../guest/argo-driver.ts";
import { GuestHeap } from "../../guest/heap.ts";
import { GFN_SIZE, PAGE_SIZE } from "../../abi/argo.ts";

/** gpa of the page the toolstack reserves for the device table (below the heap). */
export const DEVICE_TABLE_GPA = PAGE_SIZE;
/** The guest heap starts after gpa 0 (NULL) and the device table page. */
export const HEAP_BASE = 2 * PAGE_SIZE;

export class GuestKernel {
  readonly domain: GuestDomain;
  readonly heap: GuestHeap;
  readonly argo: GuestArgo;

  constructor(domain: GuestDomain) {
    this.domain = domain;
    this.heap = new GuestHeap(domain.memory.buffer.byteLength, HEAP_BASE);
    this.argo = new GuestArgo(domain, this.heap);
  }
}

/**
 * Unregisters a ring a transport registered (contiguous pages, as GuestArgo.registerRing
 * places them by default) and gives its pages and gfn list back to the heap. Safe after the
 * hypervisor already removed the ring (revocation, partner destroyed): it holds no
 * reference to the pages then, and the unregister's -ENOENT changes nothing.
 */
export function releaseRing(argo: GuestArgo, heap: GuestHeap, ring: GuestRing): void {
  argo.unregisterRing(ring.aport, ring.partner);
  const n = ring.gfns.length;
  for (let i = 1; i < n; i++) if (ring.gfns[i] !== ring.gfns[0] + i) return; // not laid out by us: left alone
  heap.freePagesAt(ring.gfns[0] * PAGE_SIZE, n);
  heap.free(ring.gfnListGpa, n * GFN_SIZE);
}
