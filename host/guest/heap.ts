// A guest's own page allocator over its memory: what a guest kernel would use to place
// rings, buffers and hypercall argument structs. It runs "inside" the guest and touches
// only that guest's memory.
//
// Free pages are kept as extents sorted by address and merged with their neighbours on
// every free (and given back to the bump region when they touch it), so memory that was
// freed is whole again whatever sizes it was used at: lists kept by exact page count and
// never merged ran out after serving some 90 distinct request sizes. A request takes the
// smallest extent that holds it (best fit), or pages from the bump region.
//
//   base            free extents (sorted, never adjacent)           next           end
//   |--used--|-free-|--used--|---free---|--used--|                 |  bump region  |
import { PAGE_SIZE } from "../abi/argo.ts";

/** What ring and queue code needs from an allocator: whole pages, by bytes. */
export interface PageAllocator {
  alloc(bytes: number): number;
}

export class GuestHeap implements PageAllocator {
  private next: number;
  private readonly base: number;
  private readonly end: number;
  /** Free extents below `next`: first page (gpa) and page count, sorted by gpa, never touching. */
  private readonly freeAt: number[] = [];
  private readonly freeLen: number[] = [];
  private freeTotal = 0;

  /** Manages [base, end) of a memory of `size` bytes; base defaults to the second page (gpa 0 stays NULL). */
  constructor(size: number, base = PAGE_SIZE, end = size) {
    if (base % PAGE_SIZE !== 0 || end > size || base >= end) throw new RangeError(`bad heap range [${base}, ${end})`);
    this.next = base;
    this.base = base;
    this.end = end;
  }

  /** `n` adjacent 4 KiB pages; returns the gpa of the first. Throws when the guest is out of memory. */
  allocPages(n: number): number {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`allocPages(${n}): a positive page count`);
    let best = -1;
    for (let i = 0; i < this.freeLen.length; i++) {
      const len = this.freeLen[i];
      if (len >= n && (best < 0 || len < this.freeLen[best])) {
        best = i;
        if (len === n) break;
      }
    }
    if (best >= 0) {
      const gpa = this.freeAt[best];
      if (this.freeLen[best] === n) {
        this.freeAt.splice(best, 1);
        this.freeLen.splice(best, 1);
      } else {
        this.freeAt[best] += n * PAGE_SIZE;
        this.freeLen[best] -= n;
      }
      this.freeTotal -= n;
      return gpa;
    }
    const gpa = this.next;
    if (gpa + n * PAGE_SIZE > this.end) throw new RangeError(`guest out of memory: ${n} pages wanted, ${this.pagesFree} free`);
    this.next += n * PAGE_SIZE;
    return gpa;
  }

  /**
   * Returns `n` pages from allocPages(n) for reuse, merged with free neighbours. Freeing
   * pages that are not in use (a double free, a wrong count) is a bug in the caller and
   * throws rather than corrupting the lists.
   */
  freePagesAt(gpa: number, n: number): void {
    const bytes = n * PAGE_SIZE;
    if (!Number.isInteger(n) || n < 1 || gpa % PAGE_SIZE !== 0 || gpa < this.base || gpa + bytes > this.next) {
      throw new RangeError(`free of ${n} pages at ${gpa}: not an allocated block`);
    }
    // First extent at or after gpa (binary search: extents are sorted).
    let lo = 0;
    let hi = this.freeAt.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.freeAt[mid] < gpa) lo = mid + 1;
      else hi = mid;
    }
    const prev = lo - 1;
    const prevEnd = prev >= 0 ? this.freeAt[prev] + this.freeLen[prev] * PAGE_SIZE : -1;
    if (prevEnd > gpa || (lo < this.freeAt.length && this.freeAt[lo] < gpa + bytes)) {
      throw new RangeError(`free of ${n} pages at ${gpa}: overlaps pages already free (double free)`);
    }
    this.freeTotal += n;
    let at = gpa;
    let len = n;
    let i = lo;
    if (prevEnd === gpa) {
      at = this.freeAt[prev];
      len += this.freeLen[prev];
      i = prev;
      this.freeAt.splice(prev, 1);
      this.freeLen.splice(prev, 1);
    }
    if (i < this.freeAt.length && this.freeAt[i] === at + len * PAGE_SIZE) {
      len += this.freeLen[i];
      this.freeAt.splice(i, 1);
      this.freeLen.splice(i, 1);
    }
    if (at + len * PAGE_SIZE === this.next) {
      // The extent touches the bump region: give it back there.
      this.next = at;
      this.freeTotal -= len;
      return;
    }
    this.freeAt.splice(i, 0, at);
    this.freeLen.splice(i, 0, len);
  }

  /** Pages handed out and not returned. */
  get usedPages(): number {
    return (this.next - this.base) / PAGE_SIZE - this.freeTotal;
  }

  /** Pages that can still be handed out (free extents and the bump region). */
  get pagesFree(): number {
    return (this.end - this.next) / PAGE_SIZE + this.freeTotal;
  }

  /** Free extents (for tests and diagnostics: a heap with nothing in use has none). */
  get extents(): number {
    return this.freeAt.length;
  }

  /** `bytes` bytes on whole pages. */
  alloc(bytes: number): number {
    return this.allocPages(Math.max(1, Math.ceil(bytes / PAGE_SIZE)));
  }

  /** Returns a block from alloc(bytes) for reuse. */
  free(gpa: number, bytes: number): void {
    this.freePagesAt(gpa, Math.max(1, Math.ceil(bytes / PAGE_SIZE)));
  }

  /** Bytes never handed out yet (the bump region); pagesFree counts freed extents too. */
  get bytesFree(): number {
    return this.end - this.next;
  }
}

/**
 * Allocations made for one purpose (a ring and its state blocks), returned to the heap
 * together: a queue that is set up again or reset gives its pages back instead of leaking
 * them for the life of the domain.
 */
export class HeapLease implements PageAllocator {
  private readonly heap: GuestHeap;
  private blocks: number[] = [];

  constructor(heap: GuestHeap) {
    this.heap = heap;
  }

  alloc(bytes: number): number {
    const gpa = this.heap.alloc(bytes);
    this.blocks.push(gpa, bytes);
    return gpa;
  }

  /** Frees every block; later calls do nothing (never a double free). */
  release(): void {
    const b = this.blocks;
    this.blocks = [];
    for (let i = 0; i < b.length; i += 2) this.heap.free(b[i], b[i + 1]);
  }
}
