// Builds and runs a C oracle (test/oracle/<name>.c) against the system's real headers
// (Debian libxen-dev for <xen/argo.h>, linux-libc-dev for <linux/virtio_ring.h>).
// Everything is built in a fresh temporary directory: tests never write into the repo.
// A missing compiler or header is a failure with the package to install, never a skip.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** Compiles test/oracle/<name>.c, runs it with `args`, returns its stdout. */
export function runOracle(name: string, args: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), `oracle-${name}-`));
  try {
    const exe = join(dir, name);
    try {
      execFileSync("cc", ["-std=c11", "-O1", "-Wall", "-Werror", "-o", exe, join(here, `${name}.c`)], {
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(
        `cannot build oracle ${name}.c (install: apt-get install gcc libc6-dev libxen-dev linux-libc-dev): ` +
          (err.stderr?.toString() || err.message),
      );
    }
    return execFileSync(exe, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Parses `key value` lines (value decimal or 0x hex) into a map. */
export function parseKeyValues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+(\S+)$/.exec(line.trim());
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}
