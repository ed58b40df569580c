// The C oracles (test/oracle/<name>.c) print what the real headers say: Xen's public/argo.h
// (Debian libxen-dev) and Linux's linux/virtio_ring.h (linux-libc-dev). Their outputs are
// committed as test/oracle/expected/<name>.txt, which the layout tests read, so `npm test`
// needs no C compiler. Where a compiler and the headers exist (CI installs them), the
// oracles are also built and run and must print exactly the committed files
// (test/oracle/oracles.test.ts); `npm run oracles` regenerates them.
// Everything is built in a fresh temporary directory: nothing is written into the repo here.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The command that rewrites test/oracle/expected/ from the oracles. */
export const REGENERATE = "npm run oracles";

/** What to install where an oracle cannot be built (Debian package names). */
export const INSTALL = "apt-get install gcc libc6-dev libxen-dev linux-libc-dev";

/** The C compiler: `$CC` as make has it, else `cc`. */
const compiler = () => process.env.CC || "cc";

/** Every oracle: the basenames of test/oracle/*.c. */
export function oracleNames(): string[] {
  return readdirSync(here).filter((f) => f.endsWith(".c")).map((f) => f.slice(0, -2)).sort();
}

/** test/oracle/expected: one <name>.txt per oracle. */
export const EXPECTED_DIR = join(here, "expected");

/** test/oracle/expected/<name>.txt */
export function expectedPath(name: string): string {
  return join(EXPECTED_DIR, `${name}.txt`);
}

/** The file `npm run oracles` writes for an oracle's stdout: one header line, then the output verbatim. */
export function expectedFile(name: string, stdout: string): string {
  return `# generated from test/oracle/${name}.c by \`${REGENERATE}\`; do not edit\n${stdout}`;
}

/** The committed output of oracle `name` (what the C program printed when last regenerated). */
export function oracleOutput(name: string): string {
  const text = readFileSync(expectedPath(name), "utf8");
  const header = expectedFile(name, "");
  if (!text.startsWith(header)) throw new Error(`${expectedPath(name)} is not generated: run \`${REGENERATE}\``);
  return text.slice(header.length);
}

/**
 * Why oracle `name` cannot be built on this machine (no compiler, or a header it includes
 * is missing), or undefined when it can. Probes the real toolchain: the compiler is run
 * and each `#include <...>` of the oracle is preprocessed.
 */
export function cannotBuild(name: string): string | undefined {
  const cc = compiler();
  const v = spawnSync(cc, ["--version"], { stdio: "ignore" });
  if (v.error) return `no C compiler (\`${cc}\`: ${(v.error as NodeJS.ErrnoException).code ?? v.error.message})`;
  const includes = [...readFileSync(join(here, `${name}.c`), "utf8").matchAll(/^#include\s*<([^>]+)>/gm)].map((m) => m[1]);
  const pre = spawnSync(cc, ["-E", "-x", "c", "-o", "/dev/null", "-"], {
    input: includes.map((h) => `#include <${h}>\n`).join(""),
    encoding: "utf8",
  });
  if (pre.status === 0) return undefined;
  const missing = /fatal error: ([^:\s]+): No such file/.exec(pre.stderr)?.[1];
  return missing ? `no header <${missing}>` : `the compiler cannot preprocess its includes: ${pre.stderr.trim().split("\n")[0]}`;
}

/** Compiles test/oracle/<name>.c in a temporary directory and returns what it prints. */
export function buildAndRun(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `oracle-${name}-`));
  try {
    const exe = join(dir, name);
    try {
      execFileSync(compiler(), ["-std=c11", "-O1", "-Wall", "-Werror", "-o", exe, join(here, `${name}.c`)], {
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`cannot build oracle ${name}.c (${INSTALL}): ` + (err.stderr?.toString() || err.message));
    }
    return execFileSync(exe, [], { encoding: "utf8", maxBuffer: 64 << 20 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The first line where two outputs differ, as "line N: ...", or undefined when equal. */
export function firstDifference(committed: string, now: string): string | undefined {
  if (committed === now) return undefined;
  const a = committed.split("\n");
  const b = now.split("\n");
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const show = (s: string | undefined) => (s === undefined ? "(end of output)" : JSON.stringify(s));
  return `line ${i + 1}: committed ${show(a[i])}, the oracle now prints ${show(b[i])}`;
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
