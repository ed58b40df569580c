// The device table: written by the toolstack, verified by the guest. A corrupt table is
// an error value naming what is wrong, never an out-of-bounds read.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseTable, writeTable, tableSize, TABLE_HEADER_SIZE, type DeviceEntry } from "../../host/transport/bus/enumeration.ts";

const entry = (devNum: number): DeviceEntry => ({
  devNum, virtioType: 2, backendDomid: 3, flags: 0, frontendPort: 0x10001 + devNum * 2, backendPort: 0x10000 + devNum * 2, ringLen: 4096, maxMessage: 4064,
});

function mem(): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: 1, maximum: 1 });
}

describe("device table", () => {
  it("round-trips entries and sums to zero", () => {
    const m = mem();
    const entries = [entry(1), entry(2), entry(7)];
    const len = writeTable(m, 4096, entries);
    expect(len).toBe(tableSize(3));
    let sum = 0;
    for (const b of new Uint8Array(m.buffer, 4096, len)) sum = (sum + b) & 0xff;
    expect(sum).toBe(0);
    expect(parseTable(m, 4096)).toEqual(entries);
  });

  it("names each corruption", () => {
    const m = mem();
    const dv = new DataView(m.buffer);
    const fresh = () => writeTable(m, 4096, [entry(1), entry(2)]);
    fresh();
    dv.setUint8(4096, 0x58);
    expect(parseTable(m, 4096)).toMatchObject({ kind: "BadSignature" });
    fresh();
    dv.setUint8(4096 + 50, dv.getUint8(4096 + 50) ^ 1);
    expect(parseTable(m, 4096)).toMatchObject({ kind: "BadChecksum" });
    fresh();
    dv.setUint32(4096 + 4, 1 << 30, true);
    expect(parseTable(m, 4096)).toMatchObject({ kind: "BadLength" });
    writeTable(m, 4096, [entry(1), entry(1)]);
    expect(parseTable(m, 4096)).toMatchObject({ kind: "BadEntry", index: 1 });
    writeTable(m, 4096, [{ ...entry(1), ringLen: 100 }]);
    expect(parseTable(m, 4096)).toMatchObject({ kind: "BadEntry", index: 0 });
    expect(parseTable(m, 65536 - 8)).toMatchObject({ kind: "BadLength" });
  });

  it("never throws or reads out of bounds on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 2048 }), fc.nat({ max: 65536 }), (bytes, at) => {
        const m = mem();
        const start = Math.min(at, 65536 - bytes.length);
        new Uint8Array(m.buffer).set(bytes, start);
        const r = parseTable(m, start);
        expect(Array.isArray(r) || typeof (r as { kind: string }).kind === "string").toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("a header alone (no devices) is a valid empty table", () => {
    const m = mem();
    expect(writeTable(m, 0, [])).toBe(TABLE_HEADER_SIZE);
    expect(parseTable(m, 0)).toEqual([]);
  });
});
