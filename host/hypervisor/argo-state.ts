// Per-domain Argo state (struct argo_domain). A domain without it (argo not enabled for
// it) gets -ENODEV from every op, and -ECONNREFUSED as a destination.
import type { RingInfo } from "./ring.ts";

export class ArgoState {
  /** Rings this domain registered, by ringKey(aport, partner). */
  readonly rings = new Map<number, RingInfo>();
  /** Rings of other domains that name this domain as their single partner (send_hash). */
  readonly sendInfo = new Set<RingInfo>();
  /** Wildcard rings on which this domain has a pending-space entry (wildcard_pend_list). */
  readonly wildcardPending = new Set<RingInfo>();
}
