// virtio-blk wire constants (VirtIO 1.2 section 5.2; linux/virtio_blk.h).
export const SECTOR_SIZE = 512;
export const VIRTIO_BLK_F_SIZE_MAX = 1n << 1n;
export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_BLK_SIZE = 1n << 6n;
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;
export const VIRTIO_BLK_F_DISCARD = 1n << 13n;
export const VIRTIO_BLK_F_WRITE_ZEROES = 1n << 14n;

// Request types (struct virtio_blk_req.type).
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

// Status byte, the last writable byte of every request.
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** struct virtio_blk_req header: {le32 type, le32 reserved, le64 sector}. */
export const REQ_HEADER_SIZE = 16;
/** struct virtio_blk_discard_write_zeroes: {le64 sector, le32 num_sectors, le32 flags}. */
export const SEGMENT_SIZE = 16;
export const WRITE_ZEROES_FLAG_UNMAP = 1;
export const VIRTIO_BLK_ID_BYTES = 20;

// struct virtio_blk_config offsets.
export const CFG_CAPACITY = 0;
export const CFG_SIZE_MAX = 8;
export const CFG_SEG_MAX = 12;
export const CFG_BLK_SIZE = 20;
export const CFG_MAX_DISCARD_SECTORS = 36;
export const CFG_MAX_DISCARD_SEG = 40;
export const CFG_DISCARD_SECTOR_ALIGNMENT = 44;
export const CFG_MAX_WRITE_ZEROES_SECTORS = 48;
export const CFG_MAX_WRITE_ZEROES_SEG = 52;
export const CFG_WRITE_ZEROES_MAY_UNMAP = 56;
export const CONFIG_SIZE = 60;
