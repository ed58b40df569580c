// build/vring.wasm: split and packed virtqueues, instantiated per domain over the memory
// that holds the ring. Device sides (split.ts, packed.ts: the halves that read hostile
// input), driver sides (driver.ts, packed.ts) and in-Wasm cycle benchmarks. Integers in,
// integers out.
export { vringPop, vringPush, vringNeedEvent, vringNeedInterrupt, vringUsedEvent, vringSetDmaWindow } from "./split";
export { vringDriverInit, vringDriverFree, vringAdd, vringAddIndirect, vringNeedKick, vringReclaim, vringDriverStateSize } from "./driver";
export {
  packedDeviceStateSize, packedDeviceInit, packedPop, packedPush, packedNeedInterrupt,
  packedDriverStateSize, packedDriverInit, packedDriverFree, packedAdd, packedNeedKick, packedReclaim,
} from "./packed";
export { vringCycleBench, packedCycleBench } from "./bench";
