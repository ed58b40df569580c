// Typed exports of build/argo.wasm (assembly/argo). One instance per domain, over that
// domain's memory only.
import { instantiate } from "../wasm.ts";

/** The Argo ring engine as seen from the host. All arguments are u32 guest addresses or values. */
export interface ArgoEngine {
  /** ringbuf_payload_space: largest payload that fits now (rx_ptr sanitized). */
  argoPayloadSpace(ringGpa: number, ringLen: number, txPtr: number): number;
  /** Size checks + message header at hdrGpa: the tx_ptr to publish after the payload, or -EMSGSIZE / -EAGAIN. */
  argoReserve(
    ringGpa: number, ringLen: number, txPtr: number, hdrGpa: number,
    len: number, srcAport: number, srcDomid: number, messageType: number,
  ): number;
  /** Guest side: read (and optionally consume) one message into a list of {le32 gpa, le32 len} buffers. */
  argoRecv(gfnList: number, ringLen: number, metaGpa: number, iovGpa: number, niov: number, skip: number, consume: number): number;
  /** Guest side: consume one message into one buffer; uses metaGpa..metaGpa+24. */
  argoReadMessage(gfnList: number, ringLen: number, metaGpa: number, bufGpa: number, bufCap: number): number;
  argoPendingBytes(gfnList: number, ringLen: number): number;
}

/** Codes returned by argoReadMessage (assembly/argo/read.ts). */
export const READ_EMPTY = -1;
export const READ_BAD_RING = -2;
export const READ_BAD_POINTER = -3;
export const READ_BAD_MESSAGE = -4;
export const READ_BAD_BUFFER = -5;

export function argoEngine(memory: WebAssembly.Memory): ArgoEngine {
  return instantiate<ArgoEngine>("argo", memory);
}
