// Pending-space notifications (pending_* in argo.c): a sender refused with -EAGAIN, or a
// notify caller asking for space, is queued on the ring and signalled (VIRQ_ARGO) once
// that much payload space exists. At most MAX_PENDING_PER_RING entries per ring, one per
// sender, so a flood of senders cannot grow hypervisor memory.
import { MAX_PENDING_PER_RING } from "../abi/argo.ts";
import { EBUSY } from "../abi/errno.ts";
import type { RingInfo } from "./ring.ts";
import type { Hypervisor } from "./hypervisor.ts";

/** pending_requeue: reuse the sender's entry (raising its len) or add one; -EBUSY when full. */
export function pendingRequeue(hv: Hypervisor, ring: RingInfo, domid: number, len: number): number {
  for (const ent of ring.pending) {
    if (ent.domid === domid) {
      if (ent.len < len) ent.len = len;
      return 0;
    }
  }
  if (ring.pending.length >= MAX_PENDING_PER_RING) return -EBUSY;
  ring.pending.push({ domid, len });
  if (ring.wildcard) hv.argoOf(hv.domainById(domid))?.wildcardPending.add(ring);
  return 0;
}

/** pending_cancel: drop every entry of `domid` on this ring. */
export function pendingCancel(hv: Hypervisor, ring: RingInfo, domid: number): void {
  const before = ring.pending.length;
  for (let i = ring.pending.length - 1; i >= 0; i--) if (ring.pending[i].domid === domid) ring.pending.splice(i, 1);
  if (ring.wildcard && ring.pending.length !== before) hv.argoOf(hv.domainById(domid))?.wildcardPending.delete(ring);
}

/** pending_find: removes and returns the senders whose wanted space is now available. */
export function pendingFind(hv: Hypervisor, ring: RingInfo, space: number, out: number[]): void {
  for (let i = ring.pending.length - 1; i >= 0; i--) {
    const ent = ring.pending[i];
    if (space >= ent.len) {
      ring.pending.splice(i, 1);
      if (ring.wildcard) hv.argoOf(hv.domainById(ent.domid))?.wildcardPending.delete(ring);
      out.push(ent.domid);
    }
  }
}

/** pending_remove_all: the ring is going away; its waiters are dropped (Xen does not signal them). */
export function pendingRemoveAll(hv: Hypervisor, ring: RingInfo): void {
  if (ring.wildcard) for (const ent of ring.pending) hv.argoOf(hv.domainById(ent.domid))?.wildcardPending.delete(ring);
  ring.pending.length = 0;
}
