// Reading results out of tinybench: every bench reports medians (p50), which resist the
// outliers a shared machine produces.
import type { Bench } from "tinybench";

/** Median time of one run of task `name`, in milliseconds. */
export function medianMs(bench: Bench, name: string): number {
  const task = bench.tasks.find((t) => t.name === name);
  const res = task?.result as unknown as { latency?: { p50?: number } } | undefined;
  const ms = res?.latency?.p50;
  if (typeof ms !== "number") throw new Error(`no result for benchmark task ${name}`);
  return ms;
}
