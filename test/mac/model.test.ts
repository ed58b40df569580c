// Property tests: for random policies and random hook calls, the Mac (with its AVC,
// across flushes) decides exactly what the documented semantics say, computed naively
// from the pairs; and a Flask rendering of the same pairs decides the same permissions.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { EACCES, Mac, Policy, type Subject } from "../../host/mac/index.ts";
import { EINVAL, EMSGSIZE } from "../../host/mac/errors.ts";

const POOL = ["a_t", "b_t", "c_t", "d_t"];
const DEVICES = ["blk", "net", "console", "vsock", "rng"];
const PERMS = ["enable", "send", "register_single_source", "register_any_source"];

interface P {
  frontend: string;
  backend: string;
  device: string;
  allow: string[];
  limits?: { max_ring_bytes?: number; max_message_bytes?: number };
}

const limitArb = fc.option(fc.integer({ min: 1, max: 4096 }), { nil: undefined });
const pairArb = fc.record({
  frontend: fc.constantFrom(...POOL),
  backend: fc.constantFrom(...POOL),
  device: fc.constantFrom(...DEVICES),
  allow: fc.subarray(PERMS),
  limits: fc.option(fc.record({ max_ring_bytes: limitArb, max_message_bytes: limitArb }), { nil: undefined }),
});
const policyArb = fc
  .record({
    declared: fc.subarray(POOL, { minLength: 1 }),
    pairs: fc.uniqueArray(pairArb, { selector: (p) => `${p.frontend}/${p.backend}/${p.device}`, maxLength: 8 }),
  })
  // Pairs may only name declared labels (else the file is invalid, which parse.test covers).
  .map(({ declared, pairs }) => ({ declared, pairs: pairs.filter((p) => declared.includes(p.frontend) && declared.includes(p.backend)) }));

type Call = { hook: "enable" | "any" | "single" | "send" | "permitted"; x: number; y: number; len: number };
const callArb: fc.Arbitrary<Call> = fc.record({
  hook: fc.constantFrom("enable", "any", "single", "send", "permitted"),
  x: fc.integer({ min: 0, max: POOL.length }), // POOL.length = a label nobody declared
  y: fc.integer({ min: 0, max: POOL.length }),
  len: fc.integer({ min: 0, max: 5000 }),
});

function toYaml(declared: string[], pairs: P[]): string {
  // YAML 1.2 is a superset of JSON.
  return JSON.stringify({ domains: declared, pairs: pairs.map((p) => JSON.parse(JSON.stringify(p))) });
}

/** The semantics of host/mac/policy.ts, computed the slow, obvious way. */
function reference(declared: string[], pairs: P[], c: Call, labels: string[]): number {
  const x = labels[c.x];
  const y = labels[c.y];
  const between = (perm: string) => pairs.filter((p) => p.allow.includes(perm) && ((p.frontend === x && p.backend === y) || (p.frontend === y && p.backend === x)));
  const touching = (perm: string) => pairs.filter((p) => p.allow.includes(perm) && (p.frontend === x || p.backend === x));
  const limit = (ps: P[], key: "max_ring_bytes" | "max_message_bytes") => Math.max(...ps.map((p) => p.limits?.[key] ?? Infinity));
  if (!declared.includes(x)) return -EACCES;
  if ((c.hook === "single" || c.hook === "send" || c.hook === "permitted") && !declared.includes(y)) return -EACCES;
  switch (c.hook) {
    case "enable":
      return touching("enable").length ? 0 : -EACCES;
    case "any": {
      const ps = touching("register_any_source");
      if (!ps.length) return -EACCES;
      return c.len > limit(ps, "max_ring_bytes") ? -EINVAL : 0;
    }
    case "single": {
      const ps = between("register_single_source");
      if (!ps.length) return -EACCES;
      return c.len > limit(ps, "max_ring_bytes") ? -EINVAL : 0;
    }
    case "send":
    case "permitted": {
      const ps = between("send");
      if (!ps.length) return -EACCES;
      return c.hook === "send" && c.len > limit(ps, "max_message_bytes") ? -EMSGSIZE : 0;
    }
  }
}

function call(mac: Mac, subjects: Subject[], c: Call): number {
  const x = subjects[c.x];
  const y = subjects[c.y];
  switch (c.hook) {
    case "enable":
      return mac.argoEnable(x);
    case "any":
      return mac.registerAnySource(x, c.len);
    case "single":
      return mac.registerSingleSource(x, y, c.len);
    case "send":
      return mac.send(x, y, c.len);
    case "permitted":
      return mac.sendPermitted(x, y);
  }
}

const LABELS = [...POOL, "stranger_t"];
const makeSubjects = () => LABELS.map((label, i): Subject => ({ domid: 100 + i, name: label, label, sid: -1 }));

describe("decisions match the documented semantics", () => {
  it("for random policies and call sequences, cached or not", () => {
    fc.assert(
      fc.property(policyArb, fc.array(callArb, { maxLength: 60 }), ({ declared, pairs }, calls) => {
        const mac = new Mac(Policy.parse(toYaml(declared, pairs), "random.yaml"), { log: () => {} });
        const subjects = makeSubjects();
        calls.forEach((c, i) => {
          if (i === 30) mac.load(mac.policy); // a flush mid-sequence changes nothing
          expect(call(mac, subjects, c)).toBe(reference(declared, pairs, c, LABELS));
        });
        // Every denial was audited, and nothing else was.
        const denials = calls.filter((c) => reference(declared, pairs, c, LABELS) !== 0).length;
        expect(mac.audit.total).toBe(denials);
      }),
      { numRuns: 300 },
    );
  });

  it("a Flask rendering of the same pairs grants the same permissions", () => {
    fc.assert(
      fc.property(policyArb, fc.array(callArb, { maxLength: 40 }), ({ declared, pairs }, calls) => {
        const noLimits = pairs.map((p) => ({ ...p, limits: undefined }));
        const te = declared.map((l) => `type ${l};`);
        for (const p of noLimits) {
          for (const perm of p.allow) {
            for (const [s, t] of [
              [p.frontend, p.backend],
              [p.backend, p.frontend],
            ]) {
              te.push(perm === "enable" || perm === "register_any_source" ? `allow ${s} xen_t:argo ${perm};` : `allow ${s} ${t}:argo { ${perm} };`);
            }
          }
        }
        const yaml = new Mac(Policy.parse(toYaml(declared, noLimits), "r.yaml"), { log: () => {} });
        const flask = new Mac(Policy.fromFlask(te.join("\n"), "r.te"), { log: () => {} });
        const subjects = makeSubjects();
        for (const c of calls) expect(call(flask, subjects, c)).toBe(call(yaml, subjects, c));
      }),
      { numRuns: 200 },
    );
  });
});
