// The vsock hub of a driver domain: every virtio-vsock device one backend domain serves is
// a port on it (one guest CID each), and the VMM's own sockets live here as CID 2 (the
// host). It relays stream connections between guests and terminates the ones to the host.
//
// What it enforces, whatever the guests write:
// - the source CID of every packet is the one the toolstack assigned to the device (the
//   device model drops any other and audits it; see model.ts);
// - a connection request is checked against the requester's `allowed_ports` (destination
//   ports it may connect to); a refused one gets RST and an audit line;
// - packets must belong to a connection the hub saw open (else RST, as 5.10.6.6 asks for
//   packets without a socket), in the right state;
// - credit (5.10.6.3): every header carries the sender's buf_alloc and fwd_cnt; the hub
//   keeps each side's latest, and data beyond the receiver's credit resets the connection
//   (it is never dropped silently), so what waits here for a guest's receive buffers is
//   bounded by what that guest advertised, and by MAX_PENDING_BYTES per port on top.
import * as V from "./layout.ts";
import { VsockStream, VsockError } from "./stream.ts";

/** What the hub needs from a guest port (VsockModel implements it). */
export interface HubPort {
  readonly cid: number;
  readonly name: string;
  /** Destination ports this guest may connect to; null = any (no rule). */
  readonly allowedPorts: ReadonlySet<number> | null;
  /** A driver is serving the device. */
  readonly active: boolean;
  /** Queues one packet for the guest; false when its queue is full (nothing queued). */
  enqueue(hdr: Uint8Array, payload: Uint8Array | null): boolean;
  /** Fills posted receive buffers from the queue and notifies the driver. */
  deliver(): void;
  /** Records a device-level denial in the audit log. */
  deny(perm: string, detail: string): void;
  /** Tells the driver every connection is gone (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET). */
  transportReset(): void;
}

/** One end of a connection, as the hub tracks it. */
export interface Side {
  readonly cid: number;
  readonly port: number;
  /** The guest port, or null for the host. */
  readonly guest: HubPort | null;
  /** This side's receive buffer and bytes it has consumed, as it last advertised them. */
  bufAlloc: number;
  fwdCnt: number;
  /** Payload bytes this side sent on the connection (mod 2^32). */
  txCnt: number;
  /** SHUTDOWN flags this side sent. */
  shut: number;
}

export interface Connection {
  /** The side that sent REQUEST. */
  readonly a: Side;
  readonly b: Side;
  state: "connecting" | "established";
  /** The host end, when one side is the host. */
  stream: VsockStream | null;
  /** A host connect() waiting for RESPONSE. */
  waiter: { resolve(s: VsockStream): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> } | null;
}

/** Connections one guest port may hold at once (open or opening). */
export const MAX_CONNECTIONS_PER_PORT = 256;
/** Receive buffer the host end of each connection advertises. */
export const HOST_BUF_ALLOC = 256 << 10;
const FIRST_EPHEMERAL = 49152;

export class VsockHub {
  readonly name: string;
  readonly stats = { connects: 0, refused: 0, denied: 0, resets: 0, creditViolations: 0, queueFull: 0 };
  private readonly ports = new Map<number, HubPort>();
  private readonly conns = new Map<string, Connection>();
  private readonly perPort = new Map<HubPort, Set<Connection>>();
  private readonly listeners = new Map<number, (s: VsockStream) => void>();
  private readonly hostPorts = new Set<number>();
  private nextEphemeral = FIRST_EPHEMERAL;
  private readonly dirty = new Set<HubPort>();
  private readonly h: V.VsockHeader = V.newHeader();

  constructor(name = "vsock") {
    this.name = name;
  }

  // --- ports (guest devices) ------------------------------------------------------

  /** Adds a guest port; false if its CID is taken. */
  addPort(p: HubPort): boolean {
    if (p.cid < V.FIRST_GUEST_CID || this.ports.has(p.cid)) return false;
    this.ports.set(p.cid, p);
    this.perPort.set(p, new Set());
    return true;
  }

  /** The port's connections are reset (its driver reset, or it is being removed); peers get RST. */
  portReset(p: HubPort): void {
    for (const c of [...(this.perPort.get(p) ?? [])]) this.reset(c, p);
    this.dirty.delete(p);
    this.flush();
  }

  /** Removes a port: its connections are reset first. */
  removePort(p: HubPort): void {
    this.portReset(p);
    if (this.ports.get(p.cid) === p) this.ports.delete(p.cid);
    this.perPort.delete(p);
  }

  /**
   * The policy no longer allows this port's pair: every connection is reset on both ends
   * (the guest also gets TRANSPORT_RESET) and the CID leaves the hub.
   */
  revoke(p: HubPort): void {
    for (const c of [...(this.perPort.get(p) ?? [])]) this.reset(c, null);
    p.transportReset();
    this.flush();
    this.removePort(p);
  }

  /** After a reload changed `allowed_ports`: connections the port opened to a port now refused are reset. */
  recheck(p: HubPort): void {
    for (const c of [...(this.perPort.get(p) ?? [])]) {
      if (c.a.guest === p && p.allowedPorts && !p.allowedPorts.has(c.b.port)) this.reset(c, null);
    }
    this.flush();
  }

  connectionsOf(p: HubPort): number {
    return this.perPort.get(p)?.size ?? 0;
  }

  get connectionCount(): number {
    return this.conns.size / 2;
  }

  // --- the host (the VMM's sockets, CID 2) ----------------------------------------

  /**
   * Listens on host port `port`: guests connecting to (CID 2, port) are accepted and
   * handed over as streams. Returns the function that stops listening.
   */
  listen(port: number, onConnection: (s: VsockStream) => void): () => void {
    if (!Number.isInteger(port) || port < 0 || port >= V.VMADDR_ANY) throw new RangeError(`vsock port ${port} is out of range`);
    if (this.listeners.has(port)) throw new VsockError("EADDRINUSE", `host port ${port} is already listened on`);
    this.listeners.set(port, onConnection);
    this.hostPorts.add(port);
    return () => {
      if (this.listeners.get(port) !== onConnection) return;
      this.listeners.delete(port);
      this.hostPorts.delete(port);
    };
  }

  /** Connects from the host to a guest's port; rejects with ECONNREFUSED (RST), EHOSTUNREACH or ETIMEDOUT. */
  connect(cid: number, port: number, opts: { timeoutMs?: number } = {}): Promise<VsockStream> {
    const guest = this.ports.get(cid);
    if (!guest?.active) return Promise.reject(new VsockError("EHOSTUNREACH", `no guest with CID ${cid} on ${this.name}`));
    if (this.connectionsOf(guest) >= MAX_CONNECTIONS_PER_PORT) return Promise.reject(new VsockError("EAGAIN", `CID ${cid} has too many connections`));
    const local = this.ephemeral();
    const a: Side = { cid: V.VMADDR_CID_HOST, port: local, guest: null, bufAlloc: HOST_BUF_ALLOC, fwdCnt: 0, txCnt: 0, shut: 0 };
    const b: Side = { cid, port, guest, bufAlloc: 0, fwdCnt: 0, txCnt: 0, shut: 0 };
    const c = this.open(a, b);
    this.stats.connects++;
    return new Promise<VsockStream>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.waiter = null;
        this.reset(c, null);
        this.flush();
        reject(new VsockError("ETIMEDOUT", `CID ${cid} port ${port} did not answer`));
      }, opts.timeoutMs ?? 2000);
      c.waiter = { resolve, reject, timer };
      this.send(c, a, b, V.OP_REQUEST, 0, null);
      this.flush();
    });
  }

  // --- packets from guests (already validated by the device model) -----------------

  /** One packet from guest port `from`; `payload` only for RW (a copy the hub may keep). */
  fromGuest(from: HubPort, h: V.VsockHeader, payload: Uint8Array | null): void {
    const c = this.conns.get(key(h.srcCid, h.srcPort, h.dstCid, h.dstPort));
    if (!c) return this.noConnection(from, h);
    const me = c.a.guest === from && c.a.port === h.srcPort && c.a.cid === h.srcCid ? c.a : c.b;
    const other = me === c.a ? c.b : c.a;
    me.bufAlloc = h.bufAlloc;
    me.fwdCnt = h.fwdCnt;
    switch (h.op) {
      case V.OP_REQUEST:
        return this.reset(c, null); // a second REQUEST on an open connection: both ends start over
      case V.OP_RESPONSE:
        if (c.state !== "connecting" || me !== c.b) return this.reset(c, null);
        c.state = "established";
        if (other.guest) return this.send(c, me, other, V.OP_RESPONSE, 0, null);
        return this.hostConnected(c);
      case V.OP_RST:
        this.close(c);
        if (other.guest) this.send(c, me, other, V.OP_RST, 0, null);
        else this.failHost(c, c.state === "connecting" ? "ECONNREFUSED" : "ECONNRESET");
        return;
      case V.OP_SHUTDOWN:
        if (c.state !== "established") return this.reset(c, null);
        me.shut |= h.flags & V.SHUTDOWN_BOTH;
        if (other.guest) return this.send(c, me, other, V.OP_SHUTDOWN, h.flags & V.SHUTDOWN_BOTH, null);
        c.stream!.peerShutdown(h.flags);
        if ((me.shut & V.SHUTDOWN_BOTH) === V.SHUTDOWN_BOTH) {
          // The guest is closing: the host end answers RST, as Linux does, and forgets it.
          this.send(c, other, me, V.OP_RST, 0, null);
          this.close(c);
        }
        return;
      case V.OP_RW: {
        if (c.state !== "established" || me.shut & V.SHUTDOWN_SEND || other.shut & V.SHUTDOWN_RCV) return this.reset(c, null);
        const len = payload?.length ?? 0;
        // Credit: what `me` sent and `other` has not consumed, plus this, fits other's buffer.
        if (((me.txCnt - other.fwdCnt) >>> 0) + len > other.bufAlloc) {
          this.stats.creditViolations++;
          return this.reset(c, null);
        }
        me.txCnt = (me.txCnt + len) >>> 0;
        if (other.guest) return this.send(c, me, other, V.OP_RW, 0, payload);
        if (payload) c.stream!.data(payload);
        return;
      }
      case V.OP_CREDIT_UPDATE:
        if (other.guest) return this.send(c, me, other, V.OP_CREDIT_UPDATE, 0, null);
        c.stream?.creditChanged();
        return;
      case V.OP_CREDIT_REQUEST:
        if (other.guest) return this.send(c, me, other, V.OP_CREDIT_REQUEST, 0, null);
        return this.send(c, other, me, V.OP_CREDIT_UPDATE, 0, null);
    }
  }

  /** A packet for a tuple with no connection: only REQUEST opens one. */
  private noConnection(from: HubPort, h: V.VsockHeader): void {
    if (h.op !== V.OP_REQUEST) {
      if (h.op !== V.OP_RST) this.refuse(from, h);
      return;
    }
    if (from.allowedPorts && !from.allowedPorts.has(h.dstPort)) {
      this.stats.denied++;
      from.deny("vsock_connect", `${from.name}: connection from CID ${h.srcCid} port ${h.srcPort} to CID ${h.dstCid} port ${h.dstPort} refused: port not in allowed_ports [${[...from.allowedPorts].join(" ")}]`);
      return this.refuse(from, h);
    }
    if (this.connectionsOf(from) >= MAX_CONNECTIONS_PER_PORT) return this.refuse(from, h);
    const a: Side = { cid: h.srcCid, port: h.srcPort, guest: from, bufAlloc: h.bufAlloc, fwdCnt: h.fwdCnt, txCnt: 0, shut: 0 };
    if (h.dstCid === V.VMADDR_CID_HOST) {
      const onConnection = this.listeners.get(h.dstPort);
      if (!onConnection) return this.refuse(from, h);
      const b: Side = { cid: V.VMADDR_CID_HOST, port: h.dstPort, guest: null, bufAlloc: HOST_BUF_ALLOC, fwdCnt: 0, txCnt: 0, shut: 0 };
      const c = this.open(a, b);
      c.state = "established";
      c.stream = new VsockStream(this, c, b, a);
      this.stats.connects++;
      this.send(c, b, a, V.OP_RESPONSE, 0, null);
      onConnection(c.stream);
      return;
    }
    const dst = this.ports.get(h.dstCid);
    if (!dst?.active || this.connectionsOf(dst) >= MAX_CONNECTIONS_PER_PORT) return this.refuse(from, h);
    const b: Side = { cid: dst.cid, port: h.dstPort, guest: dst, bufAlloc: 0, fwdCnt: 0, txCnt: 0, shut: 0 };
    const c = this.open(a, b);
    this.stats.connects++;
    this.send(c, a, b, V.OP_REQUEST, 0, null);
  }

  /** Delivers what was queued for guests since the last call. */
  flush(): void {
    while (this.dirty.size) {
      const ports = [...this.dirty];
      this.dirty.clear();
      for (const p of ports) p.deliver();
    }
  }

  // --- used by VsockStream (the host end) -----------------------------------------

  /** @internal the host end sends `op` on `c`. */
  hostSend(c: Connection, op: number, flags: number, payload: Uint8Array | null): boolean {
    if (!this.isOpen(c)) return false;
    const host = c.a.guest ? c.b : c.a;
    const guest = host === c.a ? c.b : c.a;
    if (op === V.OP_RW) host.txCnt = (host.txCnt + (payload?.length ?? 0)) >>> 0;
    host.shut |= op === V.OP_SHUTDOWN ? flags : 0;
    this.send(c, host, guest, op, flags, payload);
    this.flush();
    return this.isOpen(c);
  }

  /** @internal the host end closes: RST to the guest, the connection is forgotten. */
  hostReset(c: Connection): void {
    if (!this.isOpen(c)) return;
    const host = c.a.guest ? c.b : c.a;
    const guest = host === c.a ? c.b : c.a;
    this.send(c, host, guest, V.OP_RST, 0, null);
    this.close(c);
    this.flush();
  }

  /** @internal */
  isOpen(c: Connection): boolean {
    return this.conns.get(key(c.a.cid, c.a.port, c.b.cid, c.b.port)) === c;
  }

  // --- internals --------------------------------------------------------------------

  private open(a: Side, b: Side): Connection {
    const c: Connection = { a, b, state: "connecting", stream: null, waiter: null };
    this.conns.set(key(a.cid, a.port, b.cid, b.port), c);
    this.conns.set(key(b.cid, b.port, a.cid, a.port), c);
    for (const s of [a, b]) if (s.guest) this.perPort.get(s.guest)?.add(c);
    if (!a.guest) this.hostPorts.add(a.port);
    return c;
  }

  private close(c: Connection): void {
    if (!this.isOpen(c)) return;
    this.conns.delete(key(c.a.cid, c.a.port, c.b.cid, c.b.port));
    this.conns.delete(key(c.b.cid, c.b.port, c.a.cid, c.a.port));
    for (const s of [c.a, c.b]) if (s.guest) this.perPort.get(s.guest)?.delete(c);
    if (!c.a.guest && !this.listeners.has(c.a.port)) this.hostPorts.delete(c.a.port);
  }

  /** Ends `c` with RST to each guest end (except `skip`, which is going away) and an error for a host end. */
  private reset(c: Connection, skip: HubPort | null): void {
    if (!this.isOpen(c)) return;
    this.stats.resets++;
    this.close(c);
    if (c.a.guest && c.a.guest !== skip) this.send(c, c.b, c.a, V.OP_RST, 0, null);
    if (c.b.guest && c.b.guest !== skip) this.send(c, c.a, c.b, V.OP_RST, 0, null);
    if (!c.a.guest || !c.b.guest) this.failHost(c, c.state === "connecting" ? "ECONNREFUSED" : "ECONNRESET");
  }

  private hostConnected(c: Connection): void {
    const host = c.a;
    c.stream = new VsockStream(this, c, host, c.b);
    const w = c.waiter;
    c.waiter = null;
    if (w) {
      clearTimeout(w.timer);
      w.resolve(c.stream);
    }
  }

  private failHost(c: Connection, code: "ECONNREFUSED" | "ECONNRESET"): void {
    const w = c.waiter;
    c.waiter = null;
    if (w) {
      clearTimeout(w.timer);
      this.stats.refused++;
      w.reject(new VsockError(code, `CID ${c.b.cid} port ${c.b.port} refused the connection`));
    }
    c.stream?.fail(new VsockError(code, `connection to CID ${c.a.guest ? c.a.cid : c.b.cid} reset`));
  }

  /** Queues a packet from `from` to guest `to` with from's credit; a full queue resets the connection (data is never dropped). */
  private send(c: Connection, from: Side, to: Side, op: number, flags: number, payload: Uint8Array | null): void {
    if (!to.guest) return;
    const h = this.h;
    h.srcCid = from.cid;
    h.srcPort = from.port;
    h.dstCid = to.cid;
    h.dstPort = to.port;
    h.len = payload?.length ?? 0;
    h.type = V.VIRTIO_VSOCK_TYPE_STREAM;
    h.op = op;
    h.flags = flags;
    h.bufAlloc = from.bufAlloc;
    h.fwdCnt = from.fwdCnt;
    if (!to.guest.enqueue(V.headerBytes(h), payload)) {
      this.stats.queueFull++;
      if (op !== V.OP_RST) this.reset(c, to.guest);
      return;
    }
    this.dirty.add(to.guest);
  }

  /** RST back to the sender of `h`, from the address it tried to reach. */
  refuse(to: HubPort, h: V.VsockHeader): void {
    this.stats.refused++;
    const r = this.h;
    const { srcCid, srcPort, dstCid, dstPort } = h;
    r.srcCid = Number.isNaN(dstCid) ? 0 : dstCid;
    r.srcPort = dstPort;
    r.dstCid = srcCid;
    r.dstPort = srcPort;
    r.len = 0;
    r.type = V.VIRTIO_VSOCK_TYPE_STREAM;
    r.op = V.OP_RST;
    r.flags = 0;
    r.bufAlloc = 0;
    r.fwdCnt = 0;
    if (to.enqueue(V.headerBytes(r), null)) this.dirty.add(to);
    else this.stats.queueFull++;
  }

  private ephemeral(): number {
    for (let i = 0; i < 0x10000; i++) {
      const p = this.nextEphemeral;
      this.nextEphemeral = p >= 0xfffffffe ? FIRST_EPHEMERAL : p + 1;
      if (!this.hostPorts.has(p)) {
        this.hostPorts.add(p);
        return p;
      }
    }
    throw new VsockError("EADDRINUSE", "no free host port");
  }
}

function key(cidA: number, portA: number, cidB: number, portB: number): string {
  return `${cidA}:${portA}>${cidB}:${portB}`;
}
