// The Linux guest's dd over virtio-pci vs virtio-mmio, both over VirtIO-Argo, in one run:
// one guest, two disks of the same backend, one on each bus; the runs alternate between
// them, first one then the other per round (so machine load and warm-up hit both alike),
// and the median of each is compared.
//   npx tsx bench/linux-pci.ts [rounds]
// Prints one line per case and the ratio pci/mmio (1.0: the transport's registers cost
// nothing next to the emulated CPU and the Argo copies).
import { Hypervisor } from "../host/hypervisor/hypervisor.ts";
import { Policy } from "../host/mac/index.ts";
import { Toolstack } from "../host/transport/bus/toolstack.ts";
import { LinuxGuest } from "../host/linux/guest.ts";
import { AssetsUnavailable, linuxAssets } from "../host/linux/boot/assets.ts";

const MIB = 1 << 20;
const rounds = Math.max(1, Number(process.argv[2] ?? 5));

const CASES = [
  { name: "read 1 MiB", bytes: 64 * MIB, ops: 0, dd: (d: string) => `dd if=${d} of=/dev/null bs=1M count=64 iflag=direct` },
  { name: "read 4 KiB", bytes: 2000 * 4096, ops: 2000, dd: (d: string) => `dd if=${d} of=/dev/null bs=4k count=2000 iflag=direct` },
  { name: "write 1 MiB", bytes: 64 * MIB, ops: 0, dd: (d: string) => `dd if=/dev/zero of=${d} bs=1M count=64 oflag=direct` },
  { name: "write 4 KiB", bytes: 2000 * 4096, ops: 2000, dd: (d: string) => `dd if=/dev/zero of=${d} bs=4k count=2000 oflag=direct` },
];

let assets;
try {
  assets = linuxAssets({ offline: true });
} catch (e) {
  if (!(e instanceof AssetsUnavailable)) throw e;
  console.log(`bench/linux-pci: skipped: ${e.message}`);
  process.exit(0);
}

// Which disk is on which bus: the sysfs path of a PCI disk runs through the PCI root.
// busybox dd prints no time: each run is timed on the guest clock (/proc/uptime, 10 ms).
const lines = [
  "t() { cut -d' ' -f1 /proc/uptime; }",
  "for b in /sys/block/vd*; do case $(readlink -f $b) in *pci0000*) P=/dev/${b##*/};; *) M=/dev/${b##*/};; esac; done",
  "echo \"disks mmio=$M pci=$P\"",
];
for (let r = 0; r < rounds; r++) {
  for (const c of CASES) {
    for (const bus of r % 2 ? ["pci", "mmio"] : ["mmio", "pci"]) {
      const dev = bus === "mmio" ? "$M" : "$P";
      // With dd's exit status and its "N+0 records out" line: a short or failed run is not a fast one.
      lines.push(`a=$(t); ${c.dd(dev)} 2>/tmp/dd.err; s=$?; b=$(t); echo "@@ ${c.name}|${bus} $a $b $s $(grep -o '^[0-9]*+0 records out' /tmp/dd.err | cut -d+ -f1)"`);
    }
  }
}

const hv = new Hypervisor({ policy: Policy.allowAll() });
const ts = new Toolstack(hv);
const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 160 * MIB });
const g = await LinuxGuest.start(hv, ts, {
  name: "linux-bench", label: "guest_t", run: lines.join("\n"), assets,
  devices: [
    { type: "blk", backend, bus: "mmio", options: { blk: { image: new Uint8Array(64 * MIB) } } },
    { type: "blk", backend, bus: "pci", options: { blk: { image: new Uint8Array(64 * MIB) } } },
  ],
});
const res = await g.result(30 * 60_000);
await g.stop();
if (res.status !== 0) {
  console.error(res.console.slice(-3000));
  throw new Error(`the guest's script exited ${res.status}`);
}

const secs = new Map<string, number[]>();
for (const m of res.output.matchAll(/^@@ (.+)\|(mmio|pci) ([\d.]+) ([\d.]+) (\d+) (\d*)$/gm)) {
  const c = CASES.find((x) => x.name === m[1])!;
  const records = Number(m[6]) * (c.ops ? 4096 : MIB);
  if (m[5] !== "0" || records !== c.bytes) throw new Error(`${m[1]} over ${m[2]}: dd exited ${m[5]} after ${m[6] || 0} records:\n${res.output.slice(-2000)}`);
  const key = `${m[1]}|${m[2]}`;
  if (!secs.has(key)) secs.set(key, []);
  secs.get(key)!.push(Number(m[4]) - Number(m[3]));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`Linux guest dd (O_DIRECT) over VirtIO-Argo, virtio-pci vs virtio-mmio: median of ${rounds} round(s), guest clock; boot ${res.bootMs} ms`);
for (const c of CASES) {
  const mmio = secs.get(`${c.name}|mmio`) ?? [];
  const pci = secs.get(`${c.name}|pci`) ?? [];
  if (mmio.length === 0 || pci.length === 0) throw new Error(`no timings for ${c.name}:\n${res.output.slice(-2000)}`);
  // MiB/s for 1 MiB requests, IOPS for 4 KiB ones; a run under the clock's 10 ms counts as one tick.
  const rate = (s: number) => (c.ops ? c.ops : c.bytes / MIB) / Math.max(s, 0.01);
  const unit = c.ops ? "IOPS" : "MiB/s";
  const a = rate(median(mmio)), b = rate(median(pci));
  console.log(`${c.name.padEnd(12)} mmio ${a.toFixed(1).padStart(7)} ${unit}  pci ${b.toFixed(1).padStart(7)} ${unit}  pci/mmio ${(b / a).toFixed(2)}x`);
}
process.exit(0);
