// Ring fuzzer: the device side of both ring formats (build/vring.wasm, the code that reads
// what a hostile driver wrote) against a small model of the spec's rules, written here in
// TypeScript from VirtIO 1.2 (2.7 split, 2.8 packed), not from the Wasm. Rings are random
// but biased towards well-formed chains with one field broken, so both the accepting and
// every refusing path are reached. Checked per operation:
//   - pop: nothing / the same buffers (addresses translated through the DMA window) /
//     an error the model also finds at the same descriptor;
//   - the device writes nothing but its out block, its state block, avail_event (split,
//     EVENT_IDX) and, on push, the one used entry or descriptor;
//   - push: the used element the spec describes (split: {id, len} and idx; packed: id,
//     len, AVAIL/USED = the device's wrap counter, WRITE exactly when len > 0);
//   - interrupts: split 2.7.7.2 (NO_INTERRUPT without EVENT_IDX, used_event with it),
//     packed 2.8.10 (DISABLE, ENABLE, DESC at off/wrap), the DESC case decided by walking
//     the positions written one by one.
import { FEATURE_EVENT_IDX, FEATURE_INDIRECT, vringEngine, type VringEngine } from "../../host/transport/vring/engine.ts";
import { vringErrorName } from "../../host/transport/vring/errors.ts";
import { FuzzFailure, Prng } from "./prng.ts";
import { AVAIL, INDIRECT, NEXT, USED, WRITE } from "../vring/flags.ts";

const MEM = 2 * 65536;
const DESC = 0x1000;
const AVAIL_AT = 0x2000;
const USED_AT = 0x3000;
const OUT = 0x4000;
const STATE = 0x5000;
const DEVICE_EVENT = 0x5800;
const DRIVER_EVENT = 0x5804;
/** Indirect tables, as driver (window) addresses. */
const TABLES = 0x6000;
const TABLES_END = 0x8000;

interface Window {
  base: number;
  limit: number;
}

type Popped =
  | { kind: "none" }
  /** A table the driver placed over the device's own out block or event word: the device
   * overwrites entries as it goes, so the result depends on that order, which the spec
   * does not fix. Harmless (each entry is checked when read, and the out block holds only
   * checked values), so only the write confinement is checked then. */
  | { kind: "overlap" }
  | { kind: "ok"; head: number; bufs: Array<[number, number, number]>; descs: number }
  | { kind: "err"; allowed: string[] };

export interface RingStats {
  ops: number;
  split: Record<string, number>;
  packed: Record<string, number>;
}

/** One memory with its engine and DMA window. */
class Arena {
  readonly memory = new WebAssembly.Memory({ initial: MEM / 65536, maximum: MEM / 65536 });
  readonly u8 = new Uint8Array(this.memory.buffer);
  readonly dv = new DataView(this.memory.buffer);
  readonly e: VringEngine;
  readonly w: Window;

  constructor(w: Window) {
    this.e = vringEngine(this.memory);
    this.w = { base: w.base, limit: w.limit === 0 ? MEM : w.limit };
    if (w.limit !== 0 && this.e.vringSetDmaWindow(w.base, w.limit) !== 1) throw new Error("bad window");
  }

  /** Reads a driver-addressed descriptor (window address) as the model sees it. */
  descAt(wasmAt: number): { lo: number; hi: number; len: number; a: number; b: number } {
    const dv = this.dv;
    return { lo: dv.getUint32(wasmAt, true), hi: dv.getUint32(wasmAt + 4, true), len: dv.getUint32(wasmAt + 8, true), a: dv.getUint16(wasmAt + 12, true), b: dv.getUint16(wasmAt + 14, true) };
  }

  inWindow(lo: number, hi: number, len: number): boolean {
    return hi === 0 && lo + len <= this.w.limit;
  }
}

export function fuzzRings(seed: number, ops: number): RingStats {
  const rng = new Prng(seed);
  const stats: RingStats = { ops: 0, split: {}, packed: {} };
  const count = (m: Record<string, number>, k: string): void => {
    m[k] = (m[k] ?? 0) + 1;
  };
  let op = 0;
  const fail = (msg: string): never => {
    throw new FuzzFailure("rings", seed, op, ops, msg);
  };
  const arenas = [new Arena({ base: 0, limit: 0 }), new Arena({ base: 0x10000, limit: 0x10000 })];
  let packedRing: PackedRun | null = null;

  while (op < ops) {
    const arena = rng.pick(arenas);
    if (rng.chance(0.5)) {
      op += splitRound(rng, arena, stats, count, fail);
    } else {
      if (!packedRing || rng.chance(0.01)) packedRing = new PackedRun(rng, rng.pick(arenas));
      op += packedRing.step(stats, count, fail);
    }
  }
  stats.ops = op;
  return stats;
}

// ---- descriptor generation ------------------------------------------------------------

/** A buffer address and length, mostly inside the window, sometimes just past or far past it. */
function bufferAt(rng: Prng, w: Window): [number, number, number] {
  const r = rng.below(24);
  if (r === 0) return [w.limit - rng.below(64), rng.int(1, 128), 0]; // straddles the end
  if (r === 1) return [rng.u32(), rng.u32(), 0];
  if (r === 2) return [rng.below(w.limit), 0, rng.chance(0.5) ? 1 : rng.u32()]; // high half set
  if (r === 3) return [0, w.limit, 0]; // all of it
  const lo = rng.below(w.limit - 256);
  return [lo, rng.int(0, 256), 0];
}

function writeDesc(dv: DataView, at: number, lo: number, hi: number, len: number, a: number, b: number): void {
  dv.setUint32(at, lo >>> 0, true);
  dv.setUint32(at + 4, hi >>> 0, true);
  dv.setUint32(at + 8, len >>> 0, true);
  dv.setUint16(at + 12, a & 0xffff, true);
  dv.setUint16(at + 14, b & 0xffff, true);
}

/** A table of `n` entries at window address `tab`: readable then writable, sometimes broken. */
function writeTable(rng: Prng, arena: Arena, tab: number, n: number, split: boolean): void {
  const nRead = rng.below(n + 1);
  for (let k = 0; k < n; k++) {
    const [lo, len, hi] = bufferAt(rng, arena.w);
    let flags = k >= nRead ? WRITE : 0;
    if (split && k + 1 < n) flags |= NEXT;
    if (rng.chance(0.03)) flags ^= rng.pick([NEXT, WRITE, INDIRECT]);
    const next = rng.chance(0.95) ? k + 1 : rng.below(n + 2);
    writeDesc(arena.dv, arena.w.base + tab + 16 * k, lo, hi, len, split ? flags : rng.u32(), split ? next : flags);
  }
}

/** A chain's buffers as the model collects them: readable before writable (2.7.4.2, 2.8.6), at most 2^32 bytes. */
class ChainModel {
  readonly bufs: Array<[number, number, number]> = [];
  private total = 0;
  private sawWritable = false;

  /**
   * Takes one buffer (a driver address, translated) after the rules `bad` already found
   * broken at this descriptor; returns the error the model expects, or null.
   */
  take(arena: Arena, bad: string[], flags: number, lo: number, len: number, extra?: string): Popped | null {
    const w = (flags & WRITE) !== 0;
    if (!w && this.sawWritable) bad.push("ReadableAfterWritable");
    this.total += len;
    if (this.total > 0xffffffff) bad.push("LengthOverflow");
    if (extra) bad.push(extra);
    if (bad.length) return { kind: "err", allowed: bad };
    this.sawWritable ||= w;
    this.bufs.push([arena.w.base + lo, len, w ? WRITE : 0]);
    return null;
  }
}

// ---- split ---------------------------------------------------------------------------

/** Does the 16-byte entry at `at` overlap what the device writes during a pop (out block, state, event words)? */
function overlapsDeviceBlocks(at: number, size: number): boolean {
  const hit = (lo: number, hi: number): boolean => at < hi && at + 16 > lo;
  return hit(OUT, OUT + 8 + 16 * size) || hit(USED_AT + 4 + 8 * size, USED_AT + 6 + 8 * size) ||
    hit(STATE, STATE + 16 + 2 * size) || hit(DEVICE_EVENT, DEVICE_EVENT + 4);
}

function splitModel(arena: Arena, size: number, lastAvail: number, features: number): Popped {
  const dv = arena.dv;
  const availIdx = dv.getUint16(AVAIL_AT + 2, true);
  const pending = (availIdx - lastAvail) & 0xffff;
  if (pending === 0) return { kind: "none" };
  if (pending > size) return { kind: "err", allowed: ["AvailIdxJump"] }; // 2.7.13.3: at most a ring's worth
  const head = dv.getUint16(AVAIL_AT + 4 + 2 * (lastAvail % size), true);
  if (head >= size) return { kind: "err", allowed: ["IndexOutOfRange"] };
  const chain = new ChainModel();
  let table = DESC;
  let tableSize = size;
  let indirect = false;
  let i = head;
  let visited = 0;
  for (;;) {
    // 2.7.5.2: a chain (or a table's chain) visits each descriptor at most once.
    if (++visited > tableSize) return { kind: "err", allowed: ["DescriptorLoop"] };
    if (table !== DESC && overlapsDeviceBlocks(table + 16 * i, size)) return { kind: "overlap" };
    const d = arena.descAt(table + 16 * i);
    const flags = d.a;
    const broken: string[] = [];
    if (!arena.inWindow(d.lo, d.hi, d.len)) broken.push("AddressOutOfRange");
    if (flags & INDIRECT) {
      // 2.7.5.3.1
      if (!(features & FEATURE_INDIRECT)) broken.push("IndirectNotSupported");
      if (indirect) broken.push("IndirectInIndirect");
      if (flags & NEXT) broken.push("IndirectWithNext");
      if (d.len === 0 || d.len % 16 !== 0 || d.len / 16 > 32768) broken.push("InvalidIndirectLength");
      if (broken.length) return { kind: "err", allowed: broken };
      table = arena.w.base + d.lo;
      tableSize = d.len / 16;
      indirect = true;
      visited = 0;
      i = 0;
      continue;
    }
    const refused = chain.take(arena, broken, flags, d.lo, d.len, chain.bufs.length >= size ? "ChainTooLong" : undefined);
    if (refused) return refused;
    if (!(flags & NEXT)) break;
    if (d.b >= tableSize) return { kind: "err", allowed: ["IndexOutOfRange"] };
    i = d.b;
  }
  return { kind: "ok", head, bufs: chain.bufs, descs: 0 };
}

function splitRound(
  rng: Prng, arena: Arena, stats: RingStats, count: (m: Record<string, number>, k: string) => void, fail: (m: string) => never,
): number {
  const size = rng.pick([1, 2, 4, 8, 16, 32, 64]);
  const features = rng.below(4);
  const dv = arena.dv;
  const u8 = arena.u8;
  const lastAvail = rng.chance(0.5) ? rng.below(0x10000) : rng.below(4);
  // Random table, then (most of the time) one well-formed chain over it.
  for (let i = 0; i < size; i++) {
    const [lo, len, hi] = bufferAt(rng, arena.w);
    writeDesc(dv, DESC + 16 * i, lo, hi, len, rng.below(8), rng.chance(0.9) ? rng.below(size) : rng.below(0x10000));
  }
  let head = rng.below(size);
  if (rng.chance(0.7)) {
    const n = rng.int(1, size);
    const order = Array.from({ length: size }, (_, k) => k);
    for (let k = size - 1; k > 0; k--) {
      const j = rng.below(k + 1);
      [order[k], order[j]] = [order[j], order[k]];
    }
    head = order[0];
    const nRead = rng.below(n + 1);
    const tail = rng.chance(0.3) ? "indirect" : "direct";
    for (let k = 0; k < n; k++) {
      const at = DESC + 16 * order[k];
      const [lo, len, hi] = bufferAt(rng, arena.w);
      let flags = (k >= nRead ? WRITE : 0) | (k + 1 < n ? NEXT : 0);
      let lo2 = lo;
      let len2 = len;
      if (k + 1 === n && tail === "indirect") {
        const entries = rng.int(1, 8);
        const tab = TABLES + 16 * rng.below((TABLES_END - TABLES) / 16 - 8);
        writeTable(rng, arena, tab, entries, true);
        flags = INDIRECT;
        lo2 = tab;
        len2 = rng.chance(0.9) ? 16 * entries : rng.pick([0, 8, 16 * entries + 4]);
      }
      if (rng.chance(0.05)) flags ^= rng.pick([NEXT, WRITE, INDIRECT]);
      writeDesc(dv, at, lo2, hi, len2, flags, k + 1 < n ? order[k + 1] : rng.below(size));
    }
  }
  dv.setUint16(AVAIL_AT, rng.below(2), true);
  const pending = rng.chance(0.85) ? 1 : rng.pick([0, 2, size, size + 1, rng.below(0x10000)]);
  dv.setUint16(AVAIL_AT + 2, (lastAvail + pending) & 0xffff, true);
  for (let k = 0; k < size; k++) dv.setUint16(AVAIL_AT + 4 + 2 * k, rng.below(size + 1), true);
  dv.setUint16(AVAIL_AT + 4 + 2 * (lastAvail % size), rng.chance(0.95) ? head : rng.below(0x10000), true);
  const usedIdx = rng.below(0x10000);
  dv.setUint16(USED_AT + 2, usedIdx, true);

  const want = splitModel(arena, size, lastAvail, features);
  const before = u8.slice(0, 0x9000);
  const n = arena.e.vringPop(DESC, AVAIL_AT, USED_AT, size, lastAvail, features, OUT);
  // Allowed writes: the out block and avail_event.
  const allowed: Array<[number, number]> = [[OUT, OUT + 8 + 16 * size], [USED_AT + 4 + 8 * size, USED_AT + 6 + 8 * size]];
  unchangedOutside(before, u8, allowed, fail, "split pop");
  if (want.kind === "overlap") {
    count(stats.split, "overlap");
  } else if (want.kind === "none") {
    if (n !== 0) fail(`split pop: model says nothing available, device returned ${n}`);
    count(stats.split, "none");
  } else if (want.kind === "err") {
    const name = n < 0 ? (vringErrorName(n) ?? `code ${n}`) : `${n}`;
    if (!want.allowed.includes(name)) fail(`split pop: model says ${want.allowed.join("|")}, device says ${name}`);
    count(stats.split, name);
  } else {
    if (n !== want.bufs.length) fail(`split pop: model pops ${want.bufs.length} buffers, device returned ${n}${n < 0 ? ` (${vringErrorName(n)})` : ""}`);
    if (dv.getUint32(OUT, true) !== want.head) fail(`split pop: head ${dv.getUint32(OUT, true)}, model ${want.head}`);
    for (let k = 0; k < n; k++) {
      const e = OUT + 8 + 16 * k;
      const got = [dv.getUint32(e, true), dv.getUint32(e + 4, true), dv.getUint32(e + 8, true) & WRITE];
      const [ga, gl, gw] = want.bufs[k];
      if (got[0] !== ga || got[1] !== gl || got[2] !== gw) fail(`split pop: buffer ${k} is ${got}, model ${want.bufs[k]}`);
    }
    if (features & FEATURE_EVENT_IDX && dv.getUint16(USED_AT + 4 + 8 * size, true) !== ((lastAvail + 1) & 0xffff)) {
      fail("split pop: avail_event is not last_avail + 1 (2.7.10)");
    }
    count(stats.split, "ok");
    // push + interrupt decision
    const written = rng.chance(0.3) ? 0 : rng.u32();
    const before2 = u8.slice(0, 0x9000);
    const next = arena.e.vringPush(USED_AT, size, usedIdx, want.head, written);
    const slot = USED_AT + 4 + 8 * (usedIdx % size);
    unchangedOutside(before2, u8, [[USED_AT + 2, USED_AT + 4], [slot, slot + 8]], fail, "split push");
    if (next !== ((usedIdx + 1) & 0xffff) || dv.getUint16(USED_AT + 2, true) !== next) fail("split push: used idx not advanced by one");
    if (dv.getUint32(slot, true) !== want.head || dv.getUint32(slot + 4, true) !== written >>> 0) fail("split push: wrong used element");
    const noInterrupt = rng.below(2);
    const usedEvent = rng.chance(0.5) ? usedIdx : rng.below(0x10000);
    dv.setUint16(AVAIL_AT, noInterrupt, true);
    dv.setUint16(AVAIL_AT + 4 + 2 * size, usedEvent, true);
    const eventIdx = features & FEATURE_EVENT_IDX ? 1 : 0;
    // 2.7.7.2 / 2.7.10: with EVENT_IDX, interrupt iff used_event is in [old, new); else iff flags lack NO_INTERRUPT.
    const wantIrq = eventIdx ? ((next - usedEvent - 1) & 0xffff) < ((next - usedIdx) & 0xffff) : noInterrupt === 0;
    const irq = arena.e.vringNeedInterrupt(AVAIL_AT, size, next, usedIdx, eventIdx) === 1;
    if (irq !== wantIrq) fail(`split interrupt: device ${irq}, model ${wantIrq} (event_idx ${eventIdx}, flags ${noInterrupt}, used_event ${usedEvent}, ${usedIdx} -> ${next})`);
    count(stats.split, irq ? "irq" : "no-irq");
    return 2;
  }
  return 1;
}

function unchangedOutside(before: Uint8Array, after: Uint8Array, allowed: Array<[number, number]>, fail: (m: string) => never, what: string): void {
  const ranges = [...allowed].sort((x, y) => x[0] - y[0]);
  let from = 0;
  const b = Buffer.from(before.buffer, before.byteOffset, before.length);
  const a = Buffer.from(after.buffer, after.byteOffset, before.length);
  for (const [s, e] of [...ranges, [before.length, before.length]]) {
    if (s > from && b.compare(a, from, s, from, s) !== 0) {
      for (let i = from; i < s; i++) if (a[i] !== b[i]) fail(`${what} wrote byte 0x${i.toString(16)} outside its blocks`);
    }
    from = Math.max(from, e);
  }
}

// ---- packed --------------------------------------------------------------------------

/** A packed ring driven over many operations; the model keeps the device's indices. */
class PackedRun {
  readonly size: number;
  readonly features: number;
  nextAvail = 0;
  availWrap = 1;
  nextUsed = 0;
  usedWrap = 1;
  /** Ring descriptors per outstanding buffer id (the device's desc_count). */
  readonly outstanding = new Map<number, number>();
  /** Positions (index, wrap) the device wrote or skipped since the last interrupt decision. */
  sinceSignal: Array<[number, number]> = [];

  constructor(private readonly rng: Prng, readonly arena: Arena) {
    this.size = rng.pick([1, 2, 3, 4, 7, 8, 16, 33, 64]);
    this.features = rng.below(4);
    arena.u8.fill(0, DESC, DESC + 16 * this.size);
    if (arena.e.packedDeviceInit(this.size, STATE) !== 0) throw new Error("packedDeviceInit");
  }

  step(stats: RingStats, count: (m: Record<string, number>, k: string) => void, fail: (m: string) => never): number {
    const r = this.rng.below(10);
    if (r < 5) this.pop(stats, count, fail);
    else if (r < 8) this.push(stats, count, fail);
    else this.interrupt(stats, count, fail);
    return 1;
  }

  private availFlags(wrap: number): number {
    return wrap ? AVAIL : USED;
  }

  private pop(stats: RingStats, count: (m: Record<string, number>, k: string) => void, fail: (m: string) => never): void {
    const { rng, arena, size } = this;
    const dv = arena.dv;
    // The driver writes a chain at next_avail: well formed, or not.
    const n = rng.int(1, Math.min(size, 6));
    const id = rng.chance(0.95) ? rng.below(size) : rng.below(0x10000);
    const nRead = rng.below(n + 1);
    let i = this.nextAvail;
    let wrap = this.availWrap;
    const indirectTail = rng.chance(0.25);
    const positions: number[] = [];
    for (let k = 0; k < n; k++) {
      positions.push(i);
      const [lo, len, hi] = bufferAt(rng, arena.w);
      let flags = (k >= nRead ? WRITE : 0) | (k + 1 < n ? NEXT : 0) | this.availFlags(wrap);
      let lo2 = lo;
      let len2 = len;
      if (k + 1 === n && indirectTail) {
        const entries = rng.int(1, 8);
        const tab = TABLES + 16 * rng.below((TABLES_END - TABLES) / 16 - 8);
        writeTable(rng, arena, tab, entries, false);
        flags = INDIRECT | this.availFlags(wrap);
        lo2 = tab;
        len2 = rng.chance(0.9) ? 16 * entries : rng.pick([0, 8]);
      }
      if (rng.chance(0.04)) flags ^= rng.pick([NEXT, WRITE, INDIRECT, AVAIL, USED, AVAIL | USED]);
      writeDesc(dv, DESC + 16 * i, lo2, hi, len2, rng.chance(0.9) && k + 1 < n ? rng.u32() : id, flags);
      if (++i === size) {
        i = 0;
        wrap ^= 1;
      }
    }
    if (rng.chance(0.05)) {
      // Not published yet, or an old lap's flags: the head is not available.
      dv.setUint16(DESC + 16 * positions[0] + 14, rng.below(0x10000), true);
    }
    const want = this.model();
    const before = arena.u8.slice(0, 0x9000);
    const got = arena.e.packedPop(DESC, DEVICE_EVENT, size, STATE, this.features, OUT);
    unchangedOutside(before, arena.u8, [[OUT, OUT + 8 + 16 * size], [STATE, STATE + 16 + 2 * size], [DEVICE_EVENT, DEVICE_EVENT + 4]], fail, "packed pop");
    if (want.kind === "overlap") {
      // Resynchronise the model with whatever the device decided.
      if (got > 0) {
        let k = 0;
        while (dv.getUint16(STATE, true) !== this.nextAvail || dv.getUint16(STATE + 2, true) !== this.availWrap) {
          if (++this.nextAvail === size) {
            this.nextAvail = 0;
            this.availWrap ^= 1;
          }
          if (++k > 2 * size) fail("packed pop: next_avail is no position of the ring");
        }
        this.outstanding.set(dv.getUint32(OUT, true), dv.getUint16(STATE + 16 + 2 * dv.getUint32(OUT, true), true));
      }
      count(stats.packed, "overlap");
      return;
    }
    if (want.kind === "none") {
      if (got !== 0) fail(`packed pop: model says nothing available, device returned ${got}`);
      count(stats.packed, "none");
      return;
    }
    if (want.kind === "err") {
      const name = got < 0 ? (vringErrorName(got) ?? `code ${got}`) : `${got}`;
      if (!want.allowed.includes(name)) fail(`packed pop: model says ${want.allowed.join("|")}, device says ${name}`);
      if (dv.getUint16(STATE, true) !== this.nextAvail || dv.getUint16(STATE + 2, true) !== this.availWrap) fail("packed pop: a refused chain moved next_avail");
      count(stats.packed, name);
      return;
    }
    if (got !== want.bufs.length) fail(`packed pop: model pops ${want.bufs.length} buffers, device returned ${got}${got < 0 ? ` (${vringErrorName(got)})` : ""}`);
    if (dv.getUint32(OUT, true) !== want.head) fail(`packed pop: buffer id ${dv.getUint32(OUT, true)}, model ${want.head}`);
    for (let k = 0; k < got; k++) {
      const e = OUT + 8 + 16 * k;
      const g = [dv.getUint32(e, true), dv.getUint32(e + 4, true), dv.getUint32(e + 8, true) & WRITE];
      const [ga, gl, gw] = want.bufs[k];
      if (g[0] !== ga || g[1] !== gl || g[2] !== gw) fail(`packed pop: buffer ${k} is ${g}, model ${want.bufs[k]}`);
    }
    // Advance the model past the chain's ring descriptors.
    for (let k = 0; k < want.descs; k++) {
      if (++this.nextAvail === size) {
        this.nextAvail = 0;
        this.availWrap ^= 1;
      }
    }
    this.outstanding.set(want.head, want.descs);
    if (dv.getUint16(STATE, true) !== this.nextAvail || dv.getUint16(STATE + 2, true) !== this.availWrap) fail("packed pop: next_avail differs from the model");
    if (this.features & FEATURE_EVENT_IDX) {
      // The device asks to be told about the next descriptor it will read (2.8.10).
      if (dv.getUint16(DEVICE_EVENT, true) !== (this.nextAvail | (this.availWrap << 15)) || dv.getUint16(DEVICE_EVENT + 2, true) !== 2) {
        fail("packed pop: device event suppression does not name next_avail");
      }
    }
    count(stats.packed, "ok");
  }

  /** 2.8.6-2.8.8 over the ring as the driver wrote it, from the model's next_avail. */
  private model(): Popped {
    const { arena, size, features } = this;
    const isAvail = (flags: number, wrap: number): boolean => ((flags & AVAIL) !== 0) === (wrap === 1) && ((flags & USED) !== 0) !== (wrap === 1);
    let i = this.nextAvail;
    let wrap = this.availWrap;
    if (!isAvail(arena.dv.getUint16(DESC + 16 * i + 14, true), wrap)) return { kind: "none" };
    const chain = new ChainModel();
    let descs = 0;
    let id = 0;
    for (;;) {
      if (++descs > size) return { kind: "err", allowed: ["ChainTooLong"] }; // a list is at most the ring
      const d = arena.descAt(DESC + 16 * i);
      const flags = d.b;
      if (!isAvail(flags, wrap)) return { kind: "err", allowed: ["IncompleteChain"] }; // 2.8.6: whole list published first
      if (!arena.inWindow(d.lo, d.hi, d.len)) return { kind: "err", allowed: ["AddressOutOfRange"] };
      id = d.a; // 2.8.6: the buffer id is in the list's last descriptor
      if (++i === size) {
        i = 0;
        wrap ^= 1;
      }
      if (flags & INDIRECT) {
        const broken: string[] = [];
        if (!(features & FEATURE_INDIRECT)) broken.push("IndirectNotSupported");
        if (flags & NEXT) broken.push("IndirectWithNext");
        if (d.len === 0 || d.len % 16 !== 0) broken.push("InvalidIndirectLength");
        if (broken.length) return { kind: "err", allowed: broken };
        const entries = d.len / 16;
        if (chain.bufs.length + entries > size) return { kind: "err", allowed: ["ChainTooLong"] };
        for (let k = 0; k < entries; k++) {
          if (overlapsDeviceBlocks(arena.w.base + d.lo + 16 * k, size)) return { kind: "overlap" };
          const e = arena.descAt(arena.w.base + d.lo + 16 * k);
          const ef = e.b; // only WRITE is valid in a table entry (2.8.8); INDIRECT is refused
          const bad: string[] = [];
          if (ef & INDIRECT) bad.push("IndirectInIndirect");
          if (!arena.inWindow(e.lo, e.hi, e.len)) bad.push("AddressOutOfRange");
          const refused = chain.take(arena, bad, ef, e.lo, e.len);
          if (refused) return refused;
        }
        break;
      }
      const refused = chain.take(arena, [], flags, d.lo, d.len);
      if (refused) return refused;
      if (!(flags & NEXT)) break;
    }
    if (id >= size) return { kind: "err", allowed: ["IndexOutOfRange"] };
    return { kind: "ok", head: id, bufs: chain.bufs, descs };
  }

  private push(stats: RingStats, count: (m: Record<string, number>, k: string) => void, fail: (m: string) => never): void {
    const { rng, arena, size } = this;
    const dv = arena.dv;
    const ids = [...this.outstanding.keys()];
    const bogus = ids.length === 0 || rng.chance(0.1);
    const id = bogus ? rng.below(size + 2) : rng.pick(ids);
    const written = rng.chance(0.3) ? 0 : rng.u32();
    const before = arena.u8.slice(0, 0x9000);
    const rc = arena.e.packedPush(DESC, size, STATE, id, written);
    if (!this.outstanding.has(id)) {
      if (rc >= 0) fail(`packed push of id ${id}, not outstanding, was accepted`);
      unchangedOutside(before, arena.u8, [], fail, "refused packed push");
      count(stats.packed, "push-refused");
      return;
    }
    const d = DESC + 16 * this.nextUsed;
    unchangedOutside(before, arena.u8, [[d + 8, d + 16], [STATE, STATE + 16 + 2 * size]], fail, "packed push");
    if (rc !== 0) fail(`packed push of outstanding id ${id} returned ${rc}`);
    const flags = dv.getUint16(d + 14, true);
    // 2.8.1/2.8.4: AVAIL = USED = the device's wrap counter; WRITE iff data was written.
    const wantFlags = (this.usedWrap ? AVAIL | USED : 0) | (written !== 0 ? WRITE : 0);
    if (flags !== wantFlags) fail(`packed push: used flags 0x${flags.toString(16)}, spec says 0x${wantFlags.toString(16)}`);
    if (dv.getUint16(d + 12, true) !== id || dv.getUint32(d + 8, true) !== written >>> 0) fail("packed push: wrong id or len in the used descriptor");
    const n = this.outstanding.get(id)!;
    this.outstanding.delete(id);
    for (let k = 0; k < n; k++) {
      this.sinceSignal.push([this.nextUsed, this.usedWrap]);
      if (++this.nextUsed === size) {
        this.nextUsed = 0;
        this.usedWrap ^= 1;
      }
    }
    if (dv.getUint16(STATE + 4, true) !== this.nextUsed || dv.getUint16(STATE + 6, true) !== this.usedWrap) fail("packed push: next_used differs from the model");
    count(stats.packed, written ? "push-write" : "push-nowrite");
  }

  private interrupt(stats: RingStats, count: (m: Record<string, number>, k: string) => void, fail: (m: string) => never): void {
    const { rng, arena, size } = this;
    const dv = arena.dv;
    const flags = rng.chance(0.8) ? 2 : rng.below(4);
    const off = rng.chance(0.7) && this.sinceSignal.length ? rng.pick(this.sinceSignal)[0] : rng.below(rng.chance(0.9) ? size : 0x8000);
    const wrap = rng.chance(0.7) && this.sinceSignal.length ? rng.pick(this.sinceSignal)[1] : rng.below(2);
    dv.setUint16(DRIVER_EVENT, off | (wrap << 15), true);
    dv.setUint16(DRIVER_EVENT + 2, flags, true);
    // 2.8.10: DISABLE never, DESC when the named descriptor was among those written, else always.
    let want: boolean;
    if (flags === 1) want = false;
    else if (flags !== 2) want = true;
    else want = this.sinceSignal.some(([p, w]) => p === off && w === wrap);
    const got = arena.e.packedNeedInterrupt(DRIVER_EVENT, size, STATE) === 1;
    this.sinceSignal = [];
    if (got !== want) fail(`packed interrupt: device ${got}, model ${want} (flags ${flags}, off ${off} wrap ${wrap})`);
    count(stats.packed, got ? "irq" : "no-irq");
  }
}
