// virtio-blk device model (VirtIO 1.2 section 5.2). Every request field is written by the
// driver, i.e. by another domain: one early return per rule, each with the status the
// spec asks for, and the bytes one request may move are capped so that overlapping or
// huge descriptors cannot inflate the work.
import type { DeviceChain, DeviceEnv, VirtioDeviceModel } from "../types.ts";
import { VIRTIO_ID_BLOCK } from "../types.ts";
import * as B from "./layout.ts";
import { FileDisk, MemoryDisk, type DiskStorage } from "./storage.ts";

export interface BlkOptions {
  /** Disk contents: an in-memory image (its length a multiple of 512) or a file path. */
  image: Uint8Array | { path: string };
  readOnly?: boolean;
  /** GET_ID answer (at most 20 bytes). */
  id?: string;
}

/** Largest data part of one request (1 MiB): larger requests get IOERR. */
export const MAX_REQUEST_BYTES = 1 << 20;
/** Segments one DISCARD / WRITE_ZEROES request may carry. */
export const MAX_SEGMENTS = 16;
const QUEUE_SIZE = 256;

export class BlkModel implements VirtioDeviceModel {
  readonly type = "blk" as const;
  readonly virtioId = VIRTIO_ID_BLOCK;
  readonly numQueues = 1;
  readonly maxQueueSize = QUEUE_SIZE;
  readonly configSize = B.CONFIG_SIZE;
  private ro: boolean;
  readonly stats = { requests: 0, ioerr: 0, unsupp: 0, denied: 0 };
  private readonly disk: DiskStorage;
  private readonly sectors: number;
  private readonly id: Uint8Array;
  private readonly config = new Uint8Array(B.CONFIG_SIZE);
  private readonly header = new Uint8Array(B.REQ_HEADER_SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly status = new Uint8Array(1);
  /** Bounce space for file-backed disks, sized for the largest request. */
  private readonly scratch = new Uint8Array(MAX_REQUEST_BYTES);
  private env: DeviceEnv | null = null;

  constructor(opts: BlkOptions) {
    this.ro = !!opts.readOnly;
    this.disk = opts.image instanceof Uint8Array ? new MemoryDisk(opts.image) : new FileDisk(opts.image.path, this.ro);
    this.sectors = Math.floor(this.disk.bytes / B.SECTOR_SIZE);
    this.id = new TextEncoder().encode((opts.id ?? "virtio-argo-blk").slice(0, B.VIRTIO_BLK_ID_BYTES));
    const c = new DataView(this.config.buffer);
    c.setBigUint64(B.CFG_CAPACITY, BigInt(this.sectors), true);
    c.setUint32(B.CFG_SIZE_MAX, MAX_REQUEST_BYTES, true);
    c.setUint32(B.CFG_SEG_MAX, QUEUE_SIZE - 2, true);
    c.setUint32(B.CFG_BLK_SIZE, B.SECTOR_SIZE, true);
    c.setUint32(B.CFG_MAX_DISCARD_SECTORS, MAX_REQUEST_BYTES / B.SECTOR_SIZE, true);
    c.setUint32(B.CFG_MAX_DISCARD_SEG, MAX_SEGMENTS, true);
    c.setUint32(B.CFG_DISCARD_SECTOR_ALIGNMENT, 1, true);
    c.setUint32(B.CFG_MAX_WRITE_ZEROES_SECTORS, MAX_REQUEST_BYTES / B.SECTOR_SIZE, true);
    c.setUint32(B.CFG_MAX_WRITE_ZEROES_SEG, MAX_SEGMENTS, true);
    c.setUint8(B.CFG_WRITE_ZEROES_MAY_UNMAP, 1);
  }

  /** Feature bits offered: VIRTIO_BLK_F_RO while the disk is read-only. */
  get features(): bigint {
    return B.VIRTIO_BLK_F_FLUSH | B.VIRTIO_BLK_F_BLK_SIZE | B.VIRTIO_BLK_F_SEG_MAX | B.VIRTIO_BLK_F_SIZE_MAX |
      B.VIRTIO_BLK_F_DISCARD | B.VIRTIO_BLK_F_WRITE_ZEROES | (this.ro ? B.VIRTIO_BLK_F_RO : 0n);
  }

  get readOnly(): boolean {
    return this.ro;
  }

  /**
   * A policy reload made this disk read-only: from the next request on, writes, discards
   * and write-zeroes fail with IOERR and an audit entry. Features are fixed once the driver
   * set FEATURES_OK (VirtIO 1.2 3.1.1), so VIRTIO_BLK_F_RO reaches a driver when it resets.
   */
  makeReadOnly(): void {
    this.ro = true;
  }

  get capacitySectors(): number {
    return this.sectors;
  }

  readConfig(offset: number, length: number): Uint8Array | null {
    if (offset < 0 || length < 0 || offset + length > B.CONFIG_SIZE) return null;
    return this.config.slice(offset, offset + length);
  }

  writeConfig(): boolean {
    return false; // nothing in blk config is driver-writable here (no WCE)
  }

  activate(env: DeviceEnv): void {
    this.env = env;
  }

  reset(): void {
    this.env = null;
  }

  close(): void {
    this.disk.close();
  }

  queueNotify(queue: number): void {
    const q = this.env?.queues[queue];
    if (!q) return;
    // Each pop consumes one available chain, so the loop ends after <= queue size steps.
    for (let c = q.pop(); c; c = q.pop()) q.push(c, this.serve(c));
    q.notifyDriver();
  }

  /** Serves one request; returns the bytes written into the chain (data + status). */
  private serve(c: DeviceChain): number {
    this.stats.requests++;
    // No room for the status byte: the request cannot even be answered.
    if (c.writableLength < 1) return 0;
    const statusAt = c.writableLength - 1;
    if (c.readableLength < B.REQ_HEADER_SIZE) return this.done(c, B.VIRTIO_BLK_S_IOERR);
    c.read(0, this.header);
    const type = this.headerView.getUint32(0, true);
    const sector = Number(this.headerView.getBigUint64(8, true)); // exact below 2^53; range-checked before use
    switch (type) {
      case B.VIRTIO_BLK_T_IN: {
        const len = statusAt; // every writable byte before the status
        if (!this.inRange(sector, len)) return this.done(c, B.VIRTIO_BLK_S_IOERR);
        // In-memory disks are written straight from the image; files go through one scratch.
        let data = this.disk.view(sector * B.SECTOR_SIZE, len);
        if (!data) {
          data = this.scratch.subarray(0, len);
          this.disk.read(sector * B.SECTOR_SIZE, data);
        }
        return this.done(c, B.VIRTIO_BLK_S_OK, c.write(0, data));
      }
      case B.VIRTIO_BLK_T_OUT: {
        const len = c.readableLength - B.REQ_HEADER_SIZE;
        if (this.readOnly) return this.denied(c, "blk_write", `OUT of ${len} B at sector ${sector}`);
        if (!this.inRange(sector, len)) return this.done(c, B.VIRTIO_BLK_S_IOERR);
        const data = this.disk.view(sector * B.SECTOR_SIZE, len) ?? this.scratch.subarray(0, len);
        c.read(B.REQ_HEADER_SIZE, data);
        if (data.buffer === this.scratch.buffer) this.disk.write(sector * B.SECTOR_SIZE, data);
        return this.done(c, B.VIRTIO_BLK_S_OK);
      }
      case B.VIRTIO_BLK_T_FLUSH:
        this.disk.flush();
        return this.done(c, B.VIRTIO_BLK_S_OK);
      case B.VIRTIO_BLK_T_GET_ID: {
        if (statusAt < this.id.length) return this.done(c, B.VIRTIO_BLK_S_IOERR);
        const id = new Uint8Array(B.VIRTIO_BLK_ID_BYTES);
        id.set(this.id);
        return this.done(c, B.VIRTIO_BLK_S_OK, c.write(0, id.subarray(0, Math.min(statusAt, B.VIRTIO_BLK_ID_BYTES))));
      }
      case B.VIRTIO_BLK_T_DISCARD:
      case B.VIRTIO_BLK_T_WRITE_ZEROES:
        return this.segments(c, type);
      default:
        return this.done(c, B.VIRTIO_BLK_S_UNSUPP);
    }
  }

  /** DISCARD / WRITE_ZEROES: every segment is checked before any is applied. */
  private segments(c: DeviceChain, type: number): number {
    const bytes = c.readableLength - B.REQ_HEADER_SIZE;
    const n = bytes / B.SEGMENT_SIZE;
    if (!Number.isInteger(n) || n < 1 || n > MAX_SEGMENTS) return this.done(c, B.VIRTIO_BLK_S_IOERR);
    const seg = new Uint8Array(bytes);
    c.read(B.REQ_HEADER_SIZE, seg);
    const dv = new DataView(seg.buffer);
    const what = type === B.VIRTIO_BLK_T_DISCARD ? "DISCARD" : "WRITE_ZEROES";
    if (this.readOnly) return this.denied(c, "blk_write", `${what} of ${n} segment(s)`);
    for (let i = 0; i < n; i++) {
      const sector = Number(dv.getBigUint64(i * 16, true));
      const count = dv.getUint32(i * 16 + 8, true);
      const flags = dv.getUint32(i * 16 + 12, true);
      // Only WRITE_ZEROES may carry a flag (UNMAP); reserved bits must be zero.
      if (flags & ~(type === B.VIRTIO_BLK_T_WRITE_ZEROES ? B.WRITE_ZEROES_FLAG_UNMAP : 0)) return this.done(c, B.VIRTIO_BLK_S_UNSUPP);
      if (!this.inRange(sector, count * B.SECTOR_SIZE)) return this.done(c, B.VIRTIO_BLK_S_IOERR);
    }
    for (let i = 0; i < n; i++) {
      const sector = Number(dv.getBigUint64(i * 16, true));
      this.disk.zero(sector * B.SECTOR_SIZE, dv.getUint32(i * 16 + 8, true) * B.SECTOR_SIZE);
    }
    return this.done(c, B.VIRTIO_BLK_S_OK);
  }

  /** [sector, sector + len) is whole sectors, inside the disk, and not larger than one request may be. */
  private inRange(sector: number, len: number): boolean {
    if (len % B.SECTOR_SIZE !== 0 || len > MAX_REQUEST_BYTES) return false;
    return sector >= 0 && sector <= this.sectors && sector + len / B.SECTOR_SIZE <= this.sectors;
  }

  private denied(c: DeviceChain, perm: string, detail: string): number {
    this.stats.denied++;
    this.env?.deny(perm, `read-only disk: ${detail} refused`);
    return this.done(c, B.VIRTIO_BLK_S_IOERR);
  }

  /** Writes the status byte (the chain's last writable byte); returns the bytes written in all. */
  private done(c: DeviceChain, status: number, dataWritten = 0): number {
    if (status === B.VIRTIO_BLK_S_IOERR) this.stats.ioerr++;
    if (status === B.VIRTIO_BLK_S_UNSUPP) this.stats.unsupp++;
    this.status[0] = status;
    c.write(c.writableLength - 1, this.status);
    return dataWritten + 1;
  }
}
