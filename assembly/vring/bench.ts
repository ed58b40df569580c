// The virtqueue round trip measured inside Wasm (a JS<->Wasm call costs a few ns each
// way, more than the work): driver add -> device pop -> device push -> driver reclaim.
import { vringPop, vringPush } from "./split";
import { vringAdd, vringAddIndirect, vringReclaim } from "./driver";
import { packedAdd, packedPop, packedPush, packedReclaim } from "./packed";

/**
 * Runs `iterations` split-ring cycles of a chain of `n` buffers (described at `bufs`, as
 * vringAdd takes them; through an indirect table at `table` when it is not 0) on an
 * initialised ring. The device's indices (le16 last_avail, le16 used_idx) live at
 * `devState`, zeroed by the caller once, so calls continue where the last one stopped.
 * Returns the cycles completed (stops early on any error).
 */
export function vringCycleBench(
  desc: u32, avail: u32, used: u32, size: u32, state: u32, devState: u32, bufs: u32, n: u32,
  popOut: u32, reclaimOut: u32, features: u32, iterations: u32, table: u32,
): u32 {
  let lastAvail = <u32>load<u16>(devState);
  let usedIdx = <u32>load<u16>(devState + 2);
  let k: u32 = 0;
  for (; k < iterations; k++) {
    const head = table != 0 ? vringAddIndirect(desc, avail, used, size, state, bufs, n, table) : vringAdd(desc, avail, used, size, state, bufs, n);
    if (head < 0) break;
    if (vringPop(desc, avail, used, size, lastAvail, features, popOut) != <i32>n) break;
    lastAvail = (lastAvail + 1) & 0xffff;
    usedIdx = vringPush(used, size, usedIdx, <u32>head, 0);
    if (vringReclaim(desc, avail, used, size, state, features & 1, reclaimOut, 1) != 1) break;
  }
  store<u16>(devState, <u16>lastAvail);
  store<u16>(devState + 2, <u16>usedIdx);
  return k;
}

/** The same cycle on a packed ring (initialised driver and device states). */
export function packedCycleBench(
  desc: u32, driverEvent: u32, deviceEvent: u32, size: u32, driverState: u32, deviceState: u32, bufs: u32, n: u32,
  popOut: u32, reclaimOut: u32, features: u32, iterations: u32, table: u32,
): u32 {
  for (let k: u32 = 0; k < iterations; k++) {
    const id = packedAdd(desc, size, driverState, bufs, n, table);
    if (id < 0) return k;
    if (packedPop(desc, deviceEvent, size, deviceState, features, popOut) != <i32>n) return k;
    if (packedPush(desc, size, deviceState, <u32>id, 0) != 0) return k;
    if (packedReclaim(desc, driverEvent, size, driverState, features & 1, reclaimOut, size) != 1) return k;
  }
  return iterations;
}
