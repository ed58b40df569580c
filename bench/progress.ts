// Progress while the benchmark runs: a cli-progress bar on an interactive terminal, and a
// plain line per step otherwise (CI logs, pipes), always on stderr so stdout stays the report.
import { SingleBar, Presets } from "cli-progress";

export interface Progress {
  start(what: string, steps: number): void;
  tick(step: string): void;
  stop(): void;
}

export function progress(): Progress {
  const interactive = process.stderr.isTTY === true && !process.env.CI;
  if (!interactive) {
    let n = 0;
    let total = 0;
    let label = "";
    return {
      start: (what, steps) => { label = what; total = steps; n = 0; },
      tick: (step) => void process.stderr.write(`  [${label} ${++n}/${total}] ${step}\n`),
      stop: () => {},
    };
  }
  const bar = new SingleBar(
    { format: " {what} [{bar}] {value}/{total} {step}", stream: process.stderr, hideCursor: true, clearOnComplete: true },
    Presets.shades_classic,
  );
  let what = "";
  return {
    start: (w, steps) => { what = w; bar.start(steps, 0, { what, step: "" }); },
    tick: (step) => bar.increment({ what, step }),
    stop: () => bar.stop(),
  };
}
