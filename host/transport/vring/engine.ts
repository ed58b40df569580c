// build/vring.wasm (assembly/vring/) bound to a memory: the type of its exports, the bits
// they take, one instance per memory (the DMA window is per instance), and the window's
// setter. Every export takes and returns integers; < 0 results are errors.ts's codes.
// test/vring/errors.test.ts ties the bits below to the globals of the same names.
import { instantiate } from "../../wasm.ts";

/** vringPop / packedPop `features`: the ring features the driver negotiated (assembly/vring/defs.ts). */
export const FEATURE_EVENT_IDX = 1;
export const FEATURE_INDIRECT = 2;
/** Descriptor addresses are Xen grant DMA handles (split ring only). */
export const FEATURE_GRANT_ADDR = 4;
/** Buffer flags of the {addr, len, flags} blocks vringAdd / packedAdd take: device-writable. */
export const BUF_WRITABLE = 1;
/** The address is a grant DMA handle (split ring only). */
export const BUF_GRANT_ADDR = 2;

/** Exports of build/vring.wasm (assembly/vring/: split.ts, driver.ts, packed.ts, defs.ts, dma.ts, bench.ts). */
export interface VringEngine {
  vringDriverInit(desc: number, avail: number, used: number, size: number, state: number): number;
  vringDriverFree(state: number): number;
  vringDriverStateSize(size: number): number;
  vringAdd(desc: number, avail: number, used: number, size: number, state: number, bufs: number, n: number): number;
  vringNeedKick(used: number, size: number, state: number, eventIdx: number): number;
  vringReclaim(desc: number, avail: number, used: number, size: number, state: number, eventIdx: number, out: number, max: number): number;
  vringAddIndirect(desc: number, avail: number, used: number, size: number, state: number, bufs: number, n: number, table: number): number;
  vringCycleBench(desc: number, avail: number, used: number, size: number, state: number, devState: number, bufs: number, n: number, popOut: number, reclaimOut: number, features: number, iterations: number, table: number): number;
  packedDeviceStateSize(size: number): number;
  packedDeviceInit(size: number, state: number): number;
  packedPop(desc: number, deviceEvent: number, size: number, state: number, features: number, out: number): number;
  packedPush(desc: number, size: number, state: number, id: number, written: number): number;
  packedNeedInterrupt(driverEvent: number, size: number, state: number): number;
  packedDriverStateSize(size: number): number;
  packedDriverInit(desc: number, driverEvent: number, size: number, state: number, eventIdx: number, inOrder: number): number;
  packedDriverFree(state: number): number;
  packedAdd(desc: number, size: number, state: number, bufs: number, n: number, table: number): number;
  packedNeedKick(deviceEvent: number, size: number, state: number): number;
  packedReclaim(desc: number, driverEvent: number, size: number, state: number, eventIdx: number, out: number, max: number): number;
  packedCycleBench(desc: number, driverEvent: number, deviceEvent: number, size: number, driverState: number, deviceState: number, bufs: number, n: number, popOut: number, reclaimOut: number, features: number, iterations: number, table: number): number;
  vringPop(desc: number, avail: number, used: number, size: number, lastAvail: number, features: number, out: number): number;
  vringPush(used: number, size: number, usedIdx: number, head: number, written: number): number;
  vringNeedEvent(event: number, newIdx: number, old: number): number;
  vringUsedEvent(avail: number, size: number): number;
  vringSetDmaWindow(base: number, limit: number): number;
  vringNeedInterrupt(avail: number, size: number, usedIdx: number, old: number, eventIdx: number): number;
}

const engines = new WeakMap<WebAssembly.Memory, VringEngine>();

/** build/vring.wasm instantiated once per memory. */
export function vringEngine(memory: WebAssembly.Memory): VringEngine {
  let e = engines.get(memory);
  if (!e) engines.set(memory, (e = instantiate<VringEngine>("vring", memory)));
  return e;
}

/**
 * Sets the DMA window of `memory`'s ring engine: descriptor addresses are then checked
 * against [0, limit) and used at offset `base` (a Linux guest's RAM inside v86's memory).
 * False when the window lies outside the memory.
 */
export function setDmaWindow(memory: WebAssembly.Memory, base: number, limit: number): boolean {
  return vringEngine(memory).vringSetDmaWindow(base, limit) === 1;
}
