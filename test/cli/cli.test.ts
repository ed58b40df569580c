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

  it("usage errors exit 2; --help exits 0", async () => {
    expect((await run(["policy", "explain", "policies/default.yaml"])).code).toBe(2);
    expect((await run(["no-such-command"])).code).toBe(2);
    expect((await run(["--help"])).code).toBe(0);
    expect((await run(["policy", "--help"])).code).toBe(0);
  });
});
