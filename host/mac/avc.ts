// The access vector cache: decisions keyed by (source sid, target sid, class) in one flat
// Int32Array, so that a cached send check is two property loads, an index computation and
// a compare: no Map, no strings, no allocation. Sids are small integers interned from
// labels once per process (sidtab), so a Subject bound by one Mac means the same label
// to every Mac.
//
// Entry layout, index ((s * stride + t) << 2) | class:
//   0                 not cached (miss)
//   -1 (AVC_DENIED)   permission denied (also: a label the policy does not declare)
//   1 .. 0x3FFFFFFF   allowed; value - 1 is the byte limit (ring or payload),
//                     0x3FFFFFFF = no limit (Xen's sizes stop at 16 MiB, far below)
//   | 0x40000000      (AVC_RATED) the grant has a rate limit: the check leaves the fast path
// so the fast send test is `v > len && v < AVC_RATED`: allowed, unrated, and within the limit.
import { XEN_LABEL, type RateLimit } from "./model.ts";
import type { AccessDecision } from "./policy.ts";

/** Classes of the cache: one per Argo hook. */
export const AV_SEND = 0;
export const AV_SINGLE = 1;
export const AV_ANY = 2;
export const AV_ENABLE = 3;

export const AVC_DENIED = -1;
export const AVC_RATED = 0x40000000;
/** Stored for "no limit": larger than any length the hypervisor can pass (Xen caps rings at 16 MiB). */
export const AVC_NO_LIMIT = 0x3fffffff;
/** Labels beyond this many are still decided correctly, just never cached (bounds memory: 256^2 * 4 * 4 B = 1 MiB). */
export const AVC_MAX_STRIDE = 256;
const AVC_FIRST_STRIDE = 16;

// ---- sidtab: label <-> sid, process-wide, append-only ----
const sids = new Map<string, number>([[XEN_LABEL, 0]]);
const labels: string[] = [XEN_LABEL];

/** The sid of the hypervisor's label (xen_t): the target of enable and register_any_source. */
export const XEN_SID = 0;

/** Interns a label: the same label always gets the same small integer. */
export function internLabel(label: string): number {
  let sid = sids.get(label);
  if (sid === undefined) {
    sid = labels.length;
    labels.push(label);
    sids.set(label, sid);
  }
  return sid;
}

/** The label of a sid, or undefined for a sid never handed out. */
export function sidLabel(sid: number): string | undefined {
  return labels[sid];
}

/** Encodes a decision (undefined = denied) as a cache entry. */
export function encodeDecision(d: AccessDecision | undefined): number {
  if (!d) return AVC_DENIED;
  const stored = d.limit >= AVC_NO_LIMIT - 1 ? AVC_NO_LIMIT : d.limit + 1;
  return d.rate ? stored | AVC_RATED : stored;
}

/** The cache proper. Owned by one Mac, flushed on every policy load. */
export class Avc {
  /** A power of two: `(s | t) < stride` tests both sids in bounds at once. */
  stride = AVC_FIRST_STRIDE;
  entries = new Int32Array(AVC_FIRST_STRIDE * AVC_FIRST_STRIDE * 4);
  /** Rate limits of cached RATED entries, by entry index (only consulted for rated sends). */
  readonly rates = new Map<number, RateLimit>();

  index(s: number, t: number, cls: number): number {
    return ((s * this.stride + t) << 2) | cls;
  }

  /**
   * Makes room for `sid`; false when it is beyond AVC_MAX_STRIDE (decide uncached).
   * Growing drops every entry: the layout changes with the stride.
   */
  covers(sid: number): boolean {
    if (sid < this.stride) return true;
    if (sid >= AVC_MAX_STRIDE) return false;
    let stride = this.stride;
    while (stride <= sid) stride *= 2;
    this.stride = stride;
    this.entries = new Int32Array(stride * stride * 4);
    this.rates.clear();
    return true;
  }

  flush(): void {
    this.entries.fill(0);
    this.rates.clear();
  }
}
