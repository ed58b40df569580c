// XSM hook points of xen/common/argo.c, as calls into the MAC engine (host/mac). The
// hypervisor calls exactly these, each before it changes any state; each returns 0 or
// a negative errno (-EACCES for a denial, as Flask's avc_has_perm) and audits denials.
import type { Mac } from "../mac/index.ts";
import type { Domain } from "./domain.ts";

export class Xsm {
  constructor(private readonly mac: Mac) {}

  /** xsm_argo_enable: on every op, and at domain creation. */
  argoEnable(d: Domain): number {
    return this.mac.argoEnable(d);
  }

  /** xsm_argo_register_single_source(owner, partner), with the policy's ring-size limit. */
  registerSingleSource(owner: Domain, partner: Domain, ringLen: number): number {
    return this.mac.registerSingleSource(owner, partner, ringLen);
  }

  /** xsm_argo_register_any_source(owner), with the policy's ring-size limit. */
  registerAnySource(owner: Domain, ringLen: number): number {
    return this.mac.registerAnySource(owner, ringLen);
  }

  /** xsm_argo_send(sender, receiver) on sendv, with message-size and rate limits. */
  send(sender: Domain, receiver: Domain, payloadLen: number): number {
    return this.mac.send(sender, receiver, payloadLen);
  }

  /**
   * xsm_argo_send as notify's fill_ring_data uses it: may the caller learn about the
   * receiver's rings? A permission question only, so it spends no rate-limit tokens.
   */
  sendQuery(sender: Domain, receiver: Domain): number {
    return this.mac.sendPermitted(sender, receiver);
  }
}
