// A rate-limited pair's bucket hands out up to burst / 16 tokens (at most 64) per clock
// read and spends the rest without reading the clock (host/mac/ratelimit.ts: prepaid), so
// a rated send check costs a few compares instead of a performance.now(). These tests pin
// that it stays an upper bound: no schedule of sends gets more than burst + rate x window.
import { describe, expect, it } from "vitest";
import { Mac, Policy } from "../../host/mac/index.ts";
import { EAGAIN } from "../../host/mac/errors.ts";
import { RateLimiter } from "../../host/mac/ratelimit.ts";
import { onePair, subject } from "./helpers.ts";
import { rng as prng } from "../faults/helpers.ts";

const quiet = { log: () => {} };
const rated = (mps: number, burst: number) => onePair("send", `    limits: { rate: { messages_per_second: ${mps}, burst: ${burst} } }\n`);

describe("rate limit: prepaid tokens", () => {
  it("a rate-limited pair reads the clock once per 64 sends (burst 1024), not once per send", () => {
    let reads = 0;
    const mac = new Mac(Policy.parse(rated(1e6, 1024), "t.yaml"), { ...quiet, now: () => (reads++, 0) });
    const g = subject("guest_t");
    const b = subject("backend_t");
    for (let i = 0; i < 640; i++) expect(mac.send(g, b, 8)).toBe(0);
    expect(reads).toBe(11); // the bucket's creation, then one read per 64 sends
  });

  it("a sender that hoards prepaid tokens through an idle spell gets one burst, not a burst and its hoard", () => {
    let now = 0;
    const mac = new Mac(Policy.parse(rated(10, 1024), "t.yaml"), { ...quiet, now: () => now });
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.send(g, b, 8)).toBe(0); // takes 64 tokens: this send's and 63 prepaid
    now = 1e7; // the bucket (but not the hoard) would refill many times over
    let sent = 0;
    while (mac.send(g, b, 8) === 0) sent++;
    // An exact bucket allows 1024 here; spending the 63 prepaid and then refilling to the
    // whole burst would allow 1087.
    expect(sent).toBe(1024);
  });

  it("a reload forfeits the prepaid tokens of the old policy", () => {
    const mac = new Mac(Policy.parse(rated(1e6, 1024), "t.yaml"), { ...quiet, now: () => 0 });
    const g = subject("guest_t");
    const b = subject("backend_t");
    expect(mac.send(g, b, 8)).toBe(0); // 63 prepaid at 1e6/s
    mac.load(Policy.parse(rated(0.001, 1), "t.yaml"));
    expect(mac.send(g, b, 8)).toBe(0);
    expect(mac.send(g, b, 8)).toBe(-EAGAIN);
  });

  it("a destroyed domain's prepaid tokens go with its buckets", () => {
    const rl = new RateLimiter(() => 0);
    const rate = { messagesPerSecond: 1, burst: 1024 };
    expect(rl.take(5, 9, rate, undefined, 77)).toBe(true);
    expect(rl.spendPrepaid(5 * 0x10000 + 9, 77)).toBe(true);
    expect(rl.spendPrepaid(5 * 0x10000 + 9, 78)).toBe(false); // another decision's tag
    rl.forget(5);
    expect(rl.spendPrepaid(5 * 0x10000 + 9, 77)).toBe(false);
  });

  for (const seed of [1, 2, 3, 20261201]) {
    it(`no schedule of sends beats burst + rate x window, and a refusal's refill time is exact (seed ${seed})`, () => {
      const rnd = prng(seed);
      const mps = 1000;
      const burst = 160; // batch 10
      let now = 0;
      const mac = new Mac(Policy.parse(rated(mps, burst), "t.yaml"), { ...quiet, now: () => now });
      const g = subject("guest_t");
      const receivers = [subject("backend_t"), subject("backend_t")]; // a bucket each, sent to in turn
      const accepted: number[][] = [[], []];
      for (let run = 0; run < 60; run++) {
        // Runs of sends to one receiver: floods (back to back), trickles (a send every
        // 0-2 ms), each after a pause of 0-400 ms (longer than a whole refill at times).
        now += rnd() < 0.5 ? rnd() * 400 : 0;
        const k = rnd() < 0.5 ? 0 : 1;
        const flood = rnd() < 0.5;
        const len = 1 + Math.floor(rnd() * 400);
        for (let i = 0; i < len; i++) {
          if (!flood) now += rnd() * 2;
          const rc = mac.send(g, receivers[k], 8);
          if (rc === 0) {
            accepted[k].push(now);
            continue;
          }
          expect(rc, `seed ${seed}`).toBe(-EAGAIN);
          // The hypervisor wakes the sender after rateRefillMs(): a send then must pass.
          if (rnd() < 0.3) {
            now += mac.rateRefillMs();
            expect(mac.send(g, receivers[k], 8), `seed ${seed}: refused after its refill time`).toBe(0);
            accepted[k].push(now);
          }
        }
      }
      for (const times of accepted) {
        expect(times.length, `seed ${seed}`).toBeGreaterThan(500);
        for (let i = 0; i < times.length; i++) {
          for (let j = i; j < times.length; j++) {
            const allowed = burst + ((times[j] - times[i]) * mps) / 1000;
            if (j - i + 1 > allowed + 1e-6) throw new Error(`seed ${seed}: ${j - i + 1} sends in [${times[i]}, ${times[j]}] ms, allowed ${allowed}`);
          }
        }
      }
    });
  }
});
