// The Linux guest's parts, from Debian's archive: the stock i386 kernel (resolved through
// the `linux-image-686` meta-package, since the ABI name changes with every kernel
// update), its virtio modules, busybox-static and SeaBIOS. apt does the fetching and
// the verification (each .deb's hash against the signed index), in a private state and
// lists directory for i386: the system's apt setup (sources, lists, architectures) is
// read, never changed. Only what the guest needs is kept, in a cache outside the repo
// tree, keyed by the packages' versions.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { moduleDepends } from "./modules.ts";

/** What the guest is built from, all files inside `dir`. */
export interface LinuxAssets {
  dir: string;
  kernelVersion: string;
  /** Package versions, e.g. { "linux-image-6.1.0-57-686": "6.1.192-3", ... }. */
  packages: Record<string, string>;
  bzimage: string;
  bios: string;
  busybox: string;
  /** Kernel modules by name (e.g. "virtio_mmio"), each a path to its uncompressed .ko. */
  modules: Record<string, string>;
  /** sha256 of each file above, as recorded when the cache was filled. */
  sha256: Record<string, string>;
}

/** The assets cannot be had here; `message` is one line saying what to do. */
export class AssetsUnavailable extends Error {}

/** Modules the guest may load (their dependencies are added from each .ko's modinfo). */
export const GUEST_MODULES = [
  "virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console", "virtio-rng", "virtio_net",
  "vmw_vsock_virtio_transport",
  // A filesystem on a virtio disk (ext2 through ext4), for programs run from the disk.
  "ext4", "crc32c_generic",
];

const META_PACKAGE = "linux-image-686";
const OTHER_PACKAGES = ["busybox-static", "seabios"];
const MANIFEST = "manifest.json";

/** The cache root: $VIRTIO_ARGO_CACHE, else $XDG_CACHE_HOME/virtio-argo, else ~/.cache/virtio-argo. */
export function cacheRoot(): string {
  if (process.env.VIRTIO_ARGO_CACHE) return process.env.VIRTIO_ARGO_CACHE;
  const xdg = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(xdg, "virtio-argo");
}

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** One source from the system's apt configuration (deb822 `.sources` or one-line `sources.list`). */
interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
  signedBy?: string;
}

/** Reads the system's configured Debian sources, so mirrors and proxies it uses are honoured. */
export function systemSources(root = "/etc/apt"): AptSource[] {
  const out: AptSource[] = [];
  const files: string[] = [];
  if (existsSync(join(root, "sources.list"))) files.push(join(root, "sources.list"));
  const parts = join(root, "sources.list.d");
  if (existsSync(parts)) for (const f of readdirSync(parts).sort()) if (f.endsWith(".sources") || f.endsWith(".list")) files.push(join(parts, f));
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    if (file.endsWith(".sources")) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string) => stanza.match(new RegExp(`^${name}:\\s*(.+)$`, "mi"))?.[1].trim();
        if (!(field("Types") ?? "").split(/\s+/).includes("deb")) continue;
        if ((field("Enabled") ?? "yes").toLowerCase() === "no") continue;
        const uris = (field("URIs") ?? "").split(/\s+/).filter(Boolean);
        for (const uri of uris) {
          out.push({ uri, suites: (field("Suites") ?? "").split(/\s+/).filter(Boolean), components: (field("Components") ?? "").split(/\s+/).filter(Boolean), signedBy: field("Signed-By") });
        }
      }
    } else {
      for (const line of text.split("\n")) {
        const m = line.match(/^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/);
        if (!m) continue;
        const signedBy = m[1]?.match(/signed-by=(\S+?)[\s\]]/)?.[1];
        out.push({ uri: m[2], suites: [m[3]], components: m[4].trim().split(/\s+/), signedBy });
      }
    }
  }
  return out.filter((s) => s.suites.length && s.components.includes("main"));
}

/** apt options that keep every piece of apt state in `dir` and ask for i386 only. */
function aptOptions(dir: string): string[] {
  const o = (k: string, v: string) => ["-o", `${k}=${v}`];
  return [
    ...o("Dir::State", join(dir, "state")), ...o("Dir::State::Status", "/dev/null"),
    ...o("Dir::Cache", join(dir, "cache")), ...o("Dir::Etc::SourceList", join(dir, "sources.list")),
    ...o("Dir::Etc::SourceParts", join(dir, "sources.list.d")), ...o("APT::Architecture", "i386"),
    ...o("APT::Architectures", "i386"), ...o("Debug::NoLocking", "1"), ...o("APT::Sandbox::User", "root"),
  ];
}

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new AssetsUnavailable(`${cmd} ${args.filter((a) => !a.startsWith("-o") && !a.includes("::")).join(" ")} failed: ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`);
  return r.stdout;
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** The newest complete cache entry, if any (for hosts that cannot reach the archive now). */
function newestCached(root: string): LinuxAssets | null {
  const dir = join(root, "linux");
  if (!existsSync(dir)) return null;
  const entries = readdirSync(dir).map((d) => join(dir, d, MANIFEST)).filter((m) => existsSync(m));
  entries.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return entries.length ? readManifest(entries[0]) : null;
}

function readManifest(file: string): LinuxAssets | null {
  try {
    const m = JSON.parse(readFileSync(file, "utf8")) as LinuxAssets;
    const dir = dirname(file);
    const at = (p: string) => (p.startsWith("/") ? p : join(dir, p));
    m.dir = dir;
    m.bzimage = at(m.bzimage);
    m.bios = at(m.bios);
    m.busybox = at(m.busybox);
    m.modules = Object.fromEntries(Object.entries(m.modules).map(([k, v]) => [k, at(v)]));
    // An entry made for another module list is not this one.
    if (!GUEST_MODULES.every((g) => g in m.modules || g.replace(/-/g, "_") in m.modules)) return null;
    for (const f of [m.bzimage, m.bios, m.busybox, ...Object.values(m.modules)]) if (!existsSync(f)) return null;
    return m;
  } catch {
    return null;
  }
}

export interface FetchOptions {
  /** Print progress lines here (e.g. console.error). */
  log?: (line: string) => void;
  /** Use a complete cache entry without asking the archive (default: ask, fall back to the cache). */
  offline?: boolean;
}

/**
 * The guest's assets, from the cache or fetched now. Throws AssetsUnavailable with one
 * line saying what to do when they cannot be had (no apt, no archive, no cache).
 */
export function linuxAssets(opts: FetchOptions = {}): LinuxAssets {
  const root = cacheRoot();
  const log = opts.log ?? (() => {});
  const cached = newestCached(root);
  if (opts.offline) {
    if (cached) return cached;
    throw new AssetsUnavailable(`no Linux guest assets in ${root}: run \`npx virtio-argo linux --fetch\` on a Debian host with network access to its archive`);
  }
  if (!have("apt-get") || !have("apt-cache") || !have("dpkg-deb")) {
    if (cached) return cached;
    throw new AssetsUnavailable("the Linux guest needs Debian's apt-get and dpkg-deb to fetch its kernel, busybox-static and seabios (i386); run on Debian or Ubuntu, or copy a filled cache to " + root);
  }
  const aptDir = join(root, "apt-i386");
  try {
    return fetchWithApt(root, aptDir, log);
  } catch (e) {
    if (cached && e instanceof AssetsUnavailable) {
      log(`archive not reachable (${e.message}); using cached ${cached.kernelVersion}`);
      return cached;
    }
    throw e;
  }
}

function fetchWithApt(root: string, aptDir: string, log: (l: string) => void): LinuxAssets {
  const sources = systemSources();
  if (!sources.length) throw new AssetsUnavailable("no Debian 'main' source in /etc/apt: the Linux guest's packages come from Debian's archive");
  for (const d of ["state/lists/partial", "cache/archives/partial", "sources.list.d"]) mkdirSync(join(aptDir, d), { recursive: true });
  writeFileSync(join(aptDir, "sources.list"), sources.flatMap((s) => s.suites.map((suite) =>
    `deb [arch=i386${s.signedBy ? ` signed-by=${s.signedBy}` : ""}] ${s.uri} ${suite} main\n`)).join(""));
  const opts = aptOptions(aptDir);
  log("apt-get update (i386, private lists)");
  run("apt-get", [...opts, "-qq", "update"]);
  const depends = run("apt-cache", [...opts, "depends", META_PACKAGE]);
  const image = depends.match(/Depends:\s+(linux-image-\S+)/)?.[1];
  if (!image) throw new AssetsUnavailable(`cannot resolve ${META_PACKAGE} to a kernel package`);
  const packages: Record<string, string> = {};
  for (const p of [image, ...OTHER_PACKAGES]) {
    const v = run("apt-cache", [...opts, "policy", p]).match(/Candidate:\s+(\S+)/)?.[1];
    if (!v || v === "(none)") throw new AssetsUnavailable(`package ${p} (i386) not found in the archive`);
    packages[p] = v;
  }
  // Keyed by what went in: the package versions and the modules taken from them.
  const key = createHash("sha256").update(JSON.stringify({ packages, modules: GUEST_MODULES })).digest("hex").slice(0, 16);
  const dir = join(root, "linux", `${image.replace(/^linux-image-/, "")}-${key}`);
  const hit = readManifest(join(dir, MANIFEST));
  if (hit) return hit;

  const work = mkdtempSync(join(root, "fetch-"));
  try {
    log(`apt-get download ${Object.entries(packages).map(([p, v]) => `${p}=${v}`).join(" ")}`);
    run("apt-get", [...opts, "-qq", "download", ...Object.entries(packages).map(([p, v]) => `${p}=${v}`)], work);
    const tree = join(work, "tree");
    mkdirSync(tree);
    for (const deb of readdirSync(work).filter((f) => f.endsWith(".deb"))) run("dpkg-deb", ["-x", join(work, deb), tree]);
    const kernelVersion = image.replace(/^linux-image-/, "");
    const stage = join(work, "keep");
    mkdirSync(join(stage, "modules"), { recursive: true });
    const keep = (from: string, to: string) => {
      if (!existsSync(from)) throw new AssetsUnavailable(`${from.slice(tree.length)} missing from the packages`);
      copyFileSync(from, join(stage, to));
      return join(dir, to);
    };
    const bzimage = keep(join(tree, "boot", `vmlinuz-${kernelVersion}`), "vmlinuz");
    const bios = keep(join(tree, "usr/share/seabios/bios.bin"), "bios.bin");
    const busybox = keep(join(tree, "bin/busybox"), "busybox");
    const modules = collectModules(join(tree, "lib/modules", kernelVersion), (name, path) => keep(path, join("modules", `${name}.ko`)));
    const manifest: LinuxAssets = { dir, kernelVersion, packages, bzimage, bios, busybox, modules, sha256: {} };
    // Stored relative to the entry, so a cache copied elsewhere still works.
    const relative = (p: string) => p.slice(dir.length + 1);
    const stored = {
      ...manifest, dir: ".", bzimage: relative(bzimage), bios: relative(bios), busybox: relative(busybox),
      modules: Object.fromEntries(Object.entries(modules).map(([k, v]) => [k, relative(v)])),
    };
    for (const f of readdirSync(stage, { recursive: true }) as string[]) {
      const p = join(stage, f);
      if (statSync(p).isFile()) manifest.sha256[f] = sha256(p);
    }
    writeFileSync(join(stage, MANIFEST), JSON.stringify(stored, null, 2));
    mkdirSync(dirname(dir), { recursive: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(stage, dir); // whole entry appears at once: a half-filled cache is never read
    // Entries for other versions are not needed any more (the archive moved on).
    for (const other of readdirSync(dirname(dir))) if (join(dirname(dir), other) !== dir) rmSync(join(dirname(dir), other), { recursive: true, force: true });
    log(`cached in ${dir}`);
    return manifest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Finds GUEST_MODULES and everything they depend on (modinfo `depends=`), in load order. */
function collectModules(moddir: string, keep: (name: string, path: string) => string): Record<string, string> {
  const byName = new Map<string, string>();
  for (const f of readdirSync(join(moddir, "kernel"), { recursive: true }) as string[]) {
    if (f.endsWith(".ko")) byName.set(f.slice(f.lastIndexOf("/") + 1, -3), join(moddir, "kernel", f));
  }
  const out: Record<string, string> = {};
  const visit = (name: string, depth: number) => {
    const canonical = byName.has(name) ? name : name.replace(/_/g, "-");
    const path = byName.get(canonical) ?? byName.get(name.replace(/-/g, "_"));
    if (!path) throw new AssetsUnavailable(`module ${name} not in the kernel package (built in? then drop it from GUEST_MODULES)`);
    if (depth > 32) throw new AssetsUnavailable(`module dependency loop at ${name}`);
    const real = path.slice(path.lastIndexOf("/") + 1, -3);
    if (real in out) return;
    for (const dep of moduleDepends(readFileSync(path))) visit(dep, depth + 1);
    out[real] = keep(real, path);
  };
  for (const m of GUEST_MODULES) visit(m, 0);
  return out;
}

/** For tests and the CLI: true when apt exists here (so a fetch can be attempted). */
export function aptAvailable(): boolean {
  return have("apt-get") && have("dpkg-deb");
}

