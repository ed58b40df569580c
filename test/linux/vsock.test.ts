// A Linux guest's own vsock driver (vmw_vsock_virtio_transport) over VirtIO-Argo: a tiny
// static i386 client (test/linux/guest/vsock-client.c, built here with gcc -m32 -static
// into a temp dir) connects to a listener the VMM opened on the backend's vsock hub and
// exchanges data; a port the pair's allowed_ports does not list is refused with RST and
// an audit line.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack } from "../../host/transport/bus/toolstack.ts";
import { LinuxGuest, type LinuxRunResult } from "../../host/linux/guest.ts";
import { testAssets } from "./assets.ts";

const assets = testAssets();

/** The client, built for the guest; or why it could not be. */
function buildClient(): Uint8Array | string {
  const dir = mkdtempSync(join(tmpdir(), "vsock-client-"));
  try {
    const out = join(dir, "vsock-client");
    const src = new URL("./guest/vsock-client.c", import.meta.url).pathname;
    const r = spawnSync(process.env.CC ?? "gcc", ["-m32", "-static", "-O2", "-o", out, src], { encoding: "utf8" });
    if (r.error || r.status !== 0) return `no static i386 C toolchain (${(r.error?.message ?? r.stderr).trim().split("\n")[0]}; apt-get install gcc-multilib)`;
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const client = typeof assets === "string" ? assets : buildClient();
const ready = typeof assets !== "string" && typeof client !== "string";
if (!ready) console.log(`Linux vsock tests skipped: ${typeof assets === "string" ? assets : client}`);
const linux = ready ? describe : describe.skip;

const BOOT_MS = 300_000;
const POLICY = `
version: 1
domains: [guest_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: vsock, allow: [enable, send, register_single_source], rules: { allowed_ports: [1234] } }
`;

linux("a Linux guest's vsock to a VMM listener over VirtIO-Argo", () => {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "linux-vsock.yaml") });
  const ts = new Toolstack(hv);
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 64 << 20 });
  const heard: string[] = [];
  let g: LinuxGuest;
  let r: LinuxRunResult;

  beforeAll(async () => {
    // The VMM is the host (CID 2): it answers each connection with its bytes upper-cased.
    ts.fabric.vsockHub(backend).listen(1234, (s) => {
      void (async () => {
        const parts: Uint8Array[] = [];
        for (let b = await s.read(); b; b = await s.read()) parts.push(b);
        const text = Buffer.concat(parts).toString();
        heard.push(text);
        await s.write(new TextEncoder().encode(text.toUpperCase()));
        s.shutdown();
      })().catch(() => {});
    });
    g = await LinuxGuest.start(hv, ts, {
      name: "linux-vsock", label: "guest_t",
      run: "echo \"cid $(cat /sys/bus/virtio/devices/*/device)\"; vsock-client 2 1234 hello-over-argo; echo rc=$?; vsock-client 2 4321 not-allowed; echo rc2=$?",
      devices: [{ type: "vsock", backend }],
      assets: assets as Exclude<typeof assets, string>,
      extra: [{ path: "bin/vsock-client", data: client as Uint8Array, mode: 0o755 }],
    });
    r = await g.result(BOOT_MS);
  }, BOOT_MS + 60_000);

  afterAll(async () => {
    await g?.stop();
  });

  it("connects to the VMM's listener and exchanges data both ways", () => {
    expect(heard).toEqual(["hello-over-argo"]);
    expect(r.output).toContain("reply: HELLO-OVER-ARGO");
    expect(r.output).toContain("rc=0");
  });

  it("is refused (RST) on a port the pair's allowed_ports does not list, and the refusal is audited", () => {
    expect(r.output).toMatch(/connect: Connection (reset by peer|refused)/);
    expect(r.output).toMatch(/rc2=1/);
    const denied = hv.audit.entries().filter((e) => e.tclass === "vsock" && e.reason.includes("4321"));
    expect(denied.length).toBeGreaterThan(0);
  });
});
