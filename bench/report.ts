// The HTML report: the trade this project measures first (throughput kept against guest
// pages exposed), the throughput and latency charts, the Linux guest's numbers when the run
// has them, then every table of the Markdown report as a real, sortable HTML table.
// chart.js is inlined from node_modules, so the file opens offline; the results are
// embedded as JSON.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { marked } from "marked";
import type { ShareResults, ShareRow } from "./share.ts";

const COLORS: Record<string, string> = { argo: "#d62728", grant: "#1f77b4", foreign: "#2ca02c", bounce: "#ff7f0e", memcpy: "#7f7f7f" };

/** chart.js's UMD bundle, as the package ships it. */
function chartJs(): string {
  // The package's exports map hides dist/: find it next to the entry point.
  const main = createRequire(import.meta.url).resolve("chart.js");
  return readFileSync(join(dirname(main), "chart.umd.min.js"), "utf8");
}

interface Point {
  x: number;
  y: number;
  /** Tooltip text; the trade chart names the request here. */
  label?: string;
  /** chart.js point style and radius (the trade chart: read/write and request size). */
  style?: "circle" | "triangle" | "rect";
  r?: number;
}

interface Series {
  label: string;
  color: string;
  points: Point[];
  dashed?: boolean;
  /** Points joined by a line (false: a scatter). */
  line: boolean;
}

interface Axis {
  type: "linear" | "logarithmic";
  title: string;
  min?: number;
}

export interface ChartDef {
  id: string;
  title: string;
  x: Axis;
  y: Axis;
  series: Series[];
}

const human = (n: number) => (n >= 1 << 20 ? `${n / (1 << 20)} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`);

/**
 * The headline chart: for each transport and request, QD32 requests/s relative to foreign
 * (sharing everything in place, the cost floor) against the guest pages the backend can
 * read. Argo sits at 0 pages; what it costs is how far below 1 it sits. Undefined when the
 * run has no foreign transport to compare with.
 */
export function tradeChart(r: ShareResults): ChartDef | undefined {
  if (!r.transports.includes("foreign")) return undefined;
  const foreign = (x: ShareRow) => r.rows.find((f) => f.transport === "foreign" && f.size === x.size && f.op === x.op);
  const smallest = Math.min(...r.sizes);
  const series = r.transports.map((t): Series => ({
    label: t,
    color: COLORS[t],
    line: false,
    points: r.rows.flatMap((x) => {
      const f = foreign(x);
      if (x.transport !== t || !f) return [];
      const y = x.qd32.requestsPerSec / f.qd32.requestsPerSec;
      return [{
        x: x.exposedPages,
        y,
        label: `${t} ${x.device} ${x.op} ${human(x.size)}: ${y.toFixed(2)}x foreign, ${x.exposedPages} pages readable`,
        style: x.op === "write" ? "triangle" : "circle",
        r: 3 + Math.log2(x.size / smallest) / 2, // 3 px at the smallest request, +1 px per 4x
      }];
    }),
  }));
  return {
    id: "trade",
    title: "The trade: request rate kept (QD32, relative to foreign) against guest pages the backend can read",
    x: { type: "linear", title: "guest pages the backend can read at the end of the run (argo: 0)", min: 0 },
    y: { type: "linear", title: "QD32 requests/s relative to foreign (1 = sharing in place)", min: 0 },
    series,
  };
}

/** Chart definitions from the results: the trade, throughput vs size (read, write) and QD1 latency vs size. */
export function chartSeries(r: ShareResults): ChartDef[] {
  const per = (op: "read" | "write", y: (row: ShareRow) => number): Series[] =>
    r.transports.map((t) => ({
      label: t,
      color: COLORS[t],
      line: true,
      points: r.rows.filter((x) => x.transport === t && x.op === op).map((x) => ({ x: x.size, y: y(x) })),
    }));
  const memcpy: Series = { label: "memcpy limit", color: COLORS.memcpy, dashed: true, line: true, points: r.memcpy.map((m) => ({ x: m.size, y: m.mbPerSec })) };
  const bySize = (id: string, title: string, yTitle: string, series: Series[]): ChartDef => ({
    id, title, series,
    x: { type: "logarithmic", title: "request size (bytes)" },
    y: { type: "logarithmic", title: yTitle },
  });
  const trade = tradeChart(r);
  return [
    ...(trade ? [trade] : []),
    bySize("read", "Read throughput at queue depth 32 (64 B = rng)", "MB/s", [...per("read", (x) => x.qd32.mbPerSec), memcpy]),
    bySize("write", "Write throughput at queue depth 32", "MB/s", [...per("write", (x) => x.qd32.mbPerSec), memcpy]),
    bySize("latency", "Read latency at queue depth 1 (median)", "microseconds", per("read", (x) => x.qd1.p50Us)),
  ];
}

/** One figure in an optional section: `{ name: "boot to shell", value: 4.2, unit: "s" }`. */
export interface ReportMetric {
  name: string;
  value: number | string;
  unit?: string;
}

/** A table in an optional section: one header per column, each row as many cells. */
export interface ReportTable {
  columns: string[];
  rows: Array<Array<number | string>>;
}

/**
 * An optional section of the bench JSON (`results.linux`), in any of three shapes: a list of
 * metrics, a table, or `{ title?, note?, metrics?, table? }`.
 */
export interface ReportSection {
  title?: string;
  note?: string;
  metrics?: ReportMetric[];
  table?: ReportTable;
}

/** Sections the report shows when the JSON has them: key under `results`, and the heading. */
export const OPTIONAL_SECTIONS = [{ key: "linux", id: "linux", heading: "Linux guest" }] as const;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** JSON that is safe inside a <script> element: `<` escaped so no `</script>` can close it. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, "\\u003c");

const isCell = (v: unknown): v is number | string => typeof v === "string" || (typeof v === "number" && Number.isFinite(v));
const isMetric = (v: unknown): v is ReportMetric => {
  const m = v as ReportMetric;
  return typeof m === "object" && m !== null && typeof m.name === "string" && isCell(m.value) && (m.unit === undefined || typeof m.unit === "string");
};
const isTable = (v: unknown): v is ReportTable => {
  const t = v as ReportTable;
  return typeof t === "object" && t !== null && Array.isArray(t.columns) && t.columns.every((c) => typeof c === "string") &&
    Array.isArray(t.rows) && t.rows.every((r) => Array.isArray(r) && r.length === t.columns.length && r.every(isCell));
};

/** Reads an optional section in any accepted shape; a string says what is wrong with it. */
export function readSection(v: unknown): ReportSection | string {
  if (Array.isArray(v)) return v.every(isMetric) ? { metrics: v } : "a list whose entries are not all { name, value, unit? }";
  if (isTable(v)) return { table: v };
  const s = v as ReportSection;
  if (typeof s !== "object" || s === null) return `a ${typeof v}, not an object or a list`;
  if (s.metrics !== undefined && !(Array.isArray(s.metrics) && s.metrics.every(isMetric))) return "metrics that are not all { name, value, unit? }";
  if (s.table !== undefined && !isTable(s.table)) return "a table that is not { columns: string[], rows: cells[][] } with one cell per column";
  if (s.metrics === undefined && s.table === undefined) return "neither metrics nor a table";
  if ((s.title !== undefined && typeof s.title !== "string") || (s.note !== undefined && typeof s.note !== "string")) return "a title or note that is not a string";
  return s;
}

const cell = (v: number | string) => (typeof v === "number" ? v.toLocaleString("en", { maximumFractionDigits: 2 }) : v);

function tableHtml(columns: string[], rows: Array<Array<number | string>>): string {
  // Numeric columns align right, as the Markdown tables ask.
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  const align = (i: number) => (numeric[i] ? ' align="right"' : "");
  return `<table>\n<thead><tr>${columns.map((c, i) => `<th${align(i)}>${esc(c)}</th>`).join("")}</tr></thead>\n<tbody>\n` +
    rows.map((r) => `<tr>${r.map((v, i) => `<td${align(i)}>${esc(cell(v))}</td>`).join("")}</tr>`).join("\n") + "\n</tbody></table>";
}

/** The HTML of an optional section: its heading, then its note, metrics and table. */
export function sectionHtml(id: string, heading: string, key: string, value: unknown): string {
  const head = (title?: string) => `<section id="${esc(id)}"><h2>${esc(title ?? heading)}</h2>`;
  if (value === undefined) return `${head()}<p class="none">No ${esc(heading)} numbers in this run (the JSON has no <code>results.${esc(key)}</code>).</p></section>`;
  const s = readSection(value);
  if (typeof s === "string") return `${head()}<p class="none">Not shown: <code>results.${esc(key)}</code> is ${esc(s)}.</p></section>`;
  return head(s.title) + (s.note ? `<p>${esc(s.note)}</p>` : "") +
    (s.metrics ? tableHtml(["measure", "value", "unit"], s.metrics.map((m) => [m.name, m.value, m.unit ?? ""])) : "") +
    (s.table ? tableHtml(s.table.columns, s.table.rows) : "") + "</section>";
}

/** The Markdown report's sections as HTML (its title line dropped: the page has its own). */
export function markdownHtml(markdown: string): string {
  return marked.parse(markdown.replace(/^# .*\n/, ""), { async: false, gfm: true });
}

interface BenchDoc {
  quick?: boolean;
  started?: string;
  machine?: { node?: string; cpu?: string; cores?: number };
  results?: Record<string, unknown>;
}

// Runs in the page: one chart.js chart per definition.
const CHART_SCRIPT = `
for (const c of charts) {
  // Linear axes get 5% headroom, so a point at exactly 1 (foreign against itself) is not on the edge.
  const axis = (a) => ({ type: a.type, min: a.min, grace: a.type === "linear" ? "5%" : 0, title: { display: true, text: a.title } });
  new Chart(document.getElementById(c.id), {
    type: "line",
    data: {
      datasets: c.series.map((s) => ({
        label: s.label, data: s.points, borderColor: s.color, backgroundColor: s.color, showLine: s.line,
        borderDash: s.dashed ? [6, 4] : [], tension: 0, clip: 12, // argo's points sit on the x = 0 axis: draw them whole
        pointStyle: s.points.map((p) => p.style || "circle"), pointRadius: s.points.map((p) => p.r || 3),
      })),
    },
    options: {
      animation: false, // a report, read or printed as it is: no frame of it half drawn
      plugins: {
        title: { display: true, text: c.title },
        tooltip: { callbacks: { label: (ctx) => ctx.raw.label || ctx.dataset.label + ": " + ctx.formattedValue } },
      },
      scales: { x: axis(c.x), y: axis(c.y) },
    },
  });
}`;

// Runs in the page: a click on a header sorts its table by that column (numbers as numbers,
// empty cells last), again for descending, a third time back to the report's order.
const SORT_SCRIPT = `
const key = (td) => {
  const t = (td ? td.textContent : "").trim();
  const n = Number(t.replace(/,/g, "").replace(/x$/, ""));
  return t === "" ? null : Number.isFinite(n) ? n : t;
};
for (const table of document.querySelectorAll("table")) {
  const body = table.querySelector("tbody");
  if (!body) continue;
  const rows = [...body.querySelectorAll("tr")];
  const heads = [...table.querySelectorAll("thead th")];
  heads.forEach((th, col) => {
    th.setAttribute("aria-sort", "none");
    th.addEventListener("click", () => {
      const was = th.getAttribute("aria-sort");
      const dir = was === "ascending" ? "descending" : was === "descending" ? "none" : "ascending";
      for (const h of heads) h.setAttribute("aria-sort", "none");
      th.setAttribute("aria-sort", dir);
      const sign = dir === "descending" ? -1 : 1;
      const order = dir === "none" ? rows : [...rows].sort((a, b) => {
        const x = key(a.children[col]), y = key(b.children[col]);
        if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
        if (typeof x === "number" && typeof y === "number") return sign * (x - y);
        return sign * String(x).localeCompare(String(y));
      });
      for (const r of order) body.appendChild(r);
    });
  });
}`;

const STYLE = `body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
.meta{color:#555}nav a{margin-right:1em}canvas{margin:1em 0}
table{border-collapse:collapse;margin:1em 0;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:3px 8px}thead th{background:#f0f0f0;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25b2"}th[aria-sort=descending]::after{content:" \\25bc"}
tbody tr:nth-child(even){background:#fafafa}code{background:#f3f3f3;padding:0 3px}.none{color:#777;font-style:italic}`;

/**
 * The report page: `markdown` is bench.md (its tables become HTML tables), `share` draws the
 * charts, `doc` is the bench JSON, embedded as it is and read for the run's machine line and
 * the optional sections (`results.linux`, see {@link ReportSection}).
 */
export function htmlReport(title: string, markdown: string, share: ShareResults, doc: unknown): string {
  const charts = chartSeries(share);
  const d = (doc ?? {}) as BenchDoc;
  const m = d.machine ?? {};
  const meta = [d.quick === undefined ? "" : d.quick ? "quick run" : "full run", m.node ? `Node ${m.node}` : "", m.cpu ?? "", m.cores ? `${m.cores} cores` : ""]
    .filter(Boolean).join(" · ");
  const canvas = (id: string) => `<canvas id="${esc(id)}" width="960" height="480"></canvas>`;
  const trade = charts.find((c) => c.id === "trade");
  const optional = OPTIONAL_SECTIONS.map((s) => sectionHtml(s.id, s.heading, s.key, d.results?.[s.key]));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>${STYLE}</style>
<script>${chartJs()}</script></head>
<body><h1>${esc(title)}</h1>
<p class="meta">${esc(meta)}</p>
<nav>${trade ? '<a href="#trade-section">The trade</a>' : ""}<a href="#by-size">Throughput and latency</a>${OPTIONAL_SECTIONS.map((s) => `<a href="#${s.id}">${esc(s.heading)}</a>`).join("")}<a href="#tables">Tables</a></nav>
${trade ? `<section id="trade-section"><h2>Copy versus share: what isolation costs</h2>
<p>Each point is one transport at one request: how many requests per second it keeps at queue depth 32, relative to
<code>foreign</code> (the backend maps the whole guest and works in place), against how many of the guest's pages the
backend can read. Circles are reads, triangles writes; larger points are larger requests (64 B to 1 MiB).</p>
${canvas(trade.id)}</section>` : ""}
<section id="by-size"><h2>Throughput and latency by request size</h2>
${charts.filter((c) => c !== trade).map((c) => canvas(c.id)).join("\n")}</section>
${optional.join("\n")}
<section id="tables">
${markdownHtml(markdown)}
</section>
<script type="application/json" id="results">${scriptJson(doc)}</script>
<script>const charts = ${scriptJson(charts)};${CHART_SCRIPT}</script>
<script>${SORT_SCRIPT}</script>
</body></html>
`;
}
