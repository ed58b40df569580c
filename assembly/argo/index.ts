// build/argo.wasm: the Argo ring engine, instantiated once per domain over its memory.
// Hypervisor side (insert.ts) runs over the ring owner's memory; guest side (read.ts)
// is what a receiving guest's driver runs. Exports take and return plain integers.
export { argoPayloadSpace, argoReserve } from "./insert";
export { argoRecv, argoReadMessage, argoPendingBytes } from "./read";
