// The guest's Argo ring reader (assembly/argo/read.ts): the functions a guest calls on its
// own ring, in its own memory, and the codes they return. A guest's Argo driver depends
// on this and on argo.h's layout (./argo.ts), never on the hypervisor: the reader runs in
// the guest's Wasm instance and shares nothing with the hypervisor but the ring's bytes.
// test/argo/layout.test.ts ties these codes to the Wasm module's own.

/** Guest side of build/argo.wasm. All arguments are u32 guest addresses or values. */
export interface ArgoReader {
  /** Read (and optionally consume) one message into a list of {le32 gpa, le32 len} buffers. */
  argoRecv(gfnList: number, ringLen: number, metaGpa: number, iovGpa: number, niov: number, skip: number, consume: number): number;
  /** Consume one message into one buffer; uses metaGpa..metaGpa+24. */
  argoReadMessage(gfnList: number, ringLen: number, metaGpa: number, bufGpa: number, bufCap: number): number;
  /** Bytes between rx_ptr and tx_ptr (0 when empty), or a READ_* code. */
  argoPendingBytes(gfnList: number, ringLen: number): number;
}

/** The ring holds no message (rx_ptr == tx_ptr): not an error, poll again after a VIRQ. */
export const READ_EMPTY = -1;
/** The ring's length or its gfn list is not a ring this reader accepts. */
export const READ_BAD_RING = -2;
/** rx_ptr or tx_ptr is out of range or not slot-aligned. */
export const READ_BAD_POINTER = -3;
/** A message header's length overruns the bytes between rx_ptr and tx_ptr. */
export const READ_BAD_MESSAGE = -4;
/** A destination buffer lies outside the guest's memory. */
export const READ_BAD_BUFFER = -5;
