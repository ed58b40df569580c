// docs/api is the API reference generated from the types (typedoc, `npm run docs`); it
// must say what the code says. Regenerated into a temp dir and compared, never written here.
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

describe("docs/api", () => {
  it("is current: `npm run docs` would not change it", () => {
    const out = mkdtempSync(join(tmpdir(), "virtio-argo-docs-"));
    try {
      execFileSync(process.execPath, [join(root, "node_modules/typedoc/bin/typedoc"), "--out", out], { cwd: root, stdio: "pipe" });
      const want = join(root, "docs/api");
      const got = files(out).map((f) => relative(out, f)).sort();
      expect(files(want).map((f) => relative(want, f)).sort(), "run `npm run docs` and commit docs/api").toEqual(got);
      for (const f of got) expect(readFileSync(join(want, f), "utf8"), `${f}: run \`npm run docs\``).toBe(readFileSync(join(out, f), "utf8"));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);
});
