// `npm run bench -- --quick`: the report's shape, not its numbers (machines differ and are
// noisy; the numbers are for people). Written to a temp dir, never into the repo. The HTML
// page itself is checked in a DOM and in a browser by report.test.ts.
import { describe, expect, it, vi } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../host/cli/main.ts";

const positive = (n: unknown) => typeof n === "number" && Number.isFinite(n) && n > 0;

describe("virtio-argo bench --quick (what npm run bench -- --quick runs)", () => {
  it("writes JSON, Markdown and an HTML report with charts for every transport and size", async () => {
    const dir = mkdtempSync(join(tmpdir(), "virtio-argo-bench-"));
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      expect(await main(["bench", "--quick", "--no-linux", "--json", join(dir, "out.json"), "--out", dir])).toBe(0);
      expect(log.mock.calls[0]?.[0]).toMatch(/^# virtio-argo benchmark \(quick, /); // the report's first line
      const doc = JSON.parse(readFileSync(join(dir, "out.json"), "utf8"));
      expect(doc.schema).toBe("virtio-argo-bench/2");
      const share = doc.results.share;
      expect(share.transports).toEqual(["argo", "grant", "foreign", "bounce"]);
      for (const t of share.transports) {
        for (const size of share.sizes) {
          const ops = size < 512 ? ["read"] : ["read", "write"];
          for (const op of ops) {
            const row = share.rows.find((r: { transport: string; size: number; op: string }) => r.transport === t && r.size === size && r.op === op);
            expect(row, `${t} ${op} ${size}`).toBeDefined();
            expect(positive(row.qd1.p50Us) && positive(row.qd32.requestsPerSec) && positive(row.qd32.mbPerSec) && positive(row.cpuNsPerByte)).toBe(true);
            expect(row.exposedPages).toBeGreaterThanOrEqual(0);
            if (t === "argo") expect(row.exposedPages).toBe(0);
          }
        }
      }
      expect(share.memcpy.map((m: { size: number }) => m.size)).toEqual(share.sizes);
      expect(share.memcpy.every((m: { mbPerSec: number }) => positive(m.mbPerSec))).toBe(true);
      expect(positive(share.targets.argoVsForeign4k) && positive(share.targets.argoVsBounce4k)).toBe(true);
      expect(doc.results.argo.length).toBeGreaterThan(0);
      expect(doc.results.virtqueue.map((r: { format: string; descriptors: number; indirect: boolean }) => `${r.format}/${r.descriptors}/${r.indirect}`))
        .toEqual(["split/1/false", "split/4/false", "split/4/true", "packed/1/false", "packed/4/false", "packed/4/true"]);
      expect(doc.results.virtqueue.every((r: { cyclesPerSec: number }) => positive(r.cyclesPerSec))).toBe(true);
      const md = readFileSync(join(dir, "bench.md"), "utf8");
      expect(md).toMatch(/## Copy versus share/);
      expect(md).toMatch(/memcpy limit/);
      const html = readFileSync(join(dir, "bench.html"), "utf8");
      expect(html).toMatch(/Chart\.js v\d/); // the inlined library's banner
      for (const id of ["trade", "read", "write", "latency"]) expect(html).toContain(`<canvas id="${id}"`);
      expect(html).toContain('"type":"logarithmic"');
      expect(html).toContain('"label":"argo"');
      // The Markdown report's tables are HTML tables, one per table in bench.md.
      expect(html.match(/<table>/g)?.length).toBe(md.split("\n").filter((l) => /^\|[-:|]+\|$/.test(l)).length);
      // The page's own chart script, run against a stand-in Chart: the trade chart, then three
      // log-log charts, one dataset per transport (plus the memcpy limit on the throughput charts).
      const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
      const made: Array<{ id: string; labels: string[]; x: string; y: string }> = [];
      const stub = function (el: { id: string }, cfg: { data: { datasets: Array<{ label: string }> }; options: { scales: { x: { type: string }; y: { type: string } } } }) {
        made.push({ id: el.id, labels: cfg.data.datasets.map((d) => d.label), x: cfg.options.scales.x.type, y: cfg.options.scales.y.type });
      };
      new Function("Chart", "document", scripts[1])(stub, { getElementById: (id: string) => ({ id }) });
      expect(made.map((c) => c.id)).toEqual(["trade", "read", "write", "latency"]);
      expect(made[0].labels).toEqual(["argo", "grant", "foreign", "bounce"]);
      expect([made[0].x, made[0].y]).toEqual(["linear", "linear"]);
      expect(made[1].labels).toEqual(["argo", "grant", "foreign", "bounce", "memcpy limit"]);
      expect(made.slice(1).every((c) => c.x === "logarithmic" && c.y === "logarithmic")).toBe(true);
      expect(() => new Function(scripts[0])).not.toThrow(); // chart.js itself parses
    } finally {
      log.mockRestore();
      err.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
