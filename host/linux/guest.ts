// A Linux guest domain: Debian's stock i386 kernel running in the v86 emulator, whose
// unmodified virtio_mmio, virtio_blk, virtio_console and virtio-rng drivers reach device
// models in backend domains only through Argo.
//
// The guest's guest-physical memory is v86's own WebAssembly.Memory, RAM at a byte
// offset inside it (v86 keeps its state below): the domain is created over that window,
// so the hypervisor copies into and out of Linux's memory as for any domain and no other
// domain gets a view of it. The code here is the guest's VMM, inside the guest's trust
// domain (as a guest kernel's transport driver would be): it emulates the virtio-mmio
// devices and runs the VirtIO-Argo frontend for each.
//
// Guest-physical layout (128 MiB guest): RAM for Linux, except [96 MiB, 112 MiB), which
// the kernel command line reserves (memmap=) for the VMM's own pages (its Argo rings,
// hypercall scratch, queue state); SeaBIOS reserves the top 16 MiB. The virtio-mmio
// windows sit at 0xfef00000 (v86: 128 KiB-aligned, clear of the VGA ROM and the HPET).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { V86 } from "v86";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Domain } from "../hypervisor/domain.ts";
import { GuestArgo } from "../guest/argo-driver.ts";
import { GuestHeap } from "../guest/heap.ts";
import { markEmulated } from "../guest/views.ts";
import { ArgoFrontend } from "../transport/argo/frontend/frontend.ts";
import { QueueFactory } from "../transport/vring/queue-factory.ts";
import { setDmaWindow } from "../transport/vring/engine.ts";
import type { DevicePair, Toolstack } from "../transport/bus/toolstack.ts";
import { VIRTIO_F_RING_PACKED, type DeviceTypeName } from "../devices/types.ts";
import type { DeviceModelOptions } from "../devices/index.ts";
import { PairDenied } from "../errors.ts";
import { linuxAssets, type LinuxAssets } from "./boot/assets.ts";
import { buildSsdt, MMIO_WINDOW } from "./boot/acpi.ts";
import { buildInitramfs, type CpioFile } from "./boot/initramfs.ts";
import { BEGIN_MARKER, EXIT_MARKER, initScript, READY_MARKER, RUN_SCRIPT } from "./boot/init.ts";
import { IrqLines, type IrqChip } from "./irq.ts";
import { VirtioMmioDevice } from "./virtio-mmio.ts";
import { RING_FEATURES } from "./bridge.ts";
import { ArgoLink, ForeignLink, type DeviceLink } from "./link.ts";
import { VirtioPciBus, type PciCpu, type PciFunction } from "./virtio-pci.ts"; // virtio-pci (issue 18)

const require = createRequire(import.meta.url);

/** Where the virtio-mmio windows start (one 128 KiB v86 MMIO region holds 256 of them). */
export const MMIO_BASE = 0xfef00000;
const MMIO_REGION = 0x20000;
/** IOAPIC inputs free in v86's machine; devices share them round-robin. */
export const IRQ_LINES = [5, 10, 11];
const MIB = 1 << 20;
/** The kernel's last line on `poweroff -f`. */
const POWER_DOWN = "reboot: Power down";
/** Modules loaded by /init, in dependency order (each module's own `depends=` first). */
const LOAD = ["virtio_ring", "virtio", "virtio_mmio", "virtio_blk", "virtio_console", "virtio-rng", "crc16", "mbcache", "jbd2", "crc32c_generic", "ext4"];
/** Loaded when the guest has a net device (virtio_net and its `depends=`). */
const NET_LOAD = ["failover", "net_failover", "virtio_net"];
/** Loaded when the guest has a vsock device. */
const VSOCK_LOAD = ["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"];
/** virtio-pci (issue 18): loaded after LOAD when a device is on the PCI bus, in `depends=` order. */
const PCI_LOAD = ["virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci"];
const CMDLINE = "console=ttyS0 loglevel=4 tsc=reliable mitigations=off cryptomgr.notests noisapnp acpiphp.disable=1";

export interface LinuxDeviceSpec {
  type: DeviceTypeName;
  backend: Domain;
  options?: DeviceModelOptions;
  /** argo (default): no shared memory; foreign: the baseline, the backend maps all of the guest. */
  transport?: "argo" | "foreign";
  /**
   * How the guest finds the device (issue 18). mmio (default): the SSDT's virtio-mmio
   * window, the enumeration the VirtIO-Argo proposal planned, with the smaller register
   * surface (no PCI config space for a guest to scribble on) and what issue 13's tests
   * use; pci: a modern virtio-pci function, for guests that expect PCI.
   */
  bus?: "mmio" | "pci";
}

const busOf = (spec: LinuxDeviceSpec) => spec.bus ?? "mmio";

export interface LinuxGuestOptions {
  name: string;
  label: string;
  devices: LinuxDeviceSpec[];
  /** A shell command: run it, print its output, power off. Absent: an interactive shell on the console. */
  run?: string;
  /** Serial console output, byte by byte as it comes (e.g. to the terminal). */
  onSerial?: (byte: number) => void;
  assets?: LinuxAssets;
  /** Extra kernel command line. */
  cmdline?: string;
  /** Offer VIRTIO_F_RING_PACKED (default true; Linux then uses packed rings). */
  packedRings?: boolean;
  /** More files for the guest's initramfs (e.g. a test's program in bin/). */
  extra?: readonly CpioFile[];
}

/** One attached device: its Argo pair and the guest's frontend (argo only), its link and virtio-mmio registers. */
export interface LinuxDevice {
  spec: LinuxDeviceSpec;
  pair: DevicePair | null;
  frontend: ArgoFrontend | null;
  link: DeviceLink;
  /** virtio-mmio registers (bus mmio), or the virtio-pci function (bus pci; absent when the backend reports no device). */
  mmio?: VirtioMmioDevice;
  pci?: PciFunction;
  /** Register window base and IRQ as the SSDT announced them (pci: BAR 0, and -1: INTx is routed live). */
  base: number;
  irq: number;
}

export interface LinuxRunResult {
  /** The command's exit status (the guest's own `$?`). */
  status: number;
  /** What the command printed (between the markers; CRs removed). */
  output: string;
  /** Everything the serial console printed. */
  console: string;
  /** Milliseconds from start() to /init's ready line. */
  bootMs: number;
  /** The kernel said "reboot: Power down" after the command. */
  poweredOff: boolean;
}

/** v86 internals used here (not in v86.d.ts; the version is pinned in package.json). */
interface V86Cpu extends IrqChip {
  wasm_memory: WebAssembly.Memory;
  mem8: Uint8Array;
  io: { mmap_register(addr: number, size: number, r8: (a: number) => number, w8: (a: number, v: number) => void, r32: (a: number) => number, w32: (a: number, v: number) => void): void };
  jit_dirty_cache(start: number, end: number): void;
}

/** The VMM's reserved pages inside a guest of `ramBytes`: [start, end) in guest-physical terms. */
export function vmmRegion(ramBytes: number): { start: number; end: number } {
  if (ramBytes !== 128 * MIB) throw new RangeError("Linux guests have 128 MiB (v86 needs >= 64 MiB with an initrd, which it loads at 64 MiB)");
  return { start: 96 * MIB, end: 112 * MIB };
}

export class LinuxGuest {
  readonly hv: Hypervisor;
  readonly toolstack: Toolstack;
  readonly options: LinuxGuestOptions;
  /** Device pairs the policy refused: not in the SSDT, so the guest never sees them. */
  readonly denied: Array<{ spec: LinuxDeviceSpec; reason: string }> = [];
  readonly devices: LinuxDevice[] = [];
  domain!: Domain;
  console = "";
  private emulator: V86 | null = null;
  private cpu!: V86Cpu;
  private readonly ramBytes = 128 * MIB;
  private startedAt = 0;
  private readyAt = 0;
  private readonly waiters: Array<(line: string) => void> = [];
  private lineBuf = "";

  private constructor(hv: Hypervisor, toolstack: Toolstack, options: LinuxGuestOptions) {
    this.hv = hv;
    this.toolstack = toolstack;
    this.options = options;
  }

  /**
   * Boots a guest with `options.devices` (each checked against the policy first: a pair it
   * lacks is left out of the SSDT). Resolves once the emulator runs; `result()` waits for
   * a `run` command to finish.
   */
  static async start(hv: Hypervisor, toolstack: Toolstack, options: LinuxGuestOptions): Promise<LinuxGuest> {
    const g = new LinuxGuest(hv, toolstack, options);
    await g.boot();
    return g;
  }

  private async boot(): Promise<void> {
    const o = this.options;
    const assets = o.assets ?? linuxAssets();
    const admitted = o.devices.filter((spec) => {
      const rule = this.hv.policy.pair(o.label, spec.backend.label, spec.type);
      if (!rule) this.denied.push({ spec, reason: `policy ${this.hv.policy.source} has no ${spec.type} pair for ${o.label} -> ${spec.backend.label}` });
      return !!rule;
    });
    const windows = admitted.map((_, i) => ({ base: MMIO_BASE + i * MMIO_WINDOW, irq: IRQ_LINES[i % IRQ_LINES.length] }));
    const extra = [...(o.run === undefined ? [] : [{ path: "etc/virtio-argo" }, { path: RUN_SCRIPT, data: o.run + "\n" }]), ...(o.extra ?? [])];
    const initrd = await buildInitramfs({
      assets, ssdt: buildSsdt(windows.filter((_, i) => busOf(admitted[i]) === "mmio")),
      modules: [
        ...LOAD, ...(admitted.some((d) => busOf(d) === "pci") ? PCI_LOAD : []),
        ...(admitted.some((d) => d.type === "net") ? NET_LOAD : []), ...(admitted.some((d) => d.type === "vsock") ? VSOCK_LOAD : []),
      ].filter((m) => m in assets.modules), init: initScript(admitted.length), extra,
    });
    const region = vmmRegion(this.ramBytes);
    const cmdline = `${CMDLINE} memmap=${(region.end - region.start) / MIB}M$0x${region.start.toString(16)} ${o.cmdline ?? ""}`.trim();
    this.startedAt = performance.now();
    const emulator = new V86({
      wasm_path: require.resolve("v86/build/v86.wasm"),
      bios: { buffer: toArrayBuffer(readFileSync(assets.bios)) },
      bzimage: { buffer: toArrayBuffer(readFileSync(assets.bzimage)) },
      initrd: { buffer: toArrayBuffer(initrd) },
      cmdline,
      memory_size: this.ramBytes,
      acpi: true,
      autostart: false,
      disable_keyboard: true,
      disable_mouse: true,
      disable_speaker: true,
    } as ConstructorParameters<typeof V86>[0]);
    this.emulator = emulator;
    emulator.add_listener("serial0-output-byte", (b: number) => this.serialByte(b));
    await new Promise<void>((resolve) => emulator.add_listener("emulator-loaded", () => resolve()));
    this.cpu = (emulator as unknown as { v86: { cpu: V86Cpu } }).v86.cpu;
    this.attachAll(admitted, windows);
    await emulator.run();
  }

  /** Creates the domain over v86's memory, then each device's pair, frontend and registers. */
  private attachAll(specs: LinuxDeviceSpec[], windows: Array<{ base: number; irq: number }>): void {
    const cpu = this.cpu;
    const memory = cpu.wasm_memory;
    const lo = cpu.mem8.byteOffset;
    const dirty = (off: number, len: number) => cpu.jit_dirty_cache(off - lo, off - lo + len);
    // v86 grows its memory while it runs (its JIT's tables): views of it are re-made after;
    // and every write from outside must drop v86's compiled code for the range.
    markEmulated(memory, dirty);
    this.domain = this.hv.createDomain({
      name: this.options.name, label: this.options.label, memoryBytes: this.ramBytes,
      memoryWindow: { memory, lo, bytes: this.ramBytes, onWrite: dirty },
    });
    if (!setDmaWindow(memory, lo, this.ramBytes)) throw new RangeError("v86's RAM lies outside its memory");
    const region = vmmRegion(this.ramBytes);
    const heap = new GuestHeap(lo + region.end, lo + region.start);
    const argo = new GuestArgo(this.domain, heap);
    // Pairs the policy refused were left out of the SSDT; now that the domain exists, each
    // refusal goes to the audit log like any refused attach (the toolstack's own check).
    for (const { spec } of this.denied) {
      try {
        this.toolstack.admitModel({ type: spec.type, frontend: this.domain, backend: spec.backend, options: spec.options });
      } catch (e) {
        if (!(e instanceof PairDenied)) throw e;
      }
    }
    const irq = new IrqLines(cpu);
    const pciBus = new VirtioPciBus(cpu as unknown as PciCpu, irq); // virtio-pci (issue 18)
    specs.forEach((spec, i) => {
      let link: DeviceLink;
      let pair: DevicePair | null = null;
      let frontend: ArgoFrontend | null = null;
      try {
        if ((spec.transport ?? "argo") === "foreign") {
          // The baseline: the model runs against Linux's memory itself, same policy check.
          const { model, deny } = this.toolstack.admitModel({ type: spec.type, frontend: this.domain, backend: spec.backend, options: spec.options });
          link = new ForeignLink(model, memory, this.ramBytes, deny);
        } else {
          pair = this.toolstack.addDevice({ type: spec.type, frontend: this.domain, backend: spec.backend, options: spec.options });
          frontend = new ArgoFrontend({ argo, heap, entry: pair.entry, queues: new QueueFactory(memory, heap), ringFeatures: RING_FEATURES });
          const rc = frontend.start();
          if (rc < 0) throw new Error(`${spec.type} frontend could not register its ring: ${rc}`);
          link = new ArgoLink(frontend);
        }
      } catch (e) {
        // Refused after the SSDT was written (a rule the model breaks): the window stays empty (DeviceID 0).
        if (e instanceof PairDenied) { this.denied.push({ spec, reason: e.message }); return; }
        throw e;
      }
      // virtio-pci (issue 18): a function on v86's PCI bus instead of an SSDT window.
      if (busOf(spec) === "pci") {
        const fn = pciBus.add({
          link, memory, ramBase: lo, ramBytes: this.ramBytes, heap, irqId: i, name: `virtio-argo ${spec.type}`,
          ringFeatures: this.options.packedRings === false ? RING_FEATURES & ~VIRTIO_F_RING_PACKED : RING_FEATURES,
        });
        this.devices.push({ spec, pair, frontend, link, pci: fn ?? undefined, base: fn?.device.bar ?? 0, irq: -1 });
        return;
      }
      const { base, irq: line } = windows[i];
      const mmio = new VirtioMmioDevice({
        link, memory, ramBase: lo, ramBytes: this.ramBytes, heap,
        ringFeatures: this.options.packedRings === false ? RING_FEATURES & ~VIRTIO_F_RING_PACKED : RING_FEATURES,
        assertIrq: () => irq.assert(line, i), deassertIrq: () => irq.deassert(line, i),
      });
      this.devices.push({ spec, pair, frontend, link, mmio, base, irq: line });
    });
    pciBus.map(); // virtio-pci (issue 18)
    const byWindow = new Map(this.devices.map((d) => [(d.base - MMIO_BASE) / MMIO_WINDOW, d.mmio]));
    // One v86 MMIO region for every window; an access outside a device's window reads 0.
    const at = (addr: number): [VirtioMmioDevice | undefined, number] => {
      const off = (addr >>> 0) - MMIO_BASE; // v86 passes addresses as signed int32
      return [byWindow.get(off >>> 9), off & (MMIO_WINDOW - 1)];
    };
    cpu.io.mmap_register(
      MMIO_BASE, MMIO_REGION,
      (a) => { const [d, r] = at(a); return d ? d.read(r, 1) & 0xff : 0; },
      (a, v) => { const [d, r] = at(a); d?.write(r, 1, v & 0xff); },
      (a) => { const [d, r] = at(a); return d ? d.read(r, 4) : 0; },
      (a, v) => { const [d, r] = at(a); d?.write(r, 4, v >>> 0); },
    );
  }

  private serialByte(b: number): void {
    this.options.onSerial?.(b);
    const c = String.fromCharCode(b);
    this.console += c;
    if (c !== "\n") {
      this.lineBuf += c;
      return;
    }
    const line = this.lineBuf.replace(/\r$/, "");
    this.lineBuf = "";
    if (!this.readyAt && line.startsWith(READY_MARKER)) this.readyAt = performance.now();
    for (const w of this.waiters) w(line);
  }

  /** Sends bytes to the guest's serial console (the interactive shell's input). */
  serialWrite(text: string): void {
    this.emulator?.serial0_send(text);
  }

  /** Resolves with the first console line `match` accepts, or rejects after `timeoutMs`. */
  waitForLine(match: (line: string) => boolean, timeoutMs = 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const w = (line: string) => {
        if (!match(line)) return;
        done();
        resolve(line);
      };
      const timer = setTimeout(() => { done(); reject(new Error(`no matching console line in ${timeoutMs} ms; console so far:\n${this.console.slice(-2000)}`)); }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      this.waiters.push(w);
    });
  }

  /** Waits for the `run` command's exit marker; the guest has then powered off. */
  async result(timeoutMs = 120_000): Promise<LinuxRunResult> {
    if (this.options.run === undefined) throw new Error("result(): this guest runs an interactive shell, not a command");
    const exit = await this.waitForLine((l) => l.startsWith(EXIT_MARKER), timeoutMs);
    // /init powers off right after; the kernel's last line says it did.
    const poweredOff = await this.waitForLine((l) => l.includes(POWER_DOWN), 30_000).then(() => true, () => false);
    const status = Number(exit.slice(EXIT_MARKER.length).replace(/@@$/, "").trim());
    const text = this.console.replace(/\r/g, "");
    const begin = text.indexOf(BEGIN_MARKER + "\n");
    const end = text.lastIndexOf(EXIT_MARKER);
    const output = begin >= 0 && end > begin ? text.slice(begin + BEGIN_MARKER.length + 1, end) : "";
    return { status, output, console: this.console, bootMs: this.bootMs, poweredOff };
  }

  /** Milliseconds from start to /init's ready line (0 until then). */
  get bootMs(): number {
    return this.readyAt ? Math.round(this.readyAt - this.startedAt) : 0;
  }

  /** Stops the emulator and the guest's frontends, and destroys the domain. */
  async stop(): Promise<void> {
    const e = this.emulator;
    this.emulator = null;
    if (!e) return;
    for (const d of this.devices) {
      d.frontend?.stop();
      // The backend stops serving (its ring goes); the guest is past hearing of it.
      if (d.pair && !d.pair.backend.destroyed) this.toolstack.unplug(d.pair);
      if (d.link instanceof ForeignLink) d.link.remove();
    }
    await e.destroy();
    if (this.domain && !this.domain.destroyed) this.hv.destroyDomain(this.domain.domid);
  }
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}
