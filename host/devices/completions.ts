// Completions handled outside the used-buffer callback: the callback only records
// (token, written, error) and one microtask handles the batch, after the transport's
// reclaim pass is over. A driver built on it never adds a chain from inside a completion
// callback, so it does not depend on how the driver queue treats that (issue 17, item 1).
import type { UsedHandler } from "./types.ts";

export interface Completion {
  token: number;
  written: number;
  error: boolean;
}

export class DeferredCompletions {
  private scheduled = false;
  private readonly run: () => void;

  /** `run` handles everything recorded since it last ran. */
  constructor(run: () => void) {
    this.run = run;
  }

  /** A used-buffer handler that appends to `list` and schedules `run`. */
  into(list: Completion[]): UsedHandler {
    return (token, written, error) => {
      list.push({ token, written, error });
      if (this.scheduled) return;
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.run();
      });
    };
  }
}
