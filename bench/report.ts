// The HTML report: charts drawn by chart.js (inlined from node_modules, so the file opens
// offline), the data they draw embedded as JSON, and the Markdown report beside them.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { ShareResults } from "./share.ts";

const COLORS: Record<string, string> = { argo: "#d62728", grant: "#1f77b4", foreign: "#2ca02c", bounce: "#ff7f0e", memcpy: "#7f7f7f" };

/** chart.js's UMD bundle, as the package ships it. */
function chartJs(): string {
  // The package's exports map hides dist/: find it next to the entry point.
  const main = createRequire(import.meta.url).resolve("chart.js");
  return readFileSync(join(dirname(main), "chart.umd.min.js"), "utf8");
}

interface Series {
  label: string;
  color: string;
  points: Array<{ x: number; y: number }>;
  dashed?: boolean;
}

/** Chart definitions from the results: throughput vs size (read, write) and QD1 latency vs size. */
export function chartSeries(r: ShareResults): Array<{ id: string; title: string; yTitle: string; series: Series[] }> {
  const per = (op: "read" | "write", y: (row: ShareResults["rows"][number]) => number): Series[] =>
    r.transports.map((t) => ({
      label: t,
      color: COLORS[t],
      points: r.rows.filter((x) => x.transport === t && x.op === op).map((x) => ({ x: x.size, y: y(x) })),
    }));
  const memcpy: Series = { label: "memcpy limit", color: COLORS.memcpy, dashed: true, points: r.memcpy.map((m) => ({ x: m.size, y: m.mbPerSec })) };
  return [
    { id: "read", title: "Read throughput at queue depth 32 (64 B = rng)", yTitle: "MB/s", series: [...per("read", (x) => x.qd32.mbPerSec), memcpy] },
    { id: "write", title: "Write throughput at queue depth 32", yTitle: "MB/s", series: [...per("write", (x) => x.qd32.mbPerSec), memcpy] },
    { id: "latency", title: "Read latency at queue depth 1 (median)", yTitle: "microseconds", series: per("read", (x) => x.qd1.p50Us) },
  ];
}

export function htmlReport(title: string, markdown: string, share: ShareResults, doc: unknown): string {
  const charts = chartSeries(share);
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const script = `
const charts = ${JSON.stringify(charts)};
for (const c of charts) {
  new Chart(document.getElementById(c.id), {
    type: "line",
    data: { datasets: c.series.map((s) => ({ label: s.label, data: s.points, borderColor: s.color, backgroundColor: s.color, borderDash: s.dashed ? [6, 4] : [], tension: 0 })) },
    options: {
      plugins: { title: { display: true, text: c.title } },
      scales: {
        x: { type: "logarithmic", title: { display: true, text: "request size (bytes)" } },
        y: { type: "logarithmic", title: { display: true, text: c.yTitle } },
      },
    },
  });
}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}canvas{margin:1em 0}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}</style>
<script>${chartJs()}</script></head>
<body><h1>${esc(title)}</h1>
${charts.map((c) => `<canvas id="${c.id}" width="960" height="480"></canvas>`).join("\n")}
<h2>Tables</h2><pre>${esc(markdown)}</pre>
<script type="application/json" id="results">${esc(JSON.stringify(doc))}</script>
<script>${script}</script>
</body></html>
`;
}
