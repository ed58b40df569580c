// The audit log: structured entries, the Flask-style text line, the bound with its
// dropped counter, and listeners.
import { describe, expect, it, vi } from "vitest";
import { AuditLog, DOMID_XEN, EACCES, Mac, Policy } from "../../host/mac/index.ts";
import { onePair, subject } from "./helpers.ts";

describe("audit entries", () => {
  it("a denied send, structured and as one line in Flask's style", () => {
    const mac = new Mac(Policy.parse("domains: [guest_t, guest2_t, backend_t]\npairs: []\n", "p.yaml"), { log: () => {} });
    const g = subject("guest2_t");
    const b = subject("backend_t");
    const before = Date.now();
    mac.send(g, b, 64);
    const [e] = mac.audit.entries();
    expect(e).toMatchObject({ perm: "send", scontext: "guest2_t", tcontext: "backend_t", tclass: "argo", srcDomid: g.domid, tgtDomid: b.domid, errno: -EACCES, pair: undefined });
    expect(e.time).toBeGreaterThanOrEqual(before);
    expect(e.text).toBe(
      `avc: denied { send } for scontext=guest2_t tcontext=backend_t tclass=argo src=${g.domid} tgt=${b.domid} errno=-EACCES reason="no pair of guest2_t and backend_t (either orientation)"`,
    );
  });

  it("enable and any-source denials target the hypervisor (xen_t, DOMID_XEN), as Flask checks them", () => {
    const mac = new Mac(Policy.parse(onePair("send"), "p.yaml"), { log: () => {} });
    const g = subject("guest_t");
    mac.argoEnable(g);
    mac.registerAnySource(g, 4096);
    for (const e of mac.audit.entries()) {
      expect(e.tcontext).toBe("xen_t");
      expect(e.tgtDomid).toBe(DOMID_XEN);
      expect(e.text).toContain(`tcontext=xen_t tclass=argo src=${g.domid} tgt=${DOMID_XEN} `);
    }
  });

  it("a limit denial names the pair", () => {
    const mac = new Mac(Policy.parse(onePair("send", "    limits: { max_message_bytes: 100 }\n"), "p.yaml"), { log: () => {} });
    mac.send(subject("guest_t"), subject("backend_t"), 101);
    expect(mac.audit.entries()[0].text).toMatch(/ pair=guest_t\/backend_t\/blk errno=-EMSGSIZE reason="message of 101 B exceeds max_message_bytes 100 \(guest_t\/backend_t\/blk at p.yaml:3\)"$/);
  });
});

describe("AuditLog", () => {
  const entry = (i: number) => ({ time: i, perm: "send", scontext: "a", tcontext: "b", tclass: "argo", srcDomid: 1, tgtDomid: 2, errno: -EACCES, reason: `r${i}`, text: `t${i}` });

  it("keeps the newest entries, counts the dropped ones, and hides nothing", () => {
    const log = new AuditLog(3);
    for (let i = 0; i < 5; i++) log.record(entry(i));
    expect(log.entries().map((e) => e.reason)).toEqual(["r2", "r3", "r4"]);
    expect([log.dropped, log.total]).toEqual([2, 5]);
    log.clear();
    expect([log.entries().length, log.dropped, log.total]).toEqual([0, 0, 0]);
    log.record(entry(9));
    expect(log.entries().map((e) => e.reason)).toEqual(["r9"]);
  });

  it("listeners hear every denial until they unsubscribe; a throwing one does not break the check", async () => {
    const log = new AuditLog();
    const mac = new Mac(Policy.parse(onePair(""), "p.yaml"), log, { log: () => {} });
    const heard: string[] = [];
    const off = log.onDenial((e) => heard.push(e.perm));
    const errors: unknown[] = [];
    const handler = (e: unknown) => errors.push(e);
    process.on("uncaughtException", handler);
    const offBad = log.onDenial(() => {
      throw new Error("listener bug");
    });
    try {
      expect(mac.argoEnable(subject("guest_t"))).toBe(-EACCES);
      off();
      offBad();
      mac.argoEnable(subject("guest_t"));
      await vi.waitFor(() => expect(errors).toHaveLength(1));
    } finally {
      process.off("uncaughtException", handler);
    }
    expect(heard).toEqual(["enable"]);
    expect(log.total).toBe(2);
  });

  it("rejects a nonsense capacity", () => {
    expect(() => new AuditLog(0)).toThrow(RangeError);
  });
});
