// A domain: its own guest-physical memory, its Argo engine instance over that memory,
// its Argo state and its VIRQ. A Domain holds a view of its own memory only; bytes of
// other domains reach it exclusively through the hypervisor's copies.
import { GuestMemory, type MemoryWindow } from "./guest-memory.ts";
import { argoEngine, type ArgoEngine } from "./engine.ts";
import { Virq, type VirqHandler } from "./virq.ts";
import type { GuestDomain } from "../abi/guest-domain.ts";
import { doArgoOp } from "./argo-op.ts";
import { DomainArgo } from "./argo-api.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { ENODEV } from "../abi/errno.ts";

export interface DomainConfig {
  /** Human-readable name, used in logs and audit lines. */
  name: string;
  /** Security label (policy type), e.g. "guest_t". */
  label: string;
  /** Guest memory size in bytes, rounded up to 64 KiB; at most 4 GiB. */
  memoryBytes: number;
  /**
   * Instead of a memory of its own: the window of an emulator's memory that is this
   * domain's RAM (a Linux guest in v86). Domain addresses are then offsets in that
   * memory, valid only inside the window; `memoryBytes` is ignored.
   */
  memoryWindow?: MemoryWindow;
}

export class Domain implements GuestDomain {
  readonly domid: number;
  readonly name: string;
  readonly label: string;
  /** Security id assigned by the MAC layer (interned label); -1 until bound. */
  sid = -1;
  /** @internal the memory with its cached views. */
  readonly mem: GuestMemory;
  /** @internal build/argo.wasm instantiated over this domain's memory. */
  readonly engine: ArgoEngine;
  /** Typed wrapper over the Argo hypercall for TypeScript callers. */
  readonly argo: DomainArgo;
  /** VIRQ_ARGO; what its handlers throw is caught and reported as the hypervisor's virqHandlerError. */
  readonly virq: Virq;
  /** The trap gate to the hypervisor: a JS private field, so guest code holding this handle cannot reach the hypervisor's state (or other domains) through it. */
  readonly #hv: Hypervisor;
  private alive = true;

  /** @internal created by Hypervisor.createDomain. */
  constructor(hv: Hypervisor, domid: number, config: DomainConfig) {
    this.#hv = hv;
    this.domid = domid;
    this.name = config.name;
    this.label = config.label;
    this.mem = new GuestMemory(config.memoryWindow ?? config.memoryBytes);
    this.engine = argoEngine(this.mem.memory);
    this.argo = new DomainArgo(hv, this);
    this.virq = new Virq((error) => hv.virqHandlerFailed(this, error));
  }

  /** This domain's own guest-physical memory. */
  get memory(): WebAssembly.Memory {
    return this.mem.memory;
  }

  get destroyed(): boolean {
    return !this.alive;
  }

  /**
   * Xen's argo hypercall (do_argo_op), byte for byte: arg1/arg2 are guest-physical
   * addresses of argo.h structs in this domain's memory, arg3/arg4 unsigned longs.
   * Returns 0, a byte count, or a negative Xen errno; never throws on guest input.
   */
  hypercall(op: number, arg1: number, arg2: number, arg3: number, arg4: number): number {
    if (!this.alive) return -ENODEV;
    this.mem.fresh();
    return doArgoOp(this.#hv, this, op, arg1, arg2, arg3, arg4);
  }

  /**
   * Lets the other domains run their pending VIRQ handlers now, then this one's
   * (SCHEDOP_yield; see Hypervisor.schedYield). For a guest's VMM that must answer a
   * trapped register access synchronously. Returns the number of deliveries.
   */
  schedYield(rounds?: number): number {
    if (!this.alive) return 0;
    return this.#hv.schedYield(this, rounds);
  }

  /** Calls `handler` (from a microtask) after VIRQ_ARGO is raised; signals coalesce. */
  onVirq(handler: VirqHandler): () => void {
    return this.virq.on(handler);
  }

  /** True if VIRQ_ARGO was raised since the last poll or delivery; clears it. */
  pollVirq(): boolean {
    return this.virq.poll();
  }

  /** @internal */
  raiseVirq(): void {
    if (this.alive) this.virq.raise();
  }

  /** @internal called by Hypervisor.destroyDomain. */
  markDestroyed(): void {
    this.alive = false;
  }
}
