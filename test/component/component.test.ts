// A guest written as a WebAssembly component (wit/argo.wit, made with jco-transpile) and a
// core-module guest exchange messages through the hypervisor, under the MAC policy.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { GuestArgo, type GuestRing } from "../../host/guest/argo-driver.ts";
import { READ_EMPTY } from "../../host/abi/argo-reader.ts";
import { EACCES, ECONNREFUSED, ENOMEM } from "../../host/abi/errno.ts";
import { argoImports, runArgoGuest } from "../../host/component/guest.ts";

const POLICY = `
domains: [guest_t, backend_t, stranger_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: console, allow: [enable, send, register_single_source] }
`;

async function world() {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "component.yaml") });
  const comp = hv.createDomain({ name: "component-guest", label: "backend_t", memoryBytes: 4 << 20 });
  const core = hv.createDomain({ name: "core-guest", label: "guest_t", memoryBytes: 4 << 20 });
  const guest = await runArgoGuest(comp);
  const argo = new GuestArgo(core);
  return { hv, comp, core, guest, argo };
}

function drain(argo: GuestArgo, ring: GuestRing, buf: number, core: { memory: WebAssembly.Memory }): Uint8Array[] {
  const got: Uint8Array[] = [];
  for (;;) {
    const n = argo.read(ring, buf, 1 << 16);
    if (n === READ_EMPTY || n < 0) return got;
    got.push(new Uint8Array(core.memory.buffer).slice(buf, buf + n));
  }
}

describe("component guest (wit/argo.wit through jco-transpile)", () => {
  it("is a real component: the binary is a component, and its WIT is ours", async () => {
    const bytes = readFileSync(new URL("../../build/component/argo-guest.component.wasm", import.meta.url));
    // Component binaries carry layer 1 in the version field (core modules: 1, 0, 0, 0).
    expect([...bytes.subarray(4, 8)]).toEqual([0x0d, 0x00, 0x01, 0x00]);
    const { componentWit } = await import("@bytecodealliance/jco-transpile/wasm-tools");
    const wit = await componentWit(bytes);
    expect(wit).toMatch(/import virtio-argo:argo\/hypercalls@0\.1\.0/);
    expect(wit).toMatch(/export serve: func/);
  });

  it("round-trips messages of 1 B .. 8 KiB with a core-module guest, both directions", async () => {
    const { comp, core, guest, argo } = await world();
    guest.start(core.domid, 7000); // the component's ring on port 7000, for the core guest
    const ring = argo.registerRing(7001, comp.domid, 65536);
    expect(typeof ring).toBe("object");
    const buf = argo.heap.alloc(1 << 16);
    const sizes = [1, 15, 64, 1000, 4096, 8192];
    const mem = new Uint8Array(core.memory.buffer);
    const sent: Uint8Array[] = [];
    for (const [i, n] of sizes.entries()) {
      const data = Uint8Array.from({ length: n }, (_, k) => (k * 7 + i) & 0xff);
      mem.set(data, buf);
      expect(argo.send(comp.domid, 7000, buf, n, 3, 7001)).toBe(n);
      sent.push(data);
    }
    expect(guest.signalled()).toBe(true); // VIRQ_ARGO reached the component's domain
    expect(guest.serve(100, 7001)).toBe(sizes.length);
    const replies = drain(argo, ring as GuestRing, buf, core);
    expect(replies.length).toBe(sizes.length);
    for (const [i, r] of replies.entries()) expect(r).toEqual(sent[i].map((b) => b ^ 0x5a));
    expect(argo.meta.srcDomid).toBe(comp.domid);
    expect(argo.meta.messageType).toBe(3);
    // Component-initiated: greet sends to the core guest's ring.
    expect(guest.greet({ domid: core.domid, port: 7001 }, 300, 9)).toBe(300);
    const [greeting] = drain(argo, ring as GuestRing, buf, core);
    expect(greeting).toEqual(Uint8Array.from({ length: 300 }, (_, k) => (9 + k) & 0xff));
    expect(guest.room({ domid: core.domid, port: 7001 })).toBeGreaterThan(60000);
    guest.stop();
    expect(argo.send(comp.domid, 7000, buf, 4, 0, 7001)).toBe(-ECONNREFUSED);
  });

  it("is held to the policy: a pair the policy lacks gets Xen's errnos as WIT errors", async () => {
    const { hv, core, guest } = await world();
    const stranger = hv.createDomain({ name: "stranger", label: "stranger_t", memoryBytes: 1 << 20 });
    // A ring for a partner the policy does not pair with: register_single_source denied.
    const denied = (() => { try { guest.start(stranger.domid, 7100); } catch (e) { return e; } })();
    expect(denied).toBe(EACCES);
    guest.start(core.domid, 7000);
    const refused = (() => { try { guest.greet({ domid: stranger.domid, port: 1 }, 8, 0); } catch (e) { return e; } })();
    expect(refused === EACCES || refused === ECONNREFUSED).toBe(true);
  });

  it("a ring larger than the domain's memory is ENOMEM, not an exception in the host", async () => {
    const { hv, core } = await world();
    const tiny = hv.createDomain({ name: "tiny", label: "backend_t", memoryBytes: 1 << 20 });
    const shim = argoImports(tiny);
    expect(shim.registerRing(7000, core.domid, 2 << 20)).toEqual({ tag: "err", val: ENOMEM });
    expect(shim.recv(7000)).toBeUndefined(); // no ring: nothing to read, no throw
  });

  it("never hands the component a view of domain memory: only copies cross", async () => {
    const { comp, core, guest, argo } = await world();
    guest.start(core.domid, 7000);
    const buf = argo.heap.alloc(4096);
    new Uint8Array(core.memory.buffer).fill(0xee, buf, buf + 64);
    argo.send(comp.domid, 7000, buf, 64, 0, 7001);
    // The component's exports are functions only; no memory or buffer of any domain is reachable.
    for (const v of Object.values(guest)) expect(typeof v).toBe("function");
    expect(guest.serve(1, 7001)).toBe(0); // no ring on 7001 for the reply: sendv fails, nothing answered
  });
});
