// `policy explain` and `policy check`: which rule allows a device pair, or why nothing
// does, and the CLI functions' exit codes (check: 0 valid, 2 invalid; explain: 0
// allowed, 1 denied, 2 invalid file or unknown device).
import { describe, expect, it } from "vitest";
import { Policy } from "../../host/mac/index.ts";
import { policyCheck, policyExplain } from "../../host/cli/policy.ts";

const DEFAULT = "policies/default.yaml";
const BAD = "test/fixtures/policies/bad-permission.yaml";
const TE = "test/fixtures/policies/xen-argo.te";

describe("explain", () => {
  const p = Policy.load(DEFAULT);

  it("names the pair that allows, with its file:line, limits and rules", () => {
    const x = p.explain("guest_t", "backend_t", "blk");
    expect(x.allowed).toBe(true);
    expect(x.pair?.rules.readOnly).toBe(true);
    expect(x.lines.slice(0, 5)).toEqual([
      `guest_t -> backend_t blk: ALLOWED by ${DEFAULT}`,
      `  rule: pair guest_t/backend_t/blk at ${DEFAULT}:${x.pair!.origin.line}`,
      "  allow: enable send register_single_source",
      "  limits: max_ring_bytes 1048576, max_message_bytes 65600",
      "  rules: read_only true",
    ]);
  });

  it("no pair for these labels and device, but for other devices", () => {
    const x = p.explain("guest2_t", "backend_t", "blk");
    expect(x.allowed).toBe(false);
    expect(x.lines[0]).toBe(`guest2_t -> backend_t blk: DENIED by ${DEFAULT}`);
    expect(x.lines[1]).toBe(`  no pair guest2_t/backend_t/blk in ${DEFAULT}`);
    expect(x.lines[2]).toMatch(/^ {2}pairs for guest2_t -> backend_t exist for other devices: console \(line \d+\), rng \(line \d+\), net \(line \d+\)$/);
  });

  it("roles reversed", () => {
    const x = p.explain("backend_t", "guest_t", "blk");
    expect(x.allowed).toBe(false);
    expect(x.lines.some((l) => l.includes("a pair with the roles reversed exists (guest_t/backend_t/blk"))).toBe(true);
  });

  it("label undeclared", () => {
    const x = p.explain("nobody_t", "backend_t", "rng");
    expect(x.lines[1]).toBe(`  label "nobody_t" is not declared in ${DEFAULT} (declared: guest_t, guest2_t, backend_t, untrusted_t)`);
  });

  it("a pair without the permissions a device needs", () => {
    const q = Policy.parse("domains: [a_t, b_t]\npairs:\n  - { frontend: a_t, backend: b_t, device: rng, allow: [enable, register_single_source] }\n", "q.yaml");
    const x = q.explain("a_t", "b_t", "rng");
    expect(x.allowed).toBe(false);
    expect(x.lines).toContain("  permission missing: send (requests and completions are messages both ways)");
  });

  it("enable may come from another pair; without any it is missing", () => {
    const x = p.explain("guest_t", "backend_t", "rng"); // rng itself does not grant enable
    expect(x.allowed).toBe(true);
    expect(x.lines.find((l) => l.startsWith("  enable guest_t:"))).toMatch(/guest_t\/backend_t\/blk at .*\(\+\d more\)/);
    const q = Policy.parse("domains: [a_t, b_t]\npairs:\n  - { frontend: a_t, backend: b_t, device: rng, allow: [send, register_single_source] }\n", "q.yaml");
    expect(q.explain("a_t", "b_t", "rng").lines).toContain("  permission missing: enable for a_t (no pair with it allows enable)");
  });

  it("allow-all says so", () => {
    const x = Policy.allowAll().explain("x_t", "y_t", "net");
    expect(x.allowed).toBe(true);
    expect(x.lines[1]).toContain("allow-all");
  });
});

describe("CLI: policy check", () => {
  it("0 for a valid file", () => {
    const r = policyCheck(DEFAULT);
    expect(r.code).toBe(0);
    expect(r.out).toEqual(["policies/default.yaml: ok (4 labels, 8 pairs, deny by default)"]);
  });

  it("2 and the first error as file:line:col", () => {
    expect(policyCheck(BAD)).toEqual({ code: 2, out: [`${BAD}:8:9: bad permission "sned" (expected one of: enable, send, register_single_source, register_any_source)`] });
  });

  it("2 for a missing file", () => {
    expect(policyCheck("no/such.yaml")).toEqual({ code: 2, out: ["no/such.yaml: cannot read: ENOENT"] });
  });

  it("reads Flask .te files and prints what it skipped", () => {
    const r = policyCheck(TE);
    expect(r.code).toBe(0);
    expect(r.out.filter((l) => l.startsWith("warning: "))).toHaveLength(5);
  });
});

describe("CLI: policy explain", () => {
  it("0 allowed, 1 denied", () => {
    expect(policyExplain(DEFAULT, "guest_t", "backend_t", "blk").code).toBe(0);
    const denied = policyExplain(DEFAULT, "guest2_t", "backend_t", "blk");
    expect(denied.code).toBe(1);
    expect(denied.out[0]).toContain("DENIED");
    expect(policyExplain(TE, "domU_t", "driver_t", "vsock").code).toBe(0);
  });

  it("2 for an invalid file or an unknown device type", () => {
    expect(policyExplain(BAD, "guest_t", "backend_t", "console")).toEqual({ code: 2, out: [expect.stringMatching(/^test\/fixtures\/policies\/bad-permission.yaml:8:9: /)] });
    expect(policyExplain(DEFAULT, "guest_t", "backend_t", "disk")).toEqual({ code: 2, out: ['unknown device type "disk" (expected one of: blk, net, console, vsock, rng)'] });
  });
});
