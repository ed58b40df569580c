// Copy versus share: the same unmodified device models and guest drivers over argo and the
// three sharing baselines, across request sizes, with the memcpy limit measured in the same
// run. Statistics come from tinybench (warm-up, many samples, median and MAD).
//   npx tsx bench/share.ts [--quick]
import { Bench } from "tinybench";
import { openDevice, TRANSPORTS, type TransportName } from "./transports.ts";
import { BlkDriver, BlkModel, RngDriver, RngModel } from "../host/devices/index.ts";
import type { Progress } from "./progress.ts";

export interface ShareRow {
  transport: TransportName;
  /** blk read/write (512 B and up, whole sectors) or rng read (64 B: the smallest message). */
  device: "blk" | "rng";
  op: "read" | "write";
  size: number;
  /** One request at a time: median and median absolute deviation, microseconds. */
  qd1: { p50Us: number; madUs: number; p99Us: number };
  /** 32 requests in flight. */
  qd32: { requestsPerSec: number; mbPerSec: number };
  /** Process CPU time (user + system) per byte moved at QD32, nanoseconds. */
  cpuNsPerByte: number;
  /** Guest pages the backend could read by the end of the run (0 for argo). */
  exposedPages: number;
}

export interface MemcpyRow {
  size: number;
  /** `TypedArray.set` between two WebAssembly memories: the ceiling any transport can reach. */
  mbPerSec: number;
}

export interface ShareResults {
  transports: readonly TransportName[];
  sizes: number[];
  rows: ShareRow[];
  memcpy: MemcpyRow[];
  /** The targets, as ratios from this run. */
  targets: { argoVsForeign4k: number; argoVsBounce4k: number };
}

const QD = 32;
const DISK = 64 << 20;

function sizesFor(quick: boolean): number[] {
  return quick ? [64, 512, 4096, 65536, 1 << 20] : [64, 512, 4096, 16384, 65536, 262144, 1 << 20];
}

function stats(bench: Bench, name: string) {
  const r = bench.tasks.find((t) => t.name === name)?.result as unknown as { latency?: { p50: number; mad: number; p99: number } } | undefined;
  if (!r?.latency) throw new Error(`benchmark task ${name} produced no result`);
  return r.latency;
}

/** Runs one (transport, device, op, size) point: QD1 latency and QD32 throughput. */
async function measure(one: (i: number) => Promise<boolean>, size: number, quick: boolean) {
  let i = 0;
  let cpuMicros = 0;
  let bytes = 0;
  const bench = new Bench({ time: quick ? 60 : 400, warmupTime: quick ? 20 : 100 });
  bench
    .add("qd1", async () => {
      if (!(await one(i++))) throw new Error("request failed");
    })
    .add("qd32", async () => {
      const cpu = process.cpuUsage();
      const ps: Promise<boolean>[] = [];
      for (let k = 0; k < QD; k++) ps.push(one(i++));
      for (const ok of await Promise.all(ps)) if (!ok) throw new Error("request failed");
      const d = process.cpuUsage(cpu);
      cpuMicros += d.user + d.system;
      bytes += QD * size;
    });
  await bench.run();
  for (const t of bench.tasks) if (t.result && "error" in t.result && t.result.error) throw t.result.error as Error;
  const q1 = stats(bench, "qd1");
  const q32 = stats(bench, "qd32");
  const requestsPerSec = (QD / q32.p50) * 1000;
  return {
    qd1: { p50Us: q1.p50 * 1000, madUs: q1.mad * 1000, p99Us: q1.p99 * 1000 },
    qd32: { requestsPerSec, mbPerSec: (requestsPerSec * size) / 1e6 },
    cpuNsPerByte: (cpuMicros * 1000) / bytes,
  };
}

/** The memcpy limit: `set` between two distinct WebAssembly memories, same sizes, rotating offsets. */
async function memcpyLimit(sizes: number[], quick: boolean): Promise<MemcpyRow[]> {
  const a = new Uint8Array(new WebAssembly.Memory({ initial: 512, maximum: 512 }).buffer).fill(0x33);
  const b = new Uint8Array(new WebAssembly.Memory({ initial: 512, maximum: 512 }).buffer).fill(0x44);
  const rows: MemcpyRow[] = [];
  for (const size of sizes) {
    const slots = Math.max(1, Math.floor((16 << 20) / size));
    let i = 0;
    const bench = new Bench({ time: quick ? 50 : 300, warmupTime: quick ? 10 : 50 });
    bench.add("set", () => {
      const at = (i++ % slots) * size;
      b.set(a.subarray(at, at + size), at);
    });
    await bench.run();
    rows.push({ size, mbPerSec: size / (stats(bench, "set").p50 / 1000) / 1e6 });
  }
  return rows;
}

export async function runShareBench(opts: { quick: boolean; progress?: Progress }): Promise<ShareResults> {
  const sizes = sizesFor(opts.quick);
  const rows: ShareRow[] = [];
  const points = TRANSPORTS.length * (1 + 2 * sizes.filter((s) => s >= 512).length);
  opts.progress?.start("copy vs share", points + 1);
  // Every transport is set up first and the points are interleaved (size, op, then each
  // transport in turn), so JIT warm-up and a noisy neighbour do not favour whichever
  // transport would otherwise run last.
  const setups = [];
  for (const transport of TRANSPORTS) {
    // Pages touched before measuring: a fresh array's first writes fault its pages in, and
    // that cost would land on whichever transport happened to write there first.
    const blkDev = await openDevice(transport, "blk", new BlkModel({ image: new Uint8Array(DISK).fill(0x11) }));
    const blk = new BlkDriver(blkDev.dev, { queueSize: 128 });
    await blk.init();
    const rngDev = await openDevice(transport, "rng", new RngModel());
    const rng = new RngDriver(rngDev.dev);
    await rng.init();
    const buf = blkDev.dev.alloc(QD * sizes[sizes.length - 1]);
    new Uint8Array(blkDev.dev.memory.buffer).fill(0x22, buf, buf + QD * sizes[sizes.length - 1]);
    setups.push({ transport, blkDev, blk, rngDev, rng, buf });
  }
  for (const size of sizes) {
    for (const op of size < 512 ? (["read"] as const) : (["read", "write"] as const)) {
      for (const { transport, blkDev, blk, rngDev, rng, buf } of setups) {
        if (size < 512) {
          // Below a sector: rng, whose request is one 64 B writable buffer.
          const m = await measure(async () => (await rng.read(size))?.length === size, size, opts.quick);
          rows.push({ transport, device: "rng", op, size, ...m, exposedPages: rngDev.exposedPages() });
          opts.progress?.tick(`${transport} rng ${size} B`);
          continue;
        }
        const sectors = DISK / 512;
        const one = async (i: number) => {
          const sector = ((i * size) / 512) % sectors;
          const gpa = buf + (i % QD) * size;
          return (op === "read" ? await blk.read(sector, gpa, size) : await blk.write(sector, gpa, size)) === 0;
        };
        const m = await measure(one, size, opts.quick);
        rows.push({ transport, device: "blk", op, size, ...m, exposedPages: blkDev.exposedPages() });
        opts.progress?.tick(`${transport} blk ${op} ${size} B`);
      }
    }
  }
  const memcpy = await memcpyLimit(sizes, opts.quick);
  opts.progress?.tick("memcpy limit");
  opts.progress?.stop();
  const at = (t: TransportName) =>
    rows.filter((r) => r.transport === t && r.device === "blk" && r.size === 4096).reduce((n, r) => n + r.qd32.requestsPerSec, 0);
  return {
    transports: TRANSPORTS, sizes, rows, memcpy,
    targets: { argoVsForeign4k: at("argo") / at("foreign"), argoVsBounce4k: at("argo") / at("bounce") },
  };
}

const human = (n: number) => (n >= 1 << 20 ? `${n / (1 << 20)} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`);

export function shareTable(r: ShareResults): string {
  const lines = [
    "| request | transport | QD1 p50 (us) | QD1 MAD (us) | QD32 req/s | QD32 MB/s | CPU ns/byte | vs argo | exposed pages |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const size of r.sizes) {
    for (const op of ["read", "write"] as const) {
      const group = r.rows.filter((x) => x.size === size && x.op === op);
      if (!group.length) continue;
      const argo = group.find((x) => x.transport === "argo");
      for (const x of group) {
        const vs = argo && x !== argo ? `${(argo.qd32.requestsPerSec / x.qd32.requestsPerSec).toFixed(2)}x` : "";
        lines.push(
          `| ${x.device} ${op} ${human(size)} | ${x.transport} | ${x.qd1.p50Us.toFixed(1)} | ${x.qd1.madUs.toFixed(1)} | ${x.qd32.requestsPerSec.toFixed(0)} | ` +
            `${x.qd32.mbPerSec.toFixed(0)} | ${x.cpuNsPerByte.toFixed(2)} | ${vs} | ${x.exposedPages} |`,
        );
      }
    }
  }
  lines.push("", "memcpy limit (`TypedArray.set` between two WebAssembly memories, same run): " +
    r.memcpy.map((m) => `${human(m.size)} ${m.mbPerSec.toFixed(0)} MB/s`).join(", "));
  lines.push(
    "",
    `Targets (blk 4 KiB, QD32 requests/s, read and write summed): argo / foreign = ${r.targets.argoVsForeign4k.toFixed(2)}x (target >= 0.6x), ` +
      `argo / bounce = ${r.targets.argoVsBounce4k.toFixed(2)}x (target > 1x).`,
    "`vs argo` is argo's QD32 requests/s over that transport's: above 1 argo is faster.",
  );
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(shareTable(await runShareBench({ quick: process.argv.includes("--quick") })));
}
