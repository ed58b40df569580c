// The guest/backend page allocator (host/guest/heap.ts) cannot fragment by request size:
// freed extents merge, so a backend that served every request size from 4 KiB to 1 MiB
// still serves the next one, and random alloc/free sequences match a page-set model.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GuestHeap } from "../../host/guest/heap.ts";

const PAGE = 4096;

describe("GuestHeap: a coalescing page allocator", () => {
  it("a 16 MiB heap serves 4 KiB..1 MiB requests in 4 KiB steps (256 sizes) with 76 pages held throughout", () => {
    const heap = new GuestHeap(16 << 20, PAGE);
    // Long-lived allocations scattered between the requests, as devices hold rings and scratch.
    const held: number[] = [];
    for (let size = 1; size <= 256; size++) {
      const req = heap.allocPages(size);
      if (held.length < 76) held.push(heap.allocPages(1));
      heap.freePagesAt(req, size);
    }
    expect(heap.usedPages).toBe(76);
    // Every size still fits, twice over: nothing was lost to per-size lists.
    for (let size = 256; size >= 1; size--) heap.freePagesAt(heap.allocPages(size), size);
    const big = heap.allocPages(3000); // 11.7 MiB in one piece beside the held pages
    heap.freePagesAt(big, 3000);
    for (const g of held) heap.freePagesAt(g, 1);
    expect(heap.usedPages).toBe(0);
    expect(heap.extents).toBe(0); // all merged back into the bump region
  });

  it("random alloc/free sequences: no page handed out twice, counts exact, everything merges back", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 64 }), fc.nat()), { maxLength: 300 }), (ops) => {
        const pages = 512;
        const heap = new GuestHeap((pages + 1) * PAGE, PAGE);
        const live: Array<[number, number]> = [];
        const owner = new Map<number, number>();
        for (const [doAlloc, n, pick] of ops) {
          if (doAlloc || live.length === 0) {
            let gpa: number;
            try {
              gpa = heap.allocPages(n);
            } catch {
              expect(heap.pagesFree < n || heap.extents > 0).toBe(true);
              continue;
            }
            for (let p = 0; p < n; p++) {
              const page = gpa / PAGE + p;
              expect(owner.has(page)).toBe(false);
              expect(page >= 1 && page <= pages).toBe(true);
              owner.set(page, gpa);
            }
            live.push([gpa, n]);
          } else {
            const [gpa, n] = live.splice(pick % live.length, 1)[0];
            heap.freePagesAt(gpa, n);
            for (let p = 0; p < n; p++) owner.delete(gpa / PAGE + p);
          }
          expect(heap.usedPages).toBe(owner.size);
          expect(heap.pagesFree).toBe(pages - owner.size);
        }
        for (const [gpa, n] of live) heap.freePagesAt(gpa, n);
        expect(heap.usedPages).toBe(0);
        expect(heap.extents).toBe(0);
        expect(heap.allocPages(pages)).toBe(PAGE); // the whole heap in one piece again
      }),
      { numRuns: 300 },
    );
  });

  it("a double free, a free of pages never handed out, or a wrong count throws instead of corrupting the lists", () => {
    const heap = new GuestHeap(1 << 20, PAGE);
    const a = heap.allocPages(4);
    heap.allocPages(1);
    heap.freePagesAt(a, 4);
    expect(() => heap.freePagesAt(a, 4)).toThrow(/double free/);
    expect(() => heap.freePagesAt(a + PAGE, 1)).toThrow(/double free/);
    expect(() => heap.freePagesAt(1 << 19, 1)).toThrow(/not an allocated block/);
    expect(() => heap.freePagesAt(a + 100, 1)).toThrow(/not an allocated block/);
    expect(heap.usedPages).toBe(1);
  });
});
