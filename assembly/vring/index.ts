// build/vring.wasm: split virtqueues, instantiated per domain over the memory that holds
// the ring. Device side (split.ts, the half that reads hostile input), driver side
// (driver.ts) and an in-Wasm cycle benchmark. Integers in, integers out.
export { vringPop, vringPush, vringNeedEvent, vringUsedEvent } from "./split";
export { vringDriverInit, vringDriverFree, vringAdd, vringNeedKick, vringReclaim, vringDriverStateSize } from "./driver";
export { vringCycleBench } from "./bench";
