// virtio-vsock through the backend domain's hub, over every transport: guest to host
// listener, guest to guest, host to guest; credit flow control; allowed_ports (RST and an
// audit line); CID spoofing; malformed headers; and a reload that removes a pair.
import { describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { VsockDriver, VsockModel, VsockError, guestCid, type VsockStream, type VsockSocket } from "../../host/devices/index.ts";
import * as V from "../../host/devices/vsock/layout.ts";
import { HOST_BUF_ALLOC } from "../../host/devices/vsock/hub.ts";
import { RawDriver, TRANSPORTS, boot, drive, failure, policyWithout, quiet } from "./helpers.ts";
import { settle } from "../transport/helpers.ts";
import { Vmm } from "../../host/vmm/vmm.ts";
import { Policy } from "../../host/mac/index.ts";
import { POLICY } from "./helpers.ts";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

async function vsockWorld(transport: (typeof TRANSPORTS)[number]) {
  const w = boot(transport, [[1, "vsock"], [2, "vsock"]]);
  const d1 = new VsockDriver(w.dev(1, "vsock"));
  const d2 = new VsockDriver(w.dev(2, "vsock"));
  await drive(d1.init());
  await drive(d2.init());
  return { ...w, d1, d2, hub: w.ts.fabric.vsockHub(w.be), port: (g: number) => w.model<VsockModel>(g, "vsock") };
}

/** Waits for the next value `listen` hands over. */
function accepted<T>(register: (cb: (s: T) => void) => void): Promise<T> {
  return new Promise((resolve) => register(resolve));
}

/**
 * `writer` sends 1 MiB to `reader`, which does not read yet: the writer stops with exactly
 * `limit` bytes (the reader's advertised buffer) at the reader; once read, all of it arrives intact.
 */
async function creditHolds(
  writer: { write(d: Uint8Array): Promise<void> },
  reader: { readonly pending: number; readExactly(n: number): Promise<Uint8Array> },
  limit: number,
): Promise<void> {
  const data = new Uint8Array(randomBytes(1 << 20));
  let done = false;
  writer.write(data).then(() => (done = true));
  await quiet(500);
  expect(done).toBe(false); // blocked: nobody has read
  expect(reader.pending).toBe(limit); // exactly the credit given, no more
  expect(md5(await drive(reader.readExactly(data.length)))).toBe(md5(data));
  await settle(() => done);
  expect(done).toBe(true);
}

function header(fields: Partial<V.VsockHeader>): Uint8Array {
  return V.headerBytes({ ...V.newHeader(), type: V.VIRTIO_VSOCK_TYPE_STREAM, ...fields });
}

describe.each(TRANSPORTS)("vsock over %s", (transport) => {
  it("the guest's CID is the toolstack's (domid + 2), in config space", async () => {
    const w = await vsockWorld(transport);
    expect(w.d1.cid).toBe(guestCid(w.guests[0]));
    expect(w.d1.cid).toBe(w.guests[0].domid + 2);
    expect(w.d2.cid).toBe(w.guests[1].domid + 2);
  });

  it("guest -> host listener: connect, accept, 300 KB each way, shutdown gives end of stream", async () => {
    const w = await vsockWorld(transport);
    const incoming = accepted<VsockStream>((cb) => w.hub.listen(1024, cb));
    const s = await drive(w.d1.connect(V.VMADDR_CID_HOST, 1024));
    const host = await drive(incoming);
    expect(host.peerCid).toBe(w.d1.cid);
    expect(host.peerPort).toBe(s.localPort);
    const up = new Uint8Array(randomBytes(300_000));
    const down = new Uint8Array(randomBytes(300_000));
    const writing = s.write(up);
    const got = await drive(host.readExactly(up.length));
    await drive(writing);
    expect(md5(got)).toBe(md5(up));
    const back = host.write(down);
    const got2 = await drive(s.readExactly(down.length));
    await drive(back);
    expect(md5(got2)).toBe(md5(down));
    s.shutdown();
    expect(await drive(host.read())).toBeNull(); // end of stream after the data
    host.close();
    expect(await drive(s.read())).toBeNull();
    await quiet();
    expect(w.hub.connectionCount).toBe(0);
  });

  it("guest -> guest: g2 connects to g1's listener, data both ways, close is seen by the peer", async () => {
    const w = await vsockWorld(transport);
    const incoming = accepted<VsockSocket>((cb) => w.d1.listen(5000, cb));
    const s2 = await drive(w.d2.connect(w.d1.cid, 5000));
    const s1 = await drive(incoming);
    expect(s1.peerCid).toBe(w.d2.cid);
    const a = new Uint8Array(randomBytes(100_000));
    const wr = s2.write(a);
    expect(md5(await drive(s1.readExactly(a.length)))).toBe(md5(a));
    await drive(wr);
    await drive(s1.write(new TextEncoder().encode("pong")));
    expect(new TextDecoder().decode(await drive(s2.readExactly(4)))).toBe("pong");
    s2.close();
    expect(await drive(s1.read())).toBeNull();
    await settle(() => w.hub.connectionCount === 0);
    expect(w.hub.connectionCount).toBe(0);
    expect(w.d1.socketCount).toBe(0);
  });

  it("host -> guest: connect to a listening port works; to a port nobody listens on, ECONNREFUSED", async () => {
    const w = await vsockWorld(transport);
    const incoming = accepted<VsockSocket>((cb) => w.d2.listen(6000, cb));
    const h = await drive(w.hub.connect(w.d2.cid, 6000));
    const g = await drive(incoming);
    await drive(h.write(new TextEncoder().encode("hello guest")));
    expect(new TextDecoder().decode(await drive(g.readExactly(11)))).toBe("hello guest");
    expect(await failure(w.hub.connect(w.d2.cid, 6001))).toMatchObject({ code: "ECONNREFUSED" });
  });

  it("credit exhaustion blocks the writer without loss, both directions", async () => {
    const w = await vsockWorld(transport);
    const incoming = accepted<VsockStream>((cb) => w.hub.listen(1024, cb));
    const s = await drive(w.d1.connect(V.VMADDR_CID_HOST, 1024));
    const host = await drive(incoming);
    await creditHolds(s, host, HOST_BUF_ALLOC);
    // Host -> guest: the guest's buf_alloc (256 KiB) bounds what the host may send.
    await creditHolds(host, s, w.d1.bufAlloc);
    expect(w.hub.stats.creditViolations).toBe(0);
  });

  it("guest -> guest credit: a writer to a guest that does not read stops at that guest's buf_alloc, then completes intact", async () => {
    const w = await vsockWorld(transport);
    const incoming = accepted<VsockSocket>((cb) => w.d1.listen(5000, cb));
    const s2 = await drive(w.d2.connect(w.d1.cid, 5000));
    const s1 = await drive(incoming);
    await creditHolds(s2, s1, w.d1.bufAlloc);
    expect(w.hub.stats.creditViolations).toBe(0);
  });

  it("allowed_ports: a connection to a port the policy does not allow gets RST and an audit line", async () => {
    const w = await vsockWorld(transport);
    let called = false;
    w.hub.listen(22, () => (called = true));
    const denials: string[] = [];
    w.hv.audit.onDenial((e) => denials.push(e.text));
    expect(await failure(w.d1.connect(V.VMADDR_CID_HOST, 22))).toMatchObject({ code: "ECONNREFUSED" });
    // And to another guest's port outside the list.
    w.d2.listen(7000, () => (called = true));
    expect(await failure(w.d1.connect(w.d2.cid, 7000))).toMatchObject({ code: "ECONNREFUSED" });
    expect(called).toBe(false);
    expect(denials).toHaveLength(2);
    expect(denials[0]).toMatch(/^avc: denied \{ vsock_connect \} for scontext=guest_t tcontext=backend_t tclass=vsock .*errno=-EACCES reason=".*to CID 2 port 22 refused: port not in allowed_ports \[1024 5000\]"/);
    // An allowed port with no listener is refused (RST) without an audit line.
    expect(await failure(w.d1.connect(V.VMADDR_CID_HOST, 5000))).toMatchObject({ code: "ECONNREFUSED" });
    expect(denials).toHaveLength(2);
    // guest2_t has no allowed_ports rule: any port.
    const ok = accepted<VsockStream>((cb) => w.hub.listen(31337, cb));
    await drive(w.d2.connect(V.VMADDR_CID_HOST, 31337));
    expect((await drive(ok)).peerCid).toBe(w.d2.cid);
  });

  it("CID spoofing is impossible: a packet claiming another guest's CID is dropped, counted and audited", async () => {
    const w = boot(transport, [[1, "vsock"], [2, "vsock"]]);
    const hub = w.ts.fabric.vsockHub(w.be);
    let called = false;
    hub.listen(1024, () => (called = true));
    const raw = await drive(new RawDriver(w.dev(1, "vsock"), V.HDR_SIZE + 4096).init(3));
    raw.post(8);
    const victim = w.guests[1].domid + 2;
    raw.send(header({ srcCid: victim, dstCid: V.VMADDR_CID_HOST, srcPort: 1234, dstPort: 1024, op: V.OP_REQUEST, bufAlloc: 65536 }));
    await settle(() => raw.txDone.length === 1);
    await quiet();
    expect(called).toBe(false);
    expect(hub.connectionCount).toBe(0);
    const m = w.model<VsockModel>(1, "vsock");
    expect(m.stats.spoofed).toBe(1);
    expect(raw.rxDone).toHaveLength(0); // not even an RST: the packet never reached the hub
    const e = w.hv.audit.entries().find((x) => x.perm === "vsock_src_cid");
    expect(e?.text).toMatch(new RegExp(`tclass=vsock .*source CID ${victim} dropped: the device's CID is ${w.guests[0].domid + 2}`));
    // The same request with its own CID connects.
    raw.send(header({ srcCid: w.guests[0].domid + 2, dstCid: V.VMADDR_CID_HOST, srcPort: 1234, dstPort: 1024, op: V.OP_REQUEST, bufAlloc: 65536 }));
    await settle(() => called);
    expect(called).toBe(true);
    await settle(() => raw.rxDone.length === 1);
    expect(new DataView(raw.rxDone[0].bytes.buffer).getUint16(V.H_OP, true)).toBe(V.OP_RESPONSE);
  });

  it("malformed headers from a hostile driver are rejected and counted; an unsupported type gets RST", async () => {
    const w = boot(transport, [[1, "vsock"]]);
    const hub = w.ts.fabric.vsockHub(w.be);
    const raw = await drive(new RawDriver(w.dev(1, "vsock"), V.HDR_SIZE + 4096).init(3));
    raw.post(8);
    const me = w.guests[0].domid + 2;
    const base = { srcCid: me, dstCid: V.VMADDR_CID_HOST, srcPort: 1, dstPort: 1024, bufAlloc: 4096 };
    raw.send(header({ ...base, op: V.OP_REQUEST }).subarray(0, 20)); // shorter than a header
    raw.send(header({ ...base, op: V.OP_RW, len: 100 }), new Uint8Array(50)); // len says 100, 50 follow
    raw.send(header({ ...base, op: 9 })); // no such op
    raw.send(header({ ...base, op: V.OP_INVALID }));
    raw.send(header({ ...base, op: V.OP_REQUEST, len: 4 }), new Uint8Array(4)); // payload on a control op
    raw.send(header({ ...base, op: V.OP_SHUTDOWN, flags: 8 })); // unknown shutdown flag
    raw.send(header({ ...base, op: V.OP_RW, len: V.MAX_PKT_PAYLOAD + 1 }), new Uint8Array(V.MAX_PKT_PAYLOAD + 1)); // over 64 KiB
    raw.send(header({ ...base, op: V.OP_REQUEST, type: 2 })); // SEQPACKET was not offered
    await settle(() => raw.txDone.length === 8);
    await settle(() => raw.rxDone.length === 1);
    await quiet();
    const m = w.model<VsockModel>(1, "vsock");
    expect(m.stats.malformed).toBe(8);
    expect(m.stats.txPackets).toBe(0);
    expect(hub.connectionCount).toBe(0);
    expect(raw.rxDone).toHaveLength(1); // the RST for the SEQPACKET request
    const rst = V.decodeHeader(new DataView(raw.rxDone[0].bytes.buffer), 0, V.newHeader());
    expect(rst).toMatchObject({ op: V.OP_RST, srcCid: V.VMADDR_CID_HOST, srcPort: 1024, dstCid: me, dstPort: 1 });
    // A packet for a connection that does not exist gets RST too (5.10.6.6).
    raw.send(header({ ...base, op: V.OP_RW, len: 3 }), new Uint8Array(3));
    await settle(() => raw.rxDone.length === 2);
    expect(new DataView(raw.rxDone[1].bytes.buffer).getUint16(V.H_OP, true)).toBe(V.OP_RST);
  });

  it("a peer that sends beyond the credit it was given is reset, never buffered without bound", async () => {
    const w = boot(transport, [[1, "vsock"]]);
    const hub = w.ts.fabric.vsockHub(w.be);
    const incoming = accepted<VsockStream>((cb) => hub.listen(1024, cb));
    const raw = await drive(new RawDriver(w.dev(1, "vsock"), V.HDR_SIZE + 4096).init(3));
    raw.post(8);
    const me = w.guests[0].domid + 2;
    const base = { srcCid: me, dstCid: V.VMADDR_CID_HOST, srcPort: 9, dstPort: 1024, bufAlloc: 4096 };
    raw.send(header({ ...base, op: V.OP_REQUEST }));
    const host = await drive(incoming);
    for (let i = 0; i < 5; i++) raw.send(header({ ...base, op: V.OP_RW, len: 65536 }), new Uint8Array(65536)); // 320 KiB > 256 KiB
    await settle(() => raw.txDone.length === 6);
    await quiet();
    expect(hub.stats.creditViolations).toBe(1);
    expect(host.pending).toBeLessThanOrEqual(HOST_BUF_ALLOC);
    expect(await failure(host.readExactly(1 << 20))).toMatchObject({ code: "ECONNRESET" });
  });

  it("a reload that narrows allowed_ports resets connections to ports no longer allowed, and only those", async () => {
    const w = await vsockWorld(transport);
    const streams: VsockStream[] = [];
    w.hub.listen(1024, (s) => streams.push(s));
    w.hub.listen(5000, (s) => streams.push(s));
    const to1024 = await drive(w.d1.connect(V.VMADDR_CID_HOST, 1024));
    const to5000 = await drive(w.d1.connect(V.VMADDR_CID_HOST, 5000));
    await settle(() => streams.length === 2);
    const outcome = (p: Promise<unknown>) => p.then((v) => v, (e: unknown) => e);
    const cut = outcome(to1024.read());
    const kept = outcome(to5000.read());
    w.hv.loadPolicy(Policy.parse(POLICY.replace("allowed_ports: [1024, 5000]", "allowed_ports: [5000]"), "narrow.yaml"));
    expect(await drive(cut)).toMatchObject({ code: "ECONNRESET" });
    await drive(streams[1].write(new TextEncoder().encode("still here")));
    expect(new TextDecoder().decode((await drive(kept)) as Uint8Array)).toBe("still here");
    expect(await failure(w.d1.connect(V.VMADDR_CID_HOST, 1024))).toMatchObject({ code: "ECONNREFUSED" });
  });

  it("a reload that removes guest_t's vsock pair resets its connections: host and guest peers see errors, not hangs", async () => {
    const w = await vsockWorld(transport);
    const fromHost = accepted<VsockStream>((cb) => w.hub.listen(1024, cb));
    const s1 = await drive(w.d1.connect(V.VMADDR_CID_HOST, 1024));
    const host = await drive(fromHost);
    const toG1 = accepted<VsockSocket>((cb) => w.d1.listen(5000, cb));
    const s2 = await drive(w.d2.connect(w.d1.cid, 5000));
    const g1side = await drive(toG1);
    let resets = 0;
    w.d1.onTransportReset(() => resets++);
    // Each read is pending when the policy changes; each must end in an error.
    const outcome = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => e);
    const reads = [host.read(), s2.read(), s1.read(), g1side.read()].map(outcome);
    w.hv.loadPolicy(policyWithout("guest_t", "vsock"));
    const [hostErr, peerErr, ownErr, acceptedErr] = await drive(Promise.all(reads));
    expect(hostErr).toMatchObject({ code: "ECONNRESET" });
    expect(peerErr).toMatchObject({ code: "ECONNRESET" });
    expect(ownErr).toBeInstanceOf(VsockError);
    expect(acceptedErr).toBeInstanceOf(VsockError);
    expect(w.port(1).revoked).toMatch(/no longer has guest_t\/backend_t\/vsock/);
    expect(w.hub.connectionCount).toBe(0);
    if (!w.dev(1, "vsock").gone) expect(resets).toBeGreaterThan(0); // told by TRANSPORT_RESET when its rings stay
    // New connections from or to the revoked CID fail at once.
    expect(await failure(w.d2.connect(w.d1.cid, 5000))).toMatchObject({ code: "ECONNREFUSED" });
    expect(await failure(w.hub.connect(w.d1.cid, 5000))).toMatchObject({ code: "EHOSTUNREACH" });
    // guest2_t keeps its pair.
    const again = accepted<VsockStream>((cb) => w.hub.listen(4000, cb));
    await drive(w.d2.connect(V.VMADDR_CID_HOST, 4000));
    expect((await drive(again)).peerCid).toBe(w.d2.cid);
  });
});

describe("vsock through the embedding API", () => {
  it("vmm.vsock(backend) listens and connects; attach assigns the CID", async () => {
    const vmm = new Vmm({ policy: Policy.parse(POLICY, "netvsock.yaml") });
    const be = vmm.createDomain({ name: "be", label: "backend_t", memoryBytes: 64 << 20 });
    const g = vmm.createDomain({ name: "g", label: "guest2_t", memoryBytes: 32 << 20 });
    const dev = await drive(vmm.attach({ type: "vsock", frontend: g, backend: be }));
    const drv = new VsockDriver(dev.device);
    await drive(drv.init());
    expect(drv.cid).toBe(g.domid + 2);
    const incoming = accepted<VsockStream>((cb) => vmm.vsock(be).listen(9999, cb));
    const s = await drive(drv.connect(V.VMADDR_CID_HOST, 9999));
    const h = await drive(incoming);
    await drive(s.write(new TextEncoder().encode("via vmm")));
    expect(new TextDecoder().decode(await drive(h.readExactly(7)))).toBe("via vmm");
    // Detach: the CID leaves the hub, the host end sees a reset; attaching again works.
    const r = h.read();
    vmm.detach(dev);
    expect(await failure(r)).toMatchObject({ code: "ECONNRESET" });
    const dev2 = await drive(vmm.attach({ type: "vsock", frontend: g, backend: be }));
    const drv2 = new VsockDriver(dev2.device);
    await drive(drv2.init());
    expect(drv2.cid).toBe(g.domid + 2);
    vmm.shutdown();
  });
});
