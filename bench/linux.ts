// The Linux guest's own dd, O_DIRECT, over VirtIO-Argo and over the foreign baseline in
// one run: one guest with two disks, /dev/vda over argo and /dev/vdb over foreign, the
// same device model and image size behind both, measured alternately (so warm-up and
// the shared machine's noise land on both), plus the boot time to /init.
//   npx tsx bench/linux.ts [--quick]
import { Hypervisor } from "../host/hypervisor/hypervisor.ts";
import { Policy } from "../host/mac/index.ts";
import { Toolstack } from "../host/transport/bus/toolstack.ts";
import { LinuxGuest } from "../host/linux/guest.ts";
import { AssetsUnavailable, linuxAssets } from "../host/linux/boot/assets.ts";
import type { ReportSection } from "./report.ts";

const MIB = 1 << 20;
/** Each disk: room for the largest dd below. */
const DISK = 192 * MIB;
const POLICY = `
version: 1
domains: [guest_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [enable, send, register_single_source] }
`;

export interface LinuxDdPoint {
  op: "read" | "write";
  bs: number;
  count: number;
  /** Median seconds per run over the rounds, by transport. */
  argoS: number;
  foreignS: number;
}

export interface LinuxBench {
  bootMs: number;
  rounds: number;
  points: LinuxDdPoint[];
  kernel: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs the guest; null (with the reason logged) when the Linux assets cannot be had. */
export async function runLinuxBench(opts: { quick: boolean; log?: (s: string) => void }): Promise<LinuxBench | null> {
  const log = opts.log ?? (() => {});
  let assets;
  try {
    assets = linuxAssets();
  } catch (e) {
    if (e instanceof AssetsUnavailable) {
      log(`Linux guest bench skipped: ${e.message}`);
      return null;
    }
    throw e;
  }
  const rounds = opts.quick ? 2 : 5;
  const cases: Array<Omit<LinuxDdPoint, "argoS" | "foreignS">> = [
    // Enough bytes that the guest clock's 10 ms ticks stay under ~3% of a run on a quiet machine.
    { op: "read", bs: MIB, count: opts.quick ? 64 : 192 },
    { op: "write", bs: MIB, count: opts.quick ? 64 : 192 },
    { op: "read", bs: 4096, count: opts.quick ? 500 : 2000 },
    { op: "write", bs: 4096, count: opts.quick ? 500 : 2000 },
  ];
  // Each line: "<case> <dev> <seconds>"; the guest clock is read from /proc/uptime (10 ms).
  const lines: string[] = ["t() { cut -d' ' -f1 /proc/uptime; }"];
  for (let r = 0; r < rounds; r++) {
    cases.forEach((c, i) => {
      for (const dev of r % 2 ? ["vdb", "vda"] : ["vda", "vdb"]) {
        const dd = c.op === "read"
          ? `dd if=/dev/${dev} of=/dev/null bs=${c.bs} count=${c.count} iflag=direct`
          : `dd if=/dev/zero of=/dev/${dev} bs=${c.bs} count=${c.count} oflag=direct`;
        lines.push(`a=$(t); ${dd} 2>/dev/null; b=$(t); echo "dd ${i} ${dev} $a $b"`);
      }
    });
  }
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "bench-linux.yaml") });
  const ts = new Toolstack(hv);
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 160 * MIB });
  log(`Linux guest dd over argo and foreign (${rounds} rounds) ...`);
  const g = await LinuxGuest.start(hv, ts, {
    name: "linux-bench", label: "guest_t", assets, run: lines.join("\n"),
    devices: [
      { type: "blk", backend, transport: "argo", options: { blk: { image: new Uint8Array(DISK) } } },
      { type: "blk", backend, transport: "foreign", options: { blk: { image: new Uint8Array(DISK) } } },
    ],
  });
  const r = await g.result(30 * 60_000);
  await g.stop();
  if (r.status !== 0) throw new Error(`bench script failed (${r.status}):\n${r.output.slice(-2000)}`);
  const samples = new Map<string, number[]>();
  for (const m of r.output.matchAll(/^dd (\d+) (vd[ab]) ([\d.]+) ([\d.]+)$/gm)) {
    const key = `${m[1]} ${m[2]}`;
    if (!samples.has(key)) samples.set(key, []);
    samples.get(key)!.push(Number(m[4]) - Number(m[3]));
  }
  const points = cases.map((c, i) => ({
    ...c, argoS: median(samples.get(`${i} vda`) ?? [NaN]), foreignS: median(samples.get(`${i} vdb`) ?? [NaN]),
  }));
  return { bootMs: r.bootMs, rounds, points, kernel: assets.kernelVersion };
}

const rate = (p: LinuxDdPoint, s: number) => (p.bs >= MIB ? `${((p.bs * p.count) / MIB / s).toFixed(1)} MiB/s` : `${Math.round(p.count / s)} IOPS`);

export function linuxTable(b: LinuxBench): string {
  const rows = b.points.map((p) => {
    const label = `${p.op} ${p.bs >= MIB ? "1 MiB" : "4 KiB"} x ${p.count}`;
    return `| ${label} | ${rate(p, p.argoS)} | ${rate(p, p.foreignS)} | ${(p.foreignS / p.argoS).toFixed(2)}x |`;
  });
  return [
    `Kernel ${b.kernel} in v86; /init ready ${b.bootMs} ms after start. Median of ${b.rounds} rounds, guest clock (10 ms).`,
    "Per request argo moves the data 3 times (model <-> backend buffer, hypervisor copy, frontend copy into Linux's buffer), foreign once.",
    "",
    "| guest dd, O_DIRECT | argo | foreign | argo / foreign (target >= 0.8x) |",
    "|---|---:|---:|---:|",
    ...rows,
  ].join("\n");
}

/** The report's optional `linux` section (bench/report.ts). */
export function linuxSection(b: LinuxBench): ReportSection {
  return {
    title: "Linux guest: its own dd over argo and foreign",
    note: `Debian ${b.kernel} in v86, virtio_blk over virtio-mmio; one guest, two disks, median of ${b.rounds} rounds.`,
    metrics: [{ name: "boot to /init", value: b.bootMs, unit: "ms" }],
    table: {
      columns: ["guest dd (O_DIRECT)", "argo", "foreign", "argo / foreign"],
      rows: b.points.map((p) => [`${p.op} ${p.bs >= MIB ? "1 MiB" : "4 KiB"} x ${p.count}`, rate(p, p.argoS), rate(p, p.foreignS), Number((p.foreignS / p.argoS).toFixed(2))]),
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runLinuxBench({ quick: process.argv.includes("--quick"), log: (s) => process.stderr.write(s + "\n") }).then((b) => {
    if (b) console.log(linuxTable(b));
    process.exit(0);
  });
}
