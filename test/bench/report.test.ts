// The HTML bench report from fixed results: its tables are HTML tables (sortable), its charts
// are built by its own script, the Linux guest's section renders from the JSON's generic
// shapes. Checked twice: in a DOM (linkedom, the page's scripts run against a stand-in
// Chart) everywhere, and in a real headless Chromium where one is installed.
import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseHTML } from "linkedom";
import { htmlReport, readSection } from "../../bench/report.ts";
import { shareTable, type ShareResults, type ShareRow } from "../../bench/share.ts";
import { TRANSPORTS } from "../../bench/transports.ts";

// Results shaped as runShareBench returns them; the numbers are arbitrary but distinct, so a
// point or a row that lands in the wrong place shows.
function fixture(): ShareResults {
  const sizes = [64, 4096, 1 << 20];
  const exposed = { argo: 0, grant: 67, foreign: 16384, bounce: 16384 } as const;
  const speed = { argo: 0.45, grant: 0.3, foreign: 1, bounce: 0.6 } as const;
  const rows: ShareRow[] = [];
  for (const size of sizes) {
    for (const op of size < 512 ? (["read"] as const) : (["read", "write"] as const)) {
      TRANSPORTS.forEach((t, i) => {
        const requestsPerSec = (200_000 * speed[t] * (op === "write" ? 0.9 : 1)) / (1 + size / 65536);
        rows.push({
          transport: t, device: size < 512 ? "rng" : "blk", op, size,
          qd1: { p50Us: 2 + i + size / 100_000, madUs: 0.1 * (i + 1), p99Us: 5 + i },
          qd32: { requestsPerSec, mbPerSec: (requestsPerSec * size) / 1e6 },
          cpuNsPerByte: 100 / size + i, exposedPages: exposed[t],
        });
      });
    }
  }
  return {
    transports: TRANSPORTS, sizes, rows,
    memcpy: sizes.map((size) => ({ size, mbPerSec: 1000 + size / 100 })),
    targets: { argoVsForeign4k: 0.45, argoVsBounce4k: 0.75 },
  };
}

const linux = {
  title: "Linux guest (v86)",
  note: "dd if=/dev/vda bs=1M count=16 | md5sum",
  metrics: [{ name: "boot to shell", value: 4.25, unit: "s" }, { name: "<img src=x onerror=alert(1)>", value: 12, unit: "MB/s" }],
  table: { columns: ["transport", "MB/s"], rows: [["argo", 12.5], ["foreign", 30]] },
};

function report(results: Record<string, unknown>) {
  const share = fixture();
  const md = `# virtio-argo benchmark (quick, test)\n\n## Copy versus share\n\n${shareTable(share)}\n\n## Tiny\n\n| a | b |\n|---|---:|\n| x | 2 |\n`;
  const doc = { schema: "virtio-argo-bench/2", quick: true, machine: { node: "v20", cpu: "</script><b>cpu</b>", cores: 2 }, results: { share, ...results } };
  return { share, md, doc, html: htmlReport("virtio-argo benchmark (test)", md, share, doc) };
}

const scriptsOf = (html: string) => [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);

interface MadeChart {
  canvas: string;
  cfg: { data: { datasets: Array<{ label: string; data: Array<{ x: number; y: number }>; showLine: boolean }> }; options: { scales: { x: { type: string }; y: { type: string } } } };
}

describe("HTML bench report in a DOM (linkedom; the page's own scripts, a stand-in Chart)", () => {
  const { share, md, doc, html } = report({ linux });
  const { document, Event } = parseHTML(html);

  it("every Markdown table is an HTML table with its headers and rows, and no Markdown is left as text", () => {
    const tables = Array.from(document.querySelectorAll("#tables table"));
    expect(tables.length).toBe(md.split("\n").filter((l) => /^\|[-:|]+\|$/.test(l)).length);
    const heads = Array.from(tables[0].querySelectorAll("thead th")).map((th) => th.textContent);
    expect(heads).toEqual(shareTable(share).split("\n")[0].split("|").slice(1, -1).map((s) => s.trim()));
    expect(tables[0].querySelectorAll("tbody tr").length).toBe(share.rows.length);
    expect(document.body.textContent).not.toMatch(/\|---/);
    expect(document.querySelector("#tables h2")?.textContent).toBe("Copy versus share");
  });

  it("its chart script makes the trade chart and the three by-size charts, on the page's canvases", () => {
    const [, charts] = scriptsOf(html);
    const made: MadeChart[] = [];
    const Chart = function (el: { tagName: string; id: string }, cfg: MadeChart["cfg"]) {
      expect(el.tagName).toBe("CANVAS");
      made.push({ canvas: el.id, cfg });
    };
    new Function("Chart", "document", charts)(Chart, document);
    expect(made.map((c) => c.canvas)).toEqual(["trade", "read", "write", "latency"]);
    for (const c of made.slice(1)) expect([c.cfg.options.scales.x.type, c.cfg.options.scales.y.type]).toEqual(["logarithmic", "logarithmic"]);
    expect(made[1].cfg.data.datasets.map((d) => d.label)).toEqual([...TRANSPORTS, "memcpy limit"]);
    // The trade: one scatter per transport, a point per request: x the pages the backend can
    // read, y its QD32 request rate over foreign's for the same request.
    const trade = made[0].cfg.data.datasets;
    expect(trade.map((d) => d.label)).toEqual([...TRANSPORTS]);
    for (const d of trade) {
      expect(d.showLine).toBe(false);
      const rows = share.rows.filter((r) => r.transport === d.label);
      expect(d.data.length).toBe(rows.length);
      rows.forEach((r, i) => {
        const foreign = share.rows.find((f) => f.transport === "foreign" && f.size === r.size && f.op === r.op)!;
        expect(d.data[i].x).toBe(r.exposedPages);
        expect(d.data[i].y).toBeCloseTo(r.qd32.requestsPerSec / foreign.qd32.requestsPerSec, 12);
      });
    }
    expect(trade.find((d) => d.label === "argo")!.data.every((p) => p.x === 0 && Math.abs(p.y - 0.45) < 1e-9)).toBe(true);
    expect(trade.find((d) => d.label === "foreign")!.data.every((p) => p.y === 1)).toBe(true);
  });

  it("a click on a header sorts by that column as numbers, again descending, a third time back to the report's order", () => {
    const [, , sort] = scriptsOf(html);
    new Function("document", sort)(document);
    const table = document.querySelectorAll("#tables table")[0];
    const col = Array.from(table.querySelectorAll("thead th")).findIndex((th) => th.textContent === "QD32 req/s");
    const column = () => Array.from(table.querySelectorAll("tbody tr")).map((tr) => Number(tr.children[col].textContent));
    const original = column();
    const th = table.querySelectorAll("thead th")[col];
    th.dispatchEvent(new Event("click"));
    expect(column()).toEqual([...original].sort((a, b) => a - b));
    expect(th.getAttribute("aria-sort")).toBe("ascending");
    th.dispatchEvent(new Event("click"));
    expect(column()).toEqual([...original].sort((a, b) => b - a));
    th.dispatchEvent(new Event("click"));
    expect(column()).toEqual(original);
  });

  it("the Linux guest section shows its note, metrics and table, with the JSON's strings as text", () => {
    const s = document.querySelector("section#linux")!;
    expect(s.querySelector("h2")?.textContent).toBe("Linux guest (v86)");
    expect(s.querySelector("p")?.textContent).toBe(linux.note);
    const [metrics, table] = Array.from(s.querySelectorAll("table"));
    expect(Array.from(metrics.querySelectorAll("tbody tr")).map((tr) => Array.from(tr.children).map((td) => td.textContent)))
      .toEqual([["boot to shell", "4.25", "s"], ["<img src=x onerror=alert(1)>", "12", "MB/s"]]);
    expect(s.querySelector("img")).toBeNull();
    expect(Array.from(table.querySelectorAll("thead th")).map((th) => th.textContent)).toEqual(["transport", "MB/s"]);
    expect(table.querySelectorAll("tbody tr").length).toBe(2);
    expect(document.querySelector("nav a[href='#linux']")).not.toBeNull();
  });

  it("the embedded results are the run's JSON, intact even with </script> in a string", () => {
    expect(JSON.parse(document.getElementById("results")!.textContent!)).toEqual(doc);
    expect(document.querySelector("b")).toBeNull();
  });
});

describe("the Linux guest section's accepted shapes (results.linux)", () => {
  const section = (v: unknown) => parseHTML(report(v === undefined ? {} : { linux: v }).html).document.querySelector("section#linux")!;

  it("a bare list of { name, value, unit }", () => {
    const s = section([{ name: "boot", value: 3, unit: "s" }, { name: "kernel", value: "6.1" }]);
    expect(Array.from(s.querySelectorAll("tbody tr")).map((tr) => tr.textContent)).toEqual(["boot3s", "kernel6.1"]);
  });
  it("a bare table", () => {
    const s = section({ columns: ["a", "b"], rows: [[1, "x"]] });
    expect(Array.from(s.querySelectorAll("th")).map((th) => th.textContent)).toEqual(["a", "b"]);
  });
  it("absent: a line saying where the numbers would come from", () => {
    expect(section(undefined).textContent).toMatch(/No Linux guest numbers in this run .*results\.linux/);
  });
  it("malformed: said so, nothing rendered from it", () => {
    for (const bad of [[{ name: "x" }], { columns: ["a"], rows: [[1, 2]] }, { note: "only a note" }, 42, null]) {
      expect(typeof readSection(bad), JSON.stringify(bad)).toBe("string");
      const s = section(bad);
      expect(s.textContent).toMatch(/Not shown: results\.linux is /);
      expect(s.querySelector("table")).toBeNull();
    }
  });
});

// Headless Chromium: Debian's package, or wherever PUPPETEER_EXECUTABLE_PATH points.
const chromium = process.env.PUPPETEER_EXECUTABLE_PATH || "/usr/bin/chromium";
const haveChromium = existsSync(chromium);
if (!haveChromium) console.log(`HTML report not checked in a browser: no Chromium at ${chromium} (apt-get install chromium); the DOM checks above still ran`);

describe("HTML bench report in headless Chromium", () => {
  it.skipIf(!haveChromium)(`loads without errors and draws every chart; its tables sort (${haveChromium ? chromium : `skipped: no ${chromium}`})`, async () => {
    const { default: puppeteer } = await import("puppeteer-core");
    const dir = mkdtempSync(join(tmpdir(), "virtio-argo-report-"));
    const browser = await puppeteer.launch({
      executablePath: chromium,
      userDataDir: join(dir, "profile"),
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const file = join(dir, "bench.html");
      writeFileSync(file, report({ linux }).html);
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
      const seen = await page.evaluate(() => {
        const Chart = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): { data: { datasets: Array<{ label: string }> }; options: { scales: Record<string, { type: string }> } } | undefined } }).Chart;
        return Array.from(document.querySelectorAll("canvas")).map((c) => {
          const chart = Chart.getChart(c);
          const px = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
          let painted = 0;
          for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) painted++;
          return { id: c.id, labels: chart?.data.datasets.map((d) => d.label), x: chart?.options.scales.x.type, painted };
        });
      });
      expect(errors).toEqual([]);
      expect(seen.map((c) => c.id)).toEqual(["trade", "read", "write", "latency"]);
      expect(seen[0].labels).toEqual([...TRANSPORTS]);
      expect(seen[0].x).toBe("linear");
      expect(seen[1].labels).toEqual([...TRANSPORTS, "memcpy limit"]);
      for (const c of seen) expect(c.painted, `${c.id}: pixels drawn`).toBeGreaterThan(1000);
      const tables = await page.evaluate(() => Array.from(document.querySelectorAll("table")).map((t) => t.querySelectorAll("tbody tr").length));
      expect(tables).toEqual([2, 2, fixture().rows.length, 1]); // Linux metrics and table, the share table, the tiny one
      const rates = () => page.evaluate(() => {
        const t = document.querySelectorAll("#tables table")[0];
        const col = Array.from(t.querySelectorAll("thead th")).findIndex((th) => th.textContent === "QD32 req/s");
        return Array.from(t.querySelectorAll("tbody tr")).map((tr) => Number(tr.children[col].textContent));
      });
      const before = await rates();
      await page.evaluate(() => {
        const t = document.querySelectorAll("#tables table")[0];
        Array.from(t.querySelectorAll<HTMLElement>("thead th")).find((th) => th.textContent === "QD32 req/s")!.click();
      });
      expect(await rates()).toEqual([...before].sort((a, b) => a - b));
    } finally {
      await browser.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
