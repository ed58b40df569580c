// Tearing rings down: unregister, domain destruction (argo_destroy) and policy revocation
// all end here, so a ring always leaves every table that refers to it.
import type { Domain } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { pendingRemoveAll } from "./pending.ts";
import { ringKey, type RingInfo } from "./ring.ts";

/**
 * ring_remove_info plus the bookkeeping around it: drops the ring's waiters, removes it
 * from its owner's table and from its partner's send list. After this no sendv can
 * reach it; bytes already in the ring stay in the owner's memory for it to read.
 */
export function removeRing(hv: Hypervisor, ring: RingInfo): void {
  hv.ringGen++; // no cached sendv lookup may still find it
  pendingRemoveAll(hv, ring);
  hv.argoOf(ring.owner)?.rings.delete(ringKey(ring.aport, ring.partnerId));
  if (!ring.wildcard) hv.argoOf(hv.domainById(ring.partnerId))?.sendInfo.delete(ring);
}

/**
 * argo_destroy: removes the domain's own rings, the rings of others that name it as
 * single partner (partner_rings_remove: nobody else may send to them), and its waits
 * on wildcard rings (wildcard_rings_pending_remove).
 */
export function argoDestroy(hv: Hypervisor, d: Domain): RingInfo[] {
  const state = hv.argoOf(d);
  if (!state) return [];
  const removed: RingInfo[] = [];
  for (const ring of [...state.rings.values()]) {
    removeRing(hv, ring);
    removed.push(ring);
  }
  for (const ring of [...state.sendInfo]) {
    removeRing(hv, ring);
    removed.push(ring);
  }
  for (const ring of state.wildcardPending) {
    for (let i = ring.pending.length - 1; i >= 0; i--) if (ring.pending[i].domid === d.domid) ring.pending.splice(i, 1);
  }
  state.wildcardPending.clear();
  hv.setArgo(d, null);
  return removed;
}
