// Descriptor and event flag bits as the VirtIO 1.2 spec numbers them (2.7.5 VIRTQ_DESC_F_*,
// 2.8.1 packed AVAIL/USED, 2.8.10 RING_EVENT_FLAGS_DESC), for tests that write rings by hand.
export const NEXT = 1;
export const WRITE = 2;
export const INDIRECT = 4;
export const AVAIL = 1 << 7;
export const USED = 1 << 15;
export const EVENT_DESC = 2;
