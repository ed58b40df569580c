// The Vmm's view of faults: whichever way a device goes (vmm.detach, vmm.destroyDomain,
// hv.destroyDomain, a policy reload), the result is the same on every transport: a
// device-removed event with the reason, list() drops it, its state says why, requests
// in flight and new ones fail with IOERR.
import { describe, expect, it } from "vitest";
import {
  Vmm, Policy, BlkDriver, ConsoleDriver, DeviceSpecError, DomainError, PairDenied, TransportError, VmmError, TRANSPORT_NAMES,
  type VmmEvent, type AttachedDevice,
} from "../../host/index.ts";
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from "../../host/devices/blk/layout.ts";
import { openFds, policyText } from "../faults/helpers.ts";

const BOTH = policyText({ device: "blk" }, { device: "console" });
const CONSOLE_ONLY = policyText({ device: "console" });
const BLK_READ_ONLY = policyText({ device: "blk", rules: "{ read_only: true }" }, { device: "console" });

function boot() {
  const v = new Vmm({ policy: Policy.parse(BOTH, "both.yaml") });
  const events: VmmEvent[] = [];
  v.on((e) => events.push(e));
  const backend = v.createDomain({ name: "backend", label: "backend_t", memoryBytes: 32 << 20 });
  const guest = v.createDomain({ name: "guest", label: "guest_t", memoryBytes: 32 << 20 });
  return { v, events, backend, guest };
}

async function blkOn(v: Vmm, guest: AttachedDevice["frontend"], backend: AttachedDevice["backend"], transport: (typeof TRANSPORT_NAMES)[number]) {
  const disk = new Uint8Array(1 << 20);
  const dev = await v.attach({ type: "blk", frontend: guest, backend, transport, disk: { image: disk } });
  const blk = new BlkDriver(dev.device);
  await blk.init();
  const buf = dev.device.alloc(4096);
  expect(await blk.write(0, buf, 4096)).toBe(VIRTIO_BLK_S_OK);
  return { dev, blk, buf, disk };
}

const removals = (events: VmmEvent[]) => events.flatMap((e) => (e.kind === "device-removed" ? [e.reason] : []));

describe.each(TRANSPORT_NAMES)("the Vmm's view of faults over %s", (transport) => {
  it.each([
    ["hv.destroyDomain(backend)", "backend-destroyed", (w: ReturnType<typeof boot>) => w.v.hv.destroyDomain(w.backend.domid)],
    ["vmm.destroyDomain(backend)", "backend-destroyed", (w: ReturnType<typeof boot>) => w.v.destroyDomain(w.backend)],
    ["hv.destroyDomain(guest)", "frontend-destroyed", (w: ReturnType<typeof boot>) => w.v.hv.destroyDomain(w.guest.domid)],
    ["a reload without the pair", "revoked", (w: ReturnType<typeof boot>) => w.v.hv.loadPolicy(Policy.parse(CONSOLE_ONLY, "console-only.yaml"))],
  ])("%s: device-removed (%s), list() drops it, state says why, I/O fails", async (_name, reason, fault) => {
    const w = boot();
    const { dev, blk, buf } = await blkOn(w.v, w.guest, w.backend, transport);
    fault(w);
    expect(removals(w.events)).toEqual([reason]);
    expect(w.v.list()).toEqual([]);
    expect(dev.state).toBe(reason);
    expect(dev.device.gone).toBe(true);
    expect(await blk.write(0, buf, 4096)).toBe(VIRTIO_BLK_S_IOERR);
    w.v.shutdown();
  });

  it("removing the blk pair while a console pair links the same labels stops blk; the console keeps working", async () => {
    const w = boot();
    const out: number[] = [];
    const { dev, blk, buf } = await blkOn(w.v, w.guest, w.backend, transport);
    const con = await w.v.attach({ type: "console", frontend: w.guest, backend: w.backend, transport, console: { onOutput: (b) => out.push(...b) } });
    const cd = new ConsoleDriver(con.device);
    await cd.init();
    w.v.hv.loadPolicy(Policy.parse(CONSOLE_ONLY, "console-only.yaml"));
    expect(dev.state).toBe("revoked");
    expect(await blk.write(0, buf, 4096)).toBe(VIRTIO_BLK_S_IOERR);
    expect(con.state).toBe("attached");
    expect(await cd.write(new TextEncoder().encode("still here"))).toBe(true);
    expect(new TextDecoder().decode(new Uint8Array(out))).toBe("still here");
    expect(w.v.list().map((d) => d.type)).toEqual(["console"]);
    w.v.shutdown();
  });

  it("read_only added by a reload applies to an attached disk: writes fail with IOERR and an audit entry, reads work", async () => {
    const w = boot();
    const { dev, blk, buf, disk } = await blkOn(w.v, w.guest, w.backend, transport);
    disk.fill(0x11, 0, 4096);
    w.v.hv.loadPolicy(Policy.parse(BLK_READ_ONLY, "ro.yaml"));
    expect(dev.state).toBe("attached");
    new Uint8Array(w.guest.memory.buffer).fill(0x99, buf, buf + 4096);
    expect(await blk.write(0, buf, 4096)).toBe(VIRTIO_BLK_S_IOERR);
    expect(disk[0]).toBe(0x11);
    expect(w.v.hv.audit.entries().some((e) => e.perm === "blk_write")).toBe(true);
    expect(await blk.read(0, buf, 4096)).toBe(VIRTIO_BLK_S_OK);
    expect(new Uint8Array(w.guest.memory.buffer)[buf]).toBe(0x11);
    w.v.shutdown();
  });
});

describe("the Vmm's view of revoked rings", () => {
  it("a reload that keeps the pair but no longer allows its ring size tears the argo device down (revoked)", async () => {
    const w = boot();
    const { dev, blk, buf } = await blkOn(w.v, w.guest, w.backend, "argo");
    w.v.hv.loadPolicy(Policy.parse(policyText({ device: "blk", limits: "{ max_ring_bytes: 4096 }" }), "small-rings.yaml"));
    expect(await blk.write(0, buf, 4096)).toBe(VIRTIO_BLK_S_IOERR);
    expect(dev.state).toBe("revoked");
    expect(removals(w.events)).toEqual(["revoked"]);
    w.v.shutdown();
  });
});

describe("the Vmm's errors and audit", () => {
  it("a refused attach leaves an audit entry (and a denial event)", async () => {
    const w = boot();
    const stranger = w.v.createDomain({ name: "stranger", label: "guest_t", memoryBytes: 4 << 20 });
    w.v.hv.loadPolicy(Policy.parse(CONSOLE_ONLY, "console-only.yaml"));
    const e = await w.v.attach({ type: "blk", frontend: stranger, backend: w.backend, disk: { image: new Uint8Array(4096) } }).catch((x) => x);
    expect(e).toBeInstanceOf(PairDenied);
    const entry = w.v.hv.audit.entries().find((x) => x.perm === "device_attach");
    expect(entry?.text).toMatch(/avc: denied \{ device_attach \} for scontext=guest_t tcontext=backend_t tclass=blk/);
    expect(w.events.some((x) => x.kind === "denial" && x.entry.perm === "device_attach")).toBe(true);
  });

  it("an attach the guest cannot take (out of memory) is a DomainError that closes the disk file and leaves nothing attached", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "virtio-argo-vmm-"));
    try {
      const path = join(dir, "disk.img");
      writeFileSync(path, new Uint8Array(1 << 16));
      const w = boot();
      const tiny = w.v.createDomain({ name: "tiny", label: "guest_t", memoryBytes: 128 << 10 });
      const fds = openFds();
      const e = await w.v.attach({ type: "blk", frontend: tiny, backend: w.backend, disk: { image: { path } } }).catch((x) => x);
      expect(e).toBeInstanceOf(DomainError);
      expect(openFds()).toBe(fds);
      expect(w.v.list()).toEqual([]);
      w.v.shutdown();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an unsupported device type is a DeviceSpecError; a TransportError is a VmmError with a code and a hint", async () => {
    const w = boot();
    const bad = await w.v.attach({ type: "floppy" as "blk", frontend: w.guest, backend: w.backend }).catch((x) => x);
    expect(bad).toBeInstanceOf(DeviceSpecError);
    expect(bad.hint).toMatch(/blk/);
    const dev = await w.v.attach({ type: "console", frontend: w.guest, backend: w.backend });
    w.v.detach(dev);
    const gone = await dev.device.negotiate(0n).catch((x) => x);
    expect(gone).toBeInstanceOf(TransportError);
    expect(gone).toBeInstanceOf(VmmError);
    expect(gone.code).toBe("TRANSPORT");
    expect(gone.hint.length).toBeGreaterThan(0);
  });
});
