// The YAML front end: every kind of mistake gives file:line:col and what is wrong, and
// valid files become the model the hooks decide on.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { Policy, PolicyError, schemaPath } from "../../host/mac/index.ts";

/** A valid file; each malformed case below changes one thing in it. */
const BASE = `version: 1
domains: [guest_t, backend_t]
pairs:
  - frontend: guest_t
    backend: backend_t
    device: blk
    allow: [send]
`;

function errorOf(text: string): PolicyError {
  try {
    Policy.parse(text, "bad.yaml");
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    return e as PolicyError;
  }
  throw new Error("parsed without error");
}

/** [name, text, line, col, a fragment of the message] */
const MALFORMED: [string, string, number, number, string][] = [
  ["YAML syntax error (unclosed flow list)", BASE.replace("[send]", "[send"), 8, 1, "YAML syntax"],
  ["unknown top-level key", BASE.replace("pairs:", "domian: 1\npairs:"), 3, 1, 'unknown top-level key "domian"'],
  ["unknown label in a pair", BASE.replace("backend: backend_t", "backend: backnd_t"), 5, 14, 'unknown label "backnd_t" as backend'],
  ["duplicate pair", BASE + "  - frontend: guest_t\n    backend: backend_t\n    device: blk\n    allow: []\n", 8, 5, "duplicate pair guest_t/backend_t/blk: already defined at line 4"],
  ["bad permission name", BASE.replace("[send]", "[send, sned]"), 7, 19, 'bad permission "sned"'],
  ["string for a number", BASE + "    limits:\n      max_ring_bytes: big\n", 9, 23, 'max_ring_bytes must be an integer, not a string ("big")'],
  ["negative limit", BASE + "    limits:\n      max_message_bytes: -4\n", 9, 26, "max_message_bytes must be >= 1, got -4"],
  ["zero limit", BASE + "    limits:\n      max_ring_bytes: 0\n", 9, 23, "max_ring_bytes must be >= 1, got 0"],
  ["zero burst", BASE + "    limits:\n      rate: { messages_per_second: 10, burst: 0 }\n", 9, 47, "burst must be >= 1, got 0"],
  ["unknown device type", BASE.replace("device: blk", "device: disk"), 6, 13, 'unknown device type "disk"'],
  ["rule not valid for the device", BASE + '    rules:\n      allowed_macs: ["52:54:00:12:34:56"]\n', 9, 7, 'rule "allowed_macs" is not valid for device blk (blk takes: read_only)'],
  ["bad MAC address", BASE.replace("device: blk", "device: net") + '    rules:\n      allowed_macs: ["52:54:00:12:34"]\n', 9, 22, 'bad MAC address "52:54:00:12:34"'],
  ["port out of range", BASE.replace("device: blk", "device: vsock") + "    rules:\n      allowed_ports: [22, 4294967296]\n", 9, 27, "vsock port 4294967296 is out of range"],
  ["duplicate domain label", BASE.replace("[guest_t, backend_t]", "[guest_t, backend_t, guest_t]"), 2, 31, 'duplicate domain label "guest_t" in domains (first at line 2)'],
  ["missing required field", BASE.replace("    device: blk\n", ""), 4, 5, 'pair is missing required field "device"'],
  ["misspelt key in a pair", BASE + "    alow: [send]\n", 8, 5, 'unknown key "alow" in pair'],
  ["duplicate key in a mapping", BASE.replace("pairs:", "domains: []\npairs:"), 3, 1, "duplicate key"],
  ["reserved label xen_t", BASE.replace("[guest_t, backend_t]", "[guest_t, backend_t, xen_t]"), 2, 31, 'label "xen_t" is reserved'],
  ["wrong version", BASE.replace("version: 1", "version: 2"), 1, 10, "version must be 1"],
  ["empty file", "", 1, 1, "the policy must be a mapping, not empty"],
  ["rate given as a string", BASE + "    limits:\n      rate: fast\n", 9, 13, 'rate must be a mapping, not a string ("fast")'],
  ["bad label syntax", BASE.replace("[guest_t, backend_t]", "[guest_t, backend_t, 9lives]"), 2, 31, 'bad label "9lives"'],
  ["unknown alias", BASE.replace("allow: [send]", "allow: *perms"), 7, 12, "unknown alias *perms"],
];

describe("malformed policy files name file:line:col", () => {
  it.each(MALFORMED)("%s", (_name, text, line, col, fragment) => {
    const e = errorOf(text);
    expect({ line: e.line, col: e.col, file: e.file }).toEqual({ line, col, file: "bad.yaml" });
    expect(e.message.startsWith(`bad.yaml:${line}:${col}: `)).toBe(true);
    expect(e.message).toContain(fragment);
  });

  it("covers at least 10 distinct mistakes", () => {
    expect(new Set(MALFORMED.map((m) => m[4])).size).toBeGreaterThanOrEqual(10);
  });

  it("reports the first error in file order and keeps the others", () => {
    const text = BASE.replace("device: blk", "device: disk").replace("[send]", "[sned]").replace("backend: backend_t", "backend: nobody_t");
    const e = errorOf(text);
    expect(e.line).toBe(6); // schema errors come before cross-reference checks
    expect(e.others.map((o) => o.line)).toEqual([7]);
  });

  it("an unreadable file is a PolicyError without a position", () => {
    expect(() => Policy.load("/nonexistent/policy.yaml")).toThrow(/^\/nonexistent\/policy.yaml: cannot read: ENOENT$/);
  });

  it("refuses alias bombs", () => {
    const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
    expect(() => Policy.parse(bomb, "bomb.yaml")).toThrow(/^bomb.yaml:1:1: YAML: /);
  });
});

describe("valid policies", () => {
  it("the example policy parses, with the pairs the demo relies on", () => {
    const p = Policy.load("policies/default.yaml");
    expect(p.kind).toBe("yaml");
    expect(p.labels).toEqual(["guest_t", "guest2_t", "backend_t", "untrusted_t"]);
    expect(p.pair("guest_t", "backend_t", "blk")?.rules.readOnly).toBe(true);
    expect(p.pair("guest2_t", "backend_t", "blk")).toBeUndefined();
    for (const d of ["blk", "console", "rng", "net", "vsock"] as const) expect(p.pair("guest_t", "backend_t", d)).toBeDefined();
  });

  it("device rules and limits come out typed and normalised", () => {
    const p = Policy.parse(
      `domains: [g_t, b_t]
pairs:
  - { frontend: g_t, backend: b_t, device: net, allow: [send], rules: { allowed_macs: ["52:54:00:AB:CD:EF"] } }
  - frontend: g_t
    backend: b_t
    device: vsock
    allow: [send]
    limits: { max_ring_bytes: 4096, max_message_bytes: 1024, rate: { messages_per_second: 2.5 } }
    rules: { allowed_ports: [22, 0, 4294967294] }
`,
      "ok.yaml",
    );
    expect(p.pair("g_t", "b_t", "net")!.rules.allowedMacs).toEqual(["52:54:00:ab:cd:ef"]);
    const v = p.pair("g_t", "b_t", "vsock")!;
    expect(v.limits).toEqual({ maxRingBytes: 4096, maxMessageBytes: 1024, rate: { messagesPerSecond: 2.5, burst: 3 } });
    expect(v.rules.allowedPorts).toEqual([22, 0, 4294967294]);
    expect(v.origin).toEqual({ file: "ok.yaml", line: 4, col: 5 });
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(v.limits)).toBe(true);
  });

  it("the published schema is a draft-07 JSON schema file", () => {
    const schema = JSON.parse(readFileSync(schemaPath(), "utf8"));
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(schema.required).toEqual(["domains", "pairs"]);
  });
});
