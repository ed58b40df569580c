// Where a virtual disk's bytes live: an in-memory image or a file (synchronous I/O, so a
// request completes inside queueNotify). Offsets are checked by the model first.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";

export interface DiskStorage {
  readonly bytes: number;
  /** The bytes in place, when the disk is in memory (no copy); null for files. */
  view(offset: number, length: number): Uint8Array | null;
  read(offset: number, dst: Uint8Array): void;
  write(offset: number, src: Uint8Array): void;
  zero(offset: number, length: number): void;
  flush(): void;
  close(): void;
}

export class MemoryDisk implements DiskStorage {
  constructor(private readonly image: Uint8Array) {}
  get bytes(): number {
    return this.image.length;
  }
  view(offset: number, length: number): Uint8Array {
    return this.image.subarray(offset, offset + length);
  }
  read(offset: number, dst: Uint8Array): void {
    dst.set(this.image.subarray(offset, offset + dst.length));
  }
  write(offset: number, src: Uint8Array): void {
    this.image.set(src, offset);
  }
  zero(offset: number, length: number): void {
    this.image.fill(0, offset, offset + length);
  }
  flush(): void {}
  close(): void {}
}

export class FileDisk implements DiskStorage {
  private fd: number;
  readonly bytes: number;
  constructor(path: string, readOnly: boolean) {
    this.fd = openSync(path, readOnly ? "r" : "r+");
    this.bytes = fstatSync(this.fd).size;
  }
  view(): null {
    return null;
  }
  read(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.fd, dst, done, dst.length - done, offset + done);
      if (n === 0) { dst.fill(0, done); return; } // past EOF of a sparse file
      done += n;
    }
  }
  write(offset: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) done += writeSync(this.fd, src, done, src.length - done, offset + done);
  }
  zero(offset: number, length: number): void {
    const z = new Uint8Array(Math.min(length, 1 << 16));
    for (let at = 0; at < length; at += z.length) this.write(offset + at, z.subarray(0, Math.min(z.length, length - at)));
  }
  flush(): void {
    fsyncSync(this.fd);
  }
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
