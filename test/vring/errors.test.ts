// One error enum across the Wasm boundary: every ERR_* of host/transport/vring/errors.ts is
// the global of the same name build/vring.wasm exports from assembly/vring/defs.ts, and
// the other way round, so a code added, renumbered or dropped on one side fails here;
// likewise the FEATURE_* and BUF_* bits engine.ts passes to the exports.
import { describe, expect, it } from "vitest";
import * as E from "../../host/transport/vring/errors.ts";
import * as Engine from "../../host/transport/vring/engine.ts";
import { instantiate } from "../../host/wasm.ts";

const exports = instantiate<Record<string, unknown>>("vring", new WebAssembly.Memory({ initial: 1 }));
const wasmCodes = Object.entries(exports)
  .filter(([name, v]) => name.startsWith("ERR_") && v instanceof WebAssembly.Global)
  .map(([name, v]) => [name, (v as WebAssembly.Global).value as number] as const);
const tsCodes = Object.entries(E).filter(([name]) => name.startsWith("ERR_")) as Array<[string, number]>;

describe("the ring error enum (host/transport/vring/errors.ts) is build/vring.wasm's", () => {
  for (const [name, value] of tsCodes) {
    it(name, () => expect((exports[name] as WebAssembly.Global | undefined)?.value).toBe(value));
  }

  it("Wasm exports no ERR_* the host does not know", () => {
    expect(wasmCodes.map(([n]) => n).sort()).toEqual(tsCodes.map(([n]) => n).sort());
  });

  it("every code is distinct and negative, so a count, head or id can never be mistaken for one", () => {
    const values = tsCodes.map(([, v]) => v);
    expect(values.length).toBeGreaterThanOrEqual(14);
    expect(new Set(values).size).toBe(values.length);
    expect(values.every((v) => Number.isInteger(v) && v < 0)).toBe(true);
  });

  it("every code has one name, and nothing else has one", () => {
    const names = tsCodes.map(([, v]) => E.vringErrorName(v));
    expect(names.every((n) => n !== null)).toBe(true);
    expect(new Set(names).size).toBe(names.length);
    const below = Math.min(...tsCodes.map(([, v]) => v)) - 1;
    for (const notACode of [0, 1, 7, below, 0.5, NaN]) expect(E.vringErrorName(notACode)).toBeNull();
  });
});

describe("the bits the exports take (host/transport/vring/engine.ts) are build/vring.wasm's", () => {
  const bits = Object.entries(Engine).filter(([name]) => /^(FEATURE|BUF)_/.test(name)) as Array<[string, number]>;
  for (const [name, value] of bits) {
    it(name, () => expect((exports[name] as WebAssembly.Global | undefined)?.value).toBe(value));
  }
  it("each is one bit, distinct within its word", () => {
    for (const prefix of ["FEATURE_", "BUF_"]) {
      const values = bits.filter(([n]) => n.startsWith(prefix)).map(([, v]) => v);
      expect(values.length).toBeGreaterThanOrEqual(2);
      expect(values.every((v) => v > 0 && (v & (v - 1)) === 0)).toBe(true);
      expect(new Set(values).size).toBe(values.length);
    }
  });
});
