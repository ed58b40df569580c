// Where net and vsock devices meet: one learning switch and one vsock hub per backend
// domain, shared by every net (vsock) device that domain serves. The toolstack asks
// here for a net or vsock model; this applies the pair's device rules (allowed_macs,
// allowed_ports, rate) and the addresses the toolstack assigns (MAC, CID), and follows
// the policy: on a reload, a port whose pair is gone is revoked (net: link down and off
// the switch; vsock: every connection reset on both ends, TRANSPORT_RESET to the guest),
// and a port whose rules changed gets the new ones.
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Domain } from "../hypervisor/domain.ts";
import type { PairRule } from "../mac/index.ts";
import { pairName } from "../mac/index.ts";
import { DeviceSpecError, PairDenied } from "../errors.ts";
import type { DeviceTypeName, VirtioDeviceModel } from "./types.ts";
import { NetSwitch } from "./net/switch.ts";
import { NetModel } from "./net/model.ts";
import { macToNumber, numberToMac } from "./net/layout.ts";
import { VsockHub } from "./vsock/hub.ts";
import { VsockModel } from "./vsock/model.ts";

interface Port {
  readonly type: "net" | "vsock";
  readonly frontend: Domain;
  readonly backend: Domain;
  readonly model: NetModel | VsockModel;
}

/** A guest's vsock CID: its domid + 2 (domid 1 gets CID 3, the first guest CID). */
export function guestCid(frontend: Domain): number {
  return frontend.domid + 2;
}

export class DeviceFabric {
  private readonly hv: Hypervisor;
  private readonly switches = new Map<number, NetSwitch>();
  private readonly hubs = new Map<number, VsockHub>();
  private readonly ports: Port[] = [];

  constructor(hv: Hypervisor) {
    this.hv = hv;
    hv.on("policyLoaded", () => this.reapply());
    hv.on("domainDestroyed", ({ domid }) => {
      for (const p of [...this.ports]) if (p.frontend.domid === domid || p.backend.domid === domid) this.release(p.model);
    });
  }

  /** The learning switch of backend domain `backend` (created on first use). */
  netSwitch(backend: Domain): NetSwitch {
    let s = this.switches.get(backend.domid);
    if (!s) this.switches.set(backend.domid, (s = new NetSwitch(`d${backend.domid} switch`)));
    return s;
  }

  /** The vsock hub of backend domain `backend`: VMM listeners and connects go through it. */
  vsockHub(backend: Domain): VsockHub {
    let h = this.hubs.get(backend.domid);
    if (!h) this.hubs.set(backend.domid, (h = new VsockHub(`d${backend.domid} vsock`)));
    return h;
  }

  /**
   * The model for a net or vsock pair under `rule`; null for other types. Net: the config
   * MAC is the first of `allowed_macs` no other port of the switch uses, or, without the
   * rule, 02:56:41:BB:FF:NN (locally administered: backend domid, frontend domid, a
   * counter). Vsock: the CID is the frontend's domid + 2.
   */
  createModel(type: DeviceTypeName, frontend: Domain, backend: Domain, rule: PairRule): VirtioDeviceModel | null {
    if (type !== "net" && type !== "vsock") return null;
    const name = `d${frontend.domid} ${pairName(rule)}`;
    let model: NetModel | VsockModel;
    if (type === "net") {
      const sw = this.netSwitch(backend);
      const allowed = rule.rules.allowedMacs;
      let mac: string | undefined;
      if (allowed) {
        if (allowed.length === 0) throw new PairDenied(`policy ${this.hv.policy.source}: pair ${pairName(rule)} has an empty allowed_macs: the device could send nothing`);
        mac = allowed.find((m) => !sw.claimed(macToNumber(m)));
        if (!mac) {
          throw new DeviceSpecError(`every address in allowed_macs of ${pairName(rule)} (${allowed.join(" ")}) is in use on ${sw.name}`, "give each guest of this label its own address in the policy, or use one label per guest");
        }
      } else {
        for (let n = 0; n < 256 && !mac; n++) {
          const m = 0x025641000000 + (backend.domid & 0xff) * 0x10000 + (frontend.domid & 0xff) * 0x100 + n;
          if (!sw.claimed(m)) mac = numberToMac(m);
        }
        if (!mac) throw new DeviceSpecError(`no free address for another net device of d${frontend.domid}`, "detach one of its net devices first");
      }
      model = new NetModel({ switch: sw, mac, allowedMacs: allowed, rate: rule.limits.rate, name });
    } else {
      const hub = this.vsockHub(backend);
      const cid = guestCid(frontend);
      try {
        model = new VsockModel({ hub, cid, allowedPorts: rule.rules.allowedPorts, name });
      } catch (e) {
        throw new DeviceSpecError(`d${frontend.domid} already has a vsock device on d${backend.domid} (CID ${cid}): ${(e as Error).message}`, "a guest has one vsock device per backend domain; detach it first");
      }
    }
    this.ports.push({ type, frontend, backend, model });
    return model;
  }

  /** The pair is gone (detached, unplugged, a domain destroyed): the port leaves its switch or hub. */
  release(model: VirtioDeviceModel): void {
    const i = this.ports.findIndex((p) => p.model === model);
    if (i < 0) return;
    const [p] = this.ports.splice(i, 1);
    p.model.close();
  }

  /** After hv.loadPolicy: revoke ports whose pair is gone, give the others their new rules. */
  private reapply(): void {
    const policy = this.hv.policy;
    for (const p of [...this.ports]) {
      const rule = policy.pair(p.frontend.label, p.backend.label, p.type);
      if (!rule) {
        p.model.revoke(`policy ${policy.source} no longer has ${p.frontend.label}/${p.backend.label}/${p.type}`);
        this.ports.splice(this.ports.indexOf(p), 1);
        continue;
      }
      if (p.model instanceof NetModel) p.model.setRules(rule.rules.allowedMacs, rule.limits.rate);
      else p.model.setRules(rule.rules.allowedPorts);
    }
  }
}
