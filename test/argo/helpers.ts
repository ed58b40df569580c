// Shared set-up for the Argo tests: a hypervisor with an allow-all policy and guests
// that drive the real hypercall through their own drivers.
import { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import { Policy } from "../../host/mac/index.ts";
import { GuestArgo } from "../../host/guest/argo-driver.ts";
import type { Domain } from "../../host/hypervisor/domain.ts";

export interface Guest {
  d: Domain;
  g: GuestArgo;
  /** A page-aligned buffer of 64 KiB in the guest's memory. */
  buf: number;
}

export function guest(hv: Hypervisor, name: string, memoryBytes = 4 << 20, label = "guest_t"): Guest {
  const d = hv.createDomain({ name, label, memoryBytes });
  const g = new GuestArgo(d);
  return { d, g, buf: g.heap.alloc(65536) };
}

export function setup(opts: { policy?: Policy } = {}): { hv: Hypervisor; a: Guest; b: Guest } {
  const hv = new Hypervisor({ policy: opts.policy ?? Policy.allowAll() });
  return { hv, a: guest(hv, "a"), b: guest(hv, "b") };
}

/** Writes bytes into a guest's memory (as the guest would). */
export function put(x: Guest, gpa: number, bytes: Uint8Array): void {
  new Uint8Array(x.d.memory.buffer).set(bytes, gpa);
}

export function bytesAt(x: Guest, gpa: number, len: number): Uint8Array {
  return new Uint8Array(x.d.memory.buffer).slice(gpa, gpa + len);
}

export function u32At(x: Guest, gpa: number): number {
  return new DataView(x.d.memory.buffer).getUint32(gpa, true);
}

export function pattern(len: number, seed = 1): Uint8Array {
  const out = new Uint8Array(len);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

/**
 * Throws if `after` differs from `before` anywhere outside the allowed [start, end)
 * ranges (sorted or not). Compares the gaps with native Buffer comparisons.
 */
export function assertUnchangedOutside(before: Uint8Array, after: Uint8Array, allowed: Array<[number, number]>): void {
  const ranges = [...allowed].sort((x, y) => x[0] - y[0]);
  let from = 0;
  const b = Buffer.from(before.buffer, before.byteOffset, before.byteLength);
  const a = Buffer.from(after.buffer, after.byteOffset, after.byteLength);
  for (const [start, end] of [...ranges, [after.length, after.length] as [number, number]]) {
    if (start > from && b.compare(a, from, start, from, start) !== 0) {
      for (let i = from; i < start; i++) if (a[i] !== b[i]) throw new Error(`byte ${i} changed outside the allowed ranges`);
    }
    from = Math.max(from, end);
  }
}
