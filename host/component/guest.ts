// Runs a guest written as a WebAssembly component (wit/argo.wit, world argo-guest) in a
// domain. The component owns its memory and cannot see the domain's guest-physical memory;
// this module is its paravirtual shim: each WIT import is carried out with the domain's
// own Argo driver over the domain's memory, through the same Xen-compatible hypercall and
// MAC checks as any core-module guest. Lists cross the component boundary by copy (the
// canonical ABI), so this is the portable path, not the fast one.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { GuestDomain } from "../abi/guest-domain.ts";
import { GuestArgo, type GuestRing } from "../guest/argo-driver.ts";
import { READ_EMPTY } from "../abi/argo-reader.ts";
import { RING_EMPTY, RING_EXISTS, RING_SUFFICIENT } from "../abi/argo.ts";
import { ENOENT, EMSGSIZE, ENOMEM } from "../abi/errno.ts";

/** Largest message the shim stages for sendv or receives for recv (the sendv limit). */
const MAX_MESSAGE = 256 * 1024;

export interface Addr {
  domid: number;
  port: number;
}

/** The component's exports (world argo-guest), as jco's bindings present them. */
export interface ArgoGuestComponent {
  start(partner: number, port: number): void;
  serve(max: number, replyPort: number): number;
  greet(dst: Addr, len: number, seed: number): number;
  room(dst: Addr): number;
  signalled(): boolean;
  stop(): void;
}

type Result<T> = { tag: "ok"; val: T } | { tag: "err"; val: number };
const ok = <T>(val: T): Result<T> => ({ tag: "ok", val });
/** A negative errno from the hypercall becomes the WIT errno (positive, Xen's number). */
const err = (rc: number): Result<never> => ({ tag: "err", val: -rc });

/** build/component/, from source (host/component/) or from the bundle (dist/). */
function componentDir(): string {
  for (const rel of ["../../build/component/", "../build/component/"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(p, "argo-guest.js"))) return p;
  }
  throw new Error("build/component/argo-guest.js not found: run `npm run build:wasm` (it builds the component guest)");
}

/** The WIT imports for one domain, carried out by its Argo driver. */
export function argoImports(domain: GuestDomain, argo = new GuestArgo(domain)) {
  const rings = new Map<number, GuestRing>();
  let staging = -1;
  // One staging area for every message, allocated on first use (the shim's only allocation).
  const stage = () => (staging >= 0 ? staging : (staging = argo.heap.alloc(MAX_MESSAGE)));
  const mem = () => new Uint8Array(domain.memory.buffer);
  return {
    registerRing(port: number, partner: number, dataBytes: number): Result<void> {
      let r: GuestRing | number;
      try {
        r = argo.registerRing(port, partner, dataBytes);
      } catch {
        return err(-ENOMEM); // the domain's memory cannot hold the ring the component asked for
      }
      if (typeof r === "number") return err(r);
      rings.set(port, r);
      return ok(undefined);
    },
    unregisterRing(port: number): Result<void> {
      const ring = rings.get(port);
      if (!ring) return err(-ENOENT);
      const rc = argo.unregisterRing(port, ring.partner);
      if (rc < 0) return err(rc);
      rings.delete(port);
      return ok(undefined);
    },
    sendv(dst: Addr, srcPort: number, messageType: number, iovs: Uint8Array[]): Result<number> {
      // The component's buffers are copied into the domain's memory, then sent as one
      // message gathered from it: the hypervisor sees an ordinary sendv.
      const total = iovs.reduce((n, b) => n + b.length, 0);
      if (total > MAX_MESSAGE) return err(-EMSGSIZE);
      const at = stage();
      let off = 0;
      for (const b of iovs) {
        mem().set(b, at + off);
        off += b.length;
      }
      const rc = argo.send(dst.domid, dst.port, at, total, messageType, srcPort);
      return rc < 0 ? err(rc) : ok(rc);
    },
    notify(dst: Addr, spaceRequired: number) {
      const q = argo.query(dst.domid, dst.port, spaceRequired);
      if (q.rc < 0) return err(q.rc);
      return ok({
        exists: (q.flags & RING_EXISTS) !== 0, sufficient: (q.flags & RING_SUFFICIENT) !== 0,
        empty: (q.flags & RING_EMPTY) !== 0, maxMessageSize: q.maxMessageSize,
      });
    },
    recv(port: number) {
      const ring = rings.get(port);
      if (!ring) return undefined;
      const at = stage();
      const n = argo.read(ring, at, MAX_MESSAGE);
      if (n === READ_EMPTY || n < 0) return undefined;
      const m = argo.meta;
      return { src: { domid: m.srcDomid, port: m.srcAport }, messageType: m.messageType, data: mem().slice(at, at + n) };
    },
    pollVirq(): boolean {
      return domain.pollVirq();
    },
  };
}

/** Instantiates the component guest in `domain`. */
export async function runArgoGuest(domain: GuestDomain, argo?: GuestArgo): Promise<ArgoGuestComponent> {
  const dir = componentDir();
  const mod = (await import(pathToFileURL(join(dir, "argo-guest.js")).href)) as {
    instantiate(getCoreModule: (path: string) => Promise<WebAssembly.Module>, imports: Record<string, unknown>): Promise<ArgoGuestComponent>;
  };
  const imports = argoImports(domain, argo);
  return mod.instantiate((path) => WebAssembly.compile(readFileSync(join(dir, path))), {
    "virtio-argo:argo/hypercalls": imports,
    "virtio-argo:argo/hypercalls@0.1.0": imports,
  });
}

