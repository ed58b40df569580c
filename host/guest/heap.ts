// A guest's own page allocator over its memory: what a guest kernel would use to place
// rings, buffers and hypercall argument structs. It runs "inside" the guest and touches
// only that guest's memory. Bump allocation with free lists per page count is enough
// for drivers that allocate at setup and recycle buffers.
import { PAGE_SIZE } from "../hypervisor/layout.ts";

/** What ring and queue code needs from an allocator: whole pages, by bytes. */
export interface PageAllocator {
  alloc(bytes: number): number;
}

export class GuestHeap implements PageAllocator {
  private next: number;
  private readonly base: number;
  private readonly end: number;
  private readonly freePages = new Map<number, number[]>();

  /** Manages [base, end) of a memory of `size` bytes; base defaults to the second page (gpa 0 stays NULL). */
  constructor(size: number, base = PAGE_SIZE, end = size) {
    if (base % PAGE_SIZE !== 0 || end > size || base >= end) throw new RangeError(`bad heap range [${base}, ${end})`);
    this.next = base;
    this.base = base;
    this.end = end;
  }

  /** `n` adjacent 4 KiB pages; returns the gpa of the first. Throws when the guest is out of memory. */
  allocPages(n: number): number {
    const list = this.freePages.get(n);
    if (list && list.length) return list.pop()!;
    const gpa = this.next;
    if (gpa + n * PAGE_SIZE > this.end) throw new RangeError(`guest out of memory: ${n} pages wanted`);
    this.next += n * PAGE_SIZE;
    return gpa;
  }

  /** Returns pages from allocPages(n) for reuse. */
  freePagesAt(gpa: number, n: number): void {
    let list = this.freePages.get(n);
    if (!list) this.freePages.set(n, (list = []));
    list.push(gpa);
  }

  /** Pages handed out and not returned. */
  get usedPages(): number {
    let free = 0;
    for (const [n, list] of this.freePages) free += n * list.length;
    return (this.next - this.base) / PAGE_SIZE - free;
  }

  /** `bytes` bytes on whole pages. */
  alloc(bytes: number): number {
    return this.allocPages(Math.max(1, Math.ceil(bytes / PAGE_SIZE)));
  }

  /** Returns a block from alloc(bytes) for reuse. */
  free(gpa: number, bytes: number): void {
    this.freePagesAt(gpa, Math.max(1, Math.ceil(bytes / PAGE_SIZE)));
  }

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
