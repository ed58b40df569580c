// Fault injection with requests in flight: backend death (hv.destroyDomain and
// vmm.destroyDomain), unplug (vmm.detach), revocation (a reload without the pair) and rate
// limiting (a reload that adds a tight limit), each at a random point of an echo workload
// (between completions or inside a completion callback), seeded and replayable
// (FAULT_SEED=n). Whatever the fault: every request completes exactly once with its own
// bytes or an error, none hangs, the device state says why, and the guest's pages come back.
import { describe, expect, it } from "vitest";
import { Policy, type Vmm } from "../../host/index.ts";
import type { Domain } from "../../host/hypervisor/domain.ts";
import { EchoClient, FAULT_POLICY, TRANSPORT_NAMES, attachEcho, policyText, rig, rng, seedFor, until, withSeed, type TransportName } from "./helpers.ts";

const WITHOUT_CONSOLE = policyText({ device: "rng" });
const RATE_LIMITED = policyText({ device: "console", limits: "{ rate: { messages_per_second: 400, burst: 4 } }" });

type World = { v: Vmm; guest: Domain; backend: Domain };
interface Fault {
  name: string;
  inject(w: World, dev: { state: string }): void;
  /** The state the device ends in, or "attached" when the fault must not stop it. */
  state: string;
}

const FAULTS: Fault[] = [
  { name: "backend death (hv.destroyDomain)", inject: (w) => w.v.hv.destroyDomain(w.backend.domid), state: "backend-destroyed" },
  { name: "backend death (vmm.destroyDomain)", inject: (w) => w.v.destroyDomain(w.backend), state: "backend-destroyed" },
  { name: "unplug (vmm.detach)", inject: (w, dev) => w.v.detach(dev as Parameters<Vmm["detach"]>[0]), state: "detached" },
  { name: "revocation (reload without the pair)", inject: (w) => w.v.hv.loadPolicy(Policy.parse(WITHOUT_CONSOLE, "revoke.yaml")), state: "revoked" },
  { name: "rate limiting (reload adding 400 msg/s, burst 4)", inject: (w) => w.v.hv.loadPolicy(Policy.parse(RATE_LIMITED, "rate.yaml")), state: "attached" },
];

const RUNS = Number(process.env.FAULT_RUNS ?? 6);

async function one(transport: TransportName, fault: Fault, random: () => number): Promise<void> {
  const w = rig({ policy: Policy.parse(FAULT_POLICY, "faults.yaml") });
  const guestHeap = w.v.toolstack.kernel(w.guest).heap;
  // Warm-up attach and detach: what the guest makes once (bus page, engines) is made now.
  const warm = await attachEcho(w.v, w.guest, w.backend, transport);
  w.v.detach(warm.dev);
  const pagesBefore = guestHeap.usedPages;
  const { dev } = await attachEcho(w.v, w.guest, w.backend, transport);
  const c = await new EchoClient(dev.device, random).setup(16);
  const depth = 1 + Math.floor(random() * 16);
  const total = 120;
  const at = Math.floor(random() * 60);
  const inside = random() < 0.5;
  let injected = false;
  const inject = () => {
    if (injected) return;
    injected = true;
    fault.inject(w, dev);
  };
  const where = `depth ${depth}, fault after ${at} completions ${inside ? "inside a callback" : "between callbacks"}`;
  if (inside) c.onComplete = (n) => n >= at && inject();
  c.run(depth, total);
  if (!inside) {
    await until(() => c.finished >= at);
    inject();
  }
  const settled = await until(() => c.outstanding === 0 && (c.finished === total || dev.device.gone), 8000);
  inject(); // a run that finished before `at` still gets its fault, then must stay quiet
  await until(() => c.outstanding === 0, 3000);
  expect(settled && c.outstanding === 0, `${where}: ${c.outstanding} requests never completed`).toBe(true);
  expect(c.result.wrong, where).toEqual([]);
  expect(c.finished, where).toBe(c.issued);
  expect(dev.state, where).toBe(fault.state);
  if (fault.state === "attached") {
    expect(c.result.failed, `${where}: a rate limit delays, it fails nothing`).toBe(0);
    expect(c.finished, where).toBe(total);
    w.v.detach(dev);
  } else {
    expect(dev.device.gone, where).toBe(true);
  }
  c.release();
  expect(guestHeap.usedPages, `${where}: guest pages back`).toBe(pagesBefore);
  w.v.shutdown();
}

describe.each(TRANSPORT_NAMES)("fault injection with requests in flight over %s", (transport) => {
  for (const fault of FAULTS) {
    // Rate limits are on Argo sends: the sharing transports do not send any.
    if (transport !== "argo" && fault.state === "attached") continue;
    it(`${fault.name}: ${RUNS} seeded runs, every request completes once, nothing hangs, pages come back`, async () => {
      const seed = seedFor();
      await withSeed(`${transport} / ${fault.name}`, seed, async () => {
        const random = rng(seed);
        for (let i = 0; i < RUNS; i++) await one(transport, fault, random);
      });
    });
  }
});
