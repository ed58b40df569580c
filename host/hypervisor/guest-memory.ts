// A domain's guest-physical memory: one WebAssembly.Memory of fixed size, with views
// created once. The memory never grows (initial == maximum), so the views stay valid
// and no copy path allocates a view per call. An emulated guest (Linux in v86) is the
// exception: its RAM is a window inside the emulator's memory (see MemoryWindow).

// Guest structs are little-endian (x86, Arm); the aligned fast paths read them through
// host-endian typed arrays, so refuse to run where those differ.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("virtio-argo needs a little-endian host");

/**
 * Where a domain's guest-physical memory is, when it is not a memory of its own: an
 * emulator's memory (v86 keeps its own state below the guest's RAM and owns the
 * WebAssembly.Memory, which may grow, detaching views) with RAM at [lo, lo + bytes).
 */
export interface MemoryWindow {
  memory: WebAssembly.Memory;
  /** Byte offset of the first byte a domain address may name (page-aligned). */
  lo: number;
  /** Bytes from `lo` that belong to the domain (page multiple). */
  bytes: number;
  /** Called after the hypervisor wrote [off, off + len) (an emulator drops compiled code there). */
  onWrite?: (off: number, len: number) => void;
}

/** Guest-physical memory of one domain and its cached views. */
export class GuestMemory {
  readonly memory: WebAssembly.Memory;
  /** First valid domain address: 0 for a memory of its own, the RAM offset inside an emulator's. */
  readonly lo: number;
  /** End of valid domain addresses; every guest address is checked against [lo, size) before use. */
  readonly size: number;
  u8!: Uint8Array;
  u32!: Uint32Array;
  f64!: Float64Array;
  dv!: DataView;
  /** Null for memories of their own; set for emulated guests whose compiled code must see writes. */
  readonly onWrite: ((off: number, len: number) => void) | null;
  /** An emulator's memory may grow; a memory of its own never does (initial == maximum). */
  private readonly growable: boolean;
  private ab!: ArrayBuffer;

  constructor(bytesOrWindow: number | MemoryWindow) {
    if (typeof bytesOrWindow === "number") {
      const pages = Math.ceil(bytesOrWindow / 65536);
      if (!Number.isInteger(pages) || pages < 1 || pages > 65536) {
        throw new RangeError(`memoryBytes must be between 1 and 4 GiB, got ${bytesOrWindow}`);
      }
      this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
      this.lo = 0;
      this.size = this.memory.buffer.byteLength;
      this.onWrite = null;
      this.growable = false;
    } else {
      const w = bytesOrWindow;
      if (!(w.memory instanceof WebAssembly.Memory)) throw new TypeError("memory window: a WebAssembly.Memory is required");
      if (!Number.isInteger(w.lo) || w.lo < 0 || w.lo % 4096 !== 0) throw new RangeError(`memory window: lo ${w.lo} is not page-aligned`);
      if (!Number.isInteger(w.bytes) || w.bytes < 4096 || w.bytes % 4096 !== 0) throw new RangeError(`memory window: ${w.bytes} bytes is not a page multiple`);
      if (w.lo + w.bytes > w.memory.buffer.byteLength || w.lo + w.bytes > 2 ** 32) throw new RangeError("memory window: outside the memory");
      this.memory = w.memory;
      this.lo = w.lo;
      this.size = w.lo + w.bytes;
      this.onWrite = w.onWrite ?? null;
      this.growable = true;
    }
    this.views();
  }

  private views(): void {
    const ab = this.memory.buffer;
    this.ab = ab;
    this.u8 = new Uint8Array(ab);
    this.u32 = new Uint32Array(ab);
    this.f64 = new Float64Array(ab);
    this.dv = new DataView(ab);
  }

  /**
   * Re-creates the views if the memory grew (growth detaches them). Memories of their
   * own never grow, so for them this is one branch (not a `memory.buffer` read, which
   * costs a call into the engine: measured ~10-20% of a 64 B send); callers run it where
   * a hypercall starts touching a domain's memory.
   */
  fresh(): this {
    if (this.growable && this.memory.buffer !== this.ab) this.views();
    return this;
  }

  /**
   * True if [gpa, gpa + len) lies in memory (guest_handle_okay). `gpa` and `len` may be
   * anything a guest wrote: non-integers, negatives and values past 2^32 are all refused,
   * and the sum is exact because both are below 2^53.
   */
  ok(gpa: number, len: number): boolean {
    return gpa >= this.lo && len >= 0 && gpa + len <= this.size && Number.isInteger(gpa) && Number.isInteger(len);
  }

  /** Little-endian u32 at a checked gpa; aligned reads (the common case) skip DataView. */
  read32(gpa: number): number {
    return (gpa & 3) === 0 ? this.u32[gpa >>> 2] : this.dv.getUint32(gpa, true);
  }

  /** Reads a u64 guest value as a number, or -1 if it is 2^53 or more (never a valid gpa). */
  u64(gpa: number): number {
    const hi = this.read32(gpa + 4);
    if (hi >= 0x200000) return -1;
    return hi * 0x100000000 + this.read32(gpa);
  }

  /** Fills [gpa, gpa + len) with zeroes; for the toolstack and tests. */
  zero(gpa: number, len: number): void {
    this.u8.fill(0, gpa, gpa + len);
  }
}

/** Below this many bytes a word loop beats memcpy's fixed call cost (measured: bench/argo). */
const SMALL_COPY = 256;

/**
 * Copies `len` bytes from one domain's memory to another's (or within one): the only
 * way bytes cross a domain boundary on the Argo path. Callers have bounds-checked both
 * ranges. Small aligned copies use a Float64Array word loop (V8 keeps NaN bit patterns;
 * test/argo/argo.test.ts "copies NaN bit patterns exactly" checks it), the rest one native
 * memcpy through TypedArray#set. Larger copies allocate one subarray (no API copies between
 * two buffers without a source view); Buffer#copy, which this used before, makes the same
 * view inside Node 20's _copyActual after its own argument checks, and measured ~2.5% slower
 * per 64 KiB message (in-process A/B, both orders).
 */
export function copyBetween(src: GuestMemory, srcOff: number, dst: GuestMemory, dstOff: number, len: number): void {
  if (len <= SMALL_COPY) {
    if (((srcOff | dstOff) & 7) === 0) {
      const words = len >>> 3;
      const sf = src.f64;
      const df = dst.f64;
      const s = srcOff >>> 3;
      const d = dstOff >>> 3;
      for (let i = 0; i < words; i++) df[d + i] = sf[s + i];
      const done = words << 3;
      const su = src.u8;
      const du = dst.u8;
      for (let i = done; i < len; i++) du[dstOff + i] = su[srcOff + i];
      return;
    }
    if (len <= 32) {
      const su = src.u8;
      const du = dst.u8;
      for (let i = 0; i < len; i++) du[dstOff + i] = su[srcOff + i];
      return;
    }
  }
  dst.u8.set(src.u8.subarray(srcOff, srcOff + len), dstOff);
}
