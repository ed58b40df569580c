// What the device sides of both ring formats (split-sides.ts, packed-sides.ts) share:
// reading the out block a Wasm pop (vringPop, packedPop) wrote into ChainBuffers, and
// naming the error that broke the queue.
import type { ChainBuffers } from "./queue-sides.ts";
import { vringErrorName, type VringError } from "./errors.ts";

/** 2.7.5 / 2.8.4: the buffer is device-writable (the out block keeps the descriptor's flags). */
const VIRTQ_DESC_F_WRITE = 2;

/**
 * The result of a Wasm pop (`n` buffers, or a negative code) into `out`: 1 when a chain was
 * popped, 0 when none, -1 (and `side.error` set: NEEDS_RESET) when the ring is broken. The
 * out block is {le32 head, le32 count, then {addr, len, flags, 0} per buffer}.
 */
export function takeChain(side: { error: VringError | null }, n: number, u32: Uint32Array, outBlock: number, out: ChainBuffers): number {
  if (n === 0) return 0;
  if (n < 0) {
    side.error = vringErrorName(n) ?? "BadQueue";
    return -1;
  }
  const w = outBlock >>> 2; // heap allocations are page-aligned
  out.reset(u32[w]);
  for (let i = 0; i < n; i++) {
    const e = w + 2 + 4 * i;
    out.push(u32[e], u32[e + 1], (u32[e + 2] & VIRTQ_DESC_F_WRITE) !== 0);
  }
  return 1;
}
