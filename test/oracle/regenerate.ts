// `npm run oracles`: builds every C oracle against this machine's real headers and writes
// what it prints to test/oracle/expected/<name>.txt, the files the tests compare us with.
// Run it when a header changes (the drift test in test/oracle/oracles.test.ts says so).
import { writeFileSync, readdirSync, rmSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { buildAndRun, cannotBuild, expectedFile, expectedPath, EXPECTED_DIR, INSTALL, oracleNames } from "./compile.ts";

const names = oracleNames();
const blocked = names.map((n) => [n, cannotBuild(n)] as const).filter(([, why]) => why);
if (blocked.length) {
  for (const [n, why] of blocked) console.error(`oracles: cannot build ${n}.c: ${why}`);
  console.error(`oracles: install the compiler and headers (${INSTALL}) and run again`);
  process.exit(1);
}
for (const name of names) {
  const out = expectedPath(name);
  writeFileSync(out, expectedFile(name, buildAndRun(name)));
  console.log(`oracles: wrote ${relative(process.cwd(), out)}`);
}
// An expected file whose oracle is gone would be compared with nothing: remove it.
for (const f of readdirSync(EXPECTED_DIR)) {
  if (f.endsWith(".txt") && !names.includes(basename(f, ".txt"))) {
    rmSync(join(EXPECTED_DIR, f));
    console.log(`oracles: removed ${relative(process.cwd(), join(EXPECTED_DIR, f))} (no ${basename(f, ".txt")}.c)`);
  }
}
