// Seeded PRNG for the fuzzers: every run is a pure function of its seed, so a failure
// printed as (target, seed, ops) replays exactly. sfc32 (Chris Doty-Humphrey's Small Fast
// Counting generator, as in PractRand), seeded through splitmix32: fast in JS (int32
// arithmetic only) and good enough for choosing inputs; nothing here needs crypto.

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(readonly seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform in [0, 2^32). */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform integer in [0, n), n <= 2^32. */
  below(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() < p * 0x100000000;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }

  fill(u8: Uint8Array, from: number, to: number): void {
    let i = from;
    for (; i + 4 <= to; i += 4) {
      const v = this.u32();
      u8[i] = v;
      u8[i + 1] = v >>> 8;
      u8[i + 2] = v >>> 16;
      u8[i + 3] = v >>> 24;
    }
    for (; i < to; i++) u8[i] = this.u32();
  }
}

/** A failure with what is needed to replay it. */
export class FuzzFailure extends Error {
  constructor(
    readonly target: string,
    readonly seed: number,
    readonly op: number,
    readonly ops: number,
    message: string,
  ) {
    super(`${target} fuzz failed at op ${op} (seed ${seed}): ${message}`);
  }

  /** The command that replays this run up to (and including) the failing op. */
  get replay(): string {
    return `npm run fuzz -- --target ${this.target} --seed ${this.seed} --ops ${this.op + 1}`;
  }
}
