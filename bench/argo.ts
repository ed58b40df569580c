// One-way Argo throughput: sendv by one guest + consumption by the receiving guest,
// beside a plain memcpy of the same bytes between the same two memories, measured in
// the same run (machines are noisy: compare ratios, not absolute numbers).
//
//   npx tsx bench/argo.ts [--quick]
import { Bench } from "tinybench";
import { medianMs } from "./stats.ts";
import { Hypervisor } from "../host/hypervisor/hypervisor.ts";
import { Policy } from "../host/mac/index.ts";
import { GuestArgo, type GuestRing } from "../host/guest/argo-driver.ts";

export interface ArgoBenchRow {
  size: number;
  /** Median ns per message for sendv + consume (header validated, rx_ptr advanced). */
  argoNs: number;
  /** Median ns per message for sendv + reading the payload out into a guest buffer. */
  argoReadNs: number;
  /** Median ns for the fastest plain copy of the same bytes between the two memories. */
  memcpyNs: number;
  /** Which plain copy was fastest: "set" (TypedArray#set) or "f64-loop". */
  memcpyKind: string;
  /** memcpyNs / argoNs: 1.0 means Argo moves bytes as fast as a bare memcpy. */
  ratio: number;
  ratioRead: number;
  argoMBps: number;
  memcpyMBps: number;
}

export const SIZES = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];
const PORT = 7;

function batchFor(size: number): number {
  return Math.max(4, Math.min(2000, Math.floor((4 << 20) / size)));
}

export async function runArgoBench(opts: { quick: boolean; policy?: Policy; sizes?: number[] }): Promise<ArgoBenchRow[]> {
  const hv = new Hypervisor({ policy: opts.policy ?? Policy.allowAll() });
  const a = hv.createDomain({ name: "bench-tx", label: "bench_t", memoryBytes: 64 << 20 });
  const b = hv.createDomain({ name: "bench-rx", label: "bench_t", memoryBytes: 64 << 20 });
  const ga = new GuestArgo(a);
  const gb = new GuestArgo(b);
  const r = gb.registerRing(PORT, a.domid, 4 << 20);
  if (typeof r === "number") throw new Error(`bench ring registration failed: ${r}`);
  const ring: GuestRing = r;
  const src = ga.heap.alloc(1 << 20);
  const dst = gb.heap.alloc(1 << 20);
  // The memcpy reference writes over a region as large as the ring, advancing like the
  // ring's tx_ptr, so both paths touch the same amount of cache and memory.
  const span = 4 << 20;
  const region = gb.heap.alloc(span + (1 << 20));
  const aU8 = new Uint8Array(a.memory.buffer);
  const bU8 = new Uint8Array(b.memory.buffer);
  const aF64 = new Float64Array(a.memory.buffer);
  const bF64 = new Float64Array(b.memory.buffer);
  for (let i = 0; i < 1 << 20; i++) aU8[src + i] = i * 31;

  const rows: ArgoBenchRow[] = [];
  for (const size of opts.sizes ?? SIZES) {
    const n = batchFor(size);
    const step = 16 + ((size + 15) & ~15); // a message's footprint in the ring
    const bench = new Bench({ time: opts.quick ? 60 : 400, warmupTime: opts.quick ? 20 : 100 });
    let failures = 0;
    bench
      .add("argo", () => {
        for (let i = 0; i < n; i++) {
          if (ga.send(b.domid, PORT, src, size) !== size) failures++;
          if (gb.read(ring, dst, 0) !== size) failures++;
        }
      })
      .add("argo+read", () => {
        for (let i = 0; i < n; i++) {
          if (ga.send(b.domid, PORT, src, size) !== size) failures++;
          if (gb.read(ring, dst, size) !== size) failures++;
        }
      })
      .add("set", () => {
        for (let i = 0; i < n; i++) {
          const d = region + ((i * step) % span);
          bU8.set(aU8.subarray(src, src + size), d);
        }
      })
      .add("f64-loop", () => {
        const words = size >>> 3;
        const s = src >>> 3;
        for (let i = 0; i < n; i++) {
          const d = (region + ((i * step) % span)) >>> 3;
          for (let w = 0; w < words; w++) bF64[d + w] = aF64[s + w];
        }
      });
    await bench.run();
    if (failures) throw new Error(`argo bench: ${failures} sends or reads failed at ${size} B`);
    const med = (name: string): number => (medianMs(bench, name) * 1e6) / n;
    const argoNs = med("argo");
    const argoReadNs = med("argo+read");
    const setNs = med("set");
    const loopNs = size <= 4096 ? med("f64-loop") : Infinity;
    const memcpyNs = Math.min(setNs, loopNs);
    rows.push({
      size, argoNs, argoReadNs, memcpyNs, memcpyKind: memcpyNs === setNs ? "set" : "f64-loop",
      ratio: memcpyNs / argoNs, ratioRead: memcpyNs / argoReadNs,
      argoMBps: size / argoNs * 1e3, memcpyMBps: size / memcpyNs * 1e3,
    });
  }
  return rows;
}

export function argoTable(rows: ArgoBenchRow[]): string {
  const lines = [
    "| size | argo ns/msg | argo MB/s | memcpy ns | memcpy MB/s | argo/memcpy | with read-out |",
    "|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(`| ${r.size} | ${r.argoNs.toFixed(0)} | ${r.argoMBps.toFixed(0)} | ${r.memcpyNs.toFixed(0)} (${r.memcpyKind}) | ${r.memcpyMBps.toFixed(0)} | ${r.ratio.toFixed(2)}x | ${r.ratioRead.toFixed(2)}x |`);
  }
  const small = rows.find((r) => r.size === 64);
  if (small) lines.push("", `64 B: ${(1e3 / small.argoNs).toFixed(2)} M messages/s (sendv + guest consume)`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runArgoBench({ quick: process.argv.includes("--quick") });
  console.log(argoTable(rows));
}

/** A policy that lets two bench_t domains do everything Argo needs, through the AVC. */
const BENCH_POLICY = `
domains: [bench_t, peer_t]
pairs:
  - frontend: bench_t
    backend: peer_t
    device: blk
    allow: [enable, send, register_single_source]
    limits: { max_ring_bytes: 16777216, max_message_bytes: 1048576 }
`;

export interface PolicyOverheadRow {
  /** ns per 64 B sendv + consume with the policy checked (AVC hits). */
  policyNs: number;
  /** The same with Policy.allowAll(), in the same run. */
  allowAllNs: number;
  /** policyNs / allowAllNs - 1. */
  overhead: number;
}

/** 64 B sendv + consume with a real policy (AVC hit) vs allow-all, side by side. */
export async function runPolicyOverheadBench(opts: { quick: boolean }): Promise<PolicyOverheadRow> {
  const make = (policy: Policy) => {
    const hv = new Hypervisor({ policy });
    const a = hv.createDomain({ name: "tx", label: "bench_t", memoryBytes: 4 << 20 });
    const b = hv.createDomain({ name: "rx", label: "peer_t", memoryBytes: 4 << 20 });
    const ga = new GuestArgo(a);
    const gb = new GuestArgo(b);
    const ring = gb.registerRing(PORT, a.domid, 1 << 20);
    if (typeof ring === "number") throw new Error(`policy bench ring: ${ring}`);
    const src = ga.heap.alloc(4096);
    return { ga, gb, ring, src, dst: b.domid };
  };
  const withPolicy = make(Policy.parse(BENCH_POLICY, "<bench policy>"));
  const allowAll = make(Policy.allowAll());
  const n = 2000;
  let failures = 0;
  // Two copies of the loop so each call site stays monomorphic.
  const runPolicy = () => {
    const x = withPolicy;
    for (let i = 0; i < n; i++) {
      if (x.ga.send(x.dst, PORT, x.src, 64) !== 64) failures++;
      if (x.gb.read(x.ring, x.src, 0) !== 64) failures++;
    }
  };
  const runAllowAll = () => {
    const x = allowAll;
    for (let i = 0; i < n; i++) {
      if (x.ga.send(x.dst, PORT, x.src, 64) !== 64) failures++;
      if (x.gb.read(x.ring, x.src, 0) !== 64) failures++;
    }
  };
  // Interleaved, alternating which goes first, so drift and run order cancel out; the
  // overhead is the median of the paired ratios (a sequential A-then-B run showed
  // +3% to +55% on this noisy machine for identical code).
  const rounds = opts.quick ? 60 : 300;
  const pNs: number[] = [];
  const aNs: number[] = [];
  const ratios: number[] = [];
  const timeIt = (f: () => void) => {
    const t = process.hrtime.bigint();
    f();
    return Number(process.hrtime.bigint() - t) / n;
  };
  for (let w = 0; w < 20; w++) { runPolicy(); runAllowAll(); }
  for (let r = 0; r < rounds; r++) {
    let p: number;
    let a: number;
    if (r & 1) { p = timeIt(runPolicy); a = timeIt(runAllowAll); } else { a = timeIt(runAllowAll); p = timeIt(runPolicy); }
    pNs.push(p);
    aNs.push(a);
    ratios.push(p / a);
  }
  if (failures) throw new Error(`policy bench: ${failures} failures`);
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  const policyNs = median(pNs);
  const allowAllNs = median(aNs);
  return { policyNs, allowAllNs, overhead: median(ratios) - 1 };
}
