// Builds the component guest: assembly/component/guest.ts -> core module (owning and
// exporting its memory, unlike the hot-path modules) -> WIT embedded (wit/argo.wit, world
// argo-guest) -> component -> ES module + core wasm via jco-transpile's API, all into
// build/component/. Run by build-wasm.mjs; tests only read what it wrote.
import asc from "assemblyscript/asc";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { componentEmbed, componentNew } from "@bytecodealliance/jco-transpile/wasm-tools";
import { transpileBytes } from "@bytecodealliance/jco-transpile";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "build", "component");
mkdirSync(out, { recursive: true });

const { error, stderr } = await asc.main(
  [
    "assembly/component/guest.ts",
    "--runtime", "stub", "--optimizeLevel", "3", "--shrinkLevel", "0", "--use", "abort=",
    "--outFile", "build/component/guest.core.wasm",
  ],
  { stdout: process.stdout, stderr: process.stderr },
);
if (error) {
  console.error(`asc failed for assembly/component: ${error.message}\n${stderr.toString()}`);
  process.exit(1);
}
const core = readFileSync(join(out, "guest.core.wasm"));
const embedded = await componentEmbed({ binary: core, witSource: readFileSync(join(root, "wit", "argo.wit"), "utf8"), world: "argo-guest" });
const component = await componentNew(embedded);
writeFileSync(join(out, "argo-guest.component.wasm"), component);
const { files } = await transpileBytes(component, { name: "argo-guest", instantiation: "async", noComponentErrorWrapping: true });
for (const [name, bytes] of Object.entries(files)) {
  mkdirSync(dirname(join(out, name)), { recursive: true });
  writeFileSync(join(out, name), bytes);
}
console.log(`component guest: ${component.length} bytes -> build/component/argo-guest.js`);
