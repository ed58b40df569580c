// What a guest holds of its hypervisor: the hypercall page, so to speak. A guest's Argo
// driver, its kernel and the transports on it are written against this and the argo.h
// ABI (./argo.ts, ./errno.ts, ./argo-reader.ts), never against the hypervisor's types:
// hypervisor/domain.ts's Domain implements it, and a guest's code cannot reach the
// hypervisor's state through it.
import type { ArgoReader } from "./argo-reader.ts";

/** A VIRQ_ARGO handler; signals coalesce, so one call may stand for several raises. */
export type VirqHandler = () => void;

export interface GuestDomain {
  readonly domid: number;
  /** This domain's own guest-physical memory. */
  readonly memory: WebAssembly.Memory;
  /** The guest's Argo ring reader, instantiated over its own memory. */
  readonly engine: ArgoReader;
  readonly destroyed: boolean;
  /** do_argo_op: 0, a byte count or a negative Xen errno; never throws on guest input. */
  hypercall(op: number, arg1: number, arg2: number, arg3: number, arg4: number): number;
  /** SCHEDOP_yield: lets the other domains run their pending VIRQ handlers now. */
  schedYield(rounds?: number): number;
  /** Calls `handler` (from a microtask) after VIRQ_ARGO is raised. */
  onVirq(handler: VirqHandler): () => void;
  /** True if VIRQ_ARGO was raised since the last poll or delivery; clears it. */
  pollVirq(): boolean;
}
