// Send rate limits: one token bucket per (sending domain, receiving domain), created on
// the first rate-limited send and dropped on policy load. Per domain and not per label,
// so that two guests with the same label do not share (and cannot starve) one budget.
import type { RateLimit } from "./model.ts";

/**
 * Most tokens a RateLimiter bucket takes per clock read: at most this many, and at most
 * burst / 16 (a burst under 32 reads the clock on every send, as before).
 */
const PREPAY_MAX = 64;

/**
 * A token bucket: holds at most `burst` tokens, refilled at `messagesPerSecond`.
 *
 * With `batch` > 1, a take() takes up to `batch` tokens at once: one for the caller, the
 * rest `prepaid`, which the owner spends without a clock read (RateLimiter: a
 * performance.now() per send cost ~10x the rest of the check). Exact upper bound: a
 * prepaid token counts as spent when it was taken, and until the next take() the bucket
 * refills only up to `cap` = burst - prepaid as of the last take(), the smallest headroom
 * since (prepaid only shrinks in between). So bucket plus prepaid never exceed the burst,
 * and the sends of any window of w ms stay within burst + w * rate / 1000, as with a clock
 * read per send. The price: a sender that spent its prepaid tokens quickly and then idled
 * refills to at most burst - (batch - 1) by its next take(), so that burst is up to
 * burst / 16 shorter (never longer). A refusal happens only with nothing prepaid and
 * lifts the cap back to the whole burst, so refillMs() stays exact for the wakeup.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Refill ceiling until the next take(): burst - prepaid as of the last take(). */
  private cap: number;
  /** Tokens taken by the last take() beyond the caller's own; the owner decrements it. */
  prepaid = 0;

  /** `now` in milliseconds (performance.now() or an injected clock). Starts full. */
  constructor(
    readonly rate: RateLimit,
    now: number,
    readonly batch = 1,
  ) {
    this.tokens = rate.burst;
    this.cap = rate.burst;
    this.last = now;
  }

  /** Takes one token (and up to batch - 1 prepaid ones) if there is one; false means "over the rate, try again later". */
  take(now: number): boolean {
    // A clock that goes backwards (an injected test clock) refills nothing.
    const elapsed = now > this.last ? now - this.last : 0;
    this.last = now > this.last ? now : this.last;
    this.tokens = Math.min(this.cap, this.tokens + (elapsed * this.rate.messagesPerSecond) / 1000);
    if (this.tokens < 1) {
      this.prepaid = 0;
      this.cap = this.rate.burst;
      return false;
    }
    const n = this.batch === 1 ? 1 : Math.min(this.batch, Math.floor(this.tokens));
    this.tokens -= n;
    this.prepaid = n - 1;
    this.cap = this.rate.burst - this.prepaid;
    return true;
  }

  /** Milliseconds from the last take() until one whole token is back (0 if there is one). */
  refillMs(): number {
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) * 1000) / this.rate.messagesPerSecond;
  }
}

/** Stands in for "no pair sent last", so that the fast path needs no null check. */
const NO_BUCKET = new TokenBucket({ messagesPerSecond: 1, burst: 1 }, 0);

/** Buckets keyed by sender and receiver domid (both < 0x10000: Xen domids are 16 bits). */
export class RateLimiter {
  private readonly buckets = new Map<number, TokenBucket>();
  /** The bucket of the last take() and its key and tag, for spendPrepaid(). */
  private hot = NO_BUCKET;
  private hotKey = -1;
  private hotTag = -1;
  /**
   * After a refused take(): milliseconds until that bucket holds a token again. Read by
   * the hypervisor right after a -EAGAIN so it can schedule the sender's wakeup (Xen
   * pairs every -EAGAIN from sendv with a later VIRQ; a rate refusal must too).
   */
  lastRefillMs = 0;

  /** `clock` in milliseconds: read only by a take() that is given no `now` and has nothing prepaid. */
  constructor(private readonly clock: () => number = () => performance.now()) {}

  /**
   * True when `src` may send one more message to `dst` under `rate` at time `now` (ms;
   * omitted: the clock, read only when the pair has no prepaid token). `tag` names the
   * decision that gave `rate` (the Mac passes the sid pair): spendPrepaid() spends the
   * pair's prepaid tokens only for the same tag.
   */
  take(srcDomid: number, dstDomid: number, rate: RateLimit, now?: number, tag = -1): boolean {
    const key = srcDomid * 0x10000 + dstDomid;
    let b = this.buckets.get(key);
    if (!b || b.rate !== rate) {
      b = new TokenBucket(rate, now ?? this.clock(), Math.max(1, Math.min(PREPAY_MAX, Math.floor(rate.burst / 16))));
      this.buckets.set(key, b);
    }
    this.hot = b;
    this.hotKey = key;
    this.hotTag = tag;
    if (b.prepaid > 0) {
      b.prepaid--;
      return true;
    }
    if (b.take(now ?? this.clock())) return true;
    this.lastRefillMs = b.refillMs();
    return false;
  }

  /**
   * The send hot path: spends a prepaid token when `key` (src * 0x10000 + dst) and `tag`
   * are those of the last take(); false means "ask take()", not "refused".
   */
  spendPrepaid(key: number, tag: number): boolean {
    const b = this.hot;
    if (key !== this.hotKey || tag !== this.hotTag || b.prepaid === 0) return false;
    b.prepaid--;
    return true;
  }

  /**
   * Drops every bucket naming this domid, as sender or receiver: called when the domain
   * is destroyed, so a later domain given the same id starts with its own full budget.
   */
  forget(domid: number): void {
    this.hot = NO_BUCKET;
    this.hotKey = -1;
    for (const key of this.buckets.keys()) {
      if (Math.floor(key / 0x10000) === domid || key % 0x10000 === domid) this.buckets.delete(key);
    }
  }

  /** Drops every bucket: a new policy starts with full buckets at its own rates. */
  clear(): void {
    this.hot = NO_BUCKET;
    this.hotKey = -1;
    this.buckets.clear();
  }
}
