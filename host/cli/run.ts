// `virtio-argo run CONFIG`: starts the domains and device pairs a config file describes,
// drives a small workload from each guest's drivers, and reports traffic every interval
// until interrupted (or for --duration). Exit 0 on a clean stop, 2 for a bad config or
// policy file (file:line:col), 1 when no device could start.
import { Vmm, type AttachedDevice } from "../vmm/vmm.ts";
import { loadRunConfig, type RunConfig, type RunDevice } from "../vmm/config.ts";
import { ConfigError, PairDenied, VmmError } from "../errors.ts";
import { PolicyError } from "../mac/index.ts";
import { BlkDriver } from "../devices/blk/driver.ts";
import { ConsoleDriver } from "../devices/console/driver.ts";
import { RngDriver } from "../devices/rng/driver.ts";
import type { Domain } from "../hypervisor/domain.ts";

export interface RunOptions {
  /** Stop after this many milliseconds (default: until SIGINT / SIGTERM). */
  durationMs?: number;
  out?: (line: string) => void;
  err?: (line: string) => void;
}

/** One device's traffic, driven by its guest. */
interface Workload {
  readonly name: string;
  requests: number;
  bytes: number;
  errors: number;
  tick(): Promise<void>;
}

const BLK_CHUNK = 64 * 1024;

async function workloadFor(dev: AttachedDevice, spec: RunDevice): Promise<Workload> {
  const name = `${dev.frontend.name}/${dev.type}#${dev.id}(${dev.transport})`;
  const w: Workload = { name, requests: 0, bytes: 0, errors: 0, tick: async () => {} };
  const count = (ok: boolean, n: number) => {
    w.requests++;
    if (ok) w.bytes += n;
    else w.errors++;
  };
  if (dev.type === "blk") {
    const blk = new BlkDriver(dev.device);
    await blk.init();
    const buf = dev.device.alloc(BLK_CHUNK);
    const chunks = Math.max(1, Math.floor((blk.capacity * 512) / BLK_CHUNK));
    let i = 0;
    w.tick = async () => {
      const sector = ((i++ % chunks) * BLK_CHUNK) / 512;
      if (!spec.readOnly && !blk.readOnly) count((await blk.write(sector, buf, BLK_CHUNK)) === 0, BLK_CHUNK);
      count((await blk.read(sector, buf, BLK_CHUNK)) === 0, BLK_CHUNK);
    };
  } else if (dev.type === "console") {
    const con = new ConsoleDriver(dev.device);
    await con.init();
    let i = 0;
    w.tick = async () => {
      const line = new TextEncoder().encode(`${dev.frontend.name}: tick ${i++}\n`);
      count(await con.write(line), line.length);
    };
  } else if (dev.type === "rng") {
    const rng = new RngDriver(dev.device);
    await rng.init();
    w.tick = async () => {
      const got = await rng.read(64);
      count(got !== null && got.length === 64, 64);
    };
  }
  return w;
}

function diskImage(spec: RunDevice): { path: string } | Uint8Array | undefined {
  if (!spec.disk) return undefined;
  return "path" in spec.disk ? { path: spec.disk.path } : new Uint8Array(spec.disk.sizeBytes);
}

export async function runConfigFile(file: string, opts: RunOptions = {}): Promise<number> {
  const out = opts.out ?? ((l: string) => console.log(l));
  const err = opts.err ?? ((l: string) => console.error(l));
  let cfg: RunConfig;
  let vmm: Vmm;
  try {
    cfg = loadRunConfig(file);
    vmm = new Vmm({ policy: cfg.policy });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof PolicyError) {
      err(`virtio-argo: ${e.message}`);
      return 2;
    }
    throw e;
  }
  out(`virtio-argo run ${file}: ${cfg.domains.length} domains, ${cfg.devices.length} devices, policy ${cfg.policy}`);
  let denials = 0;
  vmm.on((e) => {
    if (e.kind === "denial") {
      denials++;
      out(`  audit: ${e.entry.text}`);
    }
  });
  const domains = new Map<string, Domain>();
  for (const d of cfg.domains) domains.set(d.name, vmm.createDomain(d));

  const workloads: Workload[] = [];
  for (const spec of cfg.devices) {
    try {
      const dev = await vmm.attach({
        type: spec.type, frontend: domains.get(spec.frontend)!, backend: domains.get(spec.backend)!, transport: spec.transport,
        disk: spec.type === "blk" ? { image: diskImage(spec)!, readOnly: spec.readOnly, id: spec.id } : undefined,
        console: spec.type === "console" ? { onOutput: () => {} } : undefined,
      });
      workloads.push(await workloadFor(dev, spec));
      out(`  ${file}:${spec.line}: ${spec.type} ${spec.frontend} -> ${spec.backend} over ${spec.transport}: started as device ${dev.id}`);
    } catch (e) {
      if (!(e instanceof VmmError)) throw e;
      out(`  ${file}:${spec.line}: ${spec.type} ${spec.frontend} -> ${spec.backend} ${e instanceof PairDenied ? "refused" : "failed"}: ${e.describe()}`);
    }
  }
  if (workloads.length === 0) {
    err("virtio-argo: no device could be started");
    vmm.shutdown();
    return 1;
  }

  // Until interrupted: one workload tick per device and one report line per interval.
  let stop = false;
  const onSignal = () => { stop = true; };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const started = Date.now();
  try {
    while (!stop && (opts.durationMs === undefined || Date.now() - started < opts.durationMs)) {
      const tickEnd = Date.now() + cfg.intervalMs;
      while (!stop && Date.now() < tickEnd && (opts.durationMs === undefined || Date.now() - started < opts.durationMs)) {
        await Promise.all(workloads.map((w) => w.tick()));
        await new Promise((r) => setTimeout(r, 1));
      }
      const virqs = vmm.virqCounts().reduce((n, v) => n + v.raised, 0);
      const t = ((Date.now() - started) / 1000).toFixed(1);
      out(`t=${t}s ${workloads.map((w) => `${w.name}: ${w.requests} req ${(w.bytes / 1024).toFixed(0)} KiB ${w.errors} err`).join(" | ")} | VIRQs ${virqs} | denials ${denials}`);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    vmm.shutdown();
  }
  out(`stopped after ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return 0;
}

