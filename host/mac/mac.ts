// The MAC engine the hypervisor calls at Xen's XSM hook points, each before any state
// changes. Each hook returns 0 or a negative errno and audits every denial:
//   permission      -EACCES    (Flask's avc_has_perm)
//   ring too large  -EINVAL    (Xen's register_ring for a bad len)
//   message too big -EMSGSIZE  (Xen's sendv for an over-long message)
//   rate exceeded   -EAGAIN    (Xen's transient "try again")
// The send hook is on the 64-byte-message hot path: on an AVC hit for a pair without a
// rate limit it costs an index computation, one typed-array load and a compare; with a
// rate limit, a few more compares while the pair has tokens prepaid (RateLimiter).
import { Policy } from "./policy.ts";
import { AuditLog, DOMID_XEN, auditText } from "./audit.ts";
import { EACCES, EAGAIN, EINVAL, EMSGSIZE } from "./errors.ts";
import { RateLimiter } from "./ratelimit.ts";
import { XEN_LABEL, type ArgoPerm } from "./model.ts";
import {
  AV_ANY,
  AV_ENABLE,
  AV_SEND,
  AV_SINGLE,
  AVC_DENIED,
  AVC_RATED,
  XEN_SID,
  Avc,
  encodeDecision,
  internLabel,
  sidLabel,
} from "./avc.ts";

/** A domain as the MAC layer sees it. The hypervisor's Domain satisfies it. */
export interface Subject {
  readonly domid: number;
  readonly name: string;
  readonly label: string;
  /**
   * Security id, assigned by Mac.bind (interned label); -1 until then. Only Mac.bind
   * writes it: the cached send check trusts it, as Xen trusts a domain's ssid.
   */
  sid: number;
}

/** Options of a Mac. */
export interface MacOptions {
  /** Clock in milliseconds for rate limits; default performance.now. Read only for rate-limited sends, about once per burst / 16 of them (RateLimiter). */
  now?: () => number;
  /** Where the allow-all warning goes; default console.warn. */
  log?: (line: string) => void;
}

/** AVC counters, for tests and benchmarks. */
export interface MacStats {
  avcHits: number;
  avcMisses: number;
  flushes: number;
}

/**
 * AVC_RATED, copied into this module on purpose: an imported binding is read through its
 * module cell on every call, and this constant sits on the 64 B send hot path.
 */
const RATED = 0x40000000;

const PERM_OF_CLASS: readonly ArgoPerm[] = ["send", "register_single_source", "register_any_source", "enable"];

/** Printed once per process: an allow-all policy is for tests and benchmarks only. */
let warnedAllowAll = false;

/** The policy decision point: a Policy, its AVC, rate limiters and the audit log. */
export class Mac {
  readonly audit: AuditLog;
  readonly stats: MacStats = { avcHits: 0, avcMisses: 0, flushes: 0 };
  private current: Policy;
  private readonly avc = new Avc();
  private readonly rates: RateLimiter;
  private readonly log: (line: string) => void;

  /** `audit` defaults to a new AuditLog; options may be passed second when no log is shared. */
  constructor(policy: Policy, audit?: AuditLog | MacOptions, options: MacOptions = {}) {
    if (audit !== undefined && !(audit instanceof AuditLog)) {
      options = audit;
      audit = undefined;
    }
    this.audit = audit ?? new AuditLog();
    this.rates = new RateLimiter(options.now);
    this.log = options.log ?? ((line) => console.warn(line));
    this.current = Policy.allowAll(); // replaced just below; load() checks the argument
    this.load(policy);
    this.stats.flushes = 0; // the first load is not a flush anyone asked for
  }

  /** The policy in force. Assigning is the same as load(). */
  get policy(): Policy {
    return this.current;
  }

  set policy(p: Policy) {
    this.load(p);
  }

  /**
   * Replaces the policy and flushes the AVC and the rate buckets. Atomic: a Policy is
   * complete and immutable, so there is no moment with half a policy; a file that did
   * not parse never became a Policy, and the previous one stays in force.
   */
  load(policy: Policy): void {
    if (!(policy instanceof Policy)) throw new TypeError("Mac.load: expected a Policy (Policy.load(file), Policy.parse(text, name)...)");
    this.current = policy;
    this.avc.flush();
    this.rates.clear();
    this.stats.flushes++;
    if (policy.isAllowAll && !warnedAllowAll) {
      warnedAllowAll = true;
      this.log(`virtio-argo: warning: MAC ${policy.describe()}`);
    }
  }

  /** Assigns subject.sid (the interned label), so that checks index arrays instead of hashing strings. */
  bind(subject: Subject): void {
    subject.sid = internLabel(subject.label);
    this.avc.covers(subject.sid);
  }

  /** xsm_argo_enable(d): may d use Argo at all? */
  argoEnable(d: Subject): number {
    // Hot path: every hypercall asks this. (s | XEN_SID) < stride: both in the cache;
    // an entry > 0 and not rated is "allowed" (enable has no limits or rate).
    const s = d.sid;
    const avc = this.avc;
    if ((s | XEN_SID) < avc.stride && s >= 0) {
      const v = avc.entries[((s * avc.stride + XEN_SID) << 2) | AV_ENABLE];
      if (v > 0 && v < RATED) {
        this.stats.avcHits++;
        return 0;
      }
    }
    return this.check(AV_ENABLE, d, null, 0, false);
  }

  /** xsm_argo_register_single_source(owner, partner), plus the ring-size limit (-EINVAL). */
  registerSingleSource(owner: Subject, partner: Subject, ringLen: number): number {
    return this.check(AV_SINGLE, owner, partner, ringLen, false);
  }

  /** xsm_argo_register_any_source(owner): a wildcard ring, plus the ring-size limit (-EINVAL). */
  registerAnySource(owner: Subject, ringLen: number): number {
    return this.check(AV_ANY, owner, null, ringLen, false);
  }

  /**
   * xsm_argo_send(sender, receiver), plus the message-size limit (-EMSGSIZE) and the
   * rate limit (-EAGAIN; spends a token). `payloadLen` is the payload, headers excluded.
   */
  send(sender: Subject, receiver: Subject, payloadLen: number): number {
    const s = sender.sid;
    const t = receiver.sid;
    const avc = this.avc;
    // Hot path. (s | t) < stride: both sids bound and inside the cache (stride is a
    // power of two); a negative (unbound) sid yields an undefined load, which fails the
    // compare below and falls to the slow path, which binds it.
    if ((s | t) < avc.stride) {
      const v = avc.entries[(s * avc.stride + t) << 2]; // | AV_SEND, which is 0
      if (v > payloadLen && v < RATED) {
        this.stats.avcHits++;
        return 0;
      }
      if (v > RATED) return this.sendRated(sender, receiver, payloadLen, v);
    }
    return this.check(AV_SEND, sender, receiver, payloadLen, true);
  }

  /**
   * send() on a cached, allowed, rated decision `v`: within the size limit and with a
   * token this pair took at its last clock read left (RateLimiter: prepaid), no clock
   * read; anything else takes the slow path. Out of send() so that the unrated fast
   * path stays as small as it was for the JIT.
   */
  private sendRated(sender: Subject, receiver: Subject, payloadLen: number, v: number): number {
    if ((v ^ RATED) > payloadLen && this.rates.spendPrepaid(sender.domid * 0x10000 + receiver.domid, sender.sid * 0x10000 + receiver.sid)) {
      this.stats.avcHits++;
      return 0;
    }
    return this.check(AV_SEND, sender, receiver, payloadLen, true);
  }

  /** After send() returned -EAGAIN (rate limit): milliseconds until that pair's bucket holds a token. */
  rateRefillMs(): number {
    return this.rates.lastRefillMs;
  }

  /** Forgets the rate buckets of a destroyed domain (its domid may later name another domain). */
  forgetDomain(domid: number): void {
    this.rates.forget(domid);
  }

  /**
   * xsm_argo_send as a question only (notify's ring queries, revocation on reload):
   * the permission, without size or rate limits and without spending a token.
   */
  sendPermitted(sender: Subject, receiver: Subject): number {
    return this.check(AV_SEND, sender, receiver, 0, false);
  }

  /** The slow path of every hook: AVC lookup (or fill), limits, rate, audit. */
  private check(cls: number, src: Subject, tgt: Subject | null, amount: number, spendToken: boolean): number {
    const s = this.sidOf(src);
    const t = tgt ? this.sidOf(tgt) : XEN_SID;
    const avc = this.avc;
    const perm = PERM_OF_CLASS[cls];
    const tLabel = tgt ? tgt.label : XEN_LABEL;
    let v: number;
    let idx = -1;
    if (avc.covers(s > t ? s : t)) {
      idx = avc.index(s, t, cls);
      v = avc.entries[idx];
      if (v === 0) {
        this.stats.avcMisses++;
        v = this.compute(src.label, tLabel, perm, idx);
        avc.entries[idx] = v;
      } else this.stats.avcHits++;
    } else {
      this.stats.avcMisses++;
      v = this.compute(src.label, tLabel, perm, -1);
    }
    if (v === AVC_DENIED) {
      return this.deny(perm, src, tgt, -EACCES, this.current.denialReason(src.label, tLabel, perm));
    }
    const limit = (v & ~AVC_RATED) - 1;
    if (amount > limit) {
      const d = this.current.decide(src.label, tLabel, perm)!;
      const what = cls === AV_SEND ? "max_message_bytes" : "max_ring_bytes";
      const noun = cls === AV_SEND ? "message" : "ring";
      const rules = d.grants.map((g) => `${g.via} at ${g.origin.file}:${g.origin.line}`).join("; ");
      const pair = [...new Set(d.grants.map((g) => g.via))].join(",");
      return this.deny(perm, src, tgt, cls === AV_SEND ? -EMSGSIZE : -EINVAL, `${noun} of ${amount} B exceeds ${what} ${limit} (${rules})`, pair);
    }
    if (spendToken && v & AVC_RATED) {
      const rate = (idx >= 0 ? avc.rates.get(idx) : undefined) ?? this.current.decide(src.label, tLabel, perm)!.rate!;
      if (!this.rates.take(src.domid, tgt!.domid, rate, undefined, s * 0x10000 + t)) {
        const d = this.current.decide(src.label, tLabel, perm)!;
        const pair = [...new Set(d.grants.map((g) => g.via))].join(",");
        return this.deny(perm, src, tgt, -EAGAIN, `rate limit ${rate.messagesPerSecond}/s burst ${rate.burst} exceeded for d${src.domid} -> d${tgt!.domid}`, pair);
      }
    }
    return 0;
  }

  private compute(sLabel: string, tLabel: string, perm: ArgoPerm, idx: number): number {
    const p = this.current;
    if (!p.declares(sLabel) || (tLabel !== XEN_LABEL && !p.declares(tLabel))) return AVC_DENIED;
    const d = p.decide(sLabel, tLabel, perm);
    if (d?.rate && idx >= 0) this.avc.rates.set(idx, d.rate);
    return encodeDecision(d);
  }

  /** The subject's sid, binding it when it never was (or was bound to another label). */
  private sidOf(subject: Subject): number {
    if (subject.sid < 0 || sidLabel(subject.sid) !== subject.label) this.bind(subject);
    return subject.sid;
  }

  private deny(perm: ArgoPerm, src: Subject, tgt: Subject | null, errno: number, reason: string, pair?: string): number {
    const base = {
      time: Date.now(),
      perm,
      scontext: src.label,
      tcontext: tgt ? tgt.label : XEN_LABEL,
      tclass: "argo",
      srcDomid: src.domid,
      tgtDomid: tgt ? tgt.domid : DOMID_XEN,
      pair,
      errno,
      reason,
    };
    this.audit.record({ ...base, text: auditText(base) });
    return errno;
  }
}
