// Plain data shared by the policy front ends (YAML in parse.ts, Flask TE in flask.ts)
// and the compiled Policy (policy.ts). Nothing here has behaviour: a front end turns
// text into a PolicyModel, and Policy compiles it into access vectors.

/** An Argo permission, named as the Flask `argo` class names it (xen/xsm/flask/policy/access_vectors). */
export type ArgoPerm = "enable" | "send" | "register_single_source" | "register_any_source";

/** The virtio device types a pair can name. */
export type DeviceType = "blk" | "net" | "console" | "vsock" | "rng";

/** Every Argo permission, in the order Flask declares them. */
export const ARGO_PERMS: readonly ArgoPerm[] = ["enable", "register_single_source", "register_any_source", "send"];

/** Every device type a pair may name. */
export const DEVICE_TYPES: readonly DeviceType[] = ["blk", "net", "console", "vsock", "rng"];

/**
 * The hypervisor's own label. Flask checks `enable` and `register_any_source` against
 * SECINITSID_XEN (type xen_t), not against another domain, so those two permissions are
 * stored as grants whose target is this label. Policies may not declare it as a domain.
 */
export const XEN_LABEL = "xen_t";

/** Where a rule came from, for errors, explain and audit. Lines and columns count from 1. */
export interface Origin {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** A send rate limit: a token bucket of `burst` messages refilled at `messagesPerSecond`. */
export interface RateLimit {
  readonly messagesPerSecond: number;
  readonly burst: number;
}

/** Argo-level limits of a device pair; an absent field means "no limit". */
export interface PairLimits {
  /** Largest ring (data bytes, Xen's `len`) either end may register for the other. */
  readonly maxRingBytes?: number;
  /** Largest sendv payload (bytes, headers excluded) either end may send the other. */
  readonly maxMessageBytes?: number;
  /** Send rate, per sending domain towards each receiving domain. */
  readonly rate?: RateLimit;
}

/** Device-level rules; the transport and device models enforce them, not the Argo hooks. */
export interface DeviceRules {
  /** blk: the backend refuses writes, flushes that write, discards and write-zeroes. */
  readonly readOnly?: boolean;
  /** net: source MAC addresses the frontend may use (lower case, colon separated). */
  readonly allowedMacs?: readonly string[];
  /** vsock: ports the frontend may connect to or listen on. */
  readonly allowedPorts?: readonly number[];
}

/** One device pair: what a frontend label may do with a backend label for one device type. */
export interface PairRule {
  readonly frontend: string;
  readonly backend: string;
  readonly device: DeviceType;
  readonly allow: readonly ArgoPerm[];
  readonly limits: PairLimits;
  readonly rules: DeviceRules;
  /** Position of the pair in its file. */
  readonly origin: Origin;
  /** True when the pair was derived from Flask rules (which know nothing of devices). */
  readonly synthesized?: boolean;
}

/** A pair's short name in messages and audit lines: `guest_t/backend_t/blk`. */
export function pairName(p: { frontend: string; backend: string; device: string }): string {
  return `${p.frontend}/${p.backend}/${p.device}`;
}

/**
 * One directional access-vector grant: `source` may exercise `perm` on `target`
 * (XEN_LABEL for enable and register_any_source), within `limit` bytes (ring length
 * for the register permissions, payload for send) and `rate`.
 */
export interface Grant {
  readonly source: string;
  readonly target: string;
  readonly perm: ArgoPerm;
  /** Bytes; undefined = unlimited. */
  readonly limit?: number;
  readonly rate?: RateLimit;
  readonly origin: Origin;
  /** The device pair this grant came from (YAML), or the rule text (Flask). */
  readonly via: string;
}

/** What a front end produces. */
export interface PolicyModel {
  readonly kind: "yaml" | "flask";
  readonly source: string;
  /** Declared labels (types) and where each was declared. */
  readonly labels: ReadonlyMap<string, Origin>;
  readonly pairs: readonly PairRule[];
  readonly grants: readonly Grant[];
  /** Things accepted but ignored, one line each (e.g. Flask rules for other classes). */
  readonly warnings: readonly string[];
}
