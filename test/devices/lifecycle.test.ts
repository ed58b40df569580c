// net and vsock ports follow their pairs: detach and re-attach through the Vmm leave the
// switch and hub as they were; a domain destroyed (by the Vmm or the hypervisor) resets
// its vsock connections, and its peers see errors, not hangs.
import { describe, expect, it } from "vitest";
import { NetDriver, VsockDriver, type NetModel, type VsockStream } from "../../host/devices/index.ts";
import { DeviceSpecError } from "../../host/errors.ts";
import { VIRTIO_F_RING_PACKED } from "../../host/devices/types.ts";
import * as N from "../../host/devices/net/layout.ts";
import { VMADDR_CID_HOST } from "../../host/devices/vsock/layout.ts";
import { Vmm } from "../../host/vmm/vmm.ts";
import { Policy } from "../../host/mac/index.ts";
import { MAC1, MAC2, MAC2B, POLICY, TRANSPORTS, boot, drive, failure } from "./helpers.ts";
import { settle } from "../transport/helpers.ts";

describe.each(TRANSPORTS)("net and vsock life cycle over %s", (transport) => {
  it("50 attach/detach cycles through the Vmm: the switch and hub end with the ports they started with, the MAC and CID are reused", async () => {
    const vmm = new Vmm({ policy: Policy.parse(POLICY, "netvsock.yaml") });
    const be = vmm.createDomain({ name: "be", label: "backend_t", memoryBytes: 64 << 20 });
    const g1 = vmm.createDomain({ name: "g1", label: "guest_t", memoryBytes: 64 << 20 });
    const g2 = vmm.createDomain({ name: "g2", label: "guest2_t", memoryBytes: 32 << 20 });
    const peer = await drive(vmm.attach({ type: "net", frontend: g2, backend: be, transport }));
    const pd = new NetDriver(peer.device, { queueSize: 16 });
    await drive(pd.init());
    const got: Uint8Array[] = [];
    pd.onFrame((f) => got.push(f));
    const sw = vmm.toolstack.fabric.netSwitch(be);
    const hub = vmm.vsock(be);
    expect(sw.portCount).toBe(1);
    for (let i = 0; i < 50; i++) {
      const net = await drive(vmm.attach({ type: "net", frontend: g1, backend: be, transport }));
      const vs = await drive(vmm.attach({ type: "vsock", frontend: g1, backend: be, transport }));
      const d = new NetDriver(net.device, { queueSize: 16 });
      await drive(d.init());
      expect(d.mac).toBe(MAC1);
      const f = new Uint8Array(60);
      N.writeMac(f, 0, N.macToNumber(MAC2));
      N.writeMac(f, 6, N.macToNumber(MAC1));
      await drive(d.send(f));
      await settle(() => got.length === i + 1);
      const v = new VsockDriver(vs.device);
      await drive(v.init());
      expect(v.cid).toBe(g1.domid + 2);
      await drive(d.close());
      await drive(v.close());
      vmm.detach(net);
      vmm.detach(vs);
      expect(sw.portCount).toBe(1);
    }
    expect(got).toHaveLength(50);
    expect(hub.connectionCount).toBe(0);
    vmm.shutdown();
  }, 60_000);

  for (const how of ["detached, then destroyed (as vmm.destroyDomain does)", "hv.destroyDomain alone"] as const) {
    it(`a guest ${how}: the VMM's stream and the other guest's socket read ECONNRESET`, async () => {
      const w = boot(transport, [[1, "vsock"], [2, "vsock"]]);
      const d1 = new VsockDriver(w.dev(1, "vsock"));
      const d2 = new VsockDriver(w.dev(2, "vsock"));
      await drive(d1.init());
      await drive(d2.init());
      const hub = w.ts.fabric.vsockHub(w.be);
      let host: VsockStream | null = null;
      hub.listen(1024, (s) => (host = s));
      await drive(d1.connect(VMADDR_CID_HOST, 1024));
      await settle(() => host !== null);
      d1.listen(5000, () => {});
      const s2 = await drive(d2.connect(d1.cid, 5000));
      const outcome = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => e);
      const reads = [host!.read(), s2.read()].map(outcome);
      // The Vmm's destroyDomain detaches first; the hypervisor's alone must give the same result.
      if (how === "hv.destroyDomain alone") w.hv.destroyDomain(w.guests[0].domid);
      else {
        for (const m of [w.model(1, "vsock")]) w.ts.fabric.release(m);
        w.hv.destroyDomain(w.guests[0].domid);
      }
      const [hostErr, peerErr] = await drive(Promise.all(reads));
      expect(hostErr).toMatchObject({ code: "ECONNRESET" });
      expect(peerErr).toMatchObject({ code: "ECONNRESET" });
      expect(hub.connectionCount).toBe(0);
      expect(await failure(hub.connect(d1.cid, 5000))).toMatchObject({ code: "EHOSTUNREACH" });
    });
  }
});

describe.each(["argo", "foreign", "bounce"] as const)("packed virtqueues over %s (VIRTIO_F_RING_PACKED)", (transport) => {
  it("net frames guest to guest and a vsock stream to the VMM on packed rings", async () => {
    const w = boot(transport, [[1, "net"], [2, "net"], [1, "vsock"]]);
    const a = new NetDriver(w.dev(1, "net"), { packed: true, queueSize: 32 });
    const b = new NetDriver(w.dev(2, "net"), { packed: true, queueSize: 32 });
    await drive(a.init());
    await drive(b.init());
    expect(a.features & VIRTIO_F_RING_PACKED).toBe(VIRTIO_F_RING_PACKED);
    const got: Uint8Array[] = [];
    b.onFrame((f) => got.push(f));
    const frames = Array.from({ length: 100 }, (_, i) => {
      const f = new Uint8Array(60 + i * 10).fill(i);
      N.writeMac(f, 0, N.macToNumber(MAC2));
      N.writeMac(f, 6, N.macToNumber(MAC1));
      return f;
    });
    for (const f of frames) await drive(a.send(f));
    await settle(() => got.length === frames.length);
    expect(got).toEqual(frames);
    const v = new VsockDriver(w.dev(1, "vsock"), { packed: true });
    await drive(v.init());
    expect(v.features & VIRTIO_F_RING_PACKED).toBe(VIRTIO_F_RING_PACKED);
    let host: VsockStream | null = null;
    w.ts.fabric.vsockHub(w.be).listen(1024, (s) => (host = s));
    const s = await drive(v.connect(VMADDR_CID_HOST, 1024));
    const data = Uint8Array.from({ length: 200_000 }, (_, i) => i & 0xff);
    const writing = s.write(data);
    await settle(() => host !== null);
    expect(await drive(host!.readExactly(data.length))).toEqual(data);
    await drive(writing);
  });
});

describe("addresses the policy cannot give", () => {
  it("two guests of one label share its allowed_macs: the second gets the next address, a third none (DeviceSpecError); a second vsock device for one guest is refused", async () => {
    const vmm = new Vmm({ policy: Policy.parse(POLICY, "netvsock.yaml") });
    const be = vmm.createDomain({ name: "be", label: "backend_t", memoryBytes: 32 << 20 });
    const [a, b, c] = ["a", "b", "c"].map((name) => vmm.createDomain({ name, label: "guest2_t", memoryBytes: 16 << 20 }));
    const na = await drive(vmm.attach({ type: "net", frontend: a, backend: be, transport: "foreign" }));
    const nb = await drive(vmm.attach({ type: "net", frontend: b, backend: be, transport: "foreign" }));
    expect((na.model as NetModel).mac).toBe(N.macToNumber(MAC2));
    expect((nb.model as NetModel).mac).toBe(N.macToNumber(MAC2B));
    expect(await failure(vmm.attach({ type: "net", frontend: c, backend: be, transport: "foreign" }))).toBeInstanceOf(DeviceSpecError);
    await drive(vmm.attach({ type: "vsock", frontend: a, backend: be, transport: "foreign" }));
    expect(await failure(vmm.attach({ type: "vsock", frontend: a, backend: be, transport: "foreign" }))).toMatchObject({ code: expect.any(String), message: expect.stringMatching(/already has a vsock device/) });
    // Once b's device is gone, its address is free for c.
    vmm.detach(nb);
    const nc = await drive(vmm.attach({ type: "net", frontend: c, backend: be, transport: "foreign" }));
    expect((nc.model as NetModel).mac).toBe(N.macToNumber(MAC2B));
    vmm.shutdown();
  });
});
