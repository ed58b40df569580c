// Hostile drivers, fuzzed (fast-check, seeded: a failure prints the seed and the path to
// replay it with { seed, path }): random transmit chains against the net and vsock device
// models. Every chain is accounted for by exactly one counter, nothing throws out of a
// model, nothing reaches another guest that its policy did not allow, and the hub's state
// stays bounded.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { NetDriver, type NetModel, type VsockModel } from "../../host/devices/index.ts";
import * as N from "../../host/devices/net/layout.ts";
import * as V from "../../host/devices/vsock/layout.ts";
import { MAX_CONNECTIONS_PER_PORT } from "../../host/devices/vsock/hub.ts";
import { MAC1, MAC2, RawDriver, boot, drive, quiet } from "./helpers.ts";
import { settle } from "../transport/helpers.ts";

const netSum = (s: NetModel["stats"]) => s.txFrames + s.spoofed + s.oversized + s.undersized + s.badHeader + s.badSource + s.rateLimited + s.linkDown;
const vsockSum = (s: VsockModel["stats"]) => s.txPackets + s.malformed + s.spoofed + s.revoked;

describe.each(["foreign", "argo"] as const)("hostile drivers over %s", (transport) => {
  it("net: random virtio-net headers and frames, each counted once; only allowed sources reach the other guest", async () => {
    const w = boot(transport, [[1, "net"], [2, "net"]]);
    const raw = await drive(new RawDriver(w.dev(1, "net"), 64).init(2));
    const rx = new NetDriver(w.dev(2, "net"), { queueSize: 64 });
    await drive(rx.init());
    const got: Uint8Array[] = [];
    rx.onFrame((f) => got.push(f));
    const m1 = w.model<NetModel>(1, "net");
    const mac = fc.oneof(fc.constant(MAC1), fc.constant(MAC2), fc.constant("ff:ff:ff:ff:ff:ff"), fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(":")));
    const chain = fc.record({
      flags: fc.oneof(fc.constant(0), fc.nat(255)),
      gso: fc.oneof(fc.constant(0), fc.nat(255)),
      csumStart: fc.nat(2000),
      csumOffset: fc.nat(2000),
      dst: mac,
      src: mac,
      len: fc.oneof(fc.nat(20), fc.integer({ min: 0, max: 1600 })),
      hdrLen: fc.oneof(fc.constant(N.NET_HDR_SIZE), fc.nat(16)),
    });
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(chain, { minLength: 1, maxLength: 8 }), async (chains) => {
        for (const c of chains) {
          const hdr = new Uint8Array(c.hdrLen);
          if (c.hdrLen >= N.NET_HDR_SIZE) {
            hdr[N.HDR_FLAGS] = c.flags;
            hdr[N.HDR_GSO_TYPE] = c.gso;
            new DataView(hdr.buffer).setUint16(N.HDR_CSUM_START, c.csumStart, true);
            new DataView(hdr.buffer).setUint16(N.HDR_CSUM_OFFSET, c.csumOffset, true);
          }
          const f = new Uint8Array(c.len);
          if (c.len >= 12) {
            N.writeMac(f, 0, N.macToNumber(c.dst));
            N.writeMac(f, 6, N.macToNumber(c.src));
          }
          const parts = [hdr, f].filter((p) => p.length > 0);
          raw.send(...(parts.length ? parts : [new Uint8Array(1)])); // a chain has at least one buffer
          sent++;
        }
        await settle(() => raw.txDone.length === sent);
        expect(raw.txDone).toHaveLength(sent); // every chain is returned
        expect(netSum(m1.stats)).toBe(sent); // and ends in exactly one counter
      }),
      { numRuns: 150, seed: 14 },
    );
    await quiet();
    // Whatever arrived came from the one address guest_t may use.
    for (const f of got) expect(N.numberToMac(N.readMac(f, 6))).toBe(MAC1);
    expect(got.length).toBeLessThanOrEqual(m1.stats.txFrames);
  });

  it("vsock: random headers (ops, types, CIDs, ports, lengths, flags), each counted once; connections stay bounded", async () => {
    const w = boot(transport, [[1, "vsock"], [2, "vsock"]]);
    const hub = w.ts.fabric.vsockHub(w.be);
    let accepted = 0;
    let forbidden = 0;
    hub.listen(1024, () => accepted++);
    hub.listen(22, () => forbidden++); // not in guest_t's allowed_ports
    const raw = await drive(new RawDriver(w.dev(1, "vsock"), V.HDR_SIZE + 256).init(3));
    raw.post(32);
    const peer = await drive(new RawDriver(w.dev(2, "vsock"), V.HDR_SIZE + 256).init(3));
    peer.post(64);
    const me = w.guests[0].domid + 2;
    const other = w.guests[1].domid + 2;
    const m1 = w.model<VsockModel>(1, "vsock");
    const m2 = w.model<VsockModel>(2, "vsock");
    // Mostly well-formed, so that the hub's own rules (credit, states, ports) are reached too.
    const often = <T,>(usual: fc.Arbitrary<T>, other: fc.Arbitrary<T>) => fc.oneof({ arbitrary: usual, weight: 4 }, { arbitrary: other, weight: 1 });
    const pkt = fc.record({
      srcCid: often(fc.constant(me), fc.oneof(fc.constant(other), fc.nat())),
      dstCid: often(fc.constantFrom(V.VMADDR_CID_HOST, other), fc.oneof(fc.constant(me), fc.nat())),
      srcPort: often(fc.constantFrom(7, 8), fc.nat()),
      dstPort: often(fc.constantFrom(1024, 5000, 22), fc.nat()),
      op: often(fc.constantFrom(V.OP_REQUEST, V.OP_RW, V.OP_RESPONSE, V.OP_SHUTDOWN, V.OP_CREDIT_REQUEST, V.OP_RST), fc.integer({ min: 0, max: 8 })),
      type: often(fc.constant(V.VIRTIO_VSOCK_TYPE_STREAM), fc.nat(0xffff)),
      flags: often(fc.constantFrom(0, 1, 2, 3), fc.nat()),
      bufAlloc: often(fc.constantFrom(4096, 65536), fc.nat()),
      fwdCnt: often(fc.constant(0), fc.nat()),
      payload: fc.oneof(fc.constant(0), fc.constant(0), fc.nat(300)),
      lenDelta: often(fc.constant(0), fc.integer({ min: -5, max: 5 })),
      cut: often(fc.constant(V.HDR_SIZE), fc.nat(V.HDR_SIZE)),
    });
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(pkt, { minLength: 1, maxLength: 8 }), async (pkts) => {
        for (const p of pkts) {
          const payload = p.op === V.OP_RW ? p.payload : p.lenDelta === 0 ? 0 : p.payload; // control ops mostly carry none
          const len = Math.max(0, payload + p.lenDelta);
          const hdr = V.headerBytes({ ...p, len }).subarray(0, p.cut);
          const parts = [hdr, new Uint8Array(payload)].filter((x) => x.length > 0);
          raw.send(...(parts.length ? parts : [new Uint8Array(1)])); // a chain has at least one buffer
          sent++;
        }
        await settle(() => raw.txDone.length === sent);
        expect(raw.txDone).toHaveLength(sent);
        expect(vsockSum(m1.stats)).toBe(sent);
        expect(hub.connectionsOf(m1)).toBeLessThanOrEqual(MAX_CONNECTIONS_PER_PORT);
      }),
      { numRuns: 150, seed: 14 },
    );
    await quiet();
    // The fuzz reached the interesting cases: spoofed CIDs, refused ports, real connections.
    expect(m1.stats.spoofed).toBeGreaterThan(0);
    expect(hub.stats.denied).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
    expect(forbidden).toBe(0);
    for (const e of w.hv.audit.entries()) expect(["vsock_src_cid", "vsock_connect"]).toContain(e.perm);
    // What reached the other guest came from guest_t's own CID, and opened only allowed ports.
    const h = V.newHeader();
    for (const r of peer.rxDone) {
      V.decodeHeader(new DataView(r.bytes.buffer), 0, h);
      expect(h.srcCid).toBe(me);
      expect(h.dstCid).toBe(other);
      if (h.op === V.OP_REQUEST) expect([1024, 5000]).toContain(h.dstPort);
    }
    expect(m2.stats.malformed).toBe(0);
  });
});
