// virtio-net wire constants (VirtIO 1.2 section 5.1; linux/virtio_net.h).

/** Queue indexes without VIRTIO_NET_F_MQ (5.1.2): receiveq1 and transmitq1. */
export const RXQ = 0;
export const TXQ = 1;

// Feature bits offered (5.1.3). Nothing else is: no GSO (TSO/UFO), no MRG_RXBUF (each
// receive buffer holds one whole frame), no control queue, no multiqueue.
export const VIRTIO_NET_F_CSUM = 1n << 0n;
export const VIRTIO_NET_F_MTU = 1n << 3n;
export const VIRTIO_NET_F_MAC = 1n << 5n;
export const VIRTIO_NET_F_STATUS = 1n << 16n;

/** struct virtio_net_config offsets (5.1.4): mac[6], le16 status, le16 max_virtqueue_pairs, le16 mtu. */
export const CFG_MAC = 0;
export const CFG_STATUS = 6;
export const CFG_MAX_VIRTQUEUE_PAIRS = 8;
export const CFG_MTU = 10;
/** Up to and including mtu; fields past it (speed, duplex, rss) belong to features not offered. */
export const CONFIG_SIZE = 12;
export const VIRTIO_NET_S_LINK_UP = 1;

/**
 * struct virtio_net_hdr_v1 (5.1.6): u8 flags, u8 gso_type, le16 hdr_len, le16 gso_size,
 * le16 csum_start, le16 csum_offset, le16 num_buffers. 12 bytes: VERSION_1 is always
 * negotiated on these transports (modern only), so num_buffers is always there.
 */
export const NET_HDR_SIZE = 12;
export const HDR_FLAGS = 0;
export const HDR_GSO_TYPE = 1;
export const HDR_CSUM_START = 6;
export const HDR_CSUM_OFFSET = 8;
export const HDR_NUM_BUFFERS = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;

/** The MTU the device reports (VIRTIO_NET_F_MTU) and enforces. */
export const MTU = 1500;
/** Destination, source, ethertype. */
export const ETH_HLEN = 14;
/** Largest frame taken from a driver: MTU + Ethernet header + one 802.1Q tag (no FCS). */
export const MAX_FRAME = MTU + ETH_HLEN + 4;
/** Smallest: an Ethernet header. Shorter is not a frame (Linux drivers send unpadded runts, so not 60). */
export const MIN_FRAME = ETH_HLEN;
/** A receive buffer that holds any frame the switch delivers (5.1.6.3.1 asks drivers for 1526 at least). */
export const RX_BUFFER_SIZE = NET_HDR_SIZE + MAX_FRAME;

/** MAC "52:54:00:12:34:56" -> 48-bit integer (exact in a double); NaN when malformed. */
export function macToNumber(mac: string): number {
  const parts = mac.split(":");
  if (parts.length !== 6) return NaN;
  let n = 0;
  for (const p of parts) {
    if (!/^[0-9a-fA-F]{2}$/.test(p)) return NaN;
    n = n * 256 + parseInt(p, 16);
  }
  return n;
}

/** 48-bit integer -> "52:54:00:12:34:56". */
export function numberToMac(n: number): string {
  const b = new Uint8Array(6);
  writeMac(b, 0, n);
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** Six bytes at `at` as a 48-bit integer. */
export function readMac(b: Uint8Array, at: number): number {
  return ((b[at] * 256 + b[at + 1]) * 256 + b[at + 2]) * 2 ** 24 + ((b[at + 3] << 16) | (b[at + 4] << 8) | b[at + 5]);
}

export function writeMac(b: Uint8Array, at: number, mac: number): void {
  for (let i = 5; i >= 0; i--) b[at + 5 - i] = Math.floor(mac / 2 ** (8 * i)) % 256;
}

/** Group bit (I/G, bit 0 of the first octet): broadcast and multicast. */
export function isGroup(mac: number): boolean {
  return Math.floor(mac / 2 ** 40) % 2 === 1;
}
