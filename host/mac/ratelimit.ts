// Send rate limits: one token bucket per (sending domain, receiving domain), created on
// the first rate-limited send and dropped on policy load. Per domain and not per label,
// so that two guests with the same label do not share (and cannot starve) one budget.
import type { RateLimit } from "./model.ts";

/** A token bucket: holds at most `burst` tokens, refilled at `messagesPerSecond`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `now` in milliseconds (performance.now() or an injected clock). Starts full. */
  constructor(
    readonly rate: RateLimit,
    now: number,
  ) {
    this.tokens = rate.burst;
    this.last = now;
  }

  /** Takes one token if there is one; false means "over the rate, try again later". */
  take(now: number): boolean {
    // A clock that goes backwards (an injected test clock) refills nothing.
    const elapsed = now > this.last ? now - this.last : 0;
    this.last = now > this.last ? now : this.last;
    this.tokens = Math.min(this.rate.burst, this.tokens + (elapsed * this.rate.messagesPerSecond) / 1000);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds from the last take() until one whole token is back (0 if there is one). */
  refillMs(): number {
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) * 1000) / this.rate.messagesPerSecond;
  }
}

/** Buckets keyed by sender and receiver domid (both < 0x10000: Xen domids are 16 bits). */
export class RateLimiter {
  private readonly buckets = new Map<number, TokenBucket>();
  /**
   * After a refused take(): milliseconds until that bucket holds a token again. Read by
   * the hypervisor right after a -EAGAIN so it can schedule the sender's wakeup (Xen
   * pairs every -EAGAIN from sendv with a later VIRQ; a rate refusal must too).
   */
  lastRefillMs = 0;

  /** True when `src` may send one more message to `dst` under `rate` at time `now` (ms). */
  take(srcDomid: number, dstDomid: number, rate: RateLimit, now: number): boolean {
    const key = srcDomid * 0x10000 + dstDomid;
    let b = this.buckets.get(key);
    if (!b || b.rate !== rate) {
      b = new TokenBucket(rate, now);
      this.buckets.set(key, b);
    }
    if (b.take(now)) return true;
    this.lastRefillMs = b.refillMs();
    return false;
  }

  /**
   * Drops every bucket naming this domid, as sender or receiver: called when the domain
   * is destroyed, so a later domain given the same id starts with its own full budget.
   */
  forget(domid: number): void {
    for (const key of this.buckets.keys()) {
      if (Math.floor(key / 0x10000) === domid || key % 0x10000 === domid) this.buckets.delete(key);
    }
  }

  /** Drops every bucket: a new policy starts with full buckets at its own rates. */
  clear(): void {
    this.buckets.clear();
  }
}
