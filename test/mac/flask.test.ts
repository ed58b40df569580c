// Flask TE import: a Xen user's argo rules become the same decisions, directional as
// Xen checks them; anything not understood is an error with file:line:col.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { EACCES, Mac, Policy, PolicyError } from "../../host/mac/index.ts";
import { subject } from "./helpers.ts";

const FILE = "test/fixtures/policies/xen-argo.te";

describe("Flask import of a realistic rule set", () => {
  const p = Policy.load(FILE);
  const mac = new Mac(p, { log: () => {} });
  const dom0 = subject("dom0_t");
  const u1 = subject("domU_t");
  const u2 = subject("domU_t");
  const drv = subject("driver_t");
  const iso = subject("isolated_t");
  const mon = subject("monitor_t");

  it("declares the types, not the attributes nor xen_t", () => {
    expect(p.kind).toBe("flask");
    expect(p.labels).toEqual(["dom0_t", "domU_t", "driver_t", "isolated_t", "monitor_t"]);
  });

  it("enable through an attribute, and directly", () => {
    expect([u1, drv, mon].map((d) => mac.argoEnable(d))).toEqual([0, 0, 0]);
    expect(mac.argoEnable(iso)).toBe(-EACCES);
    expect(mac.argoEnable(dom0)).toBe(0); // `{ xen argo } { enable }`: the argo half counts
  });

  it("send and register_single_source both ways between guests and the driver", () => {
    expect([mac.send(u1, drv, 64), mac.send(drv, u1, 64)]).toEqual([0, 0]);
    expect([mac.registerSingleSource(u1, drv, 4096), mac.registerSingleSource(drv, u1, 4096)]).toEqual([0, 0]);
  });

  it("rules are directional, as Flask checks them", () => {
    expect(mac.send(u1, mon, 64)).toBe(0);
    expect(mac.send(mon, u1, 64)).toBe(-EACCES);
    expect(mac.registerSingleSource(mon, u1, 4096)).toBe(0);
    expect(mac.registerSingleSource(u1, mon, 4096)).toBe(-EACCES);
  });

  it("self, wildcard rings, and what dontaudit/neverallow do not grant", () => {
    expect(mac.send(u1, u2, 64)).toBe(0);
    expect(mac.registerSingleSource(u1, u2, 4096)).toBe(-EACCES);
    expect(mac.registerAnySource(drv, 4096)).toBe(0);
    expect(mac.registerAnySource(u1, 4096)).toBe(-EACCES);
    expect(mac.send(iso, drv, 64)).toBe(-EACCES);
    expect(mac.audit.entries().at(-1)!.reason).toBe(`no rule allow isolated_t driver_t:argo send; in ${FILE}`);
  });

  it("lists what it skipped", () => {
    expect(p.warnings).toEqual([
      `${FILE}:33: skipped rules for class domain (only the argo class is imported)`,
      `${FILE}:34: skipped rules for class xen (only the argo class is imported)`,
      `${FILE}:35: skipped "dontaudit" statement (it grants no argo permission)`,
      `${FILE}:36: skipped "neverallow" statement (it grants no argo permission)`,
      `${FILE}:37: skipped "role" statement (it grants no argo permission)`,
    ]);
  });

  it("derives device pairs where both directions may send", () => {
    expect(p.pair("domU_t", "driver_t", "blk")).toMatchObject({ synthesized: true, limits: {}, rules: {}, origin: { line: 21 } });
    expect(p.pair("domU_t", "monitor_t", "console")).toBeUndefined();
    const x = p.explain("domU_t", "driver_t", "blk");
    expect(x.allowed).toBe(true);
    expect(p.explain("domU_t", "monitor_t", "console").lines).toContain("  permission missing: no rule allow monitor_t domU_t:argo send;");
  });

  it("load() picks Flask for .te and parses the same text as fromFlask", () => {
    const q = Policy.fromFlask(readFileSync(FILE, "utf8"), FILE);
    expect(q.labels).toEqual(p.labels);
    expect(q.warnings).toEqual(p.warnings);
  });

  it("enable towards a domain instead of xen_t is a warning, not a grant", () => {
    const q = Policy.fromFlask("type a_t;\ntype b_t;\nallow a_t b_t:argo { enable send };\n", "w.te");
    expect(q.warnings).toEqual(['w.te:3: enable is checked against xen_t (Xen\'s flask_argo_enable), so "allow a_t b_t:argo enable" has no effect']);
    expect(new Mac(q, { log: () => {} }).argoEnable(subject("a_t"))).toBe(-EACCES);
  });
});

describe("Flask errors name file:line:col", () => {
  const cases: [string, string, number, number, string][] = [
    ["unknown argo permission", "type a_t;\ntype b_t;\nallow a_t b_t:argo { send recieve };\n", 3, 27, 'unknown argo permission "recieve"'],
    ["undeclared type", "type a_t;\nallow a_t b_t:argo send;\n", 2, 11, "type b_t is not declared"],
    ["missing semicolon", "type a_t;\nallow a_t a_t:argo send\ntype b_t;\n", 3, 1, 'expected ";", found "type"'],
    ["m4 macro left in", "type a_t;\ndomain_comms(a_t, a_t)\n", 2, 1, "m4 macro domain_comms(...) is not supported"],
    ["complement", "type a_t;\nallow a_t a_t:argo ~send;\n", 2, 20, "not supported in permissions"],
    ["duplicate type", "type a_t;\n\n  type a_t;\n", 3, 8, "type a_t is already declared (line 1)"],
    ["self as a source", "type a_t;\nallow self a_t:argo send;\n", 2, 7, '"self" is only valid as a target'],
    ["conditional block", "type a_t;\nif (x) { allow a_t a_t:argo send; }\n", 2, 1, '"if" blocks are not supported'],
    ["unknown attribute", "type a_t, peer;\n", 1, 11, "attribute peer is not declared"],
    ["unexpected character", "type a_t;\nallow a_t a_t:argo send; @\n", 2, 26, 'unexpected character "@"'],
    ["truncated file", "type a_t;\nallow a_t a_t:argo", 2, 19, "unexpected end of file"],
  ];
  it.each(cases)("%s", (_n, text, line, col, fragment) => {
    let err: PolicyError | undefined;
    try {
      Policy.fromFlask(text, "x.te");
    } catch (e) {
      err = e as PolicyError;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect([err!.file, err!.line, err!.col]).toEqual(["x.te", line, col]);
    expect(err!.message).toContain(fragment);
  });
});
