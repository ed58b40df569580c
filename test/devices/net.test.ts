// virtio-net through the backend domain's learning switch, over every transport: switching,
// anti-spoofing under allowed_macs (audited), link status, receive-buffer exhaustion,
// hostile frame sizes and headers, checksum offload, and a reload removing a pair.
import { describe, expect, it } from "vitest";
import { NetDriver, NetModel } from "../../host/devices/index.ts";
import * as N from "../../host/devices/net/layout.ts";
import { MAX_LEARNED_PER_PORT } from "../../host/devices/net/switch.ts";
import { MAC1, MAC2, MAC2B, POLICY, RawDriver, TRANSPORTS, boot, drive, policyWithout, quiet } from "./helpers.ts";
import { settle } from "../transport/helpers.ts";
import { Policy } from "../../host/mac/index.ts";

const BROADCAST = "ff:ff:ff:ff:ff:ff";

/** An Ethernet frame: dst, src, ethertype 0x88b5 (local experimental), then `len` bytes of `fill` (and a counter). */
function frame(dst: string, src: string, len: number, fill = 0x41, seq = 0): Uint8Array {
  const f = new Uint8Array(N.ETH_HLEN + len).fill(fill);
  N.writeMac(f, 0, N.macToNumber(dst));
  N.writeMac(f, 6, N.macToNumber(src));
  f[12] = 0x88;
  f[13] = 0xb5;
  if (len >= 4) new DataView(f.buffer).setUint32(N.ETH_HLEN, seq, true);
  return f;
}

async function netWorld(transport: (typeof TRANSPORTS)[number], guests = [1, 2, 3]) {
  const w = boot(transport, guests.map((g) => [g, "net"] as [number, "net"]));
  const drivers: NetDriver[] = [];
  const got: Uint8Array[][] = [];
  for (const g of guests) {
    const d = new NetDriver(w.dev(g, "net"), { queueSize: 64 });
    await drive(d.init());
    const list: Uint8Array[] = [];
    d.onFrame((f) => list.push(f));
    drivers[g] = d;
    got[g] = list;
  }
  return { ...w, drivers, got, port: (g: number) => w.model<NetModel>(g, "net") };
}

describe.each(TRANSPORTS)("net over %s", (transport) => {
  it("config: MAC is the first allowed address, or an assigned one without the rule; link up; MTU 1500", async () => {
    const w = await netWorld(transport);
    expect(w.drivers[1].mac).toBe(MAC1);
    expect(w.drivers[2].mac).toBe(MAC2);
    expect(w.drivers[3].mac).toMatch(/^02:56:41:[0-9a-f]{2}:[0-9a-f]{2}:00$/); // toolstack-assigned, locally administered
    for (const g of [1, 2, 3]) {
      expect(w.drivers[g].linkUp).toBe(true);
      expect(w.drivers[g].mtu).toBe(1500);
    }
  });

  it("switching: broadcast flooded to every other port, unicast only to the static owner, bytes intact", async () => {
    const w = await netWorld(transport);
    const b = frame(BROADCAST, MAC1, 100, 0x11);
    expect(await drive(w.drivers[1].send(b))).toBe(true);
    await settle(() => w.got[2].length === 1 && w.got[3].length === 1);
    expect(w.got[2][0]).toEqual(b);
    expect(w.got[3][0]).toEqual(b);
    expect(w.got[1]).toHaveLength(0); // never back to the sender
    const u = frame(MAC2, MAC1, 1500, 0x22, 7); // g2's device address, a full-MTU frame
    expect(await drive(w.drivers[1].send(u))).toBe(true);
    await settle(() => w.got[2].length === 2);
    await quiet();
    expect(w.got[2][1]).toEqual(u);
    expect(w.got[3]).toHaveLength(1); // g3 saw the broadcast only
    // g2's second allowed address is not in the table until g2 uses it: flooded to the ports
    // that may own it (g2 by its list, g3 having no rule), then learned and unicast.
    const v = frame(MAC2B, MAC1, 64, 0x33);
    await drive(w.drivers[1].send(v));
    await settle(() => w.got[2].length === 3 && w.got[3].length === 2);
    await drive(w.drivers[2].send(frame(MAC1, MAC2B, 64)));
    await settle(() => w.got[1].length === 1);
    await drive(w.drivers[1].send(v));
    await settle(() => w.got[2].length === 4);
    await quiet();
    expect(w.got[3]).toHaveLength(2);
    expect(w.port(1).stats.txFrames).toBe(4);
    expect(w.port(2).stats.rxFrames).toBe(4);
    expect(w.port(3).stats.rxFrames).toBe(2);
  });

  it("learning: unknown unicast goes only to ports that could own it, and once learned, to its port alone", async () => {
    const w = await netWorld(transport);
    const x = "02:00:00:00:00:99"; // no port's device address; g3 has no address rule, so it may own it
    await drive(w.drivers[1].send(frame(x, MAC1, 60, 1)));
    await settle(() => w.got[3].length === 1);
    await quiet();
    expect(w.got[2]).toHaveLength(0); // g2's allowed_macs cannot hold x: not flooded there
    const sw = w.ts.fabric.netSwitch(w.be);
    const floodedBefore = sw.stats.flooded;
    // g3 answers from x: the switch learns x on g3's port.
    await drive(w.drivers[3].send(frame(MAC1, x, 60, 2)));
    await settle(() => w.got[1].length === 1);
    expect(sw.lookup(N.macToNumber(x))).toBe(w.port(3));
    await drive(w.drivers[1].send(frame(x, MAC1, 60, 3)));
    await settle(() => w.got[3].length === 2);
    expect(sw.stats.flooded).toBe(floodedBefore);
    expect(sw.stats.unicast).toBeGreaterThanOrEqual(2);
    // A guest sending from random addresses holds at most MAX_LEARNED_PER_PORT entries.
    for (let i = 0; i < MAX_LEARNED_PER_PORT + 10; i++) await drive(w.drivers[3].send(frame(BROADCAST, `02:00:00:00:10:${i.toString(16).padStart(2, "0")}`, 20)));
    expect(sw.lookup(N.macToNumber("02:00:00:00:10:00"))).toBeUndefined(); // the oldest went first
    expect(sw.lookup(N.macToNumber(MAC1))).toBe(w.port(1)); // other ports' addresses untouched
  });

  it("anti-spoofing: a source address outside allowed_macs is dropped and audited; another device's address too", async () => {
    const w = await netWorld(transport);
    const denials: string[] = [];
    w.hv.audit.onDenial((e) => denials.push(e.text));
    await drive(w.drivers[1].send(frame(BROADCAST, "52:54:00:66:66:66", 60)));
    await drive(w.drivers[1].send(frame(BROADCAST, MAC2, 60))); // g2's address
    await quiet();
    expect(w.got[2]).toHaveLength(0);
    expect(w.got[3]).toHaveLength(0);
    expect(w.port(1).stats.spoofed).toBe(2);
    expect(w.port(1).stats.txFrames).toBe(0);
    expect(denials).toHaveLength(2);
    expect(denials[0]).toMatch(/^avc: denied \{ net_src_mac \} for scontext=guest_t tcontext=backend_t tclass=net src=1 tgt=4 pair=guest_t\/backend_t\/net errno=-EACCES reason=".*52:54:00:66:66:66.*not in allowed_macs \[52:54:00:00:00:01\]/);
    // The switch did not learn the spoofed addresses.
    expect(w.ts.fabric.netSwitch(w.be).lookup(N.macToNumber("52:54:00:66:66:66"))).toBeUndefined();
    expect(w.ts.fabric.netSwitch(w.be).lookup(N.macToNumber(MAC2))).toBe(w.port(2));
  });

  it("link status: down and up raise the config interrupt; frames sent while down are dropped and counted", async () => {
    const w = await netWorld(transport, [1, 2]);
    const seen: boolean[] = [];
    w.drivers[1].onLinkChange((up) => seen.push(up));
    w.port(1).setLink(false);
    await settle(() => seen.length === 1);
    expect(seen).toEqual([false]);
    expect(w.drivers[1].linkUp).toBe(false);
    await drive(w.drivers[1].send(frame(MAC2, MAC1, 60)));
    await drive(w.drivers[2].send(frame(MAC1, MAC2, 60))); // to a port whose link is down
    await quiet();
    expect(w.got[2]).toHaveLength(0);
    expect(w.got[1]).toHaveLength(0);
    expect(w.port(1).stats.linkDown).toBe(1);
    w.port(1).setLink(true);
    await settle(() => seen.length === 2);
    expect(seen).toEqual([false, true]);
    await drive(w.drivers[1].send(frame(MAC2, MAC1, 60)));
    await settle(() => w.got[2].length === 1);
    expect(w.got[2]).toHaveLength(1);
  });

  it("receive-buffer exhaustion: frames beyond the posted buffers are dropped and counted; filled buffers are never overwritten", async () => {
    const w = boot(transport, [[1, "net"], [2, "net"]]);
    const tx = new NetDriver(w.dev(1, "net"), { queueSize: 64 });
    await drive(tx.init());
    const rx = await drive(new RawDriver(w.dev(2, "net"), N.RX_BUFFER_SIZE).init(2));
    rx.post(4);
    await quiet();
    const frames = Array.from({ length: 12 }, (_, i) => frame(MAC2, MAC1, 200 + i, 0x30 + i, i));
    for (const f of frames) expect(await drive(tx.send(f))).toBe(true);
    await settle(() => rx.rxDone.length === 4);
    await quiet();
    const model = w.model<NetModel>(2, "net");
    expect(rx.rxDone).toHaveLength(4);
    expect(model.stats.rxFrames).toBe(4);
    expect(model.stats.rxNoBuffer).toBe(8);
    for (let i = 0; i < 4; i++) {
      const c = rx.rxDone[i];
      expect(c.written).toBe(N.NET_HDR_SIZE + frames[i].length);
      expect(c.bytes[N.HDR_NUM_BUFFERS]).toBe(1);
      expect(c.bytes.subarray(N.NET_HDR_SIZE, c.written)).toEqual(frames[i]); // the first four, intact
      expect(c.bytes.subarray(c.written).every((b) => b === 0xee)).toBe(true); // nothing past the frame
    }
    rx.post(2);
    await quiet();
    await drive(tx.send(frames[11]));
    await settle(() => rx.rxDone.length === 5);
    expect(rx.rxDone[4].bytes.subarray(N.NET_HDR_SIZE, rx.rxDone[4].written)).toEqual(frames[11]);
  });

  it("hostile transmit chains: undersized, oversized, GSO and unknown header flags are rejected and counted; the chain still completes", async () => {
    const w = await netWorld(transport, [1, 2]);
    const d = w.drivers[1];
    const hdr = () => new Uint8Array(N.NET_HDR_SIZE);
    expect(await drive(d.sendRaw(hdr(), frame(MAC2, MAC1, 0).subarray(0, 13)))).toBe(true); // 13 B: not even an Ethernet header
    expect(await drive(d.sendRaw(new Uint8Array(4), new Uint8Array(0)))).toBe(true); // shorter than the virtio-net header
    expect(await drive(d.sendRaw(hdr(), frame(MAC2, MAC1, N.MAX_FRAME - N.ETH_HLEN + 1)))).toBe(true); // 1519 B
    expect(await drive(d.sendRaw(hdr(), frame(MAC2, MAC1, 65536)))).toBe(true); // a 64 KiB "frame"
    const gso = hdr();
    gso[N.HDR_GSO_TYPE] = 1; // VIRTIO_NET_HDR_GSO_TCPV4: not offered
    expect(await drive(d.sendRaw(gso, frame(MAC2, MAC1, 60)))).toBe(true);
    const flags = hdr();
    flags[N.HDR_FLAGS] = 2; // DATA_VALID is receive-only
    expect(await drive(d.sendRaw(flags, frame(MAC2, MAC1, 60)))).toBe(true);
    const csum = hdr();
    csum[N.HDR_FLAGS] = N.VIRTIO_NET_HDR_F_NEEDS_CSUM;
    csum[N.HDR_CSUM_START] = 60; // csum_start + csum_offset + 2 beyond a 74-byte frame
    csum[N.HDR_CSUM_OFFSET] = 20;
    expect(await drive(d.sendRaw(csum, frame(MAC2, MAC1, 60)))).toBe(true);
    await quiet();
    const st = w.port(1).stats;
    expect(st.undersized).toBe(2);
    expect(st.oversized).toBe(2);
    expect(st.badHeader).toBe(3);
    expect(st.txFrames).toBe(0);
    expect(w.got[2]).toHaveLength(0);
    // The largest legal frame passes.
    const max = frame(MAC2, MAC1, N.MAX_FRAME - N.ETH_HLEN);
    expect(await drive(d.send(max))).toBe(true);
    await settle(() => w.got[2].length === 1);
    expect(w.got[2][0]).toEqual(max);
  });

  it("any layout (1.2 2.7.4.1): header and frame split over several transmit descriptors, as Linux sends them", async () => {
    const w = boot(transport, [[1, "net"], [2, "net"]]);
    const sender = await drive(new RawDriver(w.dev(1, "net"), 64).init(2));
    const rx = new NetDriver(w.dev(2, "net"), { queueSize: 16 });
    await drive(rx.init());
    const got: Uint8Array[] = [];
    rx.onFrame((f) => got.push(f));
    const f = frame(MAC2, MAC1, 1000, 0x77, 42);
    const hdr = new Uint8Array(N.NET_HDR_SIZE);
    sender.send(hdr.subarray(0, 5), hdr.subarray(5), f.subarray(0, 14), f.subarray(14, 500), f.subarray(500));
    await settle(() => got.length === 1);
    expect(got[0]).toEqual(f);
  });

  it("checksum offload: a partial UDP checksum (NEEDS_CSUM) arrives completed", async () => {
    const w = await netWorld(transport, [1, 2]);
    expect(w.drivers[1].features & N.VIRTIO_NET_F_CSUM).toBe(N.VIRTIO_NET_F_CSUM);
    // IPv4 (20 B) + UDP (8 B) + 101 B of data, 10.0.0.1 -> 10.0.0.2.
    const data = Uint8Array.from({ length: 101 }, (_, i) => (i * 37) & 0xff);
    const f = frame(MAC2, MAC1, 20 + 8 + data.length);
    f[12] = 0x08; f[13] = 0x00;
    const ip = N.ETH_HLEN;
    f.set([0x45, 0, 0, 20 + 8 + data.length, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], ip);
    const udp = ip + 20;
    const udpLen = 8 + data.length;
    f.set([0x12, 0x34, 0x56, 0x78, udpLen >> 8, udpLen & 0xff, 0, 0], udp);
    f.set(data, udp + 8);
    // The driver leaves the pseudo-header sum (not complemented) in the checksum field, as Linux does.
    const pseudo = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + udpLen;
    const folded = (pseudo & 0xffff) + (pseudo >>> 16);
    f[udp + 6] = folded >> 8;
    f[udp + 7] = folded & 0xff;
    expect(await drive(w.drivers[1].send(f, { start: udp, offset: 6 }))).toBe(true);
    await settle(() => w.got[2].length === 1);
    const r = w.got[2][0];
    expect(r[udp + 6] | r[udp + 7]).not.toBe(0);
    // Verify the way a receiver does: pseudo-header + segment sums to 0xFFFF.
    let sum = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + udpLen;
    for (let i = udp; i < r.length; i += 2) sum += (r[i] << 8) | (i + 1 < r.length ? r[i + 1] : 0);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect(sum).toBe(0xffff);
    expect(r.subarray(udp + 8)).toEqual(data);
  });

  it("the pair's rate limit applies per frame at the switch: frames over it are dropped and counted", async () => {
    const limited = POLICY.replace(`rules: { allowed_macs: ["${MAC1}"] }`, `limits: { rate: { messages_per_second: 1, burst: 3 } }, rules: { allowed_macs: ["${MAC1}"] }`);
    expect(limited).not.toBe(POLICY);
    const w = boot(transport, [[1, "net"], [2, "net"]], limited);
    const d1 = new NetDriver(w.dev(1, "net"), { queueSize: 16 });
    const d2 = new NetDriver(w.dev(2, "net"), { queueSize: 16 });
    await drive(d1.init());
    await drive(d2.init());
    const got: Uint8Array[] = [];
    d2.onFrame((f) => got.push(f));
    for (let i = 0; i < 6; i++) await drive(d1.send(frame(MAC2, MAC1, 60, 0, i)));
    await settle(() => got.length === 3);
    await quiet();
    expect(got).toHaveLength(3);
    expect(w.model<NetModel>(1, "net").stats.rateLimited).toBe(3);
  });

  it("a reload that changes allowed_macs applies to the next frame", async () => {
    const w = await netWorld(transport, [1, 2]);
    await drive(w.drivers[1].send(frame(MAC2, MAC1, 60)));
    await settle(() => w.got[2].length === 1);
    const moved = POLICY.replace(`allowed_macs: ["${MAC1}"]`, `allowed_macs: ["52:54:00:00:00:11"]`);
    expect(moved).not.toBe(POLICY);
    w.hv.loadPolicy(Policy.parse(moved, "moved.yaml"));
    await drive(w.drivers[1].send(frame(MAC2, MAC1, 60))); // its device address, no longer allowed
    await drive(w.drivers[1].send(frame(MAC2, "52:54:00:00:00:11", 60)));
    await settle(() => w.got[2].length === 2);
    await quiet();
    expect(w.got[2]).toHaveLength(2);
    expect(N.numberToMac(N.readMac(w.got[2][1], 6))).toBe("52:54:00:00:00:11");
    expect(w.port(1).stats.spoofed).toBe(1);
    expect(w.hv.audit.entries().filter((e) => e.perm === "net_src_mac")).toHaveLength(1);
  });

  it("a reload that removes guest2's net pair takes its link down for good; frames to it are not delivered", async () => {
    const w = await netWorld(transport, [1, 2]);
    const seen: boolean[] = [];
    w.drivers[2].onLinkChange((up) => seen.push(up));
    w.hv.loadPolicy(policyWithout("guest2_t", "net"));
    await settle(() => seen.length === 1 || w.dev(2, "net").gone);
    expect(w.port(2).revoked).toMatch(/no longer has guest2_t\/backend_t\/net/);
    await drive(w.drivers[1].send(frame(MAC2, MAC1, 60)));
    await drive(w.drivers[1].send(frame(BROADCAST, MAC1, 60)));
    await quiet();
    expect(w.got[2]).toHaveLength(0);
    w.port(2).setLink(true);
    expect(w.port(2).link).toBe(false);
    // guest_t's pair stays, with its rules.
    expect(w.port(1).revoked).toBeNull();
    expect(w.port(1).stats.txFrames).toBe(2);
  });
});
