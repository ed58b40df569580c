// Virtqueue cycles per second: driver add -> device pop -> device push -> driver reclaim,
// looped inside Wasm (a JS<->Wasm call costs more than a cycle), for split and packed
// rings, chains of 1 and 4 descriptors, direct and through an indirect table.
//   npx tsx bench/virtqueue.ts [--quick]
import { Bench } from "tinybench";
import { GuestHeap } from "../host/guest/heap.ts";
import { allocSplit } from "../host/transport/vring/split-layout.ts";
import { vringEngine } from "../host/transport/vring/engine.ts";
import { allocPacked } from "../host/transport/vring/packed-sides.ts";

export interface VirtqueueRow {
  format: "split" | "packed";
  descriptors: number;
  indirect: boolean;
  /** From the median sample. */
  cyclesPerSec: number;
  /** From the fastest sample: the machine's quiet moments (shared, noisy hosts halve the median at times). */
  bestCyclesPerSec: number;
}

const SIZE = 256;
const BATCH = 100_000;

function setup() {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 64 });
  const heap = new GuestHeap(memory.buffer.byteLength);
  const e = vringEngine(memory);
  const u32 = new Uint32Array(memory.buffer);
  const bufs = heap.alloc(4096);
  // 4 buffers: two readable, two writable (a request/response chain).
  for (let i = 0; i < 4; i++) u32.set([0x20000 + i * 4096, 512, i >= 2 ? 1 : 0], (bufs >>> 2) + 3 * i);
  return { memory, heap, e, bufs, table: heap.alloc(4096), popOut: heap.alloc(8 + 16 * SIZE), reclaimOut: heap.alloc(8 * SIZE) };
}

/** One (format, chain) point: a closure that runs BATCH cycles and says how many completed. */
function cycler(format: "split" | "packed", n: number, indirect: boolean): () => number {
  const s = setup();
  const features = indirect ? 2 : 0;
  const table = indirect ? s.table : 0;
  if (format === "split") {
    const l = allocSplit(s.memory, s.heap, SIZE);
    const state = s.heap.alloc(s.e.vringDriverStateSize(SIZE));
    const devState = s.heap.alloc(4); // fresh heap page: zero
    s.e.vringDriverInit(l.desc, l.avail, l.used, SIZE, state);
    return () => s.e.vringCycleBench(l.desc, l.avail, l.used, SIZE, state, devState, s.bufs, n, s.popOut, s.reclaimOut, features, BATCH, table);
  }
  const l = allocPacked(s.memory, s.heap, SIZE);
  const drv = s.heap.alloc(s.e.packedDriverStateSize(SIZE));
  const dev = s.heap.alloc(s.e.packedDeviceStateSize(SIZE));
  s.e.packedDriverInit(l.desc, l.driverEvent, SIZE, drv, 0, 0);
  s.e.packedDeviceInit(SIZE, dev);
  return () => s.e.packedCycleBench(l.desc, l.driverEvent, l.deviceEvent, SIZE, drv, dev, s.bufs, n, s.popOut, s.reclaimOut, features, BATCH, table);
}

export async function runVirtqueueBench(opts: { quick: boolean }): Promise<VirtqueueRow[]> {
  const rows: VirtqueueRow[] = [];
  for (const format of ["split", "packed"] as const) {
    for (const [n, indirect] of [[1, false], [4, false], [4, true]] as const) {
      const run = cycler(format, n, indirect);
      // Long warm-up: V8 runs Wasm on its baseline compiler (Liftoff) first and tiers up to
      // TurboFan in the background. (Runs on this shared machine are still bimodal at times,
      // ~13 vs ~22 M cycles/s for a whole process, on either CPU: the host, not the code.)
      const bench = new Bench({ time: opts.quick ? 100 : 600, warmupTime: opts.quick ? 400 : 800 });
      bench.add("cycles", () => {
        if (run() !== BATCH) throw new Error(`${format} ring stopped early: a cycle failed`);
      });
      await bench.run();
      const r = bench.tasks[0].result as unknown as { latency?: { p50: number; min: number }; error?: Error };
      if (r.error) throw r.error;
      rows.push({ format, descriptors: n, indirect, cyclesPerSec: BATCH / (r.latency!.p50 / 1000), bestCyclesPerSec: BATCH / (r.latency!.min / 1000) });
    }
  }
  return rows;
}

export function virtqueueTable(rows: VirtqueueRow[]): string {
  const lines = ["| ring | chain | M cycles/s, median | M cycles/s, best sample |", "|---|---|---:|---:|"];
  for (const r of rows) {
    lines.push(`| ${r.format} | ${r.descriptors} descriptor${r.descriptors > 1 ? "s" : ""}${r.indirect ? ", indirect" : ""} | ${(r.cyclesPerSec / 1e6).toFixed(1)} | ${(r.bestCyclesPerSec / 1e6).toFixed(1)} |`);
  }
  const split1 = rows.find((r) => r.format === "split" && r.descriptors === 1);
  if (split1) lines.push("", `Target: >= 20 M cycles/s for 1-descriptor split chains; median ${(split1.cyclesPerSec / 1e6).toFixed(1)} M, best ${(split1.bestCyclesPerSec / 1e6).toFixed(1)} M. A cycle is add, pop, push and reclaim, each validating its arguments.`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(virtqueueTable(await runVirtqueueBench({ quick: process.argv.includes("--quick") })));
}
