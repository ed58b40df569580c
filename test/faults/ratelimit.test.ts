// A rate-limited pair refuses sendv with -EAGAIN once its bucket is empty. Every sender
// (the frontend's control calls and request pump, the backend's replies and completion
// queue) keeps what was refused and sends it on the VIRQ that the hypervisor raises when
// the bucket refills (host/hypervisor: rateLimited). Driver setup does not fail on it and
// the data path resumes.
import { describe, expect, it } from "vitest";
import { ConsoleDriver, RngDriver } from "../../host/devices/index.ts";
import type { ArgoFrontend } from "../../host/transport/argo/frontend/frontend.ts";
import { policy, policyText, rig, until } from "./helpers.ts";

const RATE = "{ rate: { messages_per_second: 40, burst: 2 } }";
const LIMITED = policyText({ device: "console", limits: RATE }, { device: "rng", limits: RATE });

describe("a rate-limited pair (40 msg/s, burst 2)", () => {
  it("console: driver setup survives -EAGAIN on control calls, output and input get through", async () => {
    const { v, guest, backend } = rig({ policy: policy(LIMITED) });
    const out: number[] = [];
    const dev = await v.attach({ type: "console", frontend: guest, backend, console: { onOutput: (b) => out.push(...b) } });
    const con = new ConsoleDriver(dev.device);
    await con.init(); // ~8 control round trips against a burst of 2
    const fe = dev.device as ArgoFrontend;
    const msgs = ["one ", "two ", "three ", "four ", "five"];
    const oks = await Promise.all(msgs.map((m) => con.write(new TextEncoder().encode(m))));
    expect(oks.every(Boolean)).toBe(true);
    expect(new TextDecoder().decode(new Uint8Array(out))).toBe(msgs.join(""));
    expect(fe.stats.eagain).toBeGreaterThan(0); // the limit was really hit on the data path
    const got: number[] = [];
    con.onData((b) => got.push(...b));
    for (const m of msgs) (dev.model as import("../../host/devices/index.ts").ConsoleModel).input(new TextEncoder().encode(m));
    expect(await until(() => got.length >= msgs.join("").length, 5000)).toBe(true);
    expect(new TextDecoder().decode(new Uint8Array(got))).toBe(msgs.join(""));
    expect(fe.gone).toBe(false);
    v.shutdown();
  });

  it("rng: 12 reads in flight at once all complete (the backend's completion queue waits, not drops)", async () => {
    const { v, guest, backend } = rig({ policy: policy(LIMITED) });
    const dev = await v.attach({ type: "rng", frontend: guest, backend });
    const rng = new RngDriver(dev.device, { queueSize: 16 });
    await rng.init();
    const reads = await Promise.all(Array.from({ length: 12 }, () => rng.read(32)));
    expect(reads.every((r) => r !== null && r.length === 32)).toBe(true);
    v.shutdown();
  });
});
