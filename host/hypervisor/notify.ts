// XEN_ARGO_OP_notify (notify, notify_check_pending and fill_ring_data in argo.c).
import { EBUSY, ENODEV } from "../abi/errno.ts";
import {
  MSG_HEADER_SIZE, MSG_SLOT_SIZE, RING_EBUSY, RING_EMPTY, RING_EMSGSIZE, RING_EXISTS, RING_SHARED,
  RING_SUFFICIENT,
} from "../abi/argo.ts";
import type { Domain } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { pendingCancel, pendingFind, pendingRequeue } from "./pending.ts";
import { findRingByMatch } from "./sendv.ts";

/** xen_argo_ring_data_ent_t, decoded; fillRingData updates flags and maxMessageSize. */
export interface RingDataEnt {
  aport: number;
  domid: number;
  flags: number;
  spaceRequired: number;
  maxMessageSize: number;
}

/**
 * notify_check_pending: the caller (a receiver that consumed messages) asks the
 * hypervisor to wake every sender whose wanted space is now free on its rings.
 */
export function notifyCheckPending(hv: Hypervisor, d: Domain): void {
  // Every consuming receiver calls this once per drain, and almost always no sender
  // waits: the list of senders to wake is made only when one does.
  let woken: number[] | null = null;
  for (const ring of hv.argoOf(d)!.rings.values()) {
    if (ring.pending.length === 0) continue;
    const space = d.engine.argoPayloadSpace(ring.ringGpa, ring.len, ring.txPtr);
    if (space) pendingFind(hv, ring, space, (woken ??= []));
  }
  if (woken !== null) for (const domid of woken) hv.domainById(domid)?.raiseVirq();
}

/** The non-guest-memory part of notify: -ENODEV, then wake waiters. */
export function notifyBegin(hv: Hypervisor, currd: Domain): number {
  if (!hv.argoOf(currd)) return -ENODEV;
  notifyCheckPending(hv, currd);
  return 0;
}

/**
 * fill_ring_data: what the caller may learn about one ring it could send to. Returns 0
 * or a negative errno (an XSM denial stops the whole notify, as in Xen). Rings the
 * caller may not send to are not described at all.
 */
export function fillRingData(hv: Hypervisor, currd: Domain, ent: RingDataEnt): number {
  ent.flags = 0;
  const dst = hv.domainById(ent.domid);
  const dstState = hv.argoOf(dst);
  if (!dst || !dstState) return 0;
  const denied = hv.mac.sendQuery(currd, dst);
  if (denied) return denied;

  const ring = findRingByMatch(dstState, ent.aport, currd.domid);
  if (!ring) return 0;
  ent.flags |= RING_EXISTS;
  ent.maxMessageSize = ring.len - MSG_HEADER_SIZE - MSG_SLOT_SIZE;
  if (ring.wildcard) ent.flags |= RING_SHARED;
  const spaceAvail = dst.engine.argoPayloadSpace(ring.ringGpa, ring.len, ring.txPtr);
  let rc = 0;
  if (ent.spaceRequired > ent.maxMessageSize) {
    // Never queue a wait for a size the ring can never hold.
    ent.flags |= RING_EMSGSIZE;
  } else if (spaceAvail >= ent.spaceRequired) {
    pendingCancel(hv, ring, currd.domid);
    ent.flags |= RING_SUFFICIENT;
  } else {
    rc = pendingRequeue(hv, ring, currd.domid, ent.spaceRequired);
    if (rc === -EBUSY) {
      // Too many waiters: say so in the flags and go on with the other entries.
      ent.flags |= RING_EBUSY;
      rc = 0;
    }
  }
  if (spaceAvail === ent.maxMessageSize) ent.flags |= RING_EMPTY;
  return rc;
}
