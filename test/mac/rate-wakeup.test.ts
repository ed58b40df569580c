// A send refused by the pair's rate limit (-EAGAIN) comes with a later VIRQ_ARGO, as every
// -EAGAIN from Xen's sendv does (issue 17, item 4): a sender that only waits for its VIRQ
// never stalls, the wakeup is coalesced, never keeps Node alive and dies with its domain.
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { GuestArgo } from "../../host/guest/argo-driver.ts";
import { Policy } from "../../host/mac/index.ts";
import { EAGAIN } from "../../host/mac/errors.ts";
import { onePair } from "./helpers.ts";
import { RateLimiter } from "../../host/mac/ratelimit.ts";

function ratedWorld(rate: string) {
  const policy = Policy.parse(onePair("enable, send, register_single_source", `    limits: { rate: { ${rate} } }\n`), "rated.yaml");
  const hv = new Hypervisor({ policy });
  const make = (name: string, label: string) => {
    const d = hv.createDomain({ name, label, memoryBytes: 1 << 20 });
    const g = new GuestArgo(d);
    return { d, g, buf: g.heap.alloc(4096) };
  };
  const front = make("front", "guest_t");
  const back = make("back", "backend_t");
  const ring = back.g.registerRing(7, front.d.domid, 64 << 10);
  if (typeof ring === "number") throw new Error(`register: ${ring}`);
  return { hv, front, back, ring };
}

describe("rate limit wakeup", () => {
  it("a sender on a 5 msg/s pair that waits only for VIRQ_ARGO gets all its messages through", async () => {
    const { front, back, ring } = ratedWorld("messages_per_second: 5, burst: 1");
    const total = 6; // 1 from the burst, then one per 200 ms: ~1 s
    let sent = 0;
    let refused = 0;
    const done = new Promise<void>((resolve, reject) => {
      const stall = setTimeout(() => reject(new Error(`stalled after ${sent} of ${total} (${refused} -EAGAIN)`)), 5000);
      const pump = (): void => {
        while (sent < total) {
          const rc = front.g.send(back.d.domid, 7, front.buf, 16);
          if (rc === -EAGAIN) {
            refused++;
            return; // wait for VIRQ_ARGO, nothing else: no timer, no polling
          }
          if (rc !== 16) return reject(new Error(`send: ${rc}`));
          sent++;
        }
        clearTimeout(stall);
        resolve();
      };
      front.d.onVirq(pump);
      pump();
    });
    await done;
    expect(sent).toBe(total);
    expect(refused).toBeGreaterThanOrEqual(total - 1);
    let got = 0;
    while (back.g.read(ring, back.buf, 4096) === 16) got++;
    expect(got).toBe(total);
  }, 10_000);

  it("wakeups coalesce: a burst of refusals arms one timer, and it is cancelled on domain destroy", () => {
    const { hv, front, back } = ratedWorld("messages_per_second: 1, burst: 1");
    expect(front.g.send(back.d.domid, 7, front.buf, 16)).toBe(16);
    for (let i = 0; i < 50; i++) expect(front.g.send(back.d.domid, 7, front.buf, 16)).toBe(-EAGAIN);
    expect(hv.pendingRateWakeups).toBe(1);
    hv.destroyDomain(front.d.domid);
    expect(hv.pendingRateWakeups).toBe(0);
  });

  it("a reload refills the buckets and wakes the rate-limited senders at once", async () => {
    const { hv, front, back } = ratedWorld("messages_per_second: 0.1, burst: 1");
    expect(front.g.send(back.d.domid, 7, front.buf, 16)).toBe(16);
    expect(front.g.send(back.d.domid, 7, front.buf, 16)).toBe(-EAGAIN);
    let woken = 0;
    front.d.onVirq(() => woken++);
    hv.loadPolicy(hv.policy);
    await new Promise((r) => setTimeout(r, 0));
    expect(woken).toBe(1);
    expect(hv.pendingRateWakeups).toBe(0);
    expect(front.g.send(back.d.domid, 7, front.buf, 16)).toBe(16);
  });

  it("the wakeup timer does not keep the Node process alive", async () => {
    const { spawnSync } = await import("node:child_process");
    // A child that leaves a 1-per-hour sender waiting must still exit at once.
    const script = `
      import { Hypervisor } from "./host/hypervisor/hypervisor.ts";
      import { GuestArgo } from "./host/guest/argo-driver.ts";
      import { Policy } from "./host/mac/index.ts";
      const text = ${JSON.stringify(onePair("enable, send, register_single_source", "    limits: { rate: { messages_per_second: 0.0003, burst: 1 } }\n"))};
      const hv = new Hypervisor({ policy: Policy.parse(text, "rated.yaml") });
      const f = hv.createDomain({ name: "f", label: "guest_t", memoryBytes: 1 << 20 });
      const b = hv.createDomain({ name: "b", label: "backend_t", memoryBytes: 1 << 20 });
      const fg = new GuestArgo(f), bg = new GuestArgo(b);
      bg.registerRing(7, f.domid, 4096);
      const buf = fg.heap.alloc(4096);
      fg.send(b.domid, 7, buf, 16);
      if (fg.send(b.domid, 7, buf, 16) !== -11 || hv.pendingRateWakeups !== 1) process.exit(3);
    `;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: process.cwd(), timeout: 20_000 });
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
  }, 30_000);

  it("a destroyed domain's buckets are forgotten: a later domain given its id starts with a full budget", () => {
    const rl = new RateLimiter();
    const rate = { messagesPerSecond: 1, burst: 1 };
    expect(rl.take(5, 9, rate, 0)).toBe(true);
    expect(rl.take(5, 9, rate, 0)).toBe(false);
    expect(rl.lastRefillMs).toBe(1000);
    expect(rl.take(7, 5, rate, 0)).toBe(true);
    rl.forget(5);
    expect(rl.take(5, 9, rate, 0)).toBe(true);
    expect(rl.take(7, 5, rate, 0)).toBe(true);
    expect(rl.take(7, 9, rate, 0)).toBe(true);
    expect(rl.take(7, 9, rate, 0)).toBe(false); // a bucket not naming 5 is kept
  });
});
