// build/vring.wasm: split and packed virtqueues, instantiated per domain over the memory
// that holds the ring. Device sides (split.ts, packed.ts: the halves that read hostile
// input), driver sides (driver.ts, packed.ts), what they share (defs.ts: flags, the error
// enum, bounds helpers; dma.ts: the DMA window) and in-Wasm cycle benchmarks. Integers in,
// integers out.
export { vringPop, vringPush, vringNeedInterrupt, vringUsedEvent } from "./split";
export { vringNeedEvent } from "./defs";
export { vringSetDmaWindow } from "./dma";
export { vringDriverInit, vringDriverFree, vringAdd, vringAddIndirect, vringNeedKick, vringReclaim, vringDriverStateSize } from "./driver";
export {
  packedDeviceStateSize, packedDeviceInit, packedPop, packedPush, packedNeedInterrupt,
  packedDriverStateSize, packedDriverInit, packedDriverFree, packedAdd, packedNeedKick, packedReclaim,
} from "./packed";
export { vringCycleBench, packedCycleBench } from "./bench";
// The error enum and the bits the exports take, exported as globals so
// test/vring/errors.test.ts can tie host/transport/vring/errors.ts and engine.ts to them.
export {
  ERR_AVAIL_IDX_JUMP, ERR_INDEX_OUT_OF_RANGE, ERR_DESCRIPTOR_LOOP, ERR_ADDRESS_OUT_OF_RANGE, ERR_READABLE_AFTER_WRITABLE,
  ERR_INDIRECT_NOT_SUPPORTED, ERR_LENGTH_OVERFLOW, ERR_BAD_QUEUE, ERR_INDIRECT_IN_INDIRECT, ERR_INVALID_INDIRECT_LENGTH,
  ERR_CHAIN_TOO_LONG, ERR_INCOMPLETE_CHAIN, ERR_INDIRECT_WITH_NEXT, ERR_RING_FULL,
  FEATURE_EVENT_IDX, FEATURE_INDIRECT, FEATURE_GRANT_ADDR, BUF_WRITABLE, BUF_GRANT_ADDR,
} from "./defs";
