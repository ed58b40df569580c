// Hypercall fuzzer: two hostile domains issue random Argo ops with random (and
// plausible-looking) arguments while two honest domains exchange checked messages.
// Checked throughout:
//   - every hypercall returns an integer: >= 0 or a negative errno Xen defines; none throws;
//   - every honest message accepted by sendv arrives intact and in order (payload bytes are
//     a function of its sequence number), and honest sends fail only with -EAGAIN;
//   - canary regions (pages nothing may write) in all four domains stay unchanged;
//   - the honest payloads' secret never appears in a hostile domain's memory (no leak
//     across domains), and junk reaching an honest wildcard ring never claims to come
//     from an honest domain (no forged source).
// A hostile domain is also destroyed and re-created now and then (its id comes back
// round through domid reuse only after every other id). Odd seeds run under a pair policy
// (hostile -> honest sends size- and rate-limited, so denials, -EMSGSIZE and rate
// wakeups happen) that is reloaded now and then with a twin taking the hostile domains'
// send permission away (revocation mid-traffic); even seeds under allow-all, where a
// hostile domain may do anything the ABI lets it.
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import type { Domain } from "../../host/hypervisor/domain.ts";
import { Policy } from "../../host/mac/index.ts";
import { GuestArgo, type GuestRing } from "../../host/guest/argo-driver.ts";
import * as E from "../../host/abi/errno.ts";
import {
  DOMID_ANY, OP_NOTIFY, OP_REGISTER_RING, OP_SENDV, OP_UNREGISTER_RING, PAGE_SIZE, npagesRing,
} from "../../host/abi/argo.ts";
import { READ_EMPTY } from "../../host/abi/argo-reader.ts";
import { FuzzFailure, Prng } from "./prng.ts";

const MEM = 1 << 20;
/** Hostile layout: [0, SCRATCH_END) structs and data, canary pages, then ring pages. */
const SCRATCH_END = 512 << 10;
const CANARY_AT = 512 << 10;
const CANARY_LEN = 128 << 10;
const RINGS_AT = CANARY_AT + CANARY_LEN;
const HONEST_PORT = 100;
const WILD_PORT = 200;
const POLICY = (hostileSends: boolean): string => `version: 1
domains: [honest_t, hostile_t]
pairs:
  - frontend: honest_t
    backend: honest_t
    device: console
    allow: [enable, send, register_single_source, register_any_source]
  - frontend: hostile_t
    backend: honest_t
    device: console
    allow: [enable, ${hostileSends ? "send, " : ""}register_single_source]
    limits: { max_message_bytes: 2048, rate: { messages_per_second: 20000, burst: 16 } }
  - frontend: hostile_t
    backend: hostile_t
    device: console
    allow: [enable, send, register_single_source, register_any_source]
`;
const ERRNOS = new Set<number>(Object.values(E as Record<string, unknown>).filter((v): v is number => typeof v === "number"));

export interface HypercallStats {
  ops: number;
  hostileOps: number;
  byOp: Record<string, number>;
  byRc: Record<string, number>;
  honestSent: number;
  honestReceived: number;
  junkReceived: number;
  rebirths: number;
  reloads: number;
}

class Honest {
  readonly g: GuestArgo;
  readonly canaries: Array<[number, Uint8Array]> = [];
  ring!: GuestRing;
  wild: GuestRing | null = null;
  sendBuf = 0;
  recvBuf = 0;
  nextSend = 0;
  nextRecv = 0;
  waiting = false;

  constructor(readonly d: Domain, private readonly rng: Prng) {
    this.g = new GuestArgo(d);
  }

  canary(len: number, at = this.g.heap.alloc(len)): void {
    const u8 = new Uint8Array(this.d.memory.buffer, at, len);
    this.rng.fill(u8, 0, len);
    this.canaries.push([at, u8.slice()]);
  }

  /** Canaries inside a ring's own pages: the header's reserved bytes and the slack after its data. */
  ringCanaries(r: GuestRing): void {
    this.canary(56, r.ringGpa + 8);
    const end = r.ringGpa + 64 + r.len;
    const pageEnd = Math.ceil(end / PAGE_SIZE) * PAGE_SIZE;
    if (pageEnd > end) this.canary(pageEnd - end, end);
  }
}

/** The honest payload of message `seq` from `from`: header, the secret, then bytes derived from seq. */
function honestPayload(out: Uint8Array, at: number, seq: number, from: number, secret: Uint8Array): number {
  const len = 32 + ((Math.imul(seq + 1, 0x9e3779b1) >>> 0) % 1900);
  const dv = new DataView(out.buffer, out.byteOffset);
  dv.setUint32(at, seq, true);
  dv.setUint32(at + 4, len, true);
  dv.setUint32(at + 8, from, true);
  out.set(secret, at + 16);
  for (let i = 32; i < len; i++) out[at + i] = (seq * 31 + i * 7 + from) & 0xff;
  return len;
}

export function fuzzHypercalls(seed: number, ops: number, checkEvery = 5000): HypercallStats {
  const rng = new Prng(seed);
  const fail = (op: number, msg: string): never => {
    throw new FuzzFailure("hypercalls", seed, op, ops, msg);
  };
  const pairs = (seed & 1) === 1;
  const policies = [Policy.parse(POLICY(true), "fuzz-pairs.yaml"), Policy.parse(POLICY(false), "fuzz-pairs-revoked.yaml")];
  const hv = new Hypervisor({ policy: pairs ? policies[0] : Policy.allowAll() });
  const secret = new Uint8Array(16);
  rng.fill(secret, 0, 16);
  secret[0] = 0x53; // never all-zero: zeroed memory must not match it
  const secretBuf = Buffer.from(secret);

  const mkHonest = (name: string): Honest => new Honest(hv.createDomain({ name, label: "honest_t", memoryBytes: MEM }), rng);
  const a = mkHonest("honest-a");
  const b = mkHonest("honest-b");
  for (const [self, peer] of [[a, b], [b, a]] as const) {
    self.canary(16 << 10);
    const r = self.g.registerRing(HONEST_PORT, peer.d.domid, (16 << 10) - 512);
    if (typeof r === "number") fail(0, `honest register: ${r}`);
    self.ring = r as GuestRing;
    self.ringCanaries(self.ring);
    self.canary(8 << 10);
    if (self === b) {
      const w = self.g.registerRing(WILD_PORT, DOMID_ANY, 8192 - 256);
      if (typeof w === "number") fail(0, `wildcard register: ${w}`);
      self.wild = w as GuestRing;
      self.ringCanaries(self.wild);
      self.canary(8 << 10);
    }
    self.sendBuf = self.g.heap.alloc(4096);
    self.recvBuf = self.g.heap.alloc(4096);
    self.canary(16 << 10);
  }

  const hostiles: Domain[] = [];
  const hostileCanary = new Uint8Array(CANARY_LEN);
  rng.fill(hostileCanary, 0, CANARY_LEN);
  const everHostile = new Set<number>();
  const mkHostile = (name: string): Domain => {
    const d = hv.createDomain({ name, label: "hostile_t", memoryBytes: MEM });
    const u8 = new Uint8Array(d.memory.buffer);
    rng.fill(u8, 0, MEM);
    u8.set(hostileCanary, CANARY_AT);
    everHostile.add(d.domid);
    return d;
  };
  hostiles.push(mkHostile("hostile-1"), mkHostile("hostile-2"));

  const stats: HypercallStats = {
    ops: 0, hostileOps: 0, byOp: {}, byRc: {}, honestSent: 0, honestReceived: 0, junkReceived: 0, rebirths: 0, reloads: 0,
  };
  const count = (m: Record<string, number>, k: string): void => {
    m[k] = (m[k] ?? 0) + 1;
  };
  const checkRc = (op: number, what: string, rc: unknown): number => {
    if (typeof rc !== "number" || !Number.isInteger(rc)) fail(op, `${what} returned ${String(rc)}`);
    const n = rc as number;
    if (n < 0 && !ERRNOS.has(-n)) fail(op, `${what} returned unknown errno ${n}`);
    count(stats.byRc, n >= 0 ? "ok" : String(-n));
    return n;
  };

  const domids = (): number[] => [a.d.domid, b.d.domid, ...hostiles.map((h) => h.domid)];
  const pickDomid = (): number =>
    rng.chance(0.8) ? rng.pick(domids()) : rng.pick([DOMID_ANY, 0, 0x7ff0, 0xffff, rng.below(0x10000)]);
  const pickPort = (): number => (rng.chance(0.7) ? rng.pick([HONEST_PORT, WILD_PORT, 1, 2]) : rng.u32());
  const scratchAddr = (len: number): number => {
    const r = rng.below(20);
    if (r === 0) return MEM - rng.below(len + 1); // straddling or at the end of memory
    if (r === 1) return MEM + rng.below(1 << 20); // past it
    if (r === 2) return 0; // NULL
    const at = rng.below(SCRATCH_END - len - 64);
    return rng.chance(0.8) ? at & ~7 : at;
  };
  const ringGfn = (): number => {
    const r = rng.below(16);
    if (r === 0) return rng.below(SCRATCH_END / PAGE_SIZE); // a scratch page: its own, so allowed
    if (r === 1) return MEM / PAGE_SIZE + rng.below(1000); // past memory
    if (r === 2) return 2 ** 40 + rng.below(1000);
    return RINGS_AT / PAGE_SIZE + rng.below((MEM - RINGS_AT) / PAGE_SIZE);
  };

  // One op of a hostile domain; it writes only its scratch, its ring pages and structs there.
  const hostileOp = (op: number, h: Domain): void => {
    const dv = new DataView(h.memory.buffer);
    const u8 = new Uint8Array(h.memory.buffer);
    // It writes anywhere in its memory but the canary (where nothing may write): a struct
    // at the end of memory is written up to the end, so what the hypervisor reads of it is
    // what this domain chose (a gfn it did not write could name a canary page).
    const ok = (at: number, n: number): boolean => at >= 0 && at + n <= MEM && (at + n <= CANARY_AT || at >= CANARY_AT + CANARY_LEN);
    const put32 = (at: number, v: number): void => {
      if (ok(at, 4)) dv.setUint32(at, v >>> 0, true);
    };
    const put16 = (at: number, v: number): void => {
      if (ok(at, 2)) dv.setUint16(at, v & 0xffff, true);
    };
    const kind = rng.below(100);
    let rc: number;
    if (kind < 22) {
      count(stats.byOp, "register");
      const len = rng.chance(0.8) ? 16 * rng.int(3, 1200) : rng.u32();
      const reg = scratchAddr(12);
      put32(reg, pickPort());
      put16(reg + 4, pickDomid());
      put16(reg + 6, rng.chance(0.9) ? 0 : rng.u32());
      put32(reg + 8, len);
      const np = len <= 0x1000000 && len >= 48 ? npagesRing(len) : rng.below(5);
      const npage = rng.chance(0.85) ? np : rng.pick([0, np + 1, 4097, rng.below(5000)]);
      const list = scratchAddr(8 * Math.min(npage, 4096));
      for (let i = 0; i < Math.min(npage, 64); i++) {
        const gfn = ringGfn();
        put32(list + 8 * i, gfn % 0x100000000);
        put32(list + 8 * i + 4, Math.floor(gfn / 0x100000000));
      }
      const flags = rng.chance(0.8) ? rng.below(2) : rng.u32();
      rc = checkRc(op, "register", h.hypercall(OP_REGISTER_RING, reg, list, npage, flags));
    } else if (kind < 30) {
      count(stats.byOp, "unregister");
      const at = scratchAddr(8);
      put32(at, pickPort());
      put16(at + 4, pickDomid());
      put16(at + 6, rng.chance(0.9) ? 0 : rng.u32());
      const extra = rng.chance(0.9) ? 0 : rng.u32();
      rc = checkRc(op, "unregister", h.hypercall(OP_UNREGISTER_RING, at, extra, 0, 0));
    } else if (kind < 70) {
      count(stats.byOp, "sendv");
      const addr = scratchAddr(16);
      put32(addr, rng.u32());
      put16(addr + 4, rng.chance(0.8) ? DOMID_ANY : rng.chance(0.5) ? h.domid : pickDomid());
      put16(addr + 6, rng.chance(0.95) ? 0 : rng.u32());
      put32(addr + 8, pickPort());
      put16(addr + 12, pickDomid());
      put16(addr + 14, rng.chance(0.95) ? 0 : rng.u32());
      const niov = rng.chance(0.9) ? rng.below(9) : rng.below(20);
      const iovs = scratchAddr(16 * Math.min(niov, 8));
      for (let i = 0; i < Math.min(niov, 8); i++) {
        const at = iovs + 16 * i;
        // Any address may be read: the canary too, and past the end.
        const hnd = rng.chance(0.9) ? rng.below(MEM) : rng.pick([MEM - 1, MEM, 2 ** 32 + 5, rng.u32()]);
        put32(at, hnd % 0x100000000);
        put32(at + 4, Math.floor(hnd / 0x100000000));
        put32(at + 8, rng.chance(0.9) ? rng.below(3000) : rng.u32());
        put32(at + 12, rng.chance(0.95) ? 0 : rng.u32());
      }
      const type = rng.chance(0.9) ? rng.below(4) : rng.u32();
      rc = checkRc(op, "sendv", h.hypercall(OP_SENDV, addr, iovs, niov, type));
    } else if (kind < 85) {
      count(stats.byOp, "notify");
      if (rng.chance(0.2)) {
        rc = checkRc(op, "notify", h.hypercall(OP_NOTIFY, 0, 0, 0, 0));
      } else {
        const nent = rng.chance(0.9) ? rng.below(6) : rng.pick([256, 257, rng.u32()]);
        // Room for every entry the hypervisor may fill (up to 256): it writes flags back.
        const rd = scratchAddr(8 + 20 * Math.min(nent, 256));
        put32(rd, nent);
        put32(rd + 4, rng.chance(0.9) ? 0 : rng.u32());
        for (let i = 0; i < Math.min(nent, 8); i++) {
          const e = rd + 8 + 20 * i;
          put32(e, pickPort());
          put16(e + 4, pickDomid());
          put16(e + 6, rng.u32());
          put32(e + 8, rng.u32());
          put32(e + 12, rng.chance(0.7) ? rng.below(20000) : rng.u32());
          put32(e + 16, rng.u32());
        }
        rc = checkRc(op, "notify", h.hypercall(OP_NOTIFY, rd, rng.chance(0.95) ? 0 : 1, 0, 0));
      }
    } else if (kind < 92) {
      count(stats.byOp, "scribble");
      // Its own ring pages: rx_ptr, tx_ptr and data, anything at all.
      const at = RINGS_AT + rng.below(MEM - RINGS_AT - 8);
      dv.setUint32(at & ~3, rng.chance(0.5) ? rng.below(20000) & ~15 : rng.u32(), true);
      rc = 0;
    } else if (kind < 96) {
      count(stats.byOp, "recv");
      // The guest-side reader over a made-up ring description in its own memory.
      const list = scratchAddr(64);
      const meta = rng.below(SCRATCH_END - 64);
      const iov = rng.below(SCRATCH_END - 64);
      put32(iov, rng.below(SCRATCH_END - 4096));
      put32(iov + 4, rng.below(4096));
      for (let i = 0; i < 8; i++) put32(list + 8 * i, ringGfn()), put32(list + 8 * i + 4, 0);
      const r = h.engine.argoRecv(list, rng.chance(0.8) ? 16 * rng.int(3, 1500) : rng.u32(), meta, iov, 1, rng.below(64), rng.below(2));
      if (!Number.isInteger(r) || r < -5) fail(op, `argoRecv returned ${r}`);
      rc = 0;
    } else {
      count(stats.byOp, "other");
      // Unknown ops and out-of-range unsigned longs.
      const cmd = rng.pick([0, 5, 6, 0xffffffff, rng.u32()]);
      const args = [rng.u32(), rng.u32(), rng.chance(0.5) ? 2 ** 32 + rng.below(100) : rng.u32(), rng.chance(0.5) ? -1 : 0.5];
      rc = checkRc(op, "op", h.hypercall(cmd, args[0], args[1], args[2], args[3]));
      void u8;
    }
    void rc;
  };

  // Honest traffic: one send attempt each way and a drain of each ring.
  const honestStep = (op: number): void => {
    for (const [self, peer] of [[a, b], [b, a]] as const) {
      const u8 = new Uint8Array(self.d.memory.buffer);
      const len = honestPayload(u8, self.sendBuf, self.nextSend, self.d.domid, secret);
      const rc = checkRc(op, "honest sendv", self.g.send(peer.d.domid, HONEST_PORT, self.sendBuf, len));
      if (rc === len) {
        self.nextSend++;
        stats.honestSent++;
        self.waiting = false;
      } else if (rc === -E.EAGAIN) {
        self.waiting = true;
      } else {
        fail(op, `honest sendv d${self.d.domid} -> d${peer.d.domid} returned ${rc}`);
      }
    }
    for (const self of [a, b]) drain(op, self);
  };

  const expected = new Uint8Array(4096);
  const drain = (op: number, self: Honest): void => {
    const peer = self === a ? b : a;
    const u8 = new Uint8Array(self.d.memory.buffer);
    for (;;) {
      const n = self.g.read(self.ring, self.recvBuf, 4096);
      if (n === READ_EMPTY) break;
      if (n < 0) fail(op, `honest read on d${self.d.domid} returned ${n}`);
      const want = honestPayload(expected, 0, self.nextRecv, peer.d.domid, secret);
      if (n !== want || self.g.meta.srcDomid !== peer.d.domid) {
        fail(op, `d${self.d.domid} got ${n} bytes from d${self.g.meta.srcDomid}, wanted message ${self.nextRecv} (${want} bytes) from d${peer.d.domid}`);
      }
      if (Buffer.compare(Buffer.from(u8.buffer, self.recvBuf, n), Buffer.from(expected.buffer, 0, n)) !== 0) {
        fail(op, `honest message ${self.nextRecv} to d${self.d.domid} arrived corrupted`);
      }
      self.nextRecv++;
      stats.honestReceived++;
    }
    if (self.wild) {
      for (let k = 0; k < 64; k++) {
        const n = self.g.read(self.wild, self.recvBuf, 4096);
        if (n === READ_EMPTY) break;
        if (n < 0) fail(op, `wildcard read returned ${n}`);
        if (!everHostile.has(self.g.meta.srcDomid)) fail(op, `junk on the wildcard ring claims source d${self.g.meta.srcDomid}`);
        stats.junkReceived++;
      }
    }
    self.g.notify(); // wakes a sender waiting for space
  };

  // The hypervisor's tables (struct argo_domain) stay consistent: nothing refers to a
  // dead domain (its id may be handed out again) and each ring is where every table says.
  const checkTables = (op: number): void => {
    const live = new Map(hv.listDomains().map((d) => [d.domid, d]));
    for (const d of live.values()) {
      const st = hv.argoOf(d);
      if (!st) continue;
      if (st.rings.size > 128) fail(op, `d${d.domid} holds ${st.rings.size} rings`);
      for (const [key, ring] of st.rings) {
        if (ring.owner !== d || key !== ring.aport * 0x10000 + ring.partnerId) fail(op, `a ring in d${d.domid}'s table is filed wrongly`);
        if (ring.pending.length > 32) fail(op, `a ring of d${d.domid} has ${ring.pending.length} waiters`);
        const seen = new Set<number>();
        for (const p of ring.pending) {
          const w = live.get(p.domid);
          if (!w || seen.has(p.domid)) fail(op, `a ring of d${d.domid} waits on d${p.domid}, dead or twice`);
          seen.add(p.domid);
          if (ring.wildcard && !hv.argoOf(w)?.wildcardPending.has(ring)) fail(op, `d${p.domid} waits on a wildcard ring it does not list`);
        }
        if (!ring.wildcard) {
          const partner = live.get(ring.partnerId);
          if (!partner || !hv.argoOf(partner)?.sendInfo.has(ring)) fail(op, `a ring of d${d.domid} names d${ring.partnerId}, which does not list it`);
        }
      }
      for (const ring of st.sendInfo) {
        if (ring.partnerId !== d.domid || live.get(ring.owner.domid) !== ring.owner || hv.argoOf(ring.owner)?.rings.get(ring.aport * 0x10000 + ring.partnerId) !== ring) {
          fail(op, `d${d.domid}'s send list holds a ring that is gone`);
        }
      }
      for (const ring of st.wildcardPending) {
        if (!ring.wildcard || hv.argoOf(ring.owner)?.rings.get(ring.aport * 0x10000 + ring.partnerId) !== ring || !ring.pending.some((p) => p.domid === d.domid)) {
          fail(op, `d${d.domid}'s wildcard wait list holds a ring it does not wait on`);
        }
      }
    }
  };

  const check = (op: number): void => {
    checkTables(op);
    for (const x of [a, b]) {
      for (const [at, bytes] of x.canaries) {
        if (Buffer.compare(Buffer.from(x.d.memory.buffer, at, bytes.length), bytes) !== 0) {
          fail(op, `a canary of honest d${x.d.domid} at 0x${at.toString(16)} changed`);
        }
      }
    }
    for (const h of hostiles) {
      const mem = Buffer.from(h.memory.buffer);
      if (Buffer.compare(mem.subarray(CANARY_AT, CANARY_AT + CANARY_LEN), hostileCanary) !== 0) {
        fail(op, `the canary of hostile d${h.domid} changed`);
      }
      const at = mem.indexOf(secretBuf);
      if (at >= 0) fail(op, `honest bytes leaked into hostile d${h.domid} at 0x${at.toString(16)}`);
    }
  };

  for (let op = 0; op < ops; op++) {
    stats.ops++;
    if (rng.chance(0.2)) {
      honestStep(op);
    } else if (pairs && rng.chance(0.0002)) {
      // Reload: the twin policy revokes (or gives back) the hostile domains' sends.
      hv.loadPolicy(policies[++stats.reloads & 1]);
    } else if (rng.chance(0.0002)) {
      // Destroy and re-create a hostile domain: its rings and waits go with it.
      const k = rng.below(hostiles.length);
      hv.destroyDomain(hostiles[k].domid);
      hostiles[k] = mkHostile(`hostile-${k + 1}`);
      stats.rebirths++;
    } else {
      stats.hostileOps++;
      hostileOp(op, hostiles[rng.below(hostiles.length)]);
    }
    if (op % checkEvery === checkEvery - 1) check(op);
  }
  // Every honest message accepted has arrived.
  for (let i = 0; i < 4; i++) for (const x of [a, b]) drain(ops, x);
  check(ops);
  for (const [self, peer] of [[a, b], [b, a]] as const) {
    if (peer.nextRecv !== self.nextSend) fail(ops, `d${self.d.domid} sent ${self.nextSend} messages, d${peer.d.domid} received ${peer.nextRecv}`);
  }
  for (const d of hv.listDomains()) hv.destroyDomain(d.domid);
  return stats;
}
