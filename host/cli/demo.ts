// `virtio-argo demo` (npm start): two domains exchange messages over Argo under the
// default policy, narrated for a newcomer. Every step is a real hypercall with Xen's
// structs in guest memory; nothing is simulated.
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { GuestArgo, type GuestRing } from "../guest/argo-driver.ts";
import { errnoName } from "../abi/errno.ts";
import { Policy } from "../mac/index.ts";
import { defaultPolicyPath } from "./paths.ts";
import { runArgoGuest } from "../component/guest.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface DemoOptions {
  policyFile?: string;
  out?: (line: string) => void;
}

/** Runs the demo; returns the process exit code (0 when every step behaved as expected). */
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const out = opts.out ?? ((l: string) => console.log(l));
  const file = opts.policyFile ?? defaultPolicyPath();
  const policy = Policy.load(file);
  const hv = new Hypervisor({ policy });
  let failures = 0;
  const expect = (what: string, got: number, want: number): void => {
    const ok = got === want;
    if (!ok) failures++;
    out(`   ${what} -> ${errnoName(got)}${ok ? "" : `   (UNEXPECTED: wanted ${errnoName(want)})`}`);
  };

  out("virtio-argo demo: two domains that share no memory talk through the hypervisor (Argo).");
  out(`policy: ${file} (deny by default)`);
  const front = hv.createDomain({ name: "frontend", label: "guest_t", memoryBytes: 4 << 20 });
  const back = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 4 << 20 });
  for (const d of [front, back]) out(`domain d${d.domid} "${d.name}" label ${d.label}: its own ${d.memory.buffer.byteLength >> 20} MiB of guest memory`);
  const gf = new GuestArgo(front);
  const gb = new GuestArgo(back);
  const fbuf = gf.heap.alloc(4096);
  const bbuf = gb.heap.alloc(4096);
  let virqs = 0;
  back.onVirq(() => virqs++);

  out("");
  out("1. Each side registers a receive ring (register_ring: a port, the one partner allowed to send, pages of its own memory).");
  const backRing = gb.registerRing(100, front.domid, 256);
  expect("backend: ring on port 100 for frontend, 256 data bytes", typeof backRing === "number" ? backRing : 0, 0);
  const frontRing = gf.registerRing(101, back.domid, 4096);
  expect("frontend: ring on port 101 for backend, 4096 data bytes", typeof frontRing === "number" ? frontRing : 0, 0);
  if (typeof backRing === "number" || typeof frontRing === "number") return 1;

  const send = (g: GuestArgo, buf: number, to: number, port: number, text: string, label: string): number => {
    const bytes = enc.encode(text);
    new Uint8Array(g.domain.memory.buffer).set(bytes, buf);
    const rc = g.send(to, port, buf, bytes.length, 1);
    out(`   ${label}: sendv "${text.length > 40 ? text.slice(0, 37) + "..." : text}" (${bytes.length} B) -> ${errnoName(rc)}`);
    return rc;
  };
  const read = (g: GuestArgo, ring: GuestRing, buf: number, who: string): void => {
    const n = g.read(ring, buf, 4096);
    if (n < 0) {
      out(`   ${who} reads: nothing (${n})`);
      return;
    }
    const text = dec.decode(new Uint8Array(g.domain.memory.buffer, buf, n));
    out(`   ${who} reads ${n} B from d${g.meta.srcDomid}: "${text.length > 40 ? text.slice(0, 37) + "..." : text}"`);
  };

  out("");
  out("2. Messages both ways. The hypervisor copies the bytes from the sender's memory into the receiver's ring.");
  send(gf, fbuf, back.domid, 100, "hello, backend", "frontend");
  await Promise.resolve();
  out(`   backend got VIRQ_ARGO (${virqs} so far)`);
  read(gb, backRing, bbuf, "backend");
  send(gb, bbuf, front.domid, 101, "hello, frontend", "backend");
  read(gf, frontRing, fbuf, "frontend");

  out("");
  out("3. A message that wraps: the header never splits at the end of the ring, the payload may.");
  const ringView = new DataView(back.memory.buffer, backRing.ringGpa, 8);
  send(gf, fbuf, back.domid, 100, "x".repeat(90), "frontend");
  read(gb, backRing, bbuf, "backend");
  out(`   backend ring: rx_ptr ${ringView.getUint32(0, true)}, tx_ptr ${ringView.getUint32(4, true)} of 256`);
  const wrapping = "w".repeat(100);
  const before = ringView.getUint32(4, true);
  send(gf, fbuf, back.domid, 100, wrapping, "frontend");
  const after = ringView.getUint32(4, true);
  out(`   tx_ptr moved ${before} -> ${after}: ${after < before ? "the payload wrapped around the end of the ring" : "(no wrap this time)"}`);
  if (after >= before) failures++;
  read(gb, backRing, bbuf, "backend");

  out("");
  out("4. A full ring: the send is refused with -EAGAIN and the sender waits for a space notification.");
  new Uint8Array(front.memory.buffer).fill(0x61, fbuf, fbuf + 200);
  expect("frontend: sendv 200 B", gf.send(back.domid, 100, fbuf, 200, 1), 200);
  expect("frontend: sendv 100 B more (ring full: one slot always stays empty)", gf.send(back.domid, 100, fbuf, 100), -11);
  read(gb, backRing, bbuf, "backend");
  expect("backend: notify (tell waiting senders there is room)", gb.notify(), 0);
  out(`   frontend VIRQ_ARGO pending: ${front.pollVirq()}`);
  expect("frontend: retries sendv 100 B", gf.send(back.domid, 100, fbuf, 100), 100);
  read(gb, backRing, bbuf, "backend");

  out("");
  out("5. Mandatory access control: what the policy does not allow is refused and audited.");
  const stranger = hv.createDomain({ name: "stranger", label: "untrusted_t", memoryBytes: 1 << 20 });
  const gs = new GuestArgo(stranger);
  const sbuf = gs.heap.alloc(4096);
  const denied = gs.send(back.domid, 100, sbuf, 8);
  out(`   stranger (label untrusted_t): sendv -> ${errnoName(denied)}`);
  if (denied >= 0) failures++;
  let last = hv.audit.entries().at(-1);
  if (last) out(`   audit: ${last.text}`);
  const guest2 = hv.createDomain({ name: "guest2", label: "guest2_t", memoryBytes: 1 << 20 });
  const g2 = new GuestArgo(guest2);
  const g2buf = g2.heap.alloc(4096);
  const crossGuest = g2.send(front.domid, 101, g2buf, 8);
  out(`   guest2 (label guest2_t, paired with the backend only) sends to frontend -> ${errnoName(crossGuest)}`);
  if (crossGuest >= 0) failures++;
  last = hv.audit.entries().at(-1);
  if (last) out(`   audit: ${last.text}`);

  out("");
  out("6. A guest written as a WebAssembly component (wit/argo.wit, built with jco-transpile) talks to a core-module guest.");
  const comp = hv.createDomain({ name: "component", label: "backend_t", memoryBytes: 4 << 20 });
  const guest = await runArgoGuest(comp);
  try {
    guest.start(front.domid, 200);
    out(`   component d${comp.domid}: register-ring port 200 for d${front.domid} -> ok (through the WIT import, the same hypercall underneath)`);
  } catch (errno) {
    out(`   component d${comp.domid}: register-ring port 200 -> errno ${String(errno)}   (UNEXPECTED)`);
    return 1;
  }
  const compRing = gf.registerRing(102, comp.domid, 4096);
  expect("frontend: ring on port 102 for the component", typeof compRing === "number" ? compRing : 0, 0);
  if (typeof compRing === "number") return 1;
  const hello = enc.encode("hello, component");
  new Uint8Array(front.memory.buffer).set(hello, fbuf);
  expect("frontend: sendv 16 B to the component", gf.send(comp.domid, 200, fbuf, hello.length, 1, 102), hello.length);
  const answered = guest.serve(8, 102);
  out(`   component: served ${answered} message(s), each answered with every byte XOR 0x5a`);
  const n = gf.read(compRing, fbuf, 4096);
  const back5a = new Uint8Array(front.memory.buffer).slice(fbuf, fbuf + Math.max(0, n)).map((b) => b ^ 0x5a);
  out(`   frontend: read ${n} B from d${gf.meta.srcDomid}, un-XORed: "${dec.decode(back5a)}"`);
  if (dec.decode(back5a) !== "hello, component") failures++;

  out("");
  out(`Done: ${front.virq.raised + back.virq.raised} VIRQs, no page of one domain ever mapped into another.`);
  out("Next: `npx virtio-argo policy explain policies/default.yaml --from guest_t --to backend_t --device blk`");
  return failures === 0 ? 0 : 1;
}
