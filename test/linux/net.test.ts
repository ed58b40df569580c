// Two Linux guests (two domains) get eth0 from the same backend domain over Argo: the
// backend's learning switch forwards between them, under each pair's allowed_macs.
// Their own virtio_net drivers; ping, busybox httpd and wget, and a spoofed MAC.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { Toolstack } from "../../host/transport/bus/toolstack.ts";
import { LinuxGuest, type LinuxRunResult } from "../../host/linux/guest.ts";
import { testAssets } from "./assets.ts";
import { section as sectionOf } from "./helpers.ts";

const assets = testAssets();
const ready = typeof assets !== "string";
if (!ready) console.log(`Linux net tests skipped: ${assets}`);
const linux = ready ? describe : describe.skip;

const BOOT_MS = 300_000;
const MAC_A = "52:54:00:00:00:0a";
const MAC_B = "52:54:00:00:00:0b";
const SPOOFED = "52:54:00:00:00:99";

const POLICY = `
version: 1
domains: [guest_t, guest2_t, backend_t]
pairs:
  - { frontend: guest_t, backend: backend_t, device: net, allow: [enable, send, register_single_source], rules: { allowed_macs: ["${MAC_A}"] } }
  - { frontend: guest2_t, backend: backend_t, device: net, allow: [enable, send, register_single_source], rules: { allowed_macs: ["${MAC_B}"] } }
`;

// The client: waits for the server (bounded), pings, fetches a 4 MiB file, then changes
// its MAC to one the policy does not allow and pings again.
const CLIENT = `
ip link set eth0 up; ip addr add 10.0.0.1/24 dev eth0
echo "mac $(cat /sys/class/net/eth0/address)"
n=0; until wget -q -O /dev/null http://10.0.0.2/ready 2>/dev/null || [ $n -ge 240 ]; do sleep 0.5; n=$((n+1)); done
echo '== ping'; ping -c 3 10.0.0.2
echo '== wget'; a=$(cut -d' ' -f1 /proc/uptime); wget -q -O /tmp/f http://10.0.0.2/f; echo "wget-rc=$?"; b=$(cut -d' ' -f1 /proc/uptime); md5sum /tmp/f; echo "seconds $a $b"
echo '== spoof'; ip link set eth0 down; ip link set eth0 address ${SPOOFED}; ip link set eth0 up; ping -c 3 -W 1 10.0.0.2; echo "ping-rc=$?"
`;
const SERVER = `
ip link set eth0 up; ip addr add 10.0.0.2/24 dev eth0
mkdir -p /tmp/www; dd if=/dev/urandom of=/tmp/www/f bs=1M count=4 2>/dev/null; echo ok > /tmp/www/ready
echo "served $(md5sum /tmp/www/f)"
httpd -p 80 -h /tmp/www; echo server-ready; sleep 3600
`;

linux("two Linux guests on one backend's switch, over VirtIO-Argo", () => {
  const hv = new Hypervisor({ policy: Policy.parse(POLICY, "linux-net.yaml") });
  const ts = new Toolstack(hv);
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 64 << 20 });
  let client: LinuxGuest;
  let server: LinuxGuest;
  let r: LinuxRunResult;
  let served = "";

  beforeAll(async () => {
    const a = assets as Exclude<typeof assets, string>;
    [client, server] = await Promise.all([
      LinuxGuest.start(hv, ts, { name: "client", label: "guest_t", run: CLIENT, devices: [{ type: "net", backend }], assets: a }),
      LinuxGuest.start(hv, ts, { name: "server", label: "guest2_t", run: SERVER, devices: [{ type: "net", backend }], assets: a }),
    ]);
    served = (await server.waitForLine((l) => l.startsWith("served "), BOOT_MS)).split(" ")[1];
    r = await client.result(BOOT_MS);
  }, BOOT_MS + 120_000);

  afterAll(async () => {
    await client?.stop();
    await server?.stop();
  });

  const section = (name: string) => sectionOf(r.output, name);

  it("gives each guest the config MAC its pair allows", () => {
    expect(r.output).toContain(`mac ${MAC_A}`);
  });

  it("pings from one guest to the other", () => {
    expect(section("ping")).toContain("3 packets transmitted, 3 packets received, 0% packet loss");
  });

  it("fetches a 4 MiB file from the other guest's busybox httpd, md5 intact", () => {
    const out = section("wget");
    expect(out).toContain("wget-rc=0");
    expect(served).toMatch(/^[0-9a-f]{32}$/);
    expect(out).toContain(`${served}  /tmp/f`);
    const [a, b] = out.match(/seconds ([\d.]+) ([\d.]+)/)!.slice(1).map(Number);
    console.log(`Linux guest to guest over Argo: wget of 4 MiB in ${(b - a).toFixed(2)} s (${(4 / Math.max(b - a, 0.01)).toFixed(2)} MiB/s, guest clock)`);
  });

  it("drops and audits every frame once the guest takes a MAC its pair does not allow", () => {
    const out = section("spoof");
    expect(out).toMatch(/100% packet loss/);
    expect(out).toMatch(/ping-rc=[1-9]/);
    const spoofs = hv.audit.entries().filter((e) => e.tclass === "net" && e.scontext === "guest_t" && e.reason.includes(SPOOFED));
    expect(spoofs.length).toBeGreaterThan(0);
    expect(spoofs[0].text).toMatch(/^avc: denied \{ \w+ \} for scontext=guest_t tcontext=backend_t tclass=net/);
  });
});
