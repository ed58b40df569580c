// MAC decision cost on the send hot path: Mac.send on an AVC hit, per call, beside an
// allow-all Mac and a hook that does nothing, all in the same run (compare ratios, not
// absolute numbers). The lead's Argo bench measures the same check inside a full sendv.
// The rate-limited Mac runs in the same process on purpose: it makes Mac.send's slow path
// hot, as a hypervisor with some rate-limited pairs would, and that costs the inlined
// fast path a little (a live call site); a run without it reads about 2 ns lower.
//   npx tsx bench/policy.ts [--quick]
import { Mac, Policy, type Subject } from "../host/mac/index.ts";

export interface PolicyBenchResult {
  /** Calls per round, rounds; each figure is the best round (least disturbed). */
  calls: number;
  rounds: number;
  /** ns per Mac.send, policies/default.yaml, guest_t -> backend_t, 64 B, AVC hit. */
  policyNs: number;
  /** ns per Mac.send under Policy.allowAll(). */
  allowAllNs: number;
  /** ns per call of a hook that returns 0 without looking at anything (loop + call cost). */
  noopNs: number;
  /** ns per Mac.send to a pair with a rate limit (token bucket; burst 1e9, so the clock is read once per 64 sends: RateLimiter prepaid). */
  ratedNs: number;
  /** policyNs - noopNs: what the check itself adds to a send. */
  checkNs: number;
}

const subject = (domid: number, label: string): Subject => ({ domid, name: label, label, sid: -1 });

// One loop function per variant, so that each call site stays monomorphic.
function loopPolicy(mac: Mac, a: Subject, b: Subject, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += mac.send(a, b, 64);
  return acc;
}
function loopAllowAll(mac: Mac, a: Subject, b: Subject, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += mac.send(a, b, 64);
  return acc;
}
function loopRated(mac: Mac, a: Subject, b: Subject, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += mac.send(a, b, 64);
  return acc;
}
class NoopHook {
  send(_s: Subject, _r: Subject, _len: number): number {
    return 0;
  }
}
function loopNoop(hook: NoopHook, a: Subject, b: Subject, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += hook.send(a, b, 64);
  return acc;
}

function time(fn: () => number): number {
  const t0 = process.hrtime.bigint();
  const acc = fn();
  const t1 = process.hrtime.bigint();
  if (acc !== 0) throw new Error(`a send was denied during the benchmark (sum ${acc})`);
  return Number(t1 - t0);
}

/** Runs the benchmark; quick is for CI (well under a second). */
export function runPolicyBench(opts: { quick: boolean }): PolicyBenchResult {
  const calls = opts.quick ? 2_000_000 : 10_000_000;
  const rounds = opts.quick ? 3 : 7;
  const quiet = { log: () => {} };
  const policy = new Mac(Policy.load(new URL("../policies/default.yaml", import.meta.url).pathname), quiet);
  const allowAll = new Mac(Policy.allowAll(), quiet);
  const rated = new Mac(
    Policy.parse("domains: [g_t, b_t]\npairs:\n  - { frontend: g_t, backend: b_t, device: console, allow: [send], limits: { rate: { messages_per_second: 1000000000, burst: 1000000000 } } }\n", "rated.yaml"),
    quiet,
  );
  const noop = new NoopHook();
  const g = subject(1, "guest_t");
  const b = subject(2, "backend_t");
  const rg = subject(3, "g_t");
  const rb = subject(4, "b_t");
  for (const s of [g, b]) {
    policy.bind(s);
    allowAll.bind(s);
  }
  // Warm up: fill the AVC entries and let the JIT optimise each loop.
  for (let i = 0; i < 3; i++) {
    loopPolicy(policy, g, b, 200_000);
    loopAllowAll(allowAll, g, b, 200_000);
    loopNoop(noop, g, b, 200_000);
    loopRated(rated, rg, rb, 50_000);
  }
  const best = { policy: Infinity, allowAll: Infinity, noop: Infinity, rated: Infinity };
  for (let r = 0; r < rounds; r++) {
    // Interleaved, so drift in clock speed or load hits every variant alike.
    best.policy = Math.min(best.policy, time(() => loopPolicy(policy, g, b, calls)) / calls);
    best.allowAll = Math.min(best.allowAll, time(() => loopAllowAll(allowAll, g, b, calls)) / calls);
    best.noop = Math.min(best.noop, time(() => loopNoop(noop, g, b, calls)) / calls);
    best.rated = Math.min(best.rated, time(() => loopRated(rated, rg, rb, calls / 10)) / (calls / 10));
  }
  const hits = policy.stats.avcHits;
  if (hits < calls * rounds) throw new Error(`expected AVC hits on every call, got ${hits}`);
  return {
    calls,
    rounds,
    policyNs: best.policy,
    allowAllNs: best.allowAll,
    noopNs: best.noop,
    ratedNs: best.rated,
    checkNs: Math.max(0, best.policy - best.noop),
  };
}

/** A Markdown table of the result. */
export function policyTable(r: PolicyBenchResult): string {
  const f = (x: number) => x.toFixed(2);
  return [
    "| variant | ns/check |",
    "|---|---|",
    `| Mac.send, default policy, AVC hit | ${f(r.policyNs)} |`,
    `| Mac.send, allow-all policy | ${f(r.allowAllNs)} |`,
    `| no-op hook (loop + call only) | ${f(r.noopNs)} |`,
    `| Mac.send, rate-limited pair (token bucket) | ${f(r.ratedNs)} |`,
    "",
    `The check adds ${f(r.checkNs)} ns over a no-op hook (which the JIT folds away entirely); compare it with the 64 B send time measured in the same run (argo table). ${r.calls.toLocaleString("en")} calls x ${r.rounds} rounds, best round.`,
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = runPolicyBench({ quick: process.argv.includes("--quick") });
  console.log(policyTable(r));
}
