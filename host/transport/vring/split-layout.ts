// Where a split virtqueue (VirtIO 1.2 section 2.7) lives in memory, and the index
// arithmetic both of its sides use:
//
//   desc  16 B x size : {le64 addr, le32 len, le16 flags, le16 next}
//   avail 6 + 2 x size: {le16 flags, le16 idx, le16 ring[size], le16 used_event}
//   used  6 + 8 x size: {le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}
// With VIRTIO_F_EVENT_IDX (2.7.10) each side publishes how far the other may go before it
// wants a notification (used_event / avail_event) and notifications follow vring_need_event.
import type { PageAllocator } from "../../guest/heap.ts";

/** Where a split ring lives in memory. */
export interface SplitLayout {
  size: number;
  desc: number;
  avail: number;
  used: number;
}

/** vring_need_event (VirtIO 1.2 2.7.10): has idx moved past event since old? All u16. */
export function vringNeedEvent(event: number, newIdx: number, old: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

/**
 * The legacy contiguous layout (linux/virtio_ring.h vring_init): desc at `base`, avail
 * right after, used at the next multiple of `align`; `bytes` is vring_size(size, align).
 * For VMM authors placing a ring the way a legacy driver does.
 */
export function vringLayout(base: number, size: number, align: number): SplitLayout & { bytes: number } {
  const avail = base + 16 * size;
  const used = Math.ceil((avail + 2 * (2 + size) + 2) / align) * align;
  return { size, desc: base, avail, used, bytes: used - base + 6 + 8 * size };
}

/** A split ring of `size` entries (a power of two <= 32768) in pages from `heap`, every index and event field zero. */
export function allocSplit(memory: WebAssembly.Memory, heap: PageAllocator, size: number): SplitLayout {
  if (size < 1 || size > 32768 || (size & (size - 1)) !== 0) throw new RangeError(`queue size ${size} is not a power of two <= 32768`);
  const l = { size, desc: heap.alloc(16 * size), avail: heap.alloc(6 + 2 * size), used: heap.alloc(6 + 8 * size) };
  // Pages may be recycled: a ring starts with every index and event field at zero.
  const u8 = new Uint8Array(memory.buffer);
  u8.fill(0, l.avail, l.avail + 6 + 2 * size);
  u8.fill(0, l.used, l.used + 6 + 8 * size);
  return l;
}
