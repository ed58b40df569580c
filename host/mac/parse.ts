// YAML policy front end: text -> PolicyModel, or a PolicyError naming file:line:col.
// Three passes, each only on input the previous one accepted:
//   1. YAML syntax (the yaml package, with a LineCounter for positions);
//   2. the published JSON schema (policies/schema.json, ajv), each error's instancePath
//      walked back through the YAML tree to the node it blames;
//   3. cross-references the schema cannot express: labels declared, pairs unique.
// Every pass collects all its errors; the first in file order is thrown, carrying the rest.
import { parseDocument, LineCounter, isMap, isSeq, isScalar, isAlias, visit, type Document, type Node as YamlNode } from "yaml";
import type { ErrorObject } from "ajv";
import { PolicyError } from "./errors.ts";
import { locate, offsetOf, splitPointer } from "../yaml-source.ts";
import { policyValidator } from "./schema.ts";
import {
  XEN_LABEL,
  pairName,
  type ArgoPerm,
  type DeviceType,
  type Grant,
  type Origin,
  type PairRule,
  type PolicyModel,
  type RateLimit,
} from "./model.ts";

/** The file as the schema sees it (snake_case keys, exactly as written). */
interface RawPolicy {
  version?: 1;
  domains: string[];
  pairs: RawPair[];
}
interface RawPair {
  frontend: string;
  backend: string;
  device: DeviceType;
  description?: string;
  allow: ArgoPerm[];
  limits?: { max_ring_bytes?: number; max_message_bytes?: number; rate?: { messages_per_second: number; burst?: number } };
  rules?: { read_only?: boolean; allowed_macs?: string[]; allowed_ports?: number[] };
}

/** Aliases may not expand a small file into a huge one ("billion laughs"). */
const MAX_ALIAS_COUNT = 100;

/** Parses a YAML policy. Throws PolicyError (file:line:col) on the first mistake in file order. */
export function parseYamlPolicy(text: string, file: string): PolicyModel {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, keepSourceTokens: true, uniqueKeys: true });
  const errAt = (offset: number, what: string): PolicyError => {
    const { line, col } = lc.linePos(offset);
    return new PolicyError(file, line, col, what);
  };

  // Pass 1: YAML syntax.
  const syntax = doc.errors.map((e) =>
    errAt(e.pos[0], e.code === "DUPLICATE_KEY" ? "duplicate key: each key may appear once in a mapping" : `YAML syntax: ${e.message}`),
  );
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) === undefined) syntax.push(errAt(node.range?.[0] ?? 0, `YAML: unknown alias *${node.source}`));
    },
  });
  if (syntax.length) throw PolicyError.first(syntax);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    throw errAt(0, `YAML: ${(e as Error).message}`);
  }

  // Pass 2: the schema.
  const validate = policyValidator();
  if (!validate(data)) {
    const errors = (validate.errors ?? []).map((e) => schemaError(e, doc, data, errAt)).filter((e): e is PolicyError => e !== null);
    throw PolicyError.first(dedupe(errors));
  }
  const raw = data as RawPolicy;

  // Pass 3: cross-references.
  const origin = (path: (string | number)[]): Origin => {
    const { line, col } = lc.linePos(offsetOf(locate(doc, path.map(String)).node));
    return { file, line, col };
  };
  const errors: PolicyError[] = [];
  const labels = new Map<string, Origin>();
  raw.domains.forEach((label, i) => {
    const at = origin(["domains", i]);
    if (label === XEN_LABEL) {
      errors.push(new PolicyError(file, at.line, at.col, `label "${XEN_LABEL}" is reserved for the hypervisor (Flask's SECINITSID_XEN)`));
    }
    labels.set(label, at);
  });
  const declared = [...labels.keys()].join(", ") || "none";
  const pairs: PairRule[] = [];
  const seen = new Map<string, Origin>();
  raw.pairs.forEach((p, i) => {
    const at = origin(["pairs", i]);
    for (const end of ["frontend", "backend"] as const) {
      if (!labels.has(p[end])) {
        const v = origin(["pairs", i, end]);
        errors.push(new PolicyError(file, v.line, v.col, `unknown label "${p[end]}" as ${end}: not declared under domains (declared: ${declared})`));
      }
    }
    const key = pairName(p);
    const first = seen.get(key);
    if (first) errors.push(new PolicyError(file, at.line, at.col, `duplicate pair ${key}: already defined at line ${first.line}`));
    else seen.set(key, at);
    pairs.push(toPairRule(p, at));
  });
  if (errors.length) throw PolicyError.first(errors);

  return { kind: "yaml", source: file, labels, pairs, grants: pairs.flatMap(pairGrants), warnings: [] };
}

function toPairRule(p: RawPair, origin: Origin): PairRule {
  const l = p.limits ?? {};
  const r = p.rules ?? {};
  const rate: RateLimit | undefined = l.rate
    ? { messagesPerSecond: l.rate.messages_per_second, burst: l.rate.burst ?? Math.max(1, Math.ceil(l.rate.messages_per_second)) }
    : undefined;
  return Object.freeze({
    frontend: p.frontend,
    backend: p.backend,
    device: p.device,
    allow: Object.freeze([...p.allow]),
    limits: Object.freeze({ maxRingBytes: l.max_ring_bytes, maxMessageBytes: l.max_message_bytes, rate }),
    rules: Object.freeze({
      readOnly: r.read_only,
      allowedMacs: r.allowed_macs ? Object.freeze(r.allowed_macs.map((m) => m.toLowerCase())) : undefined,
      allowedPorts: r.allowed_ports ? Object.freeze([...r.allowed_ports]) : undefined,
    }),
    origin,
  });
}

/**
 * A pair grants its permissions in both directions: frontend -> backend carries
 * requests, backend -> frontend completions, and each end registers a ring for the
 * other. enable and register_any_source are checked against the hypervisor (xen_t).
 */
function pairGrants(p: PairRule): Grant[] {
  const via = pairName(p);
  const out: Grant[] = [];
  const ends: [string, string][] = [
    [p.frontend, p.backend],
    [p.backend, p.frontend],
  ];
  for (const perm of p.allow) {
    for (const [s, t] of ends) {
      switch (perm) {
        case "send":
          out.push({ source: s, target: t, perm, limit: p.limits.maxMessageBytes, rate: p.limits.rate, origin: p.origin, via });
          break;
        case "register_single_source":
          out.push({ source: s, target: t, perm, limit: p.limits.maxRingBytes, origin: p.origin, via });
          break;
        case "register_any_source":
          out.push({ source: s, target: XEN_LABEL, perm, limit: p.limits.maxRingBytes, origin: p.origin, via });
          break;
        case "enable":
          out.push({ source: s, target: XEN_LABEL, perm, origin: p.origin, via });
          break;
      }
    }
  }
  return out;
}

// ---- from ajv errors to positions and sentences ----

type ErrAt = (offset: number, what: string) => PolicyError;

function valueAt(data: unknown, path: string[]): unknown {
  let v = data;
  for (const seg of path) v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[seg] : undefined;
  return v;
}

/** What a user calls the thing at a path: its key, or `list[i]` for a list item. */
function nameOf(path: string[]): string {
  if (path.length === 0) return "the policy";
  const last = path[path.length - 1];
  if (/^\d+$/.test(last)) return `${path.length > 1 ? path[path.length - 2] : ""}[${last}]`;
  return last;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return "empty";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `a string ("${v}")`;
  if (typeof v === "number") return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_WORDS: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  integer: "an integer",
  number: "a number",
  string: "a string",
  boolean: "true or false",
};

/** Names for list items, by the list's key, for duplicate messages. */
const ITEM_WORDS: Record<string, string> = {
  domains: "domain label",
  allow: "permission",
  allowed_macs: "MAC address",
  allowed_ports: "port",
};

function schemaError(e: ErrorObject, doc: Document, data: unknown, errAt: ErrAt): PolicyError | null {
  // An `if` error only says "must match then"; the `then` branch's own error says what.
  if (e.keyword === "if") return null;
  const path = splitPointer(e.instancePath);
  const { node } = locate(doc, path);
  const value = valueAt(data, path);
  const ps = (e.parentSchema ?? {}) as { title?: string; description?: string; properties?: Record<string, unknown> };
  const name = nameOf(path);
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      const keyNode = locate(doc, [...path, key]).key;
      const expected = Object.keys(ps.properties ?? {});
      let what: string;
      if (path.length === 0) what = `unknown top-level key "${key}" (expected: ${expected.join(", ")})`;
      else if (e.schemaPath.includes("/then/")) {
        const device = String(valueAt(data, [...path.slice(0, -1), "device"]));
        what = `rule "${key}" is not valid for device ${device} (${device} takes: ${expected.join(", ") || "no rules"})`;
      } else what = `unknown key "${key}" in ${ps.title ?? name} (expected: ${expected.join(", ")})`;
      return errAt(offsetOf(keyNode ?? node), what);
    }
    case "required": {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return errAt(offsetOf(node), `${ps.title ?? name} is missing required field "${missing}"`);
    }
    case "type": {
      const t = String((e.params as { type: string }).type);
      return errAt(offsetOf(node), `${name} must be ${TYPE_WORDS[t] ?? t}, not ${describe(value)}`);
    }
    case "enum": {
      const allowed = ((e.params as { allowedValues: unknown[] }).allowedValues ?? []).join(", ");
      const title = ps.title ?? name;
      const lead = title === "device type" ? "unknown device type" : `bad ${title}`;
      return errAt(offsetOf(node), `${lead} ${JSON.stringify(value)} (expected one of: ${allowed})`);
    }
    case "const":
      return errAt(offsetOf(node), `${name} must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}, not ${describe(value)}`);
    case "pattern":
      return errAt(offsetOf(node), `bad ${ps.title ?? name} ${JSON.stringify(value)}: ${ps.description ?? `must match ${(e.params as { pattern: string }).pattern}`}`);
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum": {
      const { comparison, limit } = e.params as { comparison: string; limit: number };
      if (ps.title === "vsock port") return errAt(offsetOf(node), `vsock port ${String(value)} is out of range (${ps.description})`);
      const range = ps.description ? ` (${ps.description})` : "";
      return errAt(offsetOf(node), `${name} must be ${comparison} ${limit}, got ${String(value)}${range}`);
    }
    case "uniqueItems": {
      const { i, j } = e.params as { i: number; j: number };
      const later = Math.max(i, j);
      const earlier = Math.min(i, j);
      const list = path[path.length - 1];
      const first = locate(doc, [...path, String(earlier)]).node;
      const firstLine = first?.range ? errAt(first.range[0], "").line : 0;
      const item = (value as unknown[])[later];
      const laterNode = locate(doc, [...path, String(later)]).node;
      return errAt(offsetOf(laterNode), `duplicate ${ITEM_WORDS[list] ?? "item"} ${JSON.stringify(item)} in ${list} (first at line ${firstLine})`);
    }
    default:
      return errAt(offsetOf(node), `${name}: ${e.message ?? e.keyword}`);
  }
}

/** ajv may report one fault twice (e.g. through two schema paths); keep one per position and text. */
function dedupe(errors: PolicyError[]): PolicyError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const k = e.message;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
