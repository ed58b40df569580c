// `virtio-argo linux`: boots Debian's stock i386 kernel in v86 with a disk, a console and
// an entropy source served by a backend domain over VirtIO-Argo (or the foreign
// baseline), the serial console on this terminal. With --run, prints the command's output
// and exits with its status.
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { Policy } from "../mac/index.ts";
import { Toolstack } from "../transport/bus/toolstack.ts";
import { LinuxGuest, type LinuxDeviceSpec } from "../linux/guest.ts";
import { AssetsUnavailable, linuxAssets } from "../linux/boot/assets.ts";
import { policyPath } from "./paths.ts";

export interface LinuxCliOptions {
  disk?: string;
  ro?: boolean;
  transport?: string;
  bus?: string;
  policy?: string;
  run?: string;
  fetch?: boolean;
  verbose?: boolean;
}

const MIB = 1 << 20;
/** Ctrl-A then x quits the interactive console (as in QEMU). */
const CTRL_A = 0x01;

export async function runLinux(o: LinuxCliOptions): Promise<number> {
  const say = (line: string) => process.stderr.write(`virtio-argo linux: ${line}\n`);
  const transport = o.transport ?? "argo";
  if (transport !== "argo" && transport !== "foreign") {
    say(`--transport must be argo or foreign, not "${transport}"`);
    return 2;
  }
  const bus = o.bus ?? "mmio";
  if (bus !== "mmio" && bus !== "pci") {
    say(`--bus must be mmio or pci, not "${bus}"`);
    return 2;
  }
  let assets;
  try {
    assets = linuxAssets({ log: o.verbose || o.fetch ? say : undefined });
  } catch (e) {
    if (e instanceof AssetsUnavailable) {
      say(e.message);
      return 1;
    }
    throw e;
  }
  if (o.fetch) {
    say(`assets ready in ${assets.dir} (${Object.entries(assets.packages).map(([p, v]) => `${p} ${v}`).join(", ")})`);
    return 0;
  }
  const policyFile = o.policy ?? policyPath("linux.yaml");
  const hv = new Hypervisor({ policy: Policy.load(policyFile) });
  const ts = new Toolstack(hv);
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 96 * MIB });
  const image = o.disk ? { path: o.disk } : new Uint8Array(64 * MIB);
  const t = transport as "argo" | "foreign";
  const b = bus as "mmio" | "pci";
  const devices: LinuxDeviceSpec[] = [
    { type: "blk", backend, transport: t, bus: b, options: { blk: { image, readOnly: !!o.ro } } },
    { type: "console", backend, transport: t, bus: b, options: { console: { onOutput: (bytes) => process.stderr.write(bytes) } } },
    { type: "rng", backend, transport: t, bus: b },
  ];
  say(`disk ${o.disk ?? "in memory, 64 MiB of zeros"}${o.ro ? " (read-only)" : ""}, transport ${transport}, bus ${bus}, policy ${policyFile}`);
  const interactive = o.run === undefined;
  if (interactive) say("booting; the serial console follows. Ctrl-A x quits.");
  const guest = await LinuxGuest.start(hv, ts, {
    name: "linux", label: "guest_t", devices, run: o.run, assets,
    onSerial: interactive || o.verbose ? (b) => (interactive ? process.stdout : process.stderr).write(Uint8Array.of(b)) : undefined,
  });
  for (const d of guest.denied) say(`not attached: ${d.reason}`);
  if (!interactive) {
    const r = await guest.result();
    await guest.stop();
    process.stdout.write(r.output);
    say(`/init ready after ${r.bootMs} ms; exit status ${r.status}`);
    return r.status;
  }
  return await new Promise<number>((resolve) => {
    const stdin = process.stdin;
    if (stdin.isTTY) stdin.setRawMode(true);
    let sawCtrlA = false;
    const quit = async (code: number) => {
      stdin.off("data", onData);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
      await guest.stop();
      resolve(code);
    };
    const onData = (chunk: Buffer) => {
      for (const byte of chunk) {
        if (sawCtrlA && (byte === 0x78 || byte === 0x58)) return void quit(0); // x
        sawCtrlA = byte === CTRL_A;
        if (!sawCtrlA) guest.serialWrite(String.fromCharCode(byte));
      }
    };
    stdin.on("data", onData);
    stdin.on("end", () => void quit(0));
    stdin.resume();
  });
}
