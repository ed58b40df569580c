// The driver's DMA window: where the addresses a driver writes into descriptors point,
// one per instance (per memory). Both device sides (split.ts, packed.ts) check every
// descriptor address against it before using it. The only state of build/vring.wasm:
// two globals that start at 0 (no data segment, no start function).
import { memoryBytes } from "./defs";

/**
 * A driver address `a` is valid when a + len <= dmaLimit, and is at Wasm offset
 * dmaBase + a. For domains whose memory is theirs alone both are 0 (limit: all of
 * memory). A Linux guest in v86 has its RAM at an offset inside v86's memory, after the
 * emulator's own state: the window keeps a driver from naming those bytes.
 */
let dmaBase: u32 = 0;
let dmaLimitBytes: u64 = 0;

/** Sets the DMA window (base, limit in bytes); 0 when it lies outside memory. */
export function vringSetDmaWindow(base: u32, limit: u32): i32 {
  if (<u64>base + <u64>limit > memoryBytes() || (base & 15) != 0) return 0;
  dmaBase = base;
  dmaLimitBytes = <u64>limit;
  return 1;
}

/** Upper bound of driver-written addresses (the window, else all of memory). */
// @ts-ignore: decorator
@inline export function dmaLimit(): u64 {
  return dmaLimitBytes != 0 ? dmaLimitBytes : memoryBytes();
}

/** Wasm offset of a driver address already checked against dmaLimit (no wrap: base + limit <= memory). */
// @ts-ignore: decorator
@inline export function dmaAt(addr: u32): u32 {
  return dmaBase + addr;
}
