// The built modules must not write into guest memory when instantiated: no data section
// (id 11), no start section (id 8), and memory imported, not defined.
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";

function sections(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let p = 8; // magic + version
  while (p < bytes.length) {
    const id = bytes[p++];
    let size = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[p++];
      size |= (b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    ids.push(id);
    p += size;
  }
  return ids;
}

const dir = new URL("../../build/", import.meta.url);
const modules = readdirSync(dir).filter((f) => f.endsWith(".wasm"));

describe("built Wasm modules", () => {
  it("exist (argo at least)", () => expect(modules).toContain("argo.wasm"));
  for (const m of modules) {
    it(`${m} has no data or start section and imports its memory`, () => {
      const bytes = new Uint8Array(readFileSync(new URL(m, dir)));
      const ids = sections(bytes);
      expect(ids).not.toContain(11);
      expect(ids).not.toContain(8);
      expect(ids).not.toContain(5); // no memory section of its own
      expect(WebAssembly.Module.imports(new WebAssembly.Module(bytes))).toContainEqual({ module: "env", name: "memory", kind: "memory" });
    });
  }
});
