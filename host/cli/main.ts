// The `virtio-argo` command. Exit code 0 only on success; errors are one clear line
// (policy errors carry file:line:col); usage errors exit 2.
import { Command, CommanderError } from "commander";
import { runDemo } from "./demo.ts";
import { policyCheck, policyExplain } from "./policy.ts";
import { runConfigFile } from "./run.ts";

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command()
    .name("virtio-argo")
    .description("VirtIO over Argo: devices across domains with no shared memory, every copy checked by a MAC policy")
    .exitOverride()
    .showHelpAfterError();

  program
    .command("demo")
    .description("two domains exchange messages over Argo under the default policy (what `npm start` runs)")
    .option("--policy <file>", "policy file to use instead of policies/default.yaml")
    .action(async (opts: { policy?: string }) => {
      code = await runDemo({ policyFile: opts.policy });
    });

  program
    .command("bench")
    .description("run the benchmarks (the same as `npm run bench`)")
    .option("--quick", "short run (under a minute)")
    .option("--json <file>", "write results as JSON")
    .option("--out <dir>", "write the Markdown and HTML report into this directory")
    .option("--no-linux", "leave out the Linux guest's dd (it boots a kernel in v86)")
    .action(async (opts: { quick?: boolean; json?: string; out?: string; linux?: boolean }) => {
      const { runBench } = await import("../../bench/main.ts");
      code = await runBench({ quick: !!opts.quick, linux: opts.linux, json: opts.json, out: opts.out });
    });

  program
    .command("run")
    .description("start the domains and devices a config file describes and report their traffic until interrupted")
    .argument("<config>", "run config (YAML; see examples/run.yaml)")
    .option("--duration <seconds>", "stop after this many seconds instead of waiting for Ctrl-C")
    .action(async (config: string, opts: { duration?: string }) => {
      const seconds = opts.duration === undefined ? undefined : Number(opts.duration);
      if (seconds !== undefined && !(seconds >= 0)) {
        console.error(`virtio-argo: --duration must be a number of seconds, not "${opts.duration}"`);
        code = 2;
        return;
      }
      code = await runConfigFile(config, { durationMs: seconds === undefined ? undefined : seconds * 1000 });
    });

  program
    .command("linux")
    .description("boot Debian's i386 kernel in v86, its own virtio drivers served over Argo (serial console here; Ctrl-A x quits)")
    .option("--disk <file>", "disk image for /dev/vda (default: 64 MiB of zeros in memory)")
    .option("--ro", "make the disk read-only (the policy may also require it)")
    .option("--transport <name>", "argo (no shared memory) or foreign (the backend maps all of the guest)", "argo")
    .option("--bus <name>", "mmio (virtio-mmio, enumerated by ACPI) or pci (modern virtio-pci)", "mmio")
    .option("--policy <file>", "policy file instead of policies/linux.yaml")
    .option("--run <command>", "run a shell command in the guest, print its output, exit with its status")
    .option("--fetch", "only fetch the kernel, busybox and SeaBIOS from Debian's archive into the cache")
    .option("--verbose", "show the boot console on stderr")
    .action(async (opts: { disk?: string; ro?: boolean; transport?: string; bus?: string; policy?: string; run?: string; fetch?: boolean; verbose?: boolean }) => {
      const { runLinux } = await import("./linux.ts");
      code = await runLinux(opts);
    });

  const policy = program
    .command("policy")
    .description("MAC policy files: `policy check FILE` (file:line:col of the first error), `policy explain FILE --from A --to B --device T`");
  policy
    .command("check")
    .description("validate a policy file: exit 0, or print the first error as file:line:col")
    .argument("<file>", "policy file (YAML, or Flask TE rules with .te)")
    .action((file: string) => {
      const r = policyCheck(file);
      for (const line of r.out) (r.code === 0 ? console.log : console.error)(line);
      code = r.code;
    });
  policy
    .command("explain")
    .description("say which rule allows a device pair, or why nothing does")
    .argument("<file>", "policy file")
    .requiredOption("--from <label>", "frontend domain label")
    .requiredOption("--to <label>", "backend domain label")
    .requiredOption("--device <type>", "virtio device type: blk, net, console, vsock, rng")
    .action((file: string, opts: { from: string; to: string; device: string }) => {
      const r = policyExplain(file, opts.from, opts.to, opts.device);
      for (const line of r.out) console.log(line);
      code = r.code;
    });

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exitCode 0; usage errors are 2.
      return e.exitCode === 0 ? 0 : 2;
    }
    console.error(`virtio-argo: ${(e as Error).message}`);
    return 1;
  }
  return code;
}
