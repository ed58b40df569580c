// Views of a guest's memory, shared per WebAssembly.Memory and made once. A memory of
// its own never grows (initial == maximum), so its views stay valid for good. An
// emulator's memory may grow at any time while the emulator runs (v86 grows its own
// memory for its JIT's tables), which detaches every view: such a memory is marked
// growable, and its views are made again the first time they are used after a growth.

export class MemoryViews {
  readonly memory: WebAssembly.Memory;
  /** Set for an emulator's memory; false keeps fresh() at one branch for everyone else. */
  growable = false;
  /**
   * Told of every range a transport or device wrote into this memory from outside the
   * guest's own code; null except for an emulator whose compiled code must see the
   * writes (v86: jit_dirty_cache).
   */
  onWrite: ((off: number, len: number) => void) | null = null;
  u8!: Uint8Array;
  u32!: Uint32Array;
  dv!: DataView;
  private ab!: ArrayBuffer;

  constructor(memory: WebAssembly.Memory) {
    this.memory = memory;
    this.make();
  }

  private make(): void {
    const ab = this.memory.buffer;
    this.ab = ab;
    this.u8 = new Uint8Array(ab);
    this.u32 = new Uint32Array(ab);
    this.dv = new DataView(ab);
  }

  /** The views, made again if a growable memory grew since they were made. */
  fresh(): this {
    if (this.growable && this.memory.buffer !== this.ab) this.make();
    return this;
  }
}

const shared = new WeakMap<WebAssembly.Memory, MemoryViews>();

/** The shared views of `memory`. */
export function viewsOf(memory: WebAssembly.Memory): MemoryViews {
  let v = shared.get(memory);
  if (!v) shared.set(memory, (v = new MemoryViews(memory)));
  return v;
}

/**
 * Marks an emulator's memory: it may grow (every user of its views re-checks them) and
 * `onWrite` hears of every write made into it from outside the emulated code.
 */
export function markEmulated(memory: WebAssembly.Memory, onWrite: (off: number, len: number) => void): void {
  const v = viewsOf(memory);
  v.growable = true;
  v.onWrite = onWrite;
}
