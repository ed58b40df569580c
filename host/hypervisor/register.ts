// XEN_ARGO_OP_register_ring (register_ring in argo.c). Checks run in Xen's order so that
// each failure returns the errno Xen returns for it.
import { EEXIST, EINVAL, ENODEV, ENOSPC, EPERM, ESRCH, ECONNREFUSED } from "../abi/errno.ts";
import {
  DOMID_ANY, MAX_RING_SIZE, MAX_RINGS_PER_DOMAIN, MSG_HEADER_SIZE, PAGE_SIZE,
  REGISTER_FLAG_FAIL_EXIST, REGISTER_FLAG_MASK, RING_RX_PTR, RING_TX_PTR, npagesRing, roundupMessage,
} from "../abi/argo.ts";
import type { Domain } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { RingInfo, ringKey } from "./ring.ts";
import { removeRing } from "./lifecycle.ts";

/** xen_argo_register_ring_t, decoded. */
export interface RegisterArgs {
  aport: number;
  partnerId: number;
  pad: number;
  len: number;
}

/**
 * Reads gfn `i` of the caller's list: a gfn, or a negative errno (-EFAULT when the list
 * cannot be read). The hypercall path reads guest memory; the typed API passes an array.
 */
export type GfnSource = (i: number) => number;

export function registerRing(hv: Hypervisor, currd: Domain, reg: RegisterArgs, gfns: GfnSource, npage: number, flags: number): number {
  // Undefined flag bits are reserved: refusing them keeps them usable later.
  if ((flags & ~REGISTER_FLAG_MASK) !== 0) return -EINVAL;
  // Header + one payload slot + the slot that always stays empty; 16-aligned; the page
  // count must match the length, so the hypervisor never maps fewer pages than it writes.
  if (
    reg.len < MSG_HEADER_SIZE + 2 * 16 || reg.len > MAX_RING_SIZE || reg.len !== roundupMessage(reg.len) ||
    npagesRing(reg.len) !== npage || reg.pad !== 0
  ) return -EINVAL;

  let partner: Domain | undefined;
  if (reg.partnerId === DOMID_ANY) {
    // Xen refuses wildcard rings unless booted with argo=mac-permissive.
    if (!hv.options.wildcardRings) return -EPERM;
    const rc = hv.mac.registerAnySource(currd, reg.len);
    if (rc) return rc;
  } else {
    partner = hv.domainById(reg.partnerId);
    if (!partner) return -ESRCH;
    const rc = hv.mac.registerSingleSource(currd, partner, reg.len);
    if (rc) return rc;
  }

  const state = hv.argoOf(currd);
  if (!state) return -ENODEV;
  const partnerState = hv.argoOf(partner);
  if (partner && !partnerState) return -ECONNREFUSED;
  if (state.rings.size >= MAX_RINGS_PER_DOMAIN) return -ENOSPC;

  const key = ringKey(reg.aport, reg.partnerId);
  const existing = state.rings.get(key);
  if (existing) {
    if (flags & REGISTER_FLAG_FAIL_EXIST) return -EEXIST;
    // A resize could strand pending waiters (Xen: "disallow ring resize for now").
    if (existing.len !== reg.len) return -EEXIST;
  }

  // find_ring_mfns: every gfn must be a page of the caller's own memory.
  const mem = currd.mem;
  const pages = new Float64Array(npage);
  for (let i = 0; i < npage; i++) {
    const gfn = gfns(i);
    let rc = 0;
    if (gfn < 0) rc = gfn;
    else if (gfn < mem.lo / PAGE_SIZE || gfn >= mem.size / PAGE_SIZE) rc = -EINVAL; // not RAM of this domain
    if (rc) {
      // Xen drops the ring (even a previously registered one) when re-registration fails.
      if (existing) removeRing(hv, existing);
      return rc;
    }
    pages[i] = gfn * PAGE_SIZE;
  }

  // The guest's tx_ptr is kept if it is a valid slot; otherwise the ring is "a mess" and
  // is flushed to the next slot past rx_ptr (register_ring's private_tx_ptr logic).
  const ringGpa = pages[0];
  let txPtr = mem.dv.getUint32(ringGpa + RING_TX_PTR, true);
  if (txPtr >= reg.len || roundupMessage(txPtr) !== txPtr) {
    txPtr = roundupMessage(mem.dv.getUint32(ringGpa + RING_RX_PTR, true));
    if (txPtr >= reg.len) txPtr = 0;
    mem.dv.setUint32(ringGpa + RING_TX_PTR, txPtr, true);
  }

  const ring = new RingInfo(currd, reg.aport, reg.partnerId, reg.len, pages, txPtr);
  if (existing) ring.pending.push(...existing.pending); // re-registration keeps its waiters
  state.rings.set(key, ring);
  // A cached sendv lookup may have found the old ring, or the wildcard ring this exact
  // one now takes precedence over: none of them may be used again.
  hv.ringGen++;
  if (partner) {
    if (existing) partnerState!.sendInfo.delete(existing);
    partnerState!.sendInfo.add(ring);
  }
  if (existing && existing.wildcard) {
    for (const ent of existing.pending) {
      const w = hv.argoOf(hv.domainById(ent.domid))?.wildcardPending;
      if (w) { w.delete(existing); w.add(ring); }
    }
  }
  return 0;
}
