// The committed oracle outputs (test/oracle/expected/) against the oracles themselves, built
// and run against this machine's real headers. The layout tests read the committed files, so
// they run everywhere; this is where a header that changed, or an oracle edited without
// regenerating, shows. Without a compiler or the headers the check is skipped, and says so.
import { describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import {
  buildAndRun, cannotBuild, expectedFile, expectedPath, EXPECTED_DIR, firstDifference, INSTALL, oracleNames, oracleOutput, REGENERATE,
} from "./compile.ts";

const names = oracleNames();
const blocked = new Map(names.map((n) => [n, cannotBuild(n)] as const).filter(([, why]) => why !== undefined));
if (blocked.size) {
  // The one line a reader sees in the test output: what was not checked, and why.
  const byReason = new Map<string, string[]>();
  for (const [n, why] of blocked) byReason.set(why!, [...(byReason.get(why!) ?? []), `${n}.c`]);
  console.log(
    `C oracles not built (${[...byReason].map(([why, ns]) => `${ns.join(", ")}: ${why}`).join("; ")}): ` +
      `the tests use their committed outputs in test/oracle/expected/ unchecked; to check them: ${INSTALL}`,
  );
}

describe("C oracles: committed outputs in test/oracle/expected/", () => {
  it("one generated file per oracle, and none without an oracle", () => {
    expect(readdirSync(EXPECTED_DIR).filter((f) => f.endsWith(".txt")).sort()).toEqual(names.map((n) => `${n}.txt`));
    for (const n of names) expect(oracleOutput(n).length, n).toBeGreaterThan(0);
  });

  for (const name of names) {
    const why = blocked.get(name);
    if (why !== undefined) {
      it.skip(`${name}.c not built and compared here: ${why}`, () => {});
      continue;
    }
    it(`${name}.c, built against the real headers, prints exactly test/oracle/expected/${name}.txt`, () => {
      const committed = existsSync(expectedPath(name)) ? readFileSync(expectedPath(name), "utf8") : "";
      const diff = firstDifference(committed, expectedFile(name, buildAndRun(name)));
      expect(diff, `test/oracle/expected/${name}.txt is out of date: run \`${REGENERATE}\` and commit it`).toBeUndefined();
    });
  }
});
