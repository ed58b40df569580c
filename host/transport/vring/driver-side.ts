// The driver side both ring formats share (split-sides.ts, packed-sides.ts): the ring logic
// is Wasm (assembly/vring/driver.ts, packed.ts); this base moves a chain into Wasm and the
// used entries out, through two small blocks in the driver's memory.
import type { PageAllocator } from "../../guest/heap.ts";
import type { DriverSide } from "./queue-sides.ts";
import { vringEngine, type VringEngine } from "./engine.ts";
import { ERR_BAD_QUEUE, ERR_CHAIN_TOO_LONG } from "./errors.ts";

/**
 * What the split and packed driver sides share: buffers go to Wasm through a block of
 * {le32 addr, le32 len, le32 flags}, used entries come back through a block of
 * {le32 id, le32 written}, and reclaim is safe against a callback that re-enters it.
 */
export abstract class WasmDriverSide implements DriverSide {
  readonly size: number;
  protected readonly engine: VringEngine;
  protected readonly state: number;
  private readonly u32: Uint32Array;
  private readonly bufs: number;
  private readonly out: number;
  private reclaiming = false;
  private reclaimAgain = false;

  constructor(memory: WebAssembly.Memory, heap: PageAllocator, size: number, stateBytes: (e: VringEngine) => number) {
    this.size = size;
    this.engine = vringEngine(memory);
    this.u32 = new Uint32Array(memory.buffer);
    this.state = heap.alloc(stateBytes(this.engine));
    this.bufs = heap.alloc(12 * size);
    this.out = heap.alloc(8 * size);
  }

  abstract get freeDescriptors(): number;
  abstract needsKick(): boolean;
  /** Adds the `n` buffers at `bufs`; the head / buffer id, or a driver-side ERR_* code. */
  protected abstract addBufs(bufs: number, n: number): number;
  /** Writes up to `max` used entries to `out`; their number, or negative when the ring is broken. */
  protected abstract reclaimInto(out: number, max: number): number;
  /** Which flag bits this ring format carries (bit 0 writable, bit 1 grant handle). */
  protected abstract get flagMask(): number;

  add(gpa: ArrayLike<number>, len: ArrayLike<number>, flags: ArrayLike<number>, n: number): number {
    if (n < 1) return ERR_BAD_QUEUE;
    if (n > this.size) return ERR_CHAIN_TOO_LONG; // more than the bufs block (and the ring) holds
    const w = this.bufs >>> 2; // page-aligned heap block
    const mask = this.flagMask;
    for (let i = 0; i < n; i++) {
      this.u32[w + 3 * i] = gpa[i];
      this.u32[w + 3 * i + 1] = len[i];
      this.u32[w + 3 * i + 2] = flags[i] & mask;
    }
    return this.addBufs(this.bufs, n);
  }

  reclaim(cb: (head: number, written: number) => void): number {
    // A callback may complete more work and re-enter (an interrupt inside an interrupt);
    // the out block is shared, so the inner call only asks the outer one to go again.
    if (this.reclaiming) {
      this.reclaimAgain = true;
      return 0;
    }
    this.reclaiming = true;
    let total = 0;
    try {
      do {
        this.reclaimAgain = false;
        const n = this.reclaimInto(this.out, this.size);
        if (n < 0) break;
        const w = this.out >>> 2;
        for (let i = 0; i < n; i++) cb(this.u32[w + 2 * i], this.u32[w + 2 * i + 1]);
        total += n;
      } while (this.reclaimAgain);
    } finally {
      this.reclaiming = false;
    }
    return total;
  }
}
