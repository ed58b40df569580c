// In-process A/B of blk (QD32 by default) over one transport: two checkouts loaded side by side in one
// process, rounds of 32 requests alternated (the order swapped every round), and the
// median of the paired time ratios reported per op. On a shared, noisy machine this sees
// a few percent that separate runs cannot. Build each tree's Wasm first (`npm run
// build:wasm` there) and link its node_modules.
//   npx tsx bench/ab-blk.ts TREE_A TREE_B [argo|grant|foreign|bounce] [SIZE] [SECONDS] [QD]
//   e.g. git worktree add /tmp/base HEAD~1 && ln -s $PWD/node_modules /tmp/base/ && \
//        (cd /tmp/base && npm run build:wasm) && npx tsx bench/ab-blk.ts /tmp/base . argo 4096
import { resolve } from "node:path";

let QD = 32;
const SECTORS = (64 << 20) / 512;

type Run = (op: "read" | "write") => Promise<number>;

/** One tree's blk device over `transport`; the returned function runs one round and gives us per request. */
async function world(tree: string, transport: string, size: number): Promise<Run> {
  const root = resolve(tree);
  const { openDevice } = await import(`${root}/bench/transports.ts`);
  const { BlkDriver, BlkModel } = await import(`${root}/host/devices/index.ts`);
  const dev = await openDevice(transport, "blk", new BlkModel({ image: new Uint8Array(64 << 20).fill(0x11) }));
  const blk = new BlkDriver(dev.dev, { queueSize: 128 });
  await blk.init();
  const buf: number = dev.dev.alloc(QD * size);
  let n = 0;
  return async (op) => {
    const t = performance.now();
    const ps: Promise<number>[] = [];
    for (let k = 0; k < QD; k++, n++) {
      const sector = (n * (size / 512)) % SECTORS;
      ps.push(op === "read" ? blk.read(sector, buf + k * size, size) : blk.write(sector, buf + k * size, size));
    }
    for (const rc of await Promise.all(ps)) if (rc !== 0) throw new Error(`${tree}: blk ${op} failed (${rc})`);
    return ((performance.now() - t) * 1e3) / QD;
  };
}

const median = (v: number[]): number => [...v].sort((p, q) => p - q)[v.length >> 1];

async function main(): Promise<void> {
  const [treeA, treeB, transport = "argo", sizeArg = "4096", secsArg = "6", qdArg = "32"] = process.argv.slice(2);
  QD = Number(qdArg);
  if (!treeA || !treeB) {
    console.error("usage: npx tsx bench/ab-blk.ts TREE_A TREE_B [transport] [size] [seconds] [queue depth]");
    process.exit(2);
  }
  const size = Number(sizeArg);
  const secs = Number(secsArg);
  const A = await world(treeA, transport, size);
  const B = await world(treeB, transport, size);
  for (const op of ["read", "write"] as const) {
    for (let w = 0; w < 300; w++) { await A(op); await B(op); } // warm both up alike
    const as: number[] = [];
    const bs: number[] = [];
    const ratios: number[] = [];
    const t0 = performance.now();
    for (let r = 0; performance.now() - t0 < secs * 500; r++) {
      let a: number;
      let b: number;
      if (r & 1) { a = await A(op); b = await B(op); } else { b = await B(op); a = await A(op); }
      as.push(a);
      bs.push(b);
      ratios.push(b / a);
    }
    console.log(`${transport} blk ${op} ${size} B QD${QD}: A ${(1e3 / median(as)).toFixed(0)} k req/s, B ${(1e3 / median(bs)).toFixed(0)} k req/s, B/A time per request (median of ${ratios.length} paired rounds) ${median(ratios).toFixed(3)}`);
  }
}

await main();
process.exit(0);
