// Human answers about a policy: `explainPair` for `virtio-argo policy explain` (which
// rule allows a device pair, or why nothing does), and `denialReason` for audit lines.
// Both only read the Policy; they are never on a hot path.
import type { Policy } from "./policy.ts";
import { XEN_LABEL, pairName, type ArgoPerm, type DeviceType, type Grant, type PairRule } from "./model.ts";

/** The answer of Policy.explain. */
export interface Explanation {
  /** True when the device pair can run: the pair exists and grants what a device needs. */
  readonly allowed: boolean;
  /** The reasoning, one line each; the first line is the verdict. */
  readonly lines: readonly string[];
  /** The pair the verdict is about, when there is one. */
  readonly pair?: PairRule;
}

const at = (g: { origin: { file: string; line: number } }): string => `${g.origin.file}:${g.origin.line}`;

/** The first grant, and how many more: enough to find the rule without a wall of text. */
function where(grants: readonly Grant[]): string {
  const more = grants.length > 1 ? ` (+${grants.length - 1} more)` : "";
  return `${grants[0].via} at ${at(grants[0])}${more}`;
}

/**
 * Explains whether `from` (frontend label) may run a `device` against `to` (backend
 * label). A device needs, between the two labels: `enable` for both, `send` both ways
 * (requests and completions), and a ring each way (`register_single_source`, or
 * `register_any_source` for the owner). For YAML policies the pair (from, to, device)
 * must exist and grant send and a ring permission itself; `enable` may come from any pair.
 */
export function explainPair(policy: Policy, from: string, to: string, device: DeviceType): Explanation {
  const head = (ok: boolean) => `${from} -> ${to} ${device}: ${ok ? "ALLOWED" : "DENIED"} by ${policy.source}`;
  if (policy.isAllowAll) {
    return { allowed: true, lines: [head(true), "  the policy is allow-all (Policy.allowAll): everything is permitted, nothing is limited"] };
  }
  const undeclared = [from, to].filter((l, i, a) => a.indexOf(l) === i && !policy.declares(l));
  if (undeclared.length) {
    const word = policy.kind === "flask" ? "type" : "label";
    const known = policy.labels.join(", ") || "none";
    return { allowed: false, lines: [head(false), ...undeclared.map((l) => `  ${word} "${l}" is not declared in ${policy.source} (declared: ${known})`)] };
  }

  const lines: string[] = [];
  let pair: PairRule | undefined;
  let ok = true;
  if (policy.kind === "yaml") {
    pair = policy.pair(from, to, device);
    if (!pair) {
      lines.push(`  no pair ${pairName({ frontend: from, backend: to, device })} in ${policy.source}`);
      const same = policy.pairs.filter((p) => p.frontend === from && p.backend === to);
      if (same.length) lines.push(`  pairs for ${from} -> ${to} exist for other devices: ${same.map((p) => `${p.device} (line ${p.origin.line})`).join(", ")}`);
      const reversed = policy.pairs.find((p) => p.frontend === to && p.backend === from && p.device === device);
      if (reversed) lines.push(`  a pair with the roles reversed exists (${pairName(reversed)} at line ${reversed.origin.line}); frontend and backend are not interchangeable`);
      const sameDevice = policy.pairs.filter((p) => p.device === device && p.frontend === from && p.backend !== to);
      if (sameDevice.length) lines.push(`  ${from} may use ${device} with: ${sameDevice.map((p) => `${p.backend} (line ${p.origin.line})`).join(", ")}`);
      return { allowed: false, lines: [head(false), ...lines] };
    }
    lines.push(`  rule: pair ${pairName(pair)} at ${at(pair)}`);
    lines.push(`  allow: ${pair.allow.join(" ") || "(nothing)"}`);
    const l = pair.limits;
    const limits = [
      l.maxRingBytes !== undefined ? `max_ring_bytes ${l.maxRingBytes}` : "",
      l.maxMessageBytes !== undefined ? `max_message_bytes ${l.maxMessageBytes}` : "",
      l.rate ? `rate ${l.rate.messagesPerSecond}/s burst ${l.rate.burst}` : "",
    ].filter(Boolean);
    lines.push(`  limits: ${limits.join(", ") || "none"}`);
    const r = pair.rules;
    const rules = [
      r.readOnly !== undefined ? `read_only ${r.readOnly}` : "",
      r.allowedMacs ? `allowed_macs ${r.allowedMacs.join(" ") || "(none)"}` : "",
      r.allowedPorts ? `allowed_ports ${r.allowedPorts.join(" ") || "(none)"}` : "",
    ].filter(Boolean);
    lines.push(`  rules: ${rules.join(", ") || "none"}`);
    const has = (p: ArgoPerm) => pair!.allow.includes(p);
    if (!has("send")) {
      ok = false;
      lines.push(`  permission missing: send (requests and completions are messages both ways)`);
    }
    if (!has("register_single_source") && !has("register_any_source")) {
      ok = false;
      lines.push(`  permission missing: register_single_source (or register_any_source): each end needs a ring`);
    }
  } else {
    // Flask: directional rules, checked one by one as Xen would.
    const checks: [string, string, ArgoPerm][] = [
      [from, to, "send"],
      [to, from, "send"],
    ];
    for (const [s, t, perm] of checks) {
      const d = policy.decide(s, t, perm);
      if (d) lines.push(`  ok: allow ${s} ${t}:argo ${perm} (${d.grants.map(at).join(", ")})`);
      else {
        ok = false;
        lines.push(`  permission missing: no rule allow ${s} ${t}:argo ${perm};`);
      }
    }
    for (const [s, t] of [
      [from, to],
      [to, from],
    ]) {
      const single = policy.decide(s, t, "register_single_source");
      const any = policy.decide(s, XEN_LABEL, "register_any_source");
      const d = single ?? any;
      if (d) lines.push(`  ok: ${s} may register a ring for ${t} (${single ? "register_single_source" : "register_any_source"}, ${d.grants.map(at).join(", ")})`);
      else {
        ok = false;
        lines.push(`  permission missing: no rule allow ${s} ${t}:argo register_single_source; (nor ${s} ${XEN_LABEL}:argo register_any_source)`);
      }
    }
  }
  for (const label of from === to ? [from] : [from, to]) {
    const d = policy.decide(label, XEN_LABEL, "enable");
    if (d) lines.push(`  enable ${label}: ${where(d.grants)}`);
    else {
      ok = false;
      lines.push(`  permission missing: enable for ${label} (no ${policy.kind === "yaml" ? "pair with it allows enable" : `rule allow ${label} ${XEN_LABEL}:argo enable;`})`);
    }
  }
  return { allowed: ok, lines: [head(ok), ...lines], pair };
}

/** One sentence: why nothing grants `perm` from `source` to `target`. */
export function denialReason(policy: Policy, source: string, target: string, perm: ArgoPerm): string {
  for (const l of target === XEN_LABEL || target === source ? [source] : [source, target]) {
    if (!policy.declares(l)) return `label ${l} is not declared in ${policy.source}`;
  }
  const toXen = perm === "enable" || perm === "register_any_source";
  if (policy.kind === "flask") return `no rule allow ${source} ${toXen ? XEN_LABEL : target}:argo ${perm}; in ${policy.source}`;
  if (toXen) {
    const mine = policy.pairs.filter((p) => p.frontend === source || p.backend === source);
    if (!mine.length) return `no pair names ${source}`;
    return `no pair with ${source} allows ${perm} (pairs: ${mine.map(pairName).join(", ")})`;
  }
  const between = policy.pairs.filter((p) => (p.frontend === source && p.backend === target) || (p.frontend === target && p.backend === source));
  if (!between.length) return `no pair of ${source} and ${target} (either orientation)`;
  return `pairs of ${source} and ${target} do not allow ${perm} (${between.map((p) => `${pairName(p)} at line ${p.origin.line}`).join(", ")})`;
}
