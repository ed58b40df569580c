// The Linux guest's initrd: an uncompressed newc cpio holding the ACPI SSDT at
// kernel/firmware/acpi/ssdt.aml (the kernel reads tables from the first, uncompressed
// archive: CONFIG_ACPI_TABLE_UPGRADE), followed by the root filesystem: busybox, the
// virtio modules in load order and /init. Entries carry mtime 0 and fixed inode
// numbers, so the same inputs give the same bytes.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { LinuxAssets } from "./assets.ts";

const require = createRequire(import.meta.url);
const cpio = require("cpio-stream") as { pack(opts: { format: "newc" }): CpioPack };

interface CpioHeader { name: string; mode: number; uid: number; gid: number; mtime: number; dev: number; devmajor: number; devminor: number; rdevmajor: number; rdevminor: number; type?: string; linkname?: string }
interface CpioPack extends NodeJS.ReadableStream {
  entry(header: CpioHeader, body?: Buffer | string, cb?: (err?: Error) => void): void;
  finalize(): void;
}

export interface CpioFile {
  path: string;
  /** Directory when absent; symlink when `link` is set. */
  data?: Uint8Array | string;
  link?: string;
  mode?: number;
}

/** One newc archive of `files` (parents listed before children). */
export async function newcArchive(files: readonly CpioFile[]): Promise<Uint8Array> {
  const pack = cpio.pack({ format: "newc" }); // newc: the only format the kernel unpacks
  const chunks: Buffer[] = [];
  pack.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => { pack.on("end", () => resolve()); pack.on("error", reject); });
  for (const f of files) {
    const base = { uid: 0, gid: 0, mtime: 0, dev: 0, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0 };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error) => (err ? reject(err) : resolve());
      if (f.link !== undefined) pack.entry({ ...base, name: f.path, mode: 0o120777, type: "symlink", linkname: f.link }, undefined, cb);
      else if (f.data === undefined) pack.entry({ ...base, name: f.path, mode: 0o040000 | (f.mode ?? 0o755) }, undefined, cb);
      else pack.entry({ ...base, name: f.path, mode: 0o100000 | (f.mode ?? 0o644) }, Buffer.from(f.data as Uint8Array), cb);
    });
  }
  pack.finalize();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}

export interface InitramfsOptions {
  assets: LinuxAssets;
  /** The ACPI SSDT describing the virtio-mmio devices (absent: no ACPI archive). */
  ssdt?: Uint8Array;
  /** Modules to load, by name, in load order (dependencies first). */
  modules: readonly string[];
  /** /init, a busybox sh script. */
  init: string;
  /** Extra files (e.g. /etc/run.sh with the command to run). */
  extra?: readonly CpioFile[];
}

/** The whole initrd: [ACPI archive] + root archive. */
export async function buildInitramfs(o: InitramfsOptions): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  if (o.ssdt) {
    parts.push(await newcArchive([
      { path: "kernel" }, { path: "kernel/firmware" }, { path: "kernel/firmware/acpi" },
      { path: "kernel/firmware/acpi/ssdt.aml", data: o.ssdt },
    ]));
  }
  const files: CpioFile[] = [
    { path: "bin" }, { path: "sbin" }, { path: "dev" }, { path: "proc" }, { path: "sys" }, { path: "tmp" },
    { path: "etc" }, { path: "lib" }, { path: "lib/modules" }, { path: "mnt" }, { path: "root" },
    { path: "bin/busybox", data: readFileSync(o.assets.busybox), mode: 0o755 },
    { path: "bin/sh", link: "busybox" },
  ];
  for (const m of o.modules) {
    const path = o.assets.modules[m];
    if (!path) throw new RangeError(`module ${m} is not in the guest assets`);
    files.push({ path: `lib/modules/${m}.ko`, data: readFileSync(path) });
  }
  files.push({ path: "lib/modules/order", data: o.modules.join("\n") + "\n" });
  files.push({ path: "init", data: o.init, mode: 0o755 });
  for (const f of o.extra ?? []) files.push(f);
  parts.push(await newcArchive(files));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
