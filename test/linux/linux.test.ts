// Debian's stock i386 kernel in v86, its own unmodified virtio_mmio, virtio_blk,
// virtio_console and virtio-rng drivers served over VirtIO-Argo by device models in
// backend domains. Each describe boots one guest (10-40 s on a loaded 2-core machine)
// whose /init runs one script; the tests read what it printed and what the backends saw.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import type { Domain } from "../../host/hypervisor/domain.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack } from "../../host/transport/bus/toolstack.ts";
import { LinuxGuest, type LinuxRunResult } from "../../host/linux/guest.ts";
import { testAssets } from "./assets.ts";
import { destroyBackendMidDd, md5, patterned, section, expectReadOnlyDisk } from "./helpers.ts";

const assets = testAssets();
const ready = typeof assets !== "string";
if (!ready) console.log(`Linux guest tests skipped: ${assets}`);
const linux = ready ? describe : describe.skip;

const BOOT_MS = 240_000;
const MIB = 1 << 20;

const POLICY = `
version: 1
domains: [guest_t, backend_t, backend_ro_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: blk, allow: [enable, send, register_single_source] }
  - { frontend: guest_t, backend: backend_t, device: console, allow: [enable, send, register_single_source] }
  - { frontend: guest_t, backend: backend_t, device: rng, allow: [enable, send, register_single_source] }
  - frontend: guest_t
    backend: backend_ro_t
    device: blk
    allow: [enable, send, register_single_source]
    rules: { read_only: true }
`;

function world() {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "linux-test.yaml") });
  const ts = new Toolstack(hv);
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 96 * MIB });
  const roBackend = hv.createDomain({ name: "backend-ro", label: "backend_ro_t", memoryBytes: 32 * MIB });
  return { hv, ts, backend, roBackend };
}

linux("a Linux guest's own virtio drivers over VirtIO-Argo", () => {
  const { hv, ts, backend, roBackend } = world();
  const disk = patterned(16 * MIB, 1);
  const roDisk = patterned(4 * MIB, 2);
  const scratch = new Uint8Array(16 * MIB);
  const diskMd5 = md5(disk.subarray(0, 8 * MIB));
  const roMd5 = md5(roDisk);
  const hvcOut: number[] = [];
  let g: LinuxGuest;
  let r: LinuxRunResult;

  beforeAll(async () => {
    const script = [
      "echo '== devices'; for d in /sys/bus/virtio/devices/*; do echo \"$(cat $d/device) $(basename $(readlink $d/driver))\"; done",
      "echo '== md5'; dd if=/dev/vda bs=1M count=8 2>/dev/null | md5sum",
      "echo '== write'; printf 'written-by-linux' | dd of=/dev/vda bs=512 seek=100 conv=fsync 2>/dev/null; echo rc=$?",
      "echo '== ro'; cat /sys/block/vdb/ro; dd if=/dev/vdb bs=1M 2>/dev/null | md5sum; dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>&1; echo rc=$?",
      "echo '== rng'; head -c 64 /dev/hwrng | od -An -tx1 | tr -d ' \\n'; echo",
      "echo '== hvc'; echo hello-from-linux > /dev/hvc0; echo waiting-for-hvc-input; timeout 20 head -n 1 /dev/hvc0",
      // A program copied onto an ext2 disk, the page cache dropped, then run from the
      // disk: its code reaches memory only by DMA over Argo, and v86 must not run stale
      // compiled code for those pages.
      "echo '== exec'; mke2fs /dev/vdc >/dev/null && mount -t ext2 /dev/vdc /mnt && cp /bin/busybox /mnt/busybox && umount /mnt && echo 3 > /proc/sys/vm/drop_caches && mount -t ext2 -o ro /dev/vdc /mnt && /mnt/busybox echo exec-ok && /mnt/busybox sha256sum /mnt/busybox /bin/busybox",
    ].join("\n");
    const started = LinuxGuest.start(hv, ts, {
      name: "linux", label: "guest_t", run: script,
      devices: [
        { type: "blk", backend, options: { blk: { image: disk } } },
        { type: "blk", backend: roBackend, options: { blk: { image: roDisk } } },
        { type: "blk", backend, options: { blk: { image: scratch } } },
        { type: "rng", backend },
        { type: "console", backend, options: { console: { onOutput: (b) => hvcOut.push(...b) } } },
        // No rng pair for backend_ro_t: the policy leaves it out of the SSDT.
        { type: "rng", backend: roBackend },
      ],
      assets: assets as Exclude<typeof assets, string>,
    });
    g = await started;
    await g.waitForLine((l) => l === "waiting-for-hvc-input", BOOT_MS);
    const consoleModel = g.devices.find((d) => d.spec.type === "console")!.pair!.model as unknown as { input(b: Uint8Array): void };
    consoleModel.input(new TextEncoder().encode("hello-from-the-backend\n"));
    r = await g.result(BOOT_MS);
  }, BOOT_MS + 60_000);

  afterAll(async () => {
    await g?.stop();
  });

  it("boots to /init and exits with the script's status", () => {
    expect(r.status).toBe(0);
    expect(r.bootMs).toBeGreaterThan(0);
    console.log(`Linux guest: /init ready ${r.bootMs} ms after start`);
  });

  it("binds Linux's own drivers to the devices the policy allows, and to no other", () => {
    const lines = section(r.output, "devices").trim().split("\n").sort();
    expect(lines).toEqual(["0x0002 virtio_blk", "0x0002 virtio_blk", "0x0002 virtio_blk", "0x0003 virtio_console", "0x0004 virtio_rng"].sort());
    expect(g.denied.map((d) => `${d.spec.type}:${d.spec.backend.label}`)).toEqual(["rng:backend_ro_t"]);
    const refused = hv.audit.entries().filter((e) => e.perm === "device_attach");
    expect(refused.map((e) => `${e.tclass}:${e.tcontext}:d${e.srcDomid}`)).toEqual([`rng:backend_ro_t:d${g.domain.domid}`]);
  });

  it("reads /dev/vda with the md5 of the backend's image, every byte copied by the hypervisor", () => {
    expect(section(r.output, "md5")).toContain(diskMd5);
    // Linux took every ring feature offered: packed rings, EVENT_IDX, indirect tables.
    expect(g.devices[0].mmio!.bridge.rings).toEqual({ packed: true, eventIdx: true, indirect: true });
    const blk = g.devices[0].frontend!.stats;
    expect(blk.bytesIn).toBeGreaterThanOrEqual(8 * MIB);
    expect(blk.failed).toBe(0);
  });

  it("lands a guest write in the backend's image", () => {
    expect(section(r.output, "write")).toContain("rc=0");
    expect(new TextDecoder().decode(disk.subarray(100 * 512, 100 * 512 + 16))).toBe("written-by-linux");
  });

  it("shows a read_only pair as a read-only disk whose writes fail and leave the image alone", () => {
    expectReadOnlyDisk(section(r.output, "ro"), roDisk, roMd5);
  });

  it("reads entropy from the backend's rng", () => {
    const hex = section(r.output, "rng").trim();
    expect(hex).toMatch(/^[0-9a-f]{128}$/);
    expect(new Set(hex.match(/../g)).size).toBeGreaterThan(16);
  });

  it("carries console bytes both ways over hvc0", () => {
    expect(new TextDecoder().decode(new Uint8Array(hvcOut))).toContain("hello-from-linux");
    expect(section(r.output, "hvc")).toContain("hello-from-the-backend");
  });

  it("runs a program that reached the guest's memory only by DMA from the disk", () => {
    const out = section(r.output, "exec");
    expect(out).toContain("exec-ok");
    const sums = [...out.matchAll(/^([0-9a-f]{64}) /gm)].map((m) => m[1]);
    expect(sums).toHaveLength(2);
    expect(sums[0]).toBe(sums[1]);
  });

  it("powers off afterwards", () => {
    expect(r.poweredOff).toBe(true);
  });
});

linux("a Linux guest whose backend domain dies mid-dd", () => {
  const { hv, ts, backend } = world();
  const disk = patterned(64 * MIB, 3);
  let g: LinuxGuest;
  let r: LinuxRunResult;
  let killedAt = 0;

  beforeAll(async () => {
    g = await LinuxGuest.start(hv, ts, {
      name: "linux-victim", label: "guest_t", packedRings: false, // this guest's rings are split
      run: "echo dd-start; dd if=/dev/vda of=/dev/null bs=4096 iflag=direct 2>&1; echo dd-rc=$?; dd if=/dev/vda of=/dev/null bs=4096 count=1 skip=7 iflag=direct 2>&1; echo dd2-rc=$?",
      devices: [{ type: "blk", backend, options: { blk: { image: disk } } }],
      assets: assets as Exclude<typeof assets, string>,
    });
    ({ killedAt, result: r } = await destroyBackendMidDd(g, hv, backend, BOOT_MS));
  }, BOOT_MS + 90_000);

  afterAll(async () => {
    await g?.stop();
  });

  it("gives the guest I/O errors, not a hang, and the guest still powers off", () => {
    expect(r.output).toMatch(/dd-rc=[1-9]/);
    expect(r.output).toMatch(/dd2-rc=[1-9]/);
    expect(r.poweredOff).toBe(true);
    expect(performance.now() - killedAt).toBeLessThan(90_000);
    expect(g.devices[0].frontend!.gone).toBe(true);
    expect(g.devices[0].mmio!.bridge.rings.packed).toBe(false);
  });
});

linux("the same Linux guest on the foreign baseline", () => {
  const { hv, ts, backend } = world();
  const disk = patterned(16 * MIB, 1);
  let g: LinuxGuest;
  let r: LinuxRunResult;

  beforeAll(async () => {
    g = await LinuxGuest.start(hv, ts, {
      name: "linux-foreign", label: "guest_t",
      run: "dd if=/dev/vda bs=1M count=8 2>/dev/null | md5sum",
      devices: [{ type: "blk", backend, transport: "foreign", options: { blk: { image: disk } } }],
      assets: assets as Exclude<typeof assets, string>,
    });
    r = await g.result(BOOT_MS);
  }, BOOT_MS + 60_000);

  afterAll(async () => {
    await g?.stop();
  });

  it("reads the same md5 with the backend mapping all of the guest", () => {
    expect(r.output).toContain(md5(disk.subarray(0, 8 * MIB)));
    expect(g.devices[0].link.exposedPages).toBe(128 * MIB / 4096);
  });
});
