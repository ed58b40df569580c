// The embedding API: what a VMM written for Node.js drives. One object owns the
// hypervisor, the toolstack and each guest's view of its devices; device pairs are
// declared by type, domains and transport name, and come back as the guest-side device
// a driver binds to. Everything below it (Hypervisor, Toolstack, GuestTransport, the
// sharing transports) stays usable directly; this layer adds names, events and typed errors.
import { LinuxGuest, type LinuxGuestOptions } from "../linux/guest.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Domain, DomainConfig } from "../hypervisor/domain.ts";
import { errnoName } from "../abi/errno.ts";
import { Policy, type AuditEntry } from "../mac/index.ts";
import { Toolstack, type DevicePair, type SharedPair } from "../transport/bus/toolstack.ts";
import { GuestTransport } from "../transport/bus/guest-transport.ts";
import type { ArgoFrontend } from "../transport/argo/frontend/frontend.ts";
import type { ConsoleOptions } from "../devices/console/model.ts";
import type { VsockHub } from "../devices/vsock/hub.ts";
import { VIRTIO_IDS, type DeviceTypeName, type GuestVirtioDevice, type VirtioDeviceModel } from "../devices/types.ts";
import { DeviceSpecError, DomainError, HotplugUnavailable, VmmError } from "../errors.ts";

export const TRANSPORT_NAMES = ["argo", "grant", "foreign", "bounce"] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

export interface VmmOptions {
  /** A parsed policy, or the path of a policy file (YAML, or Flask TE with .te). */
  policy: Policy | string;
}

export interface DiskSpec {
  /** An image file (read and written in place), or the bytes of an in-memory disk. */
  image: { path: string } | Uint8Array;
  readOnly?: boolean;
  /** GET_ID answer (at most 20 bytes). */
  id?: string;
}

export interface AttachSpec {
  type: DeviceTypeName;
  frontend: Domain;
  backend: Domain;
  /** argo (default): no shared memory. grant, foreign, bounce: the sharing baselines. */
  transport?: TransportName;
  /** blk: the disk. */
  disk?: DiskSpec;
  /** console: where guest output goes. */
  console?: ConsoleOptions;
  /** A custom device model instead of the built-in one for `type`. */
  model?: VirtioDeviceModel;
}

/**
 * Where a device pair is in its life: `attached` until it goes, then why it went:
 * `detached` (vmm.detach), `backend-destroyed` / `frontend-destroyed` (either end's domain
 * died, through vmm.destroyDomain or hv.destroyDomain alike), `revoked` (a policy reload
 * no longer allows the pair, or the hypervisor tore its rings down).
 */
export type DeviceState = "attached" | "detached" | "backend-destroyed" | "frontend-destroyed" | "revoked";

/** A device pair the VMM started: the guest side to bind a driver to, and the backend's model. */
export interface AttachedDevice {
  readonly id: number;
  readonly type: DeviceTypeName;
  readonly transport: TransportName;
  readonly frontend: Domain;
  readonly backend: Domain;
  /** What the guest's driver talks to (BlkDriver, ConsoleDriver, RngDriver take it). */
  readonly device: GuestVirtioDevice;
  readonly model: VirtioDeviceModel;
  /** `attached`, or why the device is gone (its requests then fail with IOERR). */
  readonly state: DeviceState;
  /** Pages of the frontend the backend can read (0 for argo). */
  exposedPages(): number;
}

export type VmmEvent =
  | { kind: "device-ready"; device: AttachedDevice }
  | { kind: "device-removed"; device: AttachedDevice; reason: Exclude<DeviceState, "attached"> }
  | { kind: "denial"; entry: AuditEntry };

export interface VirqCount {
  domid: number;
  name: string;
  raised: number;
  delivered: number;
}

interface Attached extends AttachedDevice {
  state: DeviceState;
  readonly pair: DevicePair | SharedPair;
  /** The Vmm made the model (not spec.model): it closes it (a disk file) when the device goes. */
  readonly ownsModel: boolean;
}

const DEVICE_TYPES = Object.keys(VIRTIO_IDS) as DeviceTypeName[];

export class Vmm {
  readonly hv: Hypervisor;
  readonly toolstack: Toolstack;
  private readonly guests = new Map<number, { transport: GuestTransport; hotplug: boolean }>();
  private readonly devices = new Map<number, Attached>();
  private readonly listeners: Array<(e: VmmEvent) => void> = [];
  private nextId = 1;

  constructor(opts: VmmOptions) {
    const policy = typeof opts.policy === "string" ? Policy.load(opts.policy) : opts.policy;
    this.hv = new Hypervisor({ policy });
    this.toolstack = new Toolstack(this.hv);
    this.hv.audit.onDenial((entry) => this.emit({ kind: "denial", entry }));
    // Faults reach the Vmm from the hypervisor whoever caused them, so hv.destroyDomain and
    // hv.loadPolicy called directly give the same guarantees as the Vmm's own calls.
    this.hv.on("domainDestroyed", ({ domid }) => this.domainGone(domid));
    this.hv.on("policyLoaded", () => this.applyPolicy());
    // A ring revoked by a reload whose pair survives (a ring limit changed, say): the device
    // cannot work any more. Torn down a microtask later: the event comes from inside the
    // hypervisor's revocation loop, which must not see this teardown unregister rings under it.
    this.hv.on("ringRevoked", (e) => {
      if (e.reason !== "policy") return; // a destroyed partner comes as domainDestroyed
      for (const a of this.devices.values()) {
        if (!("server" in a.pair)) continue;
        const entry = a.pair.entry;
        const ours = (e.owner === a.backend && e.aport === entry.backendPort) || (e.owner === a.frontend && e.aport === entry.frontendPort);
        if (ours) queueMicrotask(() => this.teardown(a, "revoked"));
      }
    });
  }

  /** Subscribes to device and denial events; returns the unsubscribe function. */
  on(listener: (e: VmmEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  createDomain(cfg: DomainConfig): Domain {
    return this.hv.createDomain(cfg);
  }

  /**
   * Lets devices appear in a running guest: the guest registers its bus ring (a wildcard
   * ring, so its label needs register_any_source) and later argo attaches are announced on
   * it. Without this, argo devices are given to the guest in its device table.
   */
  enableHotplug(guest: Domain): void {
    const g = this.guest(guest);
    if (g.hotplug) return;
    const rc = g.transport.listen();
    if (rc < 0) {
      throw new HotplugUnavailable(`d${guest.domid} (${guest.label}) could not register its hotplug bus ring: ${errnoName(rc)}`);
    }
    g.hotplug = true;
  }

  /** Starts a device pair and returns it once the guest sees the device. Throws PairDenied, DeviceSpecError, DomainError (all VmmErrors). */
  async attach(spec: AttachSpec): Promise<AttachedDevice> {
    const transport = spec.transport ?? "argo";
    if (!TRANSPORT_NAMES.includes(transport)) {
      throw new DeviceSpecError(`unknown transport "${String(transport)}"`, `use one of ${TRANSPORT_NAMES.join(", ")}`);
    }
    if (!DEVICE_TYPES.includes(spec.type)) {
      throw new DeviceSpecError(`unknown device type "${String(spec.type)}"`, `use one of ${DEVICE_TYPES.join(", ")}`);
    }
    this.alive(spec.frontend);
    this.alive(spec.backend);
    if (spec.type === "blk" && !spec.disk && !spec.model) {
      throw new DeviceSpecError("a blk device needs a disk", "pass disk: { image: { path } } or disk: { image: bytes }");
    }
    const pairSpec = {
      type: spec.type, frontend: spec.frontend, backend: spec.backend, model: spec.model,
      options: { blk: spec.disk ? { ...spec.disk } : undefined, console: spec.console },
    };
    let device: GuestVirtioDevice;
    let pair: DevicePair | SharedPair | undefined;
    let exposedPages: () => number;
    try {
      if (transport === "argo") {
        const argoPair = this.toolstack.addDevice(pairSpec);
        pair = argoPair;
        device = await this.argoDevice(argoPair);
        exposedPages = () => 0; // the backend maps nothing of the guest: it sees its own ring only
      } else {
        const shared = this.toolstack.addSharedDevice(pairSpec, transport);
        pair = shared;
        device = shared.device;
        exposedPages = () => shared.device.exposedPages;
      }
    } catch (e) {
      // A pair that got as far as a model: a disk file the Vmm opened for it is closed again.
      if (pair && !spec.model) (pair.model as { close?: () => void }).close?.();
      if (e instanceof VmmError) throw e;
      // A model that cannot be made for this type (net or vsock without their fabric, a bad image).
      throw new DeviceSpecError(`${spec.type} device could not be created: ${(e as Error).message}`, "check the device spec for this type");
    }
    const attached: Attached = {
      id: this.nextId++, type: spec.type, transport, frontend: spec.frontend, backend: spec.backend,
      device, model: pair.model, exposedPages, pair, state: "attached", ownsModel: !spec.model,
    };
    this.devices.set(attached.id, attached);
    this.emit({ kind: "device-ready", device: attached });
    return attached;
  }

  /** Stops a device pair: the guest's requests in flight complete with an error; new ones fail. */
  detach(dev: AttachedDevice): void {
    const a = this.devices.get(dev.id);
    if (a) this.teardown(a, "detached");
  }

  /**
   * The vsock hub of backend domain `backend`, where the VMM is the host (CID 2):
   * `listen(port, onConnection)` accepts guests' connections, `connect(cid, port)` opens
   * one to a guest (its CID is its domid + 2). Streams are VsockStream (read, write, shutdown, close).
   */
  vsock(backend: Domain): VsockHub {
    return this.toolstack.fabric.vsockHub(backend);
  }

  /** Devices attached now (gone ones are not listed; their AttachedDevice says why in `state`). */
  list(): AttachedDevice[] {
    return [...this.devices.values()];
  }

  /** VIRQ_ARGO signals raised and delivered per domain. */
  virqCounts(): VirqCount[] {
    return this.hv.listDomains().map((d) => ({ domid: d.domid, name: d.name, raised: d.virq.raised, delivered: d.virq.delivered }));
  }

  /**
   * Destroys a domain. Its devices (either end) go as they would after hv.destroyDomain:
   * requests in flight fail, each device's state says which end died, a device-removed
   * event is sent.
   */
  destroyDomain(d: Domain): void {
    this.hv.destroyDomain(d.domid); // domainGone runs from the hypervisor's event
  }

  /**
   * Boots a Linux guest domain (Debian's i386 kernel in v86) with `opts.devices`, each
   * checked against the policy as any pair (one the policy lacks is not enumerated), its
   * own virtio drivers served over argo (or foreign). Devices are fixed at boot: they are
   * written into the guest's ACPI tables.
   */
  startLinux(opts: LinuxGuestOptions): Promise<LinuxGuest> {
    return LinuxGuest.start(this.hv, this.toolstack, opts);
  }

  /** Tears everything down: every device, every domain. */
  shutdown(): void {
    for (const a of [...this.devices.values()]) this.teardown(a, "detached");
    for (const d of this.hv.listDomains()) this.destroyDomain(d);
  }

  /** A policy was loaded: pairs it no longer has go, and blk rules it added apply now. */
  private applyPolicy(): void {
    for (const a of [...this.devices.values()]) {
      const rule = this.hv.policy.pair(a.frontend.label, a.backend.label, a.type);
      if (!rule) {
        this.teardown(a, "revoked");
        continue;
      }
      if (a.type === "blk" && rule.rules.readOnly) {
        const model = a.model as { readOnly?: boolean; makeReadOnly?: () => void };
        if (model.readOnly) continue;
        // A model that cannot be made read-only cannot stay attached under a read-only rule.
        if (model.makeReadOnly) model.makeReadOnly();
        else this.teardown(a, "revoked");
      }
    }
  }

  private domainGone(domid: number): void {
    for (const a of [...this.devices.values()]) {
      if (a.backend.domid === domid) this.teardown(a, "backend-destroyed");
      else if (a.frontend.domid === domid) this.teardown(a, "frontend-destroyed");
    }
    const g = this.guests.get(domid);
    if (g) for (const devNum of [...g.transport.devices.keys()]) g.transport.remove(devNum);
    this.guests.delete(domid);
    this.toolstack.forget(domid);
  }

  /**
   * One way a device goes, whatever made it go: the guest side fails what is in flight and
   * gives its pages back, the backend stops and gives its pages back, a disk the Vmm opened
   * is closed, and listeners hear device-removed with the reason.
   */
  private teardown(a: Attached, reason: Exclude<DeviceState, "attached">): void {
    if (a.state !== "attached") return;
    a.state = reason;
    this.devices.delete(a.id);
    if ("server" in a.pair) {
      const pair = a.pair;
      // The guest hears it directly (surprise removal), then the bus message goes and the backend stops.
      (a.device as ArgoFrontend).markGone(`device ${reason}`);
      this.guests.get(pair.frontend.domid)?.transport.remove(pair.entry.devNum);
      this.toolstack.unplug(pair);
    } else {
      a.pair.device.remove();
      this.toolstack.fabric.release(a.pair.model); // a net or vsock port leaves its switch or hub
    }
    if (a.ownsModel) (a.model as { close?: () => void }).close?.();
    this.emit({ kind: "device-removed", device: a, reason });
  }

  private emit(e: VmmEvent): void {
    for (const l of [...this.listeners]) l(e);
  }

  private guest(d: Domain): { transport: GuestTransport; hotplug: boolean } {
    this.alive(d);
    let g = this.guests.get(d.domid);
    if (!g) this.guests.set(d.domid, (g = { transport: new GuestTransport(this.toolstack.kernel(d)), hotplug: false }));
    return g;
  }

  private alive(d: Domain): void {
    if (d.destroyed) throw new DomainError(`domain d${d.domid} (${d.name}) is not running`, "create a new domain; destroyed ones cannot be reused");
  }

  /** The guest-side frontend of an argo pair: announced on the bus, or found in the device table. */
  private async argoDevice(pair: DevicePair): Promise<ArgoFrontend> {
    const g = this.guest(pair.frontend);
    const devNum = pair.entry.devNum;
    if (g.hotplug) {
      const rc = this.toolstack.announce(pair);
      if (rc < 0) {
        this.toolstack.unplug(pair);
        throw new HotplugUnavailable(`hotplug announcement to d${pair.frontend.domid} failed: ${errnoName(rc)}`);
      }
      // The bus is drained on the guest's VIRQ, a microtask or two away; bounded wait.
      for (let i = 0; i < 1000 && !g.transport.devices.has(devNum); i++) await new Promise((r) => setImmediate(r));
    } else {
      this.toolstack.writeDeviceTable(pair.frontend);
      const r = g.transport.probe();
      if (!Array.isArray(r)) {
        this.toolstack.unplug(pair);
        throw new DomainError(`d${pair.frontend.domid} could not read its device table: ${r.kind}`, "this is a bug in the toolstack; report it");
      }
    }
    const fe = g.transport.devices.get(devNum);
    if (!fe) {
      this.toolstack.unplug(pair);
      throw new DomainError(`d${pair.frontend.domid} did not attach device ${devNum}`, "the guest may be out of memory or at its device limit");
    }
    return fe;
  }
}
