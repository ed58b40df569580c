// Per-domain Argo state (struct argo_domain). A domain without it (argo not enabled for
// it) gets -ENODEV from every op, and -ECONNREFUSED as a destination.
import type { RingInfo } from "./ring.ts";

/** Entries of a sender's ring lookup cache (a power of two: the slot is a mask). */
export const SEND_CACHE_SLOTS = 8;

export class ArgoState {
  /** Rings this domain registered, by ringKey(aport, partner). */
  readonly rings = new Map<number, RingInfo>();
  /** Rings of other domains that name this domain as their single partner (send_hash). */
  readonly sendInfo = new Set<RingInfo>();
  /** Wildcard rings on which this domain has a pending-space entry (wildcard_pend_list). */
  readonly wildcardPending = new Set<RingInfo>();
  /**
   * This domain's sendv lookups (find_ring_info_by_match for it as sender), cached:
   * slot (dstAport ^ dstDomid) & 7 holds key dstAport * 2^16 + dstDomid (exact: < 2^48)
   * and the ring found. Valid only while sendCacheGen equals the hypervisor's ring
   * generation, which every change to any ring table or Argo state bumps (register,
   * unregister, revocation, destruction, argo enabled or disabled), so a hit is exactly
   * what the two Map lookups and the destination's lookup would return now. Hypervisor-
   * private like the rest of this object: no guest handle reaches it.
   */
  readonly sendCacheKeys = new Float64Array(SEND_CACHE_SLOTS).fill(-1);
  readonly sendCacheRings: Array<RingInfo | null> = new Array<RingInfo | null>(SEND_CACHE_SLOTS).fill(null);
  sendCacheGen = -1;
}
