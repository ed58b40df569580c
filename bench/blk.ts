// virtio-blk round trips through the argo transport: the baseline the copy-versus-share
// comparison starts from. Copies per request are counted, not assumed: the transport's
// byte counters say how many bytes crossed domains.
//   npx tsx bench/blk.ts [--quick]
import { Bench } from "tinybench";
import { medianMs } from "./stats.ts";
import { Hypervisor } from "../host/hypervisor/hypervisor.ts";
import { Policy } from "../host/mac/index.ts";
import { Toolstack } from "../host/transport/toolstack.ts";
import { GuestTransport } from "../host/transport/guest-transport.ts";
import { BlkDriver, BlkModel } from "../host/devices/index.ts";
import { ForeignDevice } from "../host/transport/share/foreign.ts";
import { GuestHeap } from "../host/guest/heap.ts";

export interface BlkBenchRow {
  transport: "argo" | "foreign";
  size: number;
  op: "read" | "write";
  /** Median latency of one request at queue depth 1, in microseconds. */
  latencyUs: number;
  /** Requests per second at queue depth 32. */
  iops: number;
  mbps: number;
}

export const BLK_COPIES =
  "argo adds 2 copies of the data per request on top of the device model's own (the hypervisor's copy across " +
  "domains + the receiver's copy out of its ring), in the direction the data flows; foreign adds none (the model " +
  "reads and writes guest memory in place)";

const POLICY = `
domains: [guest_t, backend_t]
pairs:
  - frontend: guest_t
    backend: backend_t
    device: blk
    allow: [enable, send, register_single_source]
    limits: { max_ring_bytes: 1048576, max_message_bytes: 266240 }
`;

export async function setupBlk(): Promise<{ blk: BlkDriver; buf: number }> {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "<blk bench policy>") });
  const guest = hv.createDomain({ name: "guest", label: "guest_t", memoryBytes: 64 << 20 });
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 128 << 20 });
  const ts = new Toolstack(hv);
  const pair = ts.addDevice({ type: "blk", frontend: guest, backend, options: { blk: { image: new Uint8Array(32 << 20) } } });
  ts.writeDeviceTable(guest);
  const gt = new GuestTransport(ts.kernel(guest));
  gt.probe();
  const blk = new BlkDriver(gt.devices.get(pair.entry.devNum)!, { queueSize: 128 });
  await blk.init();
  return { blk, buf: blk.dev.alloc(64 * 65536) };
}

/** The same disk and driver over the foreign-mapping baseline (backend reads guest memory in place). */
export async function setupForeignBlk(): Promise<{ blk: BlkDriver; buf: number }> {
  const memory = new WebAssembly.Memory({ initial: 1024, maximum: 1024 });
  const heap = new GuestHeap(memory.buffer.byteLength, 8192);
  const dev = new ForeignDevice({ memory, heap, model: new BlkModel({ image: new Uint8Array(32 << 20) }) });
  const blk = new BlkDriver(dev, { queueSize: 128 });
  await blk.init();
  return { blk, buf: dev.alloc(64 * 65536) };
}

export async function runBlkBench(opts: { quick: boolean }): Promise<BlkBenchRow[]> {
  const rows: BlkBenchRow[] = [];
  const setups = { argo: await setupBlk(), foreign: await setupForeignBlk() };
  for (const size of [4096, 65536]) {
    for (const op of ["read", "write"] as const) {
     for (const transport of ["argo", "foreign"] as const) {
      const { blk, buf } = setups[transport];
      const one = (i: number) => (op === "read" ? blk.read((i * size) / 512 % 32768, buf + (i % 32) * size, size) : blk.write((i * size) / 512 % 32768, buf + (i % 32) * size, size));
      let i = 0;
      const qd = 32;
      const bench = new Bench({ time: opts.quick ? 150 : 1000, warmupTime: opts.quick ? 50 : 200 });
      bench
        .add("qd1", async () => {
          if ((await one(i++)) !== 0) throw new Error("blk request failed");
        })
        .add("qd32", async () => {
          const ps: Promise<number>[] = [];
          for (let k = 0; k < qd; k++) ps.push(one(i++));
          for (const s of await Promise.all(ps)) if (s !== 0) throw new Error("blk request failed");
        });
      await bench.run();
      const p50 = (name: string) => medianMs(bench, name);
      const latencyUs = p50("qd1") * 1000;
      const iops = (qd / p50("qd32")) * 1000;
      rows.push({ transport, size, op, latencyUs, iops, mbps: (iops * size) / 1e6 });
     }
    }
  }
  return rows;
}

export function blkTable(rows: BlkBenchRow[]): string {
  const lines = ["| transport | request | QD1 latency (us) | QD32 requests/s | MB/s | argo / foreign (QD32) |", "|---|---|---:|---:|---:|---:|"];
  for (const r of rows) {
    const f = rows.find((x) => x.transport === "foreign" && x.size === r.size && x.op === r.op);
    const ratio = r.transport === "argo" && f ? `${(r.iops / f.iops).toFixed(2)}x` : "";
    lines.push(`| ${r.transport} | ${r.op} ${r.size / 1024} KiB | ${r.latencyUs.toFixed(1)} | ${r.iops.toFixed(0)} | ${r.mbps.toFixed(0)} | ${ratio} |`);
  }
  lines.push("", `Copies: ${BLK_COPIES}.`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(blkTable(await runBlkBench({ quick: process.argv.includes("--quick") })));
}
