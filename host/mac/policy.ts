/**
 * # MAC policy, per device pair
 *
 * Every Argo operation is checked against a policy before the hypervisor changes any
 * state, at Xen's XSM hook points (`xsm_argo_enable`, `xsm_argo_register_single_source`,
 * `xsm_argo_register_any_source`, `xsm_argo_send`). **Deny by default**: whatever no
 * rule allows is refused.
 *
 * ## File format (YAML, schema: `policies/schema.json`)
 * ```yaml
 * version: 1                     # optional; the only version
 * domains: [guest_t, backend_t]  # every label a domain may carry (xen_t is reserved)
 * pairs:
 *   - frontend: guest_t          # the driver side
 *     backend: backend_t         # the device side
 *     device: blk                # blk | net | console | vsock | rng
 *     allow: [enable, send, register_single_source]   # Argo permissions
 *     limits:                    # all optional; absent = no limit
 *       max_ring_bytes: 262144   # largest ring either end registers for the other
 *       max_message_bytes: 65536 # largest sendv payload either way
 *       rate: { messages_per_second: 20000, burst: 512 }  # per sender -> receiver domain
 *     rules:                     # device-level, enforced by the transport/device models
 *       read_only: true          # blk only
 *       # allowed_macs: ["52:54:00:12:34:56"]  net only
 *       # allowed_ports: [1024, 5000]          vsock only
 * ```
 * Decisions are made on **label pairs**, in either orientation (frontend -> backend
 * carries requests, backend -> frontend completions):
 * - `send(sender, receiver)`: some pair of {sender, receiver} labels allows `send`;
 * - `register_single_source(owner, partner)`: some pair of {owner, partner} allows it;
 * - `register_any_source(owner)` (a wildcard ring, any sender): some pair with owner at
 *   either end allows it;
 * - `enable(d)` (Argo at all): some pair with d's label at either end allows `enable`.
 * When several device pairs share a label pair (e.g. blk and console between the same
 * two labels), the Argo-level limits are **the most permissive among the pairs that
 * grant the permission**: the largest size limit (absent = unlimited wins), the highest
 * rate and burst (no rate = unlimited wins). Argo cannot tell which device a message
 * belongs to; device rules (`read_only`...) stay per pair and are read with `pair()`.
 *
 * A domain whose label the policy does not declare is denied everything, with that
 * reason in the audit entry. A bad file never half-loads: `parse` either returns a new
 * immutable Policy or throws a {@link PolicyError} whose message is
 * `file:line:col: what is wrong`.
 *
 * ## Errnos (what Xen returns for the same condition)
 * | condition                           | errno       | Xen source of the same errno             |
 * |-------------------------------------|-------------|------------------------------------------|
 * | permission denied                   | -EACCES 13  | Flask `avc_has_perm`                     |
 * | ring larger than `max_ring_bytes`   | -EINVAL 22  | `register_ring` for a bad `len`          |
 * | payload larger than `max_message_bytes` | -EMSGSIZE 90 | `sendv` for an over-long message     |
 * | send rate exceeded                  | -EAGAIN 11  | the transient "try again"                |
 * Each is recorded in the audit log with its reason.
 *
 * ## Cost
 * A send on an AVC hit to a pair without a rate limit is an index computation, one
 * typed-array load and two compares (a few ns). A rate-limited pair reads the clock on
 * every send (performance.now(), 30-100 ns depending on the platform): put rate limits
 * on low-volume pairs (console, control), not on bulk data pairs.
 *
 * ## Flask import
 * `Policy.fromFlask` (and `Policy.load` of a `.te` file) reads the TE subset Xen users
 * have: `type x_t;`, `attribute a;`, `type x_t, a;`, `typeattribute x_t a;`, and
 * `allow S T:argo { perms };` with braces sets, `self`, and attributes. Flask rules are
 * directional, exactly as Xen checks them: `send` and `register_single_source` from S to
 * T; `enable` and `register_any_source` only with target `xen_t`. Rules for other
 * classes, and other statements (`dontaudit`, `neverallow`, `role`...), are skipped and
 * listed in `warnings`; an unknown argo permission or undeclared type is an error.
 * Flask has no devices and no limits: `pair()` answers for any device when both
 * directions may send.
 */
import { readFileSync } from "node:fs";
import { PolicyError } from "./errors.ts";
import { parseYamlPolicy } from "./parse.ts";
import { parseFlaskPolicy } from "./flask.ts";
import { explainPair, denialReason, type Explanation } from "./explain.ts";
import {
  ARGO_PERMS,
  XEN_LABEL,
  type ArgoPerm,
  type DeviceType,
  type Grant,
  type Origin,
  type PairRule,
  type PolicyModel,
  type RateLimit,
} from "./model.ts";

/** The merged answer for one (source, target, permission): what the AVC caches. */
export interface AccessDecision {
  /** Largest ring or payload in bytes; Infinity = no limit. */
  readonly limit: number;
  /** undefined = no rate limit. */
  readonly rate?: RateLimit;
  /** Every grant that contributed, in file order. */
  readonly grants: readonly Grant[];
}

const UNLIMITED: AccessDecision = Object.freeze({ limit: Infinity, grants: Object.freeze([]) });
const NO_ORIGIN: Origin = Object.freeze({ file: "<allow-all>", line: 0, col: 0 });

/** Which front end built a policy: YAML, Flask TE, or the allow-all policy for tests. */
export type PolicyKind = "yaml" | "flask" | "allow-all";
type Kind = PolicyKind;

/** A compiled, immutable MAC policy. Build with parse, load, fromFlask or allowAll. */
export class Policy {
  /** The file it came from, or "<allow-all>". */
  readonly source: string;
  /** Which front end built it. */
  readonly kind: Kind;
  /** Declared domain labels, in file order. */
  readonly labels: readonly string[];
  /** Device pairs, in file order (empty for Flask and allow-all). */
  readonly pairs: readonly PairRule[];
  /** Things accepted but ignored (e.g. Flask rules for other classes). */
  readonly warnings: readonly string[];
  private readonly declared: ReadonlyMap<string, Origin>;
  private readonly av: ReadonlyMap<string, AccessDecision>;

  private constructor(kind: Kind, model: PolicyModel | null) {
    this.kind = kind;
    this.source = model?.source ?? "<allow-all>";
    this.declared = model?.labels ?? new Map();
    this.labels = Object.freeze([...this.declared.keys()]);
    this.pairs = Object.freeze([...(model?.pairs ?? [])]);
    this.warnings = Object.freeze([...(model?.warnings ?? [])]);
    this.av = compile(model?.grants ?? []);
    Object.freeze(this);
  }

  /** Parses a YAML policy. Throws PolicyError (`file:line:col: what is wrong`). */
  static parse(text: string, filename: string): Policy {
    return new Policy("yaml", parseYamlPolicy(text, filename));
  }

  /** Parses Flask TE rules for the argo class (see the module doc). Throws PolicyError. */
  static fromFlask(text: string, filename: string): Policy {
    return new Policy("flask", parseFlaskPolicy(text, filename));
  }

  /**
   * Reads and parses a policy file: Flask TE when the name ends in `.te`, YAML otherwise.
   * An unreadable file is a PolicyError too (line 0: `file: cannot read ...`).
   */
  static load(path: string): Policy {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new PolicyError(path, 0, 0, `cannot read: ${err.code ?? err.message}`);
    }
    return path.endsWith(".te") ? Policy.fromFlask(text, path) : Policy.parse(text, path);
  }

  /**
   * Allows everything, with no limits: for tests and benchmarks only. `isAllowAll` and
   * `describe()` say so, and a Mac prints a warning line the first time it loads one.
   */
  static allowAll(): Policy {
    return ALLOW_ALL;
  }

  /** True for Policy.allowAll(). */
  get isAllowAll(): boolean {
    return this.kind === "allow-all";
  }

  /** One line for logs: what this policy is and where it came from. */
  describe(): string {
    if (this.isAllowAll) return "allow-all policy (Policy.allowAll): every Argo operation permitted, no limits; for tests and benchmarks only";
    const what = this.kind === "flask" ? "Flask TE import" : "policy";
    return `${what} ${this.source}: ${this.labels.length} labels, ${this.kind === "yaml" ? `${this.pairs.length} pairs` : `${this.av.size} access vectors`}, deny by default`;
  }

  /** True when `label` is declared (always for allow-all). */
  declares(label: string): boolean {
    return this.isAllowAll || this.declared.has(label);
  }

  /** Where a label was declared, if it was. */
  declaredAt(label: string): Origin | undefined {
    return this.declared.get(label);
  }

  /**
   * The merged decision for `source` exercising `perm` on `target` (XEN_LABEL for
   * enable and register_any_source), or undefined when nothing grants it. Slow path:
   * the Mac calls it on an AVC miss only.
   */
  decide(source: string, target: string, perm: ArgoPerm): AccessDecision | undefined {
    if (this.isAllowAll) return UNLIMITED;
    return this.av.get(avKey(source, target, perm));
  }

  /**
   * The device pair (frontend, backend, device) with its device-level rules and limits,
   * or undefined when the policy has none (deny). For a Flask import, a pair is derived
   * when each label may send to the other; it has no limits and no device rules.
   */
  pair(frontendLabel: string, backendLabel: string, device: DeviceType): PairRule | undefined {
    if (this.isAllowAll) {
      return Object.freeze({ frontend: frontendLabel, backend: backendLabel, device, allow: ARGO_PERMS, limits: {}, rules: {}, origin: NO_ORIGIN, synthesized: true });
    }
    if (this.kind === "yaml") {
      return this.pairs.find((p) => p.frontend === frontendLabel && p.backend === backendLabel && p.device === device);
    }
    const there = this.decide(frontendLabel, backendLabel, "send");
    const back = this.decide(backendLabel, frontendLabel, "send");
    if (!there || !back) return undefined;
    const allow = ARGO_PERMS.filter((perm) =>
      perm === "enable" || perm === "register_any_source"
        ? this.decide(frontendLabel, XEN_LABEL, perm)
        : this.decide(frontendLabel, backendLabel, perm),
    );
    return Object.freeze({ frontend: frontendLabel, backend: backendLabel, device, allow, limits: {}, rules: {}, origin: there.grants[0].origin, synthesized: true });
  }

  /** Which rule allows the device pair, or why nothing does. */
  explain(from: string, to: string, device: DeviceType): Explanation {
    return explainPair(this, from, to, device);
  }

  /** Why `source` may not exercise `perm` on `target`: one sentence for audit lines. */
  denialReason(source: string, target: string, perm: ArgoPerm): string {
    return denialReason(this, source, target, perm);
  }
}

const ALLOW_ALL = new (Policy as unknown as new (kind: Kind, model: PolicyModel | null) => Policy)("allow-all", null);

/** Key of the slow-path access-vector map. NUL cannot occur in a label. */
export function avKey(source: string, target: string, perm: ArgoPerm): string {
  return `${source}\0${target}\0${perm}`;
}

/** Merges grants per (source, target, perm): the most permissive limits win. */
function compile(grants: readonly Grant[]): Map<string, AccessDecision> {
  const groups = new Map<string, Grant[]>();
  for (const g of grants) {
    const k = avKey(g.source, g.target, g.perm);
    const list = groups.get(k);
    if (list) list.push(g);
    else groups.set(k, [g]);
  }
  const av = new Map<string, AccessDecision>();
  for (const [k, list] of groups) {
    let limit = 0;
    let rate: RateLimit | undefined = { messagesPerSecond: 0, burst: 0 };
    for (const g of list) {
      limit = Math.max(limit, g.limit ?? Infinity);
      if (!g.rate) rate = undefined;
      else if (rate) rate = { messagesPerSecond: Math.max(rate.messagesPerSecond, g.rate.messagesPerSecond), burst: Math.max(rate.burst, g.rate.burst) };
    }
    av.set(k, Object.freeze({ limit, rate: rate ? Object.freeze(rate) : undefined, grants: Object.freeze(list) }));
  }
  return av;
}
