// The learning switch of a driver domain: every virtio-net device one backend domain
// serves is a port on it (sDDF's virtualiser: it multiplexes and holds the policy; the
// device models only move frames between their queues and it).
//
// Forwarding (802.1D, without spanning tree: there is one switch and no loops):
// - group destinations (broadcast, multicast: I/G bit set) go to every other port;
// - a unicast destination in the address table goes to its port only (never back to the sender);
// - an unknown unicast destination goes to every other port that could own it: ports with
//   no address rule, or whose allowed list holds it. A port whose policy fixes its
//   addresses is never sent frames for addresses it cannot have, so a guest's receive
//   buffers are filled only with frames destined to it (its addresses, broadcast, multicast).
// Learning: a source address is learned for the port it came from, at most
// MAX_LEARNED_PER_PORT per port (the port's oldest is forgotten first), so a guest
// sending random source addresses cannot push other guests' entries out of the table.
// Anti-spoofing happens before learning: the port decides whether a source is allowed.
import { isGroup } from "./layout.ts";

/** Learned addresses one port may hold in the table. */
export const MAX_LEARNED_PER_PORT = 64;

/** What the switch needs from a port (NetModel implements it). */
export interface SwitchPort {
  readonly name: string;
  /** The policy's allowed source addresses for this port; null = any (no rule). */
  readonly allowedMacs: ReadonlySet<number> | null;
  /** Link up and serving: a port that is down gets nothing. */
  readonly up: boolean;
  /** Takes one frame (virtio-net header space at [0, hdrLen), frame after it) into a receive buffer, or counts a drop. */
  receive(buf: Uint8Array, frameLen: number): void;
  /** Sends the used-buffer notification for what receive() filled since the last call. */
  flush(): void;
}

interface Entry {
  port: SwitchPort;
  /** Claimed by the port's device (its config MAC): never re-learned by another port. */
  fixed: boolean;
}

export class NetSwitch {
  readonly name: string;
  readonly stats = { frames: 0, unicast: 0, flooded: 0, filtered: 0, learned: 0 };
  private readonly ports: SwitchPort[] = [];
  private readonly table = new Map<number, Entry>();
  /** Per port: its learned addresses, oldest first. */
  private readonly learnedBy = new Map<SwitchPort, number[]>();
  /** Ports that received frames in the batch being forwarded. */
  private readonly dirty = new Set<SwitchPort>();

  constructor(name = "switch") {
    this.name = name;
  }

  /** Adds a port; `fixedMac` is the address its device reports (claimed for it). False if another port holds that address. */
  addPort(port: SwitchPort, fixedMac: number): boolean {
    const e = this.table.get(fixedMac);
    if (e?.fixed && e.port !== port) return false;
    if (!this.ports.includes(port)) this.ports.push(port);
    this.learnedBy.set(port, []);
    this.table.set(fixedMac, { port, fixed: true });
    return true;
  }

  /** Removes a port and every address it held. */
  removePort(port: SwitchPort): void {
    const i = this.ports.indexOf(port);
    if (i >= 0) this.ports.splice(i, 1);
    for (const [mac, e] of this.table) if (e.port === port) this.table.delete(mac);
    this.learnedBy.delete(port);
    this.dirty.delete(port);
  }

  /** Is `mac` some port's device address? */
  claimed(mac: number): boolean {
    return this.table.get(mac)?.fixed === true;
  }

  /** Is `mac` claimed by a port other than `port` (its device's address)? */
  claimedByOther(mac: number, port: SwitchPort): boolean {
    const e = this.table.get(mac);
    return !!e && e.fixed && e.port !== port;
  }

  /** The port the table sends `mac` to, if any (for tests and the CLI). */
  lookup(mac: number): SwitchPort | undefined {
    return this.table.get(mac)?.port;
  }

  get portCount(): number {
    return this.ports.length;
  }

  /**
   * Forwards one frame from `from`, whose source the port already checked. `buf` holds
   * header space then the frame; receivers copy out of it before this returns.
   */
  forward(from: SwitchPort, src: number, dst: number, buf: Uint8Array, frameLen: number): void {
    this.stats.frames++;
    this.learn(from, src);
    if (isGroup(dst)) {
      this.stats.flooded++;
      for (const p of this.ports) if (p !== from && p.up) this.deliver(p, buf, frameLen);
      return;
    }
    const e = this.table.get(dst);
    if (e) {
      if (e.port === from || !e.port.up) {
        this.stats.filtered++; // the destination sits behind the sender's own port, or is down
        return;
      }
      this.stats.unicast++;
      this.deliver(e.port, buf, frameLen);
      return;
    }
    this.stats.flooded++;
    for (const p of this.ports) {
      if (p === from || !p.up) continue;
      if (p.allowedMacs && !p.allowedMacs.has(dst)) continue; // it can never own dst
      this.deliver(p, buf, frameLen);
    }
  }

  /** Ends a batch: one used-buffer notification per port that got frames. */
  flush(): void {
    if (this.dirty.size === 0) return;
    const ports = [...this.dirty];
    this.dirty.clear();
    for (const p of ports) p.flush();
  }

  private deliver(p: SwitchPort, buf: Uint8Array, frameLen: number): void {
    p.receive(buf, frameLen);
    this.dirty.add(p);
  }

  private learn(port: SwitchPort, src: number): void {
    const e = this.table.get(src);
    if (e?.port === port) return;
    if (e?.fixed) return; // another device's address: the port refused it before this
    const mine = this.learnedBy.get(port);
    if (!mine) return; // not (or no longer) a port
    if (e) {
      // The address moved (a guest's address changed hands): forget the old port's claim.
      const old = this.learnedBy.get(e.port);
      const i = old?.indexOf(src) ?? -1;
      if (old && i >= 0) old.splice(i, 1);
    }
    if (mine.length >= MAX_LEARNED_PER_PORT) this.table.delete(mine.shift()!);
    mine.push(src);
    this.table.set(src, { port, fixed: false });
    this.stats.learned++;
  }
}
