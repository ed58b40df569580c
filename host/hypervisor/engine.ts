// Typed exports of build/argo.wasm (assembly/argo). One instance per domain, over that
// domain's memory only.
import { instantiate } from "../wasm.ts";
import type { ArgoReader } from "../abi/argo-reader.ts";

/**
 * The Argo ring engine as seen from the host: the guest's reader (../abi/argo-reader.ts)
 * plus the two functions the hypervisor runs on a destination ring while it copies.
 * All arguments are u32 guest addresses or values.
 */
export interface ArgoEngine extends ArgoReader {
  /** ringbuf_payload_space: largest payload that fits now (rx_ptr sanitized). */
  argoPayloadSpace(ringGpa: number, ringLen: number, txPtr: number): number;
  /** Size checks + message header at hdrGpa: the tx_ptr to publish after the payload, or -EMSGSIZE / -EAGAIN. */
  argoReserve(
    ringGpa: number, ringLen: number, txPtr: number, hdrGpa: number,
    len: number, srcAport: number, srcDomid: number, messageType: number,
  ): number;
}

export function argoEngine(memory: WebAssembly.Memory): ArgoEngine {
  return instantiate<ArgoEngine>("argo", memory);
}
