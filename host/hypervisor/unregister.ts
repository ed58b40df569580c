// XEN_ARGO_OP_unregister_ring (unregister_ring in argo.c).
import { EINVAL, ENODEV, ENOENT } from "../abi/errno.ts";
import type { Domain } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { removeRing } from "./lifecycle.ts";
import { ringKey } from "./ring.ts";

export function unregisterRing(hv: Hypervisor, currd: Domain, aport: number, partnerId: number, pad: number): number {
  if (pad !== 0) return -EINVAL;
  const state = hv.argoOf(currd);
  if (!state) return -ENODEV;
  const ring = state.rings.get(ringKey(aport, partnerId));
  if (!ring) return -ENOENT;
  removeRing(hv, ring);
  return 0;
}
