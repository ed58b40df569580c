// Loads the AssemblyScript modules built into build/<name>.wasm. Each module is compiled
// once per process and instantiated once per domain over that domain's own memory
// (imported as env.memory); modules have no data or start section, so instantiation
// writes nothing into guest memory.
import { readFileSync } from "node:fs";

const compiled = new Map<string, WebAssembly.Module>();

/** The compiled module build/<name>.wasm; throws with the command to run if it is missing. */
export type ModuleName = "argo" | "vring";

export function wasmModule(name: ModuleName): WebAssembly.Module {
  let mod = compiled.get(name);
  if (mod === undefined) {
    const url = new URL(`../build/${name}.wasm`, import.meta.url);
    let bytes: Buffer;
    try {
      bytes = readFileSync(url);
    } catch {
      throw new Error(`build/${name}.wasm is missing: run \`npm run build:wasm\` first`);
    }
    mod = new WebAssembly.Module(new Uint8Array(bytes));
    compiled.set(name, mod);
  }
  return mod;
}

/** Instantiates build/<name>.wasm over `memory`; `T` describes its exports. */
export function instantiate<T>(name: ModuleName, memory: WebAssembly.Memory): T {
  const instance = new WebAssembly.Instance(wasmModule(name), { env: { memory } });
  return instance.exports as unknown as T;
}
