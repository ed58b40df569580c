// npm run fuzz -- [--target hypercalls|rings|all] [--seed N] [--ops N]
//
// Seeded, replayable fuzzing: hostile domains against the hypercalls beside honest
// traffic (test/fuzz/hypercalls.ts), hostile drivers against both ring formats' device
// sides checked by a model of the spec (test/fuzz/rings.ts). 10^6 operations per target
// by default; the seed is printed first, and a failure prints the command that replays it.
// Exit code 0 only when every target passed.
import { parseArgs } from "node:util";
import { fuzzHypercalls } from "../test/fuzz/hypercalls.ts";
import { fuzzRings } from "../test/fuzz/rings.ts";
import { FuzzFailure } from "../test/fuzz/prng.ts";

const { values } = parseArgs({
  options: {
    target: { type: "string", default: "all" },
    seed: { type: "string" },
    ops: { type: "string", default: "1000000" },
  },
});
const targets = values.target === "all" ? ["hypercalls", "rings"] : [values.target!];
const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const ops = Number(values.ops);
if (!Number.isInteger(ops) || ops < 1) throw new Error(`--ops ${values.ops}: a positive integer`);
for (const t of targets) if (t !== "hypercalls" && t !== "rings") throw new Error(`--target ${t}: hypercalls, rings or all`);

console.log(`fuzz seed ${seed}, ${ops} ops per target (${targets.join(", ")})`);
let failed = false;
for (const target of targets) {
  const t0 = performance.now();
  try {
    const stats = target === "hypercalls" ? fuzzHypercalls(seed, ops) : fuzzRings(seed, ops);
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`${target}: ${stats.ops} ops passed in ${s} s`);
    console.log(`  ${JSON.stringify(stats, (k, v) => (k === "ops" ? undefined : v))}`);
  } catch (e) {
    failed = true;
    if (e instanceof FuzzFailure) {
      console.error(`FAIL ${e.message}`);
      console.error(`replay: ${e.replay}`);
    } else {
      console.error(`FAIL ${target} (seed ${seed}): ${e instanceof Error ? e.stack : String(e)}`);
      console.error(`replay: npm run fuzz -- --target ${target} --seed ${seed} --ops ${ops}`);
    }
  }
}
process.exit(failed ? 1 : 0);
