// Decisions at the four XSM hook points: deny by default, each permission on its own,
// limits with Xen's errnos, rate limits, the AVC, and reloads.
import { describe, expect, it } from "vitest";
import { AuditLog, EACCES, Mac, Policy, PolicyError } from "../../host/mac/index.ts";
import { EAGAIN, EINVAL, EMSGSIZE } from "../../host/mac/errors.ts";
import { AVC_MAX_STRIDE } from "../../host/mac/avc.ts";
import { onePair, subject } from "./helpers.ts";

const quiet = { log: () => {} };

function macFor(text: string, opts: { now?: () => number } = {}): Mac {
  return new Mac(Policy.parse(text, "t.yaml"), { ...quiet, ...opts });
}

describe("deny by default", () => {
  it("a policy with labels but no pairs refuses every hook with -EACCES", () => {
    const mac = macFor("domains: [guest_t, backend_t]\npairs: []\n");
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.argoEnable(g)).toBe(-EACCES);
    expect(mac.registerSingleSource(b, g, 4096)).toBe(-EACCES);
    expect(mac.registerAnySource(b, 4096)).toBe(-EACCES);
    expect(mac.send(g, b, 64)).toBe(-EACCES);
    expect(mac.sendPermitted(g, b)).toBe(-EACCES);
    expect(mac.audit.entries().map((e) => [e.perm, e.errno])).toEqual([
      ["enable", -EACCES],
      ["register_single_source", -EACCES],
      ["register_any_source", -EACCES],
      ["send", -EACCES],
      ["send", -EACCES],
    ]);
  });

  it("a pair with an empty allow list grants nothing", () => {
    const mac = macFor(onePair(""));
    expect(mac.send(subject("guest_t"), subject("backend_t"), 1)).toBe(-EACCES);
  });

  it("a label the policy does not declare is denied, and the audit says why", () => {
    const mac = macFor(onePair("enable, send"));
    const stranger = subject("stranger_t");
    expect(mac.argoEnable(stranger)).toBe(-EACCES);
    expect(mac.send(stranger, subject("backend_t"), 1)).toBe(-EACCES);
    expect(mac.send(subject("backend_t"), stranger, 1)).toBe(-EACCES);
    expect(mac.audit.entries().map((e) => e.reason)).toEqual([
      "label stranger_t is not declared in t.yaml",
      "label stranger_t is not declared in t.yaml",
      "label stranger_t is not declared in t.yaml",
    ]);
  });
});

describe("each permission on its own", () => {
  const g = subject("guest_t");
  const b = subject("backend_t");
  const results = (mac: Mac) => [mac.argoEnable(g), mac.argoEnable(b), mac.send(g, b, 8), mac.send(b, g, 8), mac.registerSingleSource(g, b, 4096), mac.registerSingleSource(b, g, 4096), mac.registerAnySource(g, 4096), mac.registerAnySource(b, 4096)];
  const E = -EACCES;

  it("enable: both ends may use Argo, nothing else", () => {
    expect(results(macFor(onePair("enable")))).toEqual([0, 0, E, E, E, E, E, E]);
  });
  it("send: both directions (requests and completions), nothing else", () => {
    expect(results(macFor(onePair("send")))).toEqual([E, E, 0, 0, E, E, E, E]);
  });
  it("register_single_source: each end may register a ring for the other", () => {
    expect(results(macFor(onePair("register_single_source")))).toEqual([E, E, E, E, 0, 0, E, E]);
  });
  it("register_any_source: either end may register a wildcard ring", () => {
    expect(results(macFor(onePair("register_any_source")))).toEqual([E, E, E, E, E, E, 0, 0]);
  });
});

describe("labels", () => {
  const text = `domains: [guest_t, guest2_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [enable, send, register_single_source] }
`;
  it("a pair of other labels grants nothing (label mismatch)", () => {
    const mac = macFor(text);
    const g2 = subject("guest2_t");
    const b = subject("backend_t");
    const g = subject("guest_t");
    expect(mac.send(g2, b, 1)).toBe(-EACCES);
    expect(mac.registerSingleSource(b, g2, 4096)).toBe(-EACCES);
    expect(mac.argoEnable(g2)).toBe(-EACCES);
    // Two guests of different labels never talk to each other through the backend's pair.
    expect(mac.send(g, g2, 1)).toBe(-EACCES);
    expect(mac.audit.entries()[0].reason).toBe("no pair of guest2_t and backend_t (either orientation)");
  });

  it("domains with the same label share the label's grants", () => {
    const mac = macFor(text);
    expect(mac.send(subject("guest_t"), subject("backend_t"), 1)).toBe(0);
    expect(mac.send(subject("guest_t"), subject("backend_t"), 1)).toBe(0);
  });

  it("a wildcard ring needs register_any_source, not register_single_source", () => {
    const mac = macFor(text);
    const b = subject("backend_t");
    expect(mac.registerSingleSource(b, subject("guest_t"), 4096)).toBe(0);
    expect(mac.registerAnySource(b, 4096)).toBe(-EACCES);
    const e = mac.audit.entries()[0];
    expect(e.tcontext).toBe("xen_t");
    expect(e.reason).toBe("no pair with backend_t allows register_any_source (pairs: guest_t/backend_t/blk)");
  });
});

describe("limits return Xen's errno for the same condition", () => {
  const limits = `    limits: { max_ring_bytes: 4096, max_message_bytes: 1024 }\n`;
  it("a ring larger than max_ring_bytes: -EINVAL (register_ring's bad len)", () => {
    const mac = macFor(onePair("register_single_source, register_any_source", limits));
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.registerSingleSource(g, b, 4096)).toBe(0);
    expect(mac.registerSingleSource(g, b, 4112)).toBe(-EINVAL);
    expect(mac.registerAnySource(b, 4096)).toBe(0);
    expect(mac.registerAnySource(b, 8192)).toBe(-EINVAL);
    const [single, any] = mac.audit.entries();
    expect(single.reason).toBe("ring of 4112 B exceeds max_ring_bytes 4096 (guest_t/backend_t/blk at t.yaml:3)");
    expect(single.pair).toBe("guest_t/backend_t/blk");
    expect(any.errno).toBe(-EINVAL);
  });

  it("a payload larger than max_message_bytes: -EMSGSIZE (sendv's over-long message)", () => {
    const mac = macFor(onePair("send", limits));
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.send(g, b, 1024)).toBe(0);
    expect(mac.send(b, g, 1024)).toBe(0);
    expect(mac.send(g, b, 1025)).toBe(-EMSGSIZE);
    expect(mac.sendPermitted(g, b)).toBe(0); // a permission question ignores sizes
    expect(mac.audit.entries()[0].text).toContain("errno=-EMSGSIZE");
  });

  it("pairs sharing a label pair: the most permissive limit of the granting pairs applies", () => {
    const mac = macFor(`domains: [guest_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: console, allow: [send], limits: { max_message_bytes: 512 } }
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [send], limits: { max_message_bytes: 65536 } }
  - { frontend: guest_t, backend: backend_t, device: rng, allow: [register_single_source], limits: { max_message_bytes: 1000000 } }
`);
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.send(g, b, 65536)).toBe(0);
    expect(mac.send(g, b, 65537)).toBe(-EMSGSIZE); // rng's bigger limit does not count: it grants no send
    expect(mac.audit.entries()[0].pair).toBe("guest_t/backend_t/console,guest_t/backend_t/blk");
  });

  it("a granting pair without a limit makes the label pair unlimited", () => {
    const mac = macFor(`domains: [guest_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: console, allow: [send], limits: { max_message_bytes: 512 } }
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [send] }
`);
    expect(mac.send(subject("guest_t"), subject("backend_t"), 16 << 20)).toBe(0);
  });
});

describe("rate limit", () => {
  const rated = onePair("send", "    limits: { rate: { messages_per_second: 10, burst: 2 } }\n");

  it("a token bucket per sender -> receiver domain: burst, then -EAGAIN, then refill", () => {
    let now = 1000;
    const mac = macFor(rated, { now: () => now });
    const g = subject("guest_t");
    const b = subject("backend_t");
    const b2 = subject("backend_t");
    expect(mac.send(g, b, 8)).toBe(0);
    expect(mac.send(g, b, 8)).toBe(0);
    expect(mac.send(g, b, 8)).toBe(-EAGAIN);
    expect(mac.send(g, b2, 8)).toBe(0); // another receiver has its own bucket
    expect(mac.send(b, g, 8)).toBe(0); // and so has the other direction
    now += 50; // half a token
    expect(mac.send(g, b, 8)).toBe(-EAGAIN);
    now += 50;
    expect(mac.send(g, b, 8)).toBe(0);
    expect(mac.send(g, b, 8)).toBe(-EAGAIN);
    now += 10_000; // refills up to the burst, no further
    expect([mac.send(g, b, 8), mac.send(g, b, 8), mac.send(g, b, 8)]).toEqual([0, 0, -EAGAIN]);
    const e = mac.audit.entries()[0];
    expect(e.errno).toBe(-EAGAIN);
    expect(e.reason).toBe(`rate limit 10/s burst 2 exceeded for d${g.domid} -> d${b.domid}`);
  });

  it("sendPermitted spends no token; the clock is not read without a rate limit", () => {
    let reads = 0;
    const mac = macFor(rated, { now: () => (reads++, 0) });
    const g = subject("guest_t");
    const b = subject("backend_t");
    for (let i = 0; i < 5; i++) expect(mac.sendPermitted(g, b)).toBe(0);
    expect(reads).toBe(0);
    const unrated = macFor(onePair("send"), { now: () => (reads++, 0) });
    for (let i = 0; i < 5; i++) unrated.send(g, b, 8);
    expect(reads).toBe(0);
  });

  it("a reload refills the buckets at the new policy's rate", () => {
    const mac = macFor(rated, { now: () => 0 });
    const g = subject("guest_t");
    const b = subject("backend_t");
    mac.send(g, b, 1);
    mac.send(g, b, 1);
    expect(mac.send(g, b, 1)).toBe(-EAGAIN);
    mac.load(Policy.parse(rated, "t.yaml"));
    expect(mac.send(g, b, 1)).toBe(0);
  });
});

describe("AVC", () => {
  it("counts a miss, then hits; a load flushes", () => {
    const mac = macFor(onePair("send"));
    const g = subject("guest_t");
    const b = subject("backend_t");
    mac.bind(g);
    mac.bind(b);
    expect(mac.stats).toEqual({ avcHits: 0, avcMisses: 0, flushes: 0 });
    mac.send(g, b, 64);
    expect(mac.stats).toEqual({ avcHits: 0, avcMisses: 1, flushes: 0 });
    for (let i = 0; i < 10; i++) mac.send(g, b, 64);
    expect(mac.stats).toEqual({ avcHits: 10, avcMisses: 1, flushes: 0 });
    mac.send(b, g, 64); // the other direction is its own entry
    expect(mac.stats.avcMisses).toBe(2);
    mac.load(mac.policy);
    expect(mac.stats.flushes).toBe(1);
    mac.send(g, b, 64);
    expect(mac.stats.avcMisses).toBe(3);
  });

  it("caches denials too, and a reload that grants takes effect at once", () => {
    const mac = macFor(onePair("enable"));
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.send(g, b, 1)).toBe(-EACCES);
    expect(mac.send(g, b, 1)).toBe(-EACCES);
    expect(mac.stats.avcHits).toBe(1);
    mac.load(Policy.parse(onePair("enable, send"), "t.yaml"));
    expect(mac.send(g, b, 1)).toBe(0);
    mac.policy = Policy.parse(onePair("enable"), "t.yaml"); // assignment is a load
    expect(mac.send(g, b, 1)).toBe(-EACCES);
    expect(mac.stats.flushes).toBe(2);
  });

  it("binds subjects lazily, and rebinds one whose sid names another label", () => {
    const mac = macFor(onePair("send"));
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.send(g, b, 1)).toBe(0);
    expect(g.sid).toBeGreaterThan(0);
    const forged = { ...subject("guest_t"), sid: b.sid }; // a sid that is not its label's
    // Not cached yet, so the slow path sees the mismatch, rebinds, and decides guest_t -> guest_t.
    expect(mac.send(forged, g, 1)).toBe(-EACCES);
    expect(forged.sid).toBe(g.sid);
  });

  it("more labels than the cache holds are still decided correctly, uncached", () => {
    const domains = Array.from({ length: AVC_MAX_STRIDE + 4 }, (_, i) => `l${i}_t`);
    const last = domains[domains.length - 1];
    const mac = macFor(`domains: [${domains.join(", ")}]\npairs:\n  - { frontend: ${last}, backend: l0_t, device: rng, allow: [send] }\n`);
    const x = subject(last);
    const y = subject("l0_t");
    for (const l of domains) mac.bind(subject(l));
    expect(mac.send(x, y, 1)).toBe(0);
    expect(mac.send(x, y, 1)).toBe(0);
    expect(mac.send(x, subject("l1_t"), 1)).toBe(-EACCES);
  });
});

describe("reload", () => {
  it("a bad file never replaces the policy in force", () => {
    const mac = macFor(onePair("send"));
    const g = subject("guest_t");
    const b = subject("backend_t");
    const before = mac.policy;
    expect(() => mac.load(Policy.parse(onePair("send, sned"), "new.yaml"))).toThrow(PolicyError);
    expect(() => mac.load("policies/default.yaml" as unknown as Policy)).toThrow(TypeError);
    expect(mac.policy).toBe(before);
    expect(mac.stats.flushes).toBe(0);
    expect(mac.send(g, b, 1)).toBe(0);
  });

  it("allow-all says so: a flag, describe(), and one warning line", () => {
    const lines: string[] = [];
    const p = Policy.allowAll();
    expect(p.isAllowAll).toBe(true);
    expect(p.source).toBe("<allow-all>");
    expect(p.describe()).toMatch(/allow-all.*tests and benchmarks only/);
    // The warning is printed once per process; another test may have triggered it already.
    const mac = new Mac(p, { log: (l) => lines.push(l) });
    new Mac(p, { log: (l) => lines.push(l) });
    expect(lines.length).toBeLessThanOrEqual(1);
    const x = subject("anything_t");
    expect([mac.argoEnable(x), mac.registerAnySource(x, 16 << 20), mac.send(x, subject("other_t"), 1 << 24)]).toEqual([0, 0, 0]);
  });

  it("shares an AuditLog given to the constructor", () => {
    const audit = new AuditLog(8);
    const mac = new Mac(Policy.parse(onePair(""), "t.yaml"), audit);
    mac.argoEnable(subject("guest_t"));
    expect(mac.audit).toBe(audit);
    expect(audit.entries()).toHaveLength(1);
  });
});
