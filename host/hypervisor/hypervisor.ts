// The hypervisor: owns the domains, the MAC layer and the Argo ops. Everything runs in
// one Node.js process; each domain owns its memory and no domain ever gets a view of
// another's. The policy is consulted at Xen's XSM hook points, before state changes.
import { EventEmitter } from "node:events";
import { Domain, type DomainConfig } from "./domain.ts";
import { SendScratch } from "./sendv.ts";
import type { RingDataEnt } from "./notify.ts";
import { argoDestroy, removeRing } from "./lifecycle.ts";
import { ArgoState } from "./argo-state.ts";
import { DOMID_ANY } from "../abi/argo.ts";
import { Xsm } from "./xsm.ts";
import { Mac, Policy, type AuditLog } from "../mac/index.ts";
import type { RingInfo } from "./ring.ts";
import { GrantTables } from "./grant.ts";

export interface HypervisorOptions {
  /** The MAC policy. Required: say `Policy.allowAll()` explicitly to run without one. */
  policy: Policy;
  /** Xen's `argo` boot option; false makes every op return -EOPNOTSUPP. Default true. */
  argo?: boolean;
  /**
   * Allow rings registered for any sender (DOMID_ANY), subject to the policy's
   * `register_any_source`. Xen allows them only when booted with argo=mac-permissive=1
   * and otherwise returns -EPERM; default true here, because device discovery needs them.
   */
  wildcardRings?: boolean;
}

/** Why a ring went away without its owner asking. */
export interface RingRevokedEvent {
  owner: Domain;
  aport: number;
  partner: number;
  reason: "policy" | "partner-destroyed";
}

/** A VIRQ handler of one domain threw: caught, counted on `domain.virq.handlerErrors`, reported here. */
export interface VirqHandlerErrorEvent {
  domid: number;
  name: string;
  error: unknown;
}

export interface HypervisorEvents {
  ringRevoked: [RingRevokedEvent];
  /** After loadPolicy revoked what it had to: device layers re-read their pair rules (net, vsock). */
  policyLoaded: [{ policy: Policy }];
  virqHandlerError: [VirqHandlerErrorEvent];
  domainDestroyed: [{ domid: number; name: string }];
}

/** Domain ids at and above DOMID_FIRST_RESERVED (0x7FF0) are special in Xen. */
const DOMID_FIRST_RESERVED = 0x7ff0;
/** Highest id handed to a domain; ids 1..LAST_DOMID (32,751 of them) are allocated, 0 is never (Xen keeps it for dom0). */
const LAST_DOMID = DOMID_FIRST_RESERVED - 1;

export class Hypervisor extends EventEmitter<HypervisorEvents> {
  readonly options: Required<Omit<HypervisorOptions, "policy">>;
  /** @internal the XSM hook layer over the MAC engine. */
  readonly mac: Xsm;
  /** @internal scratch for sendv's iovs: single-threaded, never re-entered. */
  readonly sendScratch = new SendScratch();
  /** @internal scratch for notify entries. */
  readonly notifyScratch: RingDataEnt = { aport: 0, domid: 0, flags: 0, spaceRequired: 0, maxMessageSize: 0 };
  private readonly domains = new Map<number, Domain>();
  /**
   * The same live domains indexed by domid (ids are < 0x7FF0), for sendv's destination
   * lookup: an array load instead of a Map probe on every message. Kept in step with
   * `domains` by createDomain and destroyDomain.
   */
  readonly #byId: Array<Domain | undefined> = [];
  /**
   * @internal Ring generation: bumped by every change to a ring table or to a domain's
   * Argo state (registerRing, removeRing, setArgo), so a cached sendv lookup made under
   * an older generation is never used (ArgoState.sendCacheGen).
   */
  ringGen = 0;
  /** Grant tables, for the `grant` share baseline (not used by the argo path). */
  readonly grants = new GrantTables((domid) => this.domains.get(domid));
  /**
   * Argo state per domain (struct argo_domain), indexed by domid and kept here, behind the
   * hypervisor's private field, so no guest handle can reach it. An array, not a WeakMap:
   * this lookup is on every sendv (a WeakMap costs ~10 ns per get).
   */
  readonly #argo: Array<ArgoState | undefined> = [];
  /**
   * The id handed out last (Xen's domid_last). Ids are allocated round-robin from here
   * (xen/common/domid.c domid_alloc): a freed id comes back only after every other free
   * id has been handed out since, and never twice in a row. That is the reuse rule: a
   * stale reference to a dead domain's id (a peer's saved domid, an audit line, a grant
   * naming it) meets a new domain only after up to 32,750 other creations, and
   * destroyDomain clears what the hypervisor itself keeps by domid (rings naming it, its
   * waits, rate buckets, grant mappings, grants naming it as grantee).
   */
  private lastDomid = 0;
  /**
   * Senders refused by a rate limit (-EAGAIN), by domid: one timer each (coalesced: a
   * second refusal keeps the earlier deadline), raising VIRQ_ARGO on the sender once a
   * token is back. unref'd, so a waiting sender never keeps Node alive; cleared when the
   * domain is destroyed or a reload refills the buckets.
   */
  private readonly rateWakeups = new Map<number, { timer: ReturnType<typeof setTimeout>; due: number; d: Domain }>();
  private readonly engineMac: Mac;

  constructor(options: HypervisorOptions) {
    super();
    if (!options || !(options.policy instanceof Policy)) {
      throw new TypeError("new Hypervisor({ policy }): a Policy is required (Policy.load(file), or Policy.allowAll() for tests)");
    }
    this.options = { argo: options.argo ?? true, wildcardRings: options.wildcardRings ?? true };
    this.engineMac = new Mac(options.policy);
    this.mac = new Xsm(this.engineMac);
  }

  /** The policy in force. */
  get policy(): Policy {
    return this.engineMac.policy;
  }

  /** Every MAC denial, structured and as Flask-style text. */
  get audit(): AuditLog {
    return this.engineMac.audit;
  }

  /** Creates a domain with its own memory; argo is enabled for it if the policy allows. */
  createDomain(config: DomainConfig): Domain {
    if (!config || typeof config.name !== "string" || typeof config.label !== "string") {
      throw new TypeError("createDomain({ name, label, memoryBytes }): name and label are strings");
    }
    for (const d of this.domains.values()) {
      if (d.name === config.name) throw new Error(`a domain named "${config.name}" already exists (d${d.domid})`);
    }
    const domid = this.allocDomid();
    if (domid < 0) throw new RangeError(`out of domain ids: ${this.domains.size} domains alive`);
    const d = new Domain(this, domid, config);
    this.lastDomid = domid;
    this.engineMac.bind(d);
    this.domains.set(d.domid, d);
    this.#byId[d.domid] = d;
    // argo_init: a domain the policy does not let use Argo gets no Argo state.
    if (this.options.argo && this.engineMac.argoEnable(d) === 0) this.setArgo(d, new ArgoState());
    return d;
  }

  /**
   * domid_alloc: the first free id after lastDomid, wrapping to 1, never lastDomid itself;
   * -1 when none. At most LAST_DOMID probes of a Map.
   */
  private allocDomid(): number {
    const last = this.lastDomid;
    for (let id = last + 1; id <= LAST_DOMID; id++) if (!this.domains.has(id)) return id;
    for (let id = 1; id < last; id++) if (!this.domains.has(id)) return id;
    return -1;
  }

  /** @internal the domain's Argo state, or null when argo is not enabled for it (-ENODEV). */
  argoOf(d: Domain | undefined): ArgoState | null {
    return d ? (this.#argo[d.domid] ?? null) : null;
  }

  /** @internal */
  setArgo(d: Domain, state: ArgoState | null): void {
    this.#argo[d.domid] = state ?? undefined;
    this.ringGen++;
  }

  /** The live domain with this id, if any (any number: a guest's u16, a caller's NaN). */
  domainById(domid: number): Domain | undefined {
    // Integers in [0, 0x7FF0) only: no guest value can make this a property lookup
    // ("length", a prototype getter) or grow the array.
    return domid >= 0 && domid < DOMID_FIRST_RESERVED && (domid | 0) === domid ? this.#byId[domid] : undefined;
  }

  /**
   * SCHEDOP_yield for `caller`: every other domain with a pending VIRQ_ARGO runs its
   * handlers now, round after round until none is pending or `rounds` are done. This is
   * how a vCPU blocked on a trapped register access (a Linux guest's virtio-mmio read)
   * waits for the device's domain to answer over Argo without leaving the emulator's
   * instruction. The caller's own VIRQ is delivered last in each round (its reply is
   * what it waits for). Returns the number of deliveries made.
   */
  schedYield(caller: Domain, rounds = 4): number {
    let total = 0;
    for (let r = 0; r < rounds; r++) {
      let ran = 0;
      for (const d of this.domains.values()) if (d !== caller && d.virq.deliverNow()) ran++;
      if (caller.virq.deliverNow()) ran++;
      if (ran === 0) break;
      total += ran;
    }
    return total;
  }

  /** Live domains in creation order. */
  listDomains(): Domain[] {
    return [...this.domains.values()];
  }

  /**
   * Destroys a domain (argo_destroy): its rings go, rings of others that only it could
   * send to go, its waits go. Owners of removed rings get VIRQ_ARGO and a ringRevoked event.
   */
  destroyDomain(domid: number): boolean {
    const d = this.domains.get(domid);
    if (!d) return false;
    const removed = argoDestroy(this, d);
    this.domains.delete(domid);
    this.#byId[domid] = undefined;
    this.ringGen++;
    this.cancelRateWakeup(domid);
    this.engineMac.forgetDomain(domid);
    this.grants.destroy(domid);
    d.markDestroyed();
    for (const ring of removed) {
      if (ring.owner !== d) this.revoked(ring, "partner-destroyed");
    }
    this.emit("domainDestroyed", { domid, name: d.name });
    return true;
  }

  /**
   * Replaces the policy atomically and revokes what it no longer allows: rings whose
   * registration would now be refused are removed (bytes already delivered stay in the
   * owner's memory), waiters that may no longer send are dropped and signalled, and
   * domains no longer allowed Argo lose their Argo state. A Policy object is already
   * validated, so a bad file never gets this far; the previous policy stays in force.
   */
  loadPolicy(policy: Policy): void {
    this.engineMac.load(policy);
    // The reload refilled every bucket: rate-limited senders may retry now.
    for (const [domid, w] of [...this.rateWakeups]) {
      this.cancelRateWakeup(domid);
      w.d.raiseVirq();
    }
    for (const d of this.domains.values()) {
      const allowed = this.engineMac.argoEnable(d) === 0;
      if (!allowed) {
        if (!this.argoOf(d)) continue;
        for (const ring of argoDestroy(this, d)) this.revoked(ring, "policy");
        d.raiseVirq(); // its next op returns -EACCES: that is how it learns
        continue;
      }
      if (!this.argoOf(d)) this.setArgo(d, new ArgoState());
    }
    for (const d of this.domains.values()) {
      const state = this.argoOf(d);
      if (!state) continue;
      for (const ring of [...state.rings.values()]) {
        const partner = ring.partnerId === DOMID_ANY ? undefined : this.domains.get(ring.partnerId);
        const rc = partner
          ? this.engineMac.registerSingleSource(d, partner, ring.len)
          : this.engineMac.registerAnySource(d, ring.len);
        if (rc) {
          const waiters = ring.pending.map((p) => p.domid);
          removeRing(this, ring);
          this.revoked(ring, "policy");
          for (const domid of waiters) this.domains.get(domid)?.raiseVirq(); // they retry and learn why
          continue;
        }
        for (let i = ring.pending.length - 1; i >= 0; i--) {
          const sender = this.domains.get(ring.pending[i].domid);
          if (sender && this.mac.sendQuery(sender, d) === 0) continue;
          ring.pending.splice(i, 1);
          if (ring.wildcard) this.argoOf(sender)?.wildcardPending.delete(ring);
          sender?.raiseVirq(); // it retries and learns its fate from sendv
        }
      }
    }
    this.emit("policyLoaded", { policy });
  }

  /**
   * @internal sendv was refused by the pair's rate limit (-EAGAIN, just returned by the
   * MAC): in Xen every -EAGAIN from sendv comes with a later wakeup, so raise VIRQ_ARGO
   * on the sender when the bucket holds a token again. One timer per sender, at the
   * earliest deadline asked for; the sender retries and, if another pair still refuses
   * it, asks again.
   */
  rateLimited(d: Domain): void {
    const wait = Math.ceil(this.engineMac.rateRefillMs()) + 1;
    const due = performance.now() + wait;
    const cur = this.rateWakeups.get(d.domid);
    if (cur && cur.due <= due) return;
    if (cur) clearTimeout(cur.timer);
    const timer = setTimeout(() => {
      this.rateWakeups.delete(d.domid);
      d.raiseVirq(); // a no-op once d is destroyed
    }, wait);
    timer.unref();
    this.rateWakeups.set(d.domid, { timer, due, d });
  }

  /** @internal rate wakeups not yet fired (for tests). */
  get pendingRateWakeups(): number {
    return this.rateWakeups.size;
  }

  private cancelRateWakeup(domid: number): void {
    const w = this.rateWakeups.get(domid);
    if (!w) return;
    clearTimeout(w.timer);
    this.rateWakeups.delete(domid);
  }

  /**
   * @internal A handler on `d`'s VIRQ threw (Virq caught it). Reported as a
   * virqHandlerError event; with nobody listening, the first failure of each domain is
   * logged so it is not lost, and the rest are only counted.
   */
  virqHandlerFailed(d: Domain, error: unknown): void {
    if (this.listenerCount("virqHandlerError") > 0) {
      this.emit("virqHandlerError", { domid: d.domid, name: d.name, error });
    } else if (d.virq.handlerErrors === 1) {
      const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      console.error(`virtio-argo: a VIRQ handler of d${d.domid} (${d.name}) threw, caught and counted (virq.handlerErrors): ${what}`);
    }
  }

  private revoked(ring: RingInfo, reason: RingRevokedEvent["reason"]): void {
    ring.owner.raiseVirq();
    this.emit("ringRevoked", { owner: ring.owner, aport: ring.aport, partner: ring.partnerId, reason });
  }
}
