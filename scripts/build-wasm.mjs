// Builds every AssemblyScript module (assembly/<name>/index.ts -> build/<name>.wasm)
// with the shared options in asconfig.json. Run by `npm run build:wasm`, before tests,
// never during them: tests only read build/.
import asc from "assemblyscript/asc";
import { readdirSync, existsSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const modules = readdirSync(join(root, "assembly"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, "assembly", d.name, "index.ts")))
  .map((d) => d.name);
mkdirSync(join(root, "build"), { recursive: true });

let failed = false;
for (const name of modules) {
  const { error, stderr } = await asc.main(
    [
      `assembly/${name}/index.ts`,
      "--config", "asconfig.json",
      "--outFile", `build/${name}.wasm`,
      "--textFile", `build/${name}.wat`,
    ],
    { stdout: process.stdout, stderr: process.stderr },
  );
  if (error) {
    console.error(`asc failed for assembly/${name}: ${error.message}`);
    console.error(stderr.toString());
    failed = true;
  }
}
if (failed) process.exit(1);
// The component guest (world argo-guest in wit/argo.wit) has its own build: it owns its memory.
await import("./build-component.mjs");
