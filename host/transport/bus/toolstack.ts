// The toolstack side of VirtIO-Argo (what an embedding VMM does): check the policy for
// a device pair, assign its ports, start its backend in the backend domain, and tell
// the guest (device table at boot, bus messages for hotplug and unplug).
import type { Hypervisor } from "../../hypervisor/hypervisor.ts";
import type { Domain } from "../../hypervisor/domain.ts";
import type { DeviceTypeName, VirtioDeviceModel } from "../../devices/types.ts";
import { VIRTIO_IDS } from "../../devices/types.ts";
import { createDeviceModel, type DeviceModelOptions } from "../../devices/index.ts";
import { DeviceFabric } from "../../devices/fabric.ts";
import { ArgoBackend, OpenBudget } from "../argo/backend/backend.ts";
import { writeEntry, writeTable, type DeviceEntry } from "./enumeration.ts";
import { DEVICE_TABLE_GPA, GuestKernel } from "./kernel.ts";
import { auditText } from "../../mac/index.ts";
import { DeviceSpecError, DomainError, PairDenied } from "../../errors.ts";
import { EACCES, errnoName } from "../../abi/errno.ts";
import type { SharedDevice } from "../share/shared-device.ts";
import { ForeignDevice } from "../share/foreign.ts";
import { GrantDevice } from "../share/grant.ts";
import { BounceDevice } from "../share/bounce.ts";
import { BUS_DEVICE_READY, BUS_DEVICE_REMOVED, BUS_MESSAGE_SIZE, BUS_PORT, MSG_BUS } from "../argo/wire.ts";

export interface DevicePairSpec {
  type: DeviceTypeName;
  frontend: Domain;
  backend: Domain;
  /** Options for the device model the toolstack creates (policy rules are applied on top). */
  options?: DeviceModelOptions;
  /** Or a ready model (tests, custom devices); it must satisfy the pair's device rules. */
  model?: VirtioDeviceModel;
  /** Data bytes of each ring (default 256 KiB + 64 so a 256 KiB request fits one message pair). */
  ringLen?: number;
}

export interface DevicePair {
  readonly entry: DeviceEntry;
  readonly type: DeviceTypeName;
  readonly frontend: Domain;
  readonly backend: Domain;
  readonly server: ArgoBackend;
  readonly model: VirtioDeviceModel;
}

/** The sharing baselines the comparison runs against argo. */
export type ShareTransportName = "grant" | "foreign" | "bounce";

/** A device pair over a sharing transport: the guest drives `device` directly. */
export interface SharedPair {
  readonly transport: ShareTransportName;
  readonly type: DeviceTypeName;
  readonly frontend: Domain;
  readonly backend: Domain;
  readonly device: SharedDevice;
  readonly model: VirtioDeviceModel;
}

/** The policy does not allow this device pair: it is not even enumerated. */
export { PairDenied };

const PORT_BASE = 0x10000;
const DEFAULT_RING = (256 << 10) + 4096;

export class Toolstack {
  readonly hv: Hypervisor;
  /** The net switches and vsock hubs of the backend domains (net and vsock models come from it). */
  readonly fabric: DeviceFabric;
  private readonly kernels = new Map<number, GuestKernel>();
  private readonly pairs: DevicePair[] = [];
  /** Per backend and frontend domain: what that frontend's open requests may hold there (a quarter of the backend's memory). */
  private readonly budgets = new Map<number, OpenBudget>();
  private nextDev = 1;

  constructor(hv: Hypervisor) {
    this.hv = hv;
    this.fabric = new DeviceFabric(hv);
  }

  /** The kernel (Argo driver + heap) of a domain, created on first use. */
  kernel(d: Domain): GuestKernel {
    let k = this.kernels.get(d.domid);
    if (!k) this.kernels.set(d.domid, (k = new GuestKernel(d)));
    return k;
  }

  /** A destroyed domain's kernel and budgets go (its pairs were unplugged first). */
  forget(domid: number): void {
    this.kernels.delete(domid);
    for (const key of [...this.budgets.keys()]) if (Math.floor(key / 0x10000) === domid || key % 0x10000 === domid) this.budgets.delete(key);
  }

  devicesOf(frontend: Domain): DevicePair[] {
    return this.pairs.filter((p) => p.frontend === frontend);
  }

  /**
   * The policy's verdict on a pair, whatever the transport: its rule, and the device model
   * with the pair's device rules applied. Throws PairDenied if the policy has no such pair.
   */
  private admit(spec: DevicePairSpec) {
    const rule = this.hv.policy.pair(spec.frontend.label, spec.backend.label, spec.type);
    if (!rule) {
      // A refused attach is a denial like any other: it goes to the audit log.
      const why = `policy ${this.hv.policy.source} has no ${spec.type} pair for ${spec.frontend.label} -> ${spec.backend.label}: device not enumerated`;
      this.denier(spec)("device_attach", why);
      throw new PairDenied(why);
    }
    const model = spec.model ?? this.fabric.createModel(spec.type, spec.frontend, spec.backend, rule) ?? this.makeModel(spec, rule.rules.readOnly === true);
    // A read_only rule is the policy's, not the VMM's, to relax.
    if (rule.rules.readOnly && spec.type === "blk" && !(model as { readOnly?: boolean }).readOnly) {
      const why = `policy ${this.hv.policy.source} requires ${spec.type} for ${spec.frontend.label} to be read-only`;
      this.denier(spec)("device_attach", why);
      throw new PairDenied(why);
    }
    return { rule, model };
  }

  /**
   * For a transport built outside the toolstack (a Linux guest's `foreign` baseline): the
   * device model with the pair's rules applied and its audit sink, after the same policy
   * check every transport gets. Throws PairDenied.
   */
  admitModel(spec: DevicePairSpec): { model: VirtioDeviceModel; deny: (perm: string, detail: string) => void } {
    return { model: this.admit(spec).model, deny: this.denier(spec) };
  }

  /** Audit-logs a device-level denial (read-only disk, refused grant) for the pair. */
  private denier(spec: DevicePairSpec): (perm: string, detail: string) => void {
    return (perm, detail) => {
      const e = {
        time: Date.now(), perm, scontext: spec.frontend.label, tcontext: spec.backend.label, tclass: spec.type,
        srcDomid: spec.frontend.domid, tgtDomid: spec.backend.domid, pair: `${spec.frontend.label}/${spec.backend.label}/${spec.type}`,
        errno: -EACCES, reason: detail,
      };
      this.hv.audit.record({ ...e, text: auditText(e) });
    };
  }

  /**
   * Declares a device pair over one of the sharing baselines (grant, foreign, bounce) under
   * the same policy check as argo. The guest gets the device directly, as a platform
   * (MMIO) device: there is nothing to enumerate over Argo.
   */
  addSharedDevice(spec: DevicePairSpec, transport: ShareTransportName, opts: { sharedBytes?: number } = {}): SharedPair {
    const { model } = this.admit(spec);
    const k = this.kernel(spec.frontend);
    const base = { memory: spec.frontend.memory, heap: k.heap, model, deny: this.denier(spec) };
    let device: SharedDevice;
    switch (transport) {
      case "foreign":
        device = new ForeignDevice(base);
        break;
      case "grant":
        device = new GrantDevice({ ...base, grants: this.hv.grants, guest: spec.frontend, backend: spec.backend });
        break;
      case "bounce":
        device = new BounceDevice({ ...base, sharedBytes: opts.sharedBytes });
        break;
      default:
        throw new DeviceSpecError(`unknown sharing transport ${String(transport)}`, "use one of grant, foreign, bounce (or argo through addDevice)");
    }
    return { transport, type: spec.type, frontend: spec.frontend, backend: spec.backend, device, model };
  }

  /** Declares a device pair and starts its backend; throws PairDenied if the policy has no such pair. */
  addDevice(spec: DevicePairSpec): DevicePair {
    const { rule, model } = this.admit(spec);
    const devNum = this.nextDev++;
    // Size rings and messages inside the pair's limits, so the policy never has to refuse them.
    const ringLen = Math.min(spec.ringLen ?? DEFAULT_RING, rule.limits.maxRingBytes ?? Infinity) & ~15;
    const entry: DeviceEntry = {
      devNum, virtioType: VIRTIO_IDS[spec.type], backendDomid: spec.backend.domid, flags: 0,
      backendPort: PORT_BASE + devNum * 2, frontendPort: PORT_BASE + devNum * 2 + 1,
      ringLen, maxMessage: Math.min(ringLen - 32, rule.limits.maxMessageBytes ?? Infinity),
    };
    const bk = this.kernel(spec.backend);
    const server = new ArgoBackend({
      argo: bk.argo, heap: bk.heap, entry, frontendDomid: spec.frontend.domid, model,
      deny: this.denier(spec),
      budget: this.budget(spec.backend, spec.frontend),
    });
    const rc = server.start();
    if (rc < 0) {
      server.stop();
      throw new DomainError(`backend d${spec.backend.domid} for ${spec.type} device ${devNum} could not register its ring: ${errnoName(rc)}`,
        "the backend domain may be out of rings (128) or memory, or its label may not register rings for this guest");
    }
    const pair: DevicePair = { entry, type: spec.type, frontend: spec.frontend, backend: spec.backend, server, model };
    this.pairs.push(pair);
    return pair;
  }

  private budget(backend: Domain, frontend: Domain): OpenBudget {
    const key = backend.domid * 0x10000 + frontend.domid; // domids are 16 bits
    let b = this.budgets.get(key);
    if (!b) this.budgets.set(key, (b = new OpenBudget(backend.memory.buffer.byteLength / 4)));
    return b;
  }

  private makeModel(spec: DevicePairSpec, readOnly: boolean): VirtioDeviceModel {
    const opts: DeviceModelOptions = { ...spec.options };
    if (spec.type === "blk") {
      if (!opts.blk) throw new DeviceSpecError("a blk device pair needs a disk", "pass options.blk.image (bytes or { path })");
      opts.blk = { ...opts.blk, readOnly: readOnly || !!opts.blk.readOnly };
    }
    return createDeviceModel(spec.type, opts);
  }

  /** Writes the device table for `guest` (all its pairs) into its reserved page. */
  writeDeviceTable(guest: Domain): number {
    return writeTable(guest.memory, DEVICE_TABLE_GPA, this.devicesOf(guest).map((p) => p.entry));
  }

  /** Adds a device to a running guest: starts the backend, which announces it on the bus. */
  hotplug(spec: DevicePairSpec): DevicePair {
    const pair = this.addDevice(spec);
    const rc = this.announce(pair);
    if (rc < 0) throw new Error(`hotplug announcement to d${spec.frontend.domid} failed: ${rc}`);
    return pair;
  }

  /** The backend announces a started pair on the guest's bus (DEVICE_READY); 0 or a negative errno. */
  announce(pair: DevicePair): number {
    return this.busMessage(pair, BUS_DEVICE_READY);
  }

  /** Removes a device: the backend announces the removal, then stops serving. */
  unplug(pair: DevicePair): void {
    this.busMessage(pair, BUS_DEVICE_REMOVED);
    pair.server.stop();
    this.fabric.release(pair.model); // a net or vsock port leaves its switch or hub
    const i = this.pairs.indexOf(pair);
    if (i >= 0) this.pairs.splice(i, 1);
  }

  /** Bus messages travel over Argo from the backend domain, so the policy sees them too. */
  private busMessage(pair: DevicePair, event: number): number {
    const k = this.kernel(pair.backend);
    const buf = k.heap.alloc(BUS_MESSAGE_SIZE);
    const dv = new DataView(pair.backend.memory.buffer);
    dv.setUint32(buf, event, true);
    writeEntry(dv, buf + 4, pair.entry);
    const rc = k.argo.send(pair.frontend.domid, BUS_PORT, buf, BUS_MESSAGE_SIZE, MSG_BUS, 0);
    k.heap.freePagesAt(buf, 1);
    return rc;
  }
}
