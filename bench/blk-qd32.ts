// blk 4 KiB QD32 at a fixed request count (no time-boxed sampling): steadier than the
// 60 ms points of share.ts --quick for A/B runs of one change, and short enough to run
// under `node --cpu-prof`. Prints requests/s per op for each transport named.
//   npx tsx bench/blk-qd32.ts [argo] [foreign] [bounce] [grant] [--rounds N]
import { openDevice, TRANSPORTS, type TransportName } from "./transports.ts";
import { BlkDriver, BlkModel } from "../host/devices/index.ts";

const QD = 32;
const SIZE = 4096;
const SECTORS = (64 << 20) / 512;

async function run(transport: TransportName, rounds: number): Promise<{ read: number; write: number }> {
  const dev = await openDevice(transport, "blk", new BlkModel({ image: new Uint8Array(64 << 20).fill(0x11) }));
  const blk = new BlkDriver(dev.dev, { queueSize: 128 });
  await blk.init();
  const buf = dev.dev.alloc(QD * SIZE);
  const out = { read: 0, write: 0 };
  for (const op of ["read", "write"] as const) {
    let n = 0;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const ps: Promise<number>[] = [];
      for (let k = 0; k < QD; k++, n++) {
        const sector = (n * (SIZE / 512)) % SECTORS;
        ps.push(op === "read" ? blk.read(sector, buf + k * SIZE, SIZE) : blk.write(sector, buf + k * SIZE, SIZE));
      }
      for (const rc of await Promise.all(ps)) if (rc !== 0) throw new Error(`${transport} blk ${op} failed: ${rc}`);
    }
    out[op] = n / ((performance.now() - t0) / 1000);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--rounds");
  const rounds = at >= 0 ? Number(args[at + 1]) : 4000;
  const names = args.filter((a, i) => (TRANSPORTS as readonly string[]).includes(a) && (at < 0 || i !== at + 1)) as TransportName[];
  for (const t of names.length ? names : (["argo"] as TransportName[])) {
    const r = await run(t, rounds);
    console.log(`${t} blk 4 KiB QD32: read ${Math.round(r.read)} req/s, write ${Math.round(r.write)} req/s (${rounds * QD} requests per op)`);
  }
  process.exit(0);
}
