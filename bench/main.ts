// `npm run bench` / `virtio-argo bench`: every benchmark in one process, so that each
// result sits beside its reference (memcpy, allow-all policy) measured in the same run.
//   npm run bench -- [--quick] [--json FILE] [--out DIR]
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { cpus } from "node:os";
import { runArgoBench, argoTable, runPolicyOverheadBench } from "./argo.ts";
import { runPolicyBench, policyTable } from "./policy.ts";
import { runShareBench, shareTable } from "./share.ts";
import { runVirtqueueBench, virtqueueTable } from "./virtqueue.ts";
import { runNetBench, netTable } from "./net.ts";
import { runLinuxBench, linuxSection, linuxTable } from "./linux.ts";
import { htmlReport } from "./report.ts";
import { progress } from "./progress.ts";

export interface BenchOptions {
  quick: boolean;
  /** Boot the Linux guest for its dd (default true; skipped with a line when its assets cannot be had). */
  linux?: boolean;
  json?: string;
  out?: string;
}

export async function runBench(opts: BenchOptions): Promise<number> {
  const started = new Date().toISOString();
  const sections: string[] = [];
  const results: Record<string, unknown> = {};
  const log = (s: string) => process.stderr.write(`${s}\n`);

  log("argo one-way throughput vs memcpy ...");
  const argo = await runArgoBench({ quick: opts.quick });
  results.argo = argo;
  sections.push("## Argo one-way (sendv + guest consume) vs memcpy\n\n" + argoTable(argo));

  log("MAC overhead: 64 B sendv with the policy checked (AVC hit) vs allow-all ...");
  const pol = await runPolicyOverheadBench({ quick: opts.quick });
  results.policyOverhead = pol;
  sections.push(
    "## MAC policy overhead (64 B sendv + consume)\n\n" +
      `policy checked: ${pol.policyNs.toFixed(0)} ns, allow-all: ${pol.allowAllNs.toFixed(0)} ns, overhead ${(pol.overhead * 100).toFixed(1)}% (target <= 3%)`,
  );

  log("copy versus share: blk and rng over argo, grant, foreign and bounce ...");
  const share = await runShareBench({ quick: opts.quick, progress: progress() });
  results.share = share;
  sections.push(
    "## Copy versus share: the same devices over four transports\n\n" +
      "Per request, argo moves the data 3 times (device model <-> backend buffer, hypervisor copy between domains, " +
      "receiver's copy out of its ring), bounce twice (guest buffer <-> bounce slot, model <-> slot), grant and foreign " +
      "once (the model reads and writes guest pages in place).\n\n" + shareTable(share),
  );

  log("net frames guest to guest and vsock to a VMM listener, over the four transports ...");
  const net = await runNetBench({ quick: opts.quick, progress: progress() });
  results.net = net;
  sections.push("## net and vsock: guest to guest through the backend's switch, guest to VMM\n\n" + netTable(net));

  if (opts.linux !== false) {
    const lx = await runLinuxBench({ quick: opts.quick, log });
    if (lx) {
      results.linux = linuxSection(lx);
      results.linuxRaw = lx;
      sections.push("## Linux guest: its own dd over argo and foreign\n\n" + linuxTable(lx));
    }
  }

  log("virtqueue cycles inside Wasm (split and packed) ...");
  const vq = await runVirtqueueBench({ quick: opts.quick });
  results.virtqueue = vq;
  sections.push("## Virtqueues: add -> pop -> push -> reclaim, in Wasm\n\n" + virtqueueTable(vq));

  log("MAC hook micro-benchmark ...");
  const micro = runPolicyBench({ quick: opts.quick });
  results.policyMicro = micro;
  sections.push("## MAC hook cost per check\n\n" + policyTable(micro));

  const doc = {
    schema: "virtio-argo-bench/2",
    started,
    quick: opts.quick,
    machine: { node: process.version, cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length },
    results,
  };
  const md = `# virtio-argo benchmark (${opts.quick ? "quick" : "full"}, ${started})\n\n${sections.join("\n\n")}\n`;
  console.log(md);
  if (opts.json) {
    mkdirSync(dirname(opts.json), { recursive: true });
    writeFileSync(opts.json, JSON.stringify(doc, null, 2));
  }
  if (opts.out) {
    mkdirSync(opts.out, { recursive: true });
    writeFileSync(join(opts.out, "bench.md"), md);
    writeFileSync(join(opts.out, "bench.json"), JSON.stringify(doc, null, 2));
    writeFileSync(join(opts.out, "bench.html"), htmlReport(`virtio-argo benchmark (${started})`, md, share, doc));
    log(`report: ${join(opts.out, "bench.html")}`);
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const val = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  runBench({ quick: args.includes("--quick"), linux: !args.includes("--no-linux"), json: val("--json"), out: val("--out") }).then((c) => process.exit(c));
}
