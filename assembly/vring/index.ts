// build/vring.wasm: the device side of split virtqueues, instantiated per domain over
// the memory that holds the ring. Integers in, integers out.
export { vringPop, vringPush, vringNeedEvent, vringUsedEvent } from "./split";
