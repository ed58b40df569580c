// What one frontend's open requests may hold of a backend domain's memory.
/**
 * Bytes one frontend's open requests hold in a backend domain. A request that does not fit
 * waits in the backend's ring (the frontend's sends then wait for space: backpressure)
 * until completions give bytes back, so one guest cannot take the memory every other
 * guest's devices on this backend allocate from. Honest frontends send a request's
 * fragments back to back, so what they hold open is always being served and comes back.
 */
export class OpenBudget {
  used = 0;
  readonly limit: number;
  private readonly waiters = new Set<() => void>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes `bytes` if they fit, or if nothing is held (one request always goes, whatever its size). */
  take(bytes: number): boolean {
    if (this.used > 0 && this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  /** Gives bytes back; whoever waited tries again (from a microtask, never inside the caller). */
  give(bytes: number): void {
    this.used -= bytes;
    if (this.waiters.size === 0) return;
    const w = [...this.waiters];
    this.waiters.clear();
    for (const cb of w) queueMicrotask(cb);
  }

  /** `cb` runs once after the next give(). */
  wait(cb: () => void): void {
    this.waiters.add(cb);
  }

  /** A backend that stops does not wait any more. */
  forget(cb: () => void): void {
    this.waiters.delete(cb);
  }
}
