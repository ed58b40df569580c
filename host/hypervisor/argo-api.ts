// domain.argo: the Argo ops for TypeScript callers (a VMM, tests, host-side guests),
// with the same checks, results and errnos as the hypercall, minus struct decoding.
import { EINVAL, EOPNOTSUPP } from "../abi/errno.ts";
import { DOMID_ANY, MAXIOV } from "../abi/argo.ts";
import type { Domain } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { registerRing } from "./register.ts";
import { unregisterRing } from "./unregister.ts";
import { sendv } from "./sendv.ts";
import { fillRingData, notifyBegin } from "./notify.ts";
import { ENODEV } from "../abi/errno.ts";

export interface ArgoAddr {
  aport: number;
  /** Defaults to DOMID_ANY (the sender's own id, for a source address). */
  domid?: number;
}
export interface RingSpec {
  aport: number;
  /** Single partner allowed to send, or DOMID_ANY (0x7FF4) for a wildcard ring. */
  partner: number;
  /** Data bytes: 16-aligned, >= 48, <= 16 MiB. */
  len: number;
}
/** One buffer in the caller's memory. */
export interface Iov {
  gpa: number;
  len: number;
}
export interface NotifyQuery {
  domid: number;
  aport: number;
  spaceRequired?: number;
}
export interface NotifyResult {
  flags: number;
  maxMessageSize: number;
}

export class DomainArgo {
  readonly #hv: Hypervisor;
  readonly #d: Domain;

  constructor(hv: Hypervisor, d: Domain) {
    this.#hv = hv;
    this.#d = d;
  }

  private gate(): number {
    if (this.#d.destroyed) return -ENODEV;
    if (!this.#hv.options.argo) return -EOPNOTSUPP;
    return this.#hv.mac.argoEnable(this.#d);
  }

  /** XEN_ARGO_OP_register_ring with the ring's 4 KiB page frame numbers (gfns). */
  register(ring: RingSpec, gfns: readonly number[], flags = 0): number {
    const rc = this.gate();
    if (rc) return rc;
    if (gfns.length > 4096) return -EINVAL;
    return registerRing(this.#hv, this.#d, { aport: ring.aport, partnerId: ring.partner, pad: 0, len: ring.len },
      (i) => (Number.isInteger(gfns[i]) && gfns[i] >= 0 ? gfns[i] : -EINVAL), gfns.length, flags);
  }

  /** XEN_ARGO_OP_unregister_ring. */
  unregister(ring: { aport: number; partner: number }): number {
    const rc = this.gate();
    if (rc) return rc;
    return unregisterRing(this.#hv, this.#d, ring.aport, ring.partner, 0);
  }

  /** XEN_ARGO_OP_sendv: payload bytes sent, or a negative errno. */
  sendv(src: ArgoAddr, dst: Required<ArgoAddr>, iovs: readonly Iov[], messageType = 0): number {
    const rc = this.gate();
    if (rc) return rc;
    if (iovs.length > MAXIOV || !Number.isInteger(messageType) || messageType < 0 || messageType > 0xffffffff) return -EINVAL;
    const s = this.#hv.sendScratch;
    for (let i = 0; i < iovs.length; i++) {
      s.hnd[i] = iovs[i].gpa;
      s.len[i] = iovs[i].len;
      s.pad[i] = 0;
    }
    return sendv(this.#hv, this.#d, src.aport, src.domid ?? DOMID_ANY, 0, dst.aport, dst.domid, 0, s, iovs.length, messageType);
  }

  /** XEN_ARGO_OP_notify: wakes waiters on this domain's rings, then describes `queries`. */
  notify(queries: readonly NotifyQuery[] = []): { rc: number; results: NotifyResult[] } {
    let rc = this.gate();
    const results: NotifyResult[] = [];
    if (!rc) rc = notifyBegin(this.#hv, this.#d);
    for (const q of queries) {
      if (rc) break;
      const ent = { aport: q.aport, domid: q.domid, flags: 0, spaceRequired: q.spaceRequired ?? 0, maxMessageSize: 0 };
      rc = fillRingData(this.#hv, this.#d, ent);
      if (!rc) results.push({ flags: ent.flags, maxMessageSize: ent.maxMessageSize });
    }
    return { rc, results };
  }
}
