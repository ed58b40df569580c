// Builds the package into dist/: the library (dist/index.js + .d.ts, dependencies left
// external) and the CLI bundled into one file (dist/cli.js) for the package bin.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
const common = { bundle: true, platform: "node", target: "node20", format: "esm", sourcemap: true, logLevel: "warning" };
await build({ ...common, entryPoints: ["host/index.ts"], outfile: "dist/index.js", packages: "external" });
await build({
  ...common,
  entryPoints: ["host/cli/bin.ts"],
  outfile: "dist/cli.js",
  // CommonJS dependencies bundled into ESM need a require().
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});
chmodSync("dist/cli.js", 0o755);
execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
