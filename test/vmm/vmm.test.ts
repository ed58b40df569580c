// The embedding API as a VMM author uses it: domains, device pairs by transport name,
// events, hotplug and unplug, typed errors that say what to do, teardown.
import { describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import {
  Vmm, Policy, BlkDriver, PairDenied, DeviceSpecError, DomainError, HotplugUnavailable, VmmError, TRANSPORT_NAMES,
  type VmmEvent,
} from "../../host/index.ts";
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from "../../host/devices/blk/layout.ts";

const DEFAULT_POLICY = fileURLToPath(new URL("../../policies/default.yaml", import.meta.url));
const HOTPLUG_POLICY = `
domains: [guest_t, backend_t]
pairs:
  - frontend: guest_t
    backend: backend_t
    device: blk
    allow: [enable, send, register_single_source, register_any_source]
`;

function vmm(policy: Policy | string = Policy.parse(HOTPLUG_POLICY, "hotplug.yaml")) {
  const v = new Vmm({ policy });
  const events: VmmEvent[] = [];
  v.on((e) => events.push(e));
  const backend = v.createDomain({ name: "backend", label: "backend_t", memoryBytes: 32 << 20 });
  const guest = v.createDomain({ name: "guest", label: "guest_t", memoryBytes: 32 << 20 });
  return { v, events, backend, guest };
}

describe("Vmm", () => {
  it.each(TRANSPORT_NAMES)("attaches a blk pair over %s; the guest's driver reads back what it wrote", async (transport) => {
    const { v, events, backend, guest } = vmm();
    const disk = new Uint8Array(1 << 20);
    const dev = await v.attach({ type: "blk", frontend: guest, backend, transport, disk: { image: disk } });
    expect(dev.transport).toBe(transport);
    expect(events.map((e) => e.kind)).toEqual(["device-ready"]);
    const blk = new BlkDriver(dev.device);
    await blk.init();
    const buf = dev.device.alloc(8192);
    const mem = new Uint8Array(guest.memory.buffer);
    mem.fill(0x3c, buf, buf + 4096);
    expect(await blk.write(8, buf, 4096)).toBe(VIRTIO_BLK_S_OK);
    expect(disk[8 * 512]).toBe(0x3c);
    expect(await blk.read(8, buf + 4096, 4096)).toBe(VIRTIO_BLK_S_OK);
    expect(mem[buf + 4096 + 4095]).toBe(0x3c);
    const pages = dev.exposedPages();
    if (transport === "argo") expect(pages).toBe(0);
    else expect(pages).toBeGreaterThan(0);
    expect(v.virqCounts().length).toBe(2);
    v.shutdown();
    expect(guest.destroyed && backend.destroyed).toBe(true);
  });

  it("hotplug: a device attached to a running guest arrives over the bus; detach fails what is in flight", async () => {
    const { v, events, backend, guest } = vmm();
    v.enableHotplug(guest);
    const dev = await v.attach({ type: "blk", frontend: guest, backend, disk: { image: new Uint8Array(1 << 20) } });
    const blk = new BlkDriver(dev.device);
    await blk.init();
    const buf = dev.device.alloc(4096);
    expect(await blk.write(0, buf, 4096)).toBe(VIRTIO_BLK_S_OK);
    v.detach(dev);
    expect(dev.device.gone).toBe(true);
    expect(await blk.write(0, buf, 4096)).toBe(VIRTIO_BLK_S_IOERR);
    expect(events.map((e) => e.kind)).toEqual(["device-ready", "device-removed"]);
    expect(v.list()).toEqual([]);
  });

  it("errors are typed, carry a code, and say what to do", async () => {
    const { v, backend, guest } = vmm(DEFAULT_POLICY);
    const guest2 = v.createDomain({ name: "g2", label: "guest2_t", memoryBytes: 1 << 20 });
    const denied = await v.attach({ type: "blk", frontend: guest2, backend, disk: { image: new Uint8Array(4096) } }).catch((e) => e);
    expect(denied).toBeInstanceOf(PairDenied);
    expect(denied.code).toBe("PAIR_DENIED");
    expect(denied.hint).toMatch(/policy explain/);
    const noDisk = await v.attach({ type: "blk", frontend: guest, backend }).catch((e) => e);
    expect(noDisk).toBeInstanceOf(DeviceSpecError);
    expect(noDisk.describe()).toMatch(/needs a disk \(pass disk/);
    const badTransport = await v.attach({ type: "rng", frontend: guest, backend, transport: "pigeon" as "argo" }).catch((e) => e);
    expect(badTransport).toBeInstanceOf(DeviceSpecError);
    expect(badTransport.hint).toMatch(/argo, grant, foreign, bounce/);
    // A label without register_any_source cannot register the bus ring: no hotplug.
    const locked = vmm(Policy.parse("domains: [guest_t, backend_t]\npairs:\n  - { frontend: guest_t, backend: backend_t, device: rng, allow: [enable, send, register_single_source] }\n", "locked.yaml"));
    const noBus = (() => { try { locked.v.enableHotplug(locked.guest); } catch (e) { return e as HotplugUnavailable; } })();
    expect(noBus).toBeInstanceOf(HotplugUnavailable);
    expect(noBus!.message).toMatch(/EACCES/);
    v.destroyDomain(guest2);
    const dead = await v.attach({ type: "rng", frontend: guest2, backend }).catch((e) => e);
    expect(dead).toBeInstanceOf(DomainError);
    for (const e of [denied, noDisk, badTransport, dead]) expect(e).toBeInstanceOf(VmmError);
  });

  it("denials reach the VMM as events", async () => {
    const { v, events, backend, guest } = vmm(DEFAULT_POLICY);
    const dev = await v.attach({ type: "blk", frontend: guest, backend, disk: { image: new Uint8Array(1 << 20) } });
    const blk = new BlkDriver(dev.device);
    await blk.init();
    expect(await blk.write(0, dev.device.alloc(4096), 4096)).toBe(VIRTIO_BLK_S_IOERR); // read_only in the policy
    const denial = events.find((e) => e.kind === "denial");
    expect(denial && denial.kind === "denial" && denial.entry.perm).toBe("blk_write");
  });
});
