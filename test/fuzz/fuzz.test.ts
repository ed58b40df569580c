// The short run of `npm run fuzz` inside `npm test`: fixed seeds, so a red test is
// reproducible as is (`npm run fuzz` itself draws a new seed each run and goes to 10^6
// operations). FUZZ_SEED=n overrides the seed; a failure names the replay command.
import { describe, expect, it } from "vitest";
import { fuzzHypercalls } from "./hypercalls.ts";
import { fuzzRings } from "./rings.ts";
import { FuzzFailure } from "./prng.ts";

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 20261201;

function run<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof FuzzFailure) throw new Error(`${e.message}\nreplay: ${e.replay}`);
    throw e;
  }
}

describe("fuzz (short run)", () => {
  // An odd seed runs under the pair policy with reloads, an even one under allow-all.
  it.each([seed, seed + 1])("hypercalls: hostile domains against honest traffic, 100k ops, seed %i", (sd) => {
    const s = run(() => fuzzHypercalls(sd, 100_000));
    expect(s.reloads > 0).toBe((sd & 1) === 1);
    expect(s.honestReceived).toBe(s.honestSent);
    expect(s.honestSent).toBeGreaterThan(10_000);
    // Every op kind ran, and most errnos were reached (the run is not all -EINVAL).
    for (const k of ["register", "unregister", "sendv", "notify", "scribble", "recv", "other"]) expect(s.byOp[k]).toBeGreaterThan(0);
    expect(Object.keys(s.byRc).length).toBeGreaterThanOrEqual(10);
    expect(s.byRc.ok).toBeGreaterThan(1000);
  });

  it(`rings: both formats' device sides against the spec model, 60k ops, seed ${seed}`, () => {
    const s = run(() => fuzzRings(seed, 60_000));
    // Accepting and refusing paths were both reached on both formats.
    for (const m of [s.split, s.packed]) {
      expect(m.ok).toBeGreaterThan(1000);
      for (const e of ["AddressOutOfRange", "IndirectNotSupported", "IndirectWithNext", "InvalidIndirectLength", "ReadableAfterWritable", "ChainTooLong", "IndexOutOfRange"]) {
        expect(m[e], e).toBeGreaterThan(0);
      }
    }
    expect(s.split.AvailIdxJump).toBeGreaterThan(0);
    expect(s.split.DescriptorLoop).toBeGreaterThan(0);
    expect(s.packed.IncompleteChain).toBeGreaterThan(0);
    expect(s.packed["push-write"]).toBeGreaterThan(0);
    expect(s.packed.irq).toBeGreaterThan(0);
    expect(s.packed["no-irq"]).toBeGreaterThan(0);
  });
});
