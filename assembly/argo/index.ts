// build/argo.wasm: the Argo ring engine, instantiated once per domain over its memory.
// Hypervisor side (insert.ts) runs over the ring owner's memory; guest side (read.ts)
// is what a receiving guest's driver runs. Exports take and return plain integers.
export { argoPayloadSpace, argoReserve } from "./insert";
export { argoRecv, argoReadMessage, argoPendingBytes } from "./read";
// The reader's codes, exported so test/argo/layout.test.ts can tie host/abi/argo-reader.ts to them.
export { READ_EMPTY, READ_BAD_RING, READ_BAD_POINTER, READ_BAD_MESSAGE, READ_BAD_BUFFER } from "./read";
