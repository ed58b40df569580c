// The backend dies (hv.destroyDomain, not the Vmm) or a policy reload revokes the pair while
// the guest's ring still holds an unread completion fragment: the VIRQ of the fault
// coalesces with the data VIRQ, and the drain that reads the fragment must still find out
// that nothing more will come. Every request in flight fails; the device is marked gone.
import { describe, expect, it } from "vitest";
import { world, Requester } from "../transport/helpers.ts";
import { Policy } from "../../host/mac/index.ts";
import { until } from "./helpers.ts";

const NO_PAIR = `
domains: [guest_t, backend_t, stranger_t]
pairs:
  - { frontend: stranger_t, backend: backend_t, device: console, allow: [enable, send, register_single_source] }
`;

describe.each([
  ["hv.destroyDomain(backend)", (w: ReturnType<typeof world>) => w.hv.destroyDomain(w.backend.domid)],
  ["a policy reload that revokes the pair", (w: ReturnType<typeof world>) => w.hv.loadPolicy(Policy.parse(NO_PAIR, "revoke.yaml"))],
])("%s with a completion fragment unread in the guest's ring", (_name, fault) => {
  it("fails every request in flight and marks the device gone", async () => {
    // A 1 KiB ring holds one completion fragment at a time: a 3000-byte echo comes back in four.
    const w = world({ ringLen: 1024 });
    await w.fe.negotiate(1n);
    const r = await new Requester(w.fe).setup(0, 16);
    await w.fe.driverOk();
    w.model.hold = true;
    const first = r.submit(new Uint8Array(3000).fill(1), 3000).done;
    const second = r.submit(new Uint8Array(10).fill(2), 10).done;
    expect(await until(() => w.model.served === 0 && w.pair.server.stats.requests === 2)).toBe(true);
    w.model.release(); // both complete; the first fragment of the first lands in the guest's ring
    fault(w); // before the guest's VIRQ handler has run
    expect(await until(() => r.outstanding === 0, 3000), "requests still in flight").toBe(true);
    expect((await first).error).toBe(true);
    expect(w.fe.gone).toBe(true);
    void second;
  });
});
