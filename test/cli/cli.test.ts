// Every CLI command through the real entry (host/cli/main.ts): exit codes and first lines.
import { describe, expect, it, vi } from "vitest";
import { main } from "../../host/cli/main.ts";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((...a) => void out.push(a.join(" ")));
  const error = vi.spyOn(console, "error").mockImplementation((...a) => void err.push(a.join(" ")));
  const stdout = vi.spyOn(process.stdout, "write").mockImplementation((s) => (out.push(String(s)), true));
  const stderr = vi.spyOn(process.stderr, "write").mockImplementation((s) => (err.push(String(s)), true));
  try {
    const code = await main(args);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    log.mockRestore();
    error.mockRestore();
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

describe("virtio-argo CLI", () => {
  it("demo exits 0", async () => {
    const r = await run(["demo"]);
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toMatch(/^virtio-argo demo/);
  });

  it("policy check: 0 for a valid file, 2 with file:line:col for a bad one", async () => {
    expect((await run(["policy", "check", "policies/default.yaml"])).code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "cli-"));
    try {
      const bad = join(dir, "bad.yaml");
      writeFileSync(bad, "domains: [a_t]\npairs:\n  - frontend: a_t\n    backend: nope_t\n    device: blk\n    allow: [send]\n");
      const r = await run(["policy", "check", bad]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/bad\.yaml:\d+:\d+/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("policy explain: 0 when allowed, 1 when denied, with the reason", async () => {
    const ok = await run(["policy", "explain", "policies/default.yaml", "--from", "guest_t", "--to", "backend_t", "--device", "blk"]);
    expect(ok.code).toBe(0);
    const no = await run(["policy", "explain", "policies/default.yaml", "--from", "guest2_t", "--to", "backend_t", "--device", "blk"]);
    expect(no.code).toBe(1);
    expect(no.out).toMatch(/DENIED/);
  });

  it("run CONFIG: starts the devices, reports traffic, stops after --duration with 0", async () => {
    const r = await run(["run", "examples/run.yaml", "--duration", "0.3"]);
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toMatch(/^virtio-argo run examples\/run\.yaml: 3 domains, 5 devices/);
    expect(r.out).toMatch(/examples\/run\.yaml:17: blk guest-b -> driver-domain refused/);
    expect(r.out).toMatch(/t=0\.\ds guest-a\/blk#1\(argo\): [1-9]\d* req/);
    expect(r.out).toMatch(/stopped after/);
  });

  it("run CONFIG: a bad config gives file:line:col and exit 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-run-"));
    try {
      const cases: Array<[string, RegExp]> = [
        ["policy: p.yaml\ndomains:\n  - { name: a, label: a_t }\ndevices:\n  - { type: rng, frontend: a, backend: nobody }\n", /bad\.yaml:5:\d+: unknown domain "nobody"/],
        ["policy: p.yaml\ndomains:\n  - { name: a, label: a_t, colour: red }\ndevices: []\n", /bad\.yaml:3:\d+: unknown key "colour"/],
        ["policy: p.yaml\ndomains: [\n", /bad\.yaml:\d+:\d+: YAML syntax/],
        ["policy: p.yaml\ndomains:\n  - { name: a, label: a_t }\ndevices:\n  - { type: blk, frontend: a, backend: a }\n", /bad\.yaml:5:\d+: a blk device needs disk/],
        ["policy: p.yaml\ndomains:\n  - { name: a, label: a_t }\ndevices:\n  - { type: rng, frontend: a, backend: a, transport: pigeon }\n", /bad\.yaml:5:\d+: .*must be one of: argo, grant, foreign, bounce/],
      ];
      for (const [text, want] of cases) {
        const bad = join(dir, "bad.yaml");
        writeFileSync(bad, text);
        const r = await run(["run", bad, "--duration", "0"]);
        expect(r.code, text).toBe(2);
        expect(r.err).toMatch(want);
      }
      expect((await run(["run", join(dir, "missing.yaml")])).code).toBe(2);
      // The config is fine but its policy file is not: the policy's own file:line.
      writeFileSync(join(dir, "p.yaml"), "domains: [a_t]\npairs:\n  - { frontend: a_t, backend: b_t, device: rng, allow: [send] }\n");
      writeFileSync(join(dir, "ok.yaml"), "policy: p.yaml\ndomains:\n  - { name: a, label: a_t }\ndevices: []\n");
      const r = await run(["run", join(dir, "ok.yaml"), "--duration", "0"]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/p\.yaml:3:\d+/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("usage errors exit 2; --help exits 0", async () => {
    expect((await run(["policy", "explain", "policies/default.yaml"])).code).toBe(2);
    expect((await run(["no-such-command"])).code).toBe(2);
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    // The top-level help names every command, the policy subcommands included.
    for (const name of ["demo", "bench", "run", "linux", "policy check", "policy explain"]) expect(help.out, name).toContain(name);
    expect((await run(["policy", "--help"])).code).toBe(0);
    for (const cmd of ["demo", "bench", "run", "linux", "policy check", "policy explain"]) {
      const r = await run([...cmd.split(" "), "--help"]);
      expect(r.code, cmd).toBe(0);
      expect(r.out.split("\n")[0], cmd).toMatch(/^Usage: virtio-argo /);
    }
    expect((await run(["run", "examples/run.yaml", "--duration", "soon"])).code).toBe(2);
  });
});
