// The virtqueue round trip measured inside Wasm (a JS<->Wasm call costs a few ns each
// way, more than the work): driver add -> device pop -> device push -> driver reclaim.
import { vringPop, vringPush } from "./split";
import { vringAdd, vringReclaim } from "./driver";

/**
 * Runs `iterations` cycles of a chain of `n` buffers (described at `bufs`, as vringAdd
 * takes them) on an initialised ring. Returns the cycles completed (stops early on error).
 */
export function vringCycleBench(
  desc: u32, avail: u32, used: u32, size: u32, state: u32, bufs: u32, n: u32,
  popOut: u32, reclaimOut: u32, features: u32, iterations: u32,
): u32 {
  let lastAvail: u32 = 0;
  let usedIdx: u32 = 0;
  for (let k: u32 = 0; k < iterations; k++) {
    const head = vringAdd(desc, avail, used, size, state, bufs, n);
    if (head < 0) return k;
    if (vringPop(desc, avail, used, size, lastAvail, features, popOut) <= 0) return k;
    lastAvail = (lastAvail + 1) & 0xffff;
    usedIdx = vringPush(used, size, usedIdx, <u32>head, 0);
    if (vringReclaim(desc, avail, used, size, state, features & 1, reclaimOut, 1) != 1) return k;
  }
  return iterations;
}
