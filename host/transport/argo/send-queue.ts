// The ordered send queue of one side of a VirtIO-Argo pair: requests (frontend) or
// completions (backend) whose messages did not all go out yet. Argo refuses a sendv with
// -EAGAIN when the peer's ring is full (or the pair's rate limit is spent) and raises
// VIRQ_ARGO once there is room: the queue stops at the first refusal, keeps its order,
// and goes on from the same item at the next flush. Written once for both sides, so a fix
// to ordering or back-pressure lands once.
import { EAGAIN } from "../../abi/errno.ts";

/** What the queue asks of the side whose items it sends. */
export interface Sender<T> {
  /** Sends `item`'s next message: sendv's rc (bytes sent, -EAGAIN, or another errno). */
  sendNext(item: T): number;
  /** Nothing of `item` is left to send. */
  isSent(item: T): boolean;
  /** `item` leaves the queue: all of it went (rc 0), or a send failed (rc < 0, not -EAGAIN). */
  left(item: T, rc: number): void;
  /**
   * Batching (optional; wire.ts KIND_BATCH): starts a batch, adds `item` whole to it if it
   * fits (false: nothing added, it goes on its own), sends what was added. Only items
   * nothing of which was sent yet can be added.
   */
  beginBatch?(): void;
  addToBatch?(item: T): boolean;
  sendBatch?(): number;
}

/** flush()'s answer when the items at the head do not make a batch of two or more. */
const NO_BATCH = 1;

/**
 * A FIFO over one array with a head and a tail: no Array.shift per item, and no length
 * change when it empties (setting length 0 drops the backing store, and the next push
 * allocates it again: measured as 45% more scavenges on blk 4 KiB QD32).
 */
export class SendQueue<T extends object> {
  private readonly items: Array<T | null> = [];
  private head = 0;
  private tail = 0;
  private live = 0;
  private readonly sender: Sender<T>;
  /** The items of the batch being sent (the first live ones, in order); reused. */
  private readonly batch: Array<T | null> = [];

  constructor(sender: Sender<T>) {
    this.sender = sender;
  }

  /** Items still (partly) unsent. */
  get length(): number {
    return this.live;
  }

  push(item: T): void {
    this.items[this.tail++] = item;
    this.live++;
  }

  /**
   * Takes `item` out wherever it is (its request completed early: only a hostile peer makes
   * that happen, so the linear search is off the fast path). False if it was not queued.
   */
  remove(item: T): boolean {
    for (let i = this.head; i < this.tail; i++) {
      if (this.items[i] !== item) continue;
      this.items[i] = null; // a hole; flush() skips it
      this.live--;
      return true;
    }
    return false;
  }

  /**
   * Sends in order until everything went or the peer refused with -EAGAIN. Returns 0 or
   * -EAGAIN. Bounded: each pass sends one message of the head item or removes it, and an
   * item's messages are finite (Sender.isSent).
   */
  flush(): number {
    const items = this.items;
    const sender = this.sender;
    while (this.head < this.tail) {
      const item = items[this.head];
      if (item === null) {
        this.head++;
        continue;
      }
      if (this.live >= 2 && sender.addToBatch !== undefined) {
        const b = this.sendBatch();
        if (b === -EAGAIN) {
          this.compact();
          return b;
        }
        if (b !== NO_BATCH) continue;
      }
      const rc = sender.sendNext(item);
      if (rc === -EAGAIN) {
        this.compact();
        return rc;
      }
      if (rc >= 0 && !sender.isSent(item)) continue;
      items[this.head++] = null; // not kept alive by the queue
      this.live--;
      sender.left(item, rc < 0 ? rc : 0);
    }
    this.compact();
    return 0;
  }

  /**
   * Sends the first live items as one batch if two or more of them fit, whole and in
   * order: NO_BATCH when they do not (nothing sent), else sendv's rc, the batch's items
   * having left the queue (rc >= 0: all went; rc < 0 other than -EAGAIN: all failed).
   */
  private sendBatch(): number {
    const sender = this.sender;
    const items = this.items;
    const batch = this.batch;
    sender.beginBatch!();
    let count = 0;
    for (let i = this.head; i < this.tail; i++) {
      const item = items[i];
      if (item === null) continue;
      if (!sender.addToBatch!(item)) break;
      batch[count++] = item;
    }
    if (count < 2) return NO_BATCH;
    const rc = sender.sendBatch!();
    if (rc === -EAGAIN) return rc;
    // The batch is the first `count` live items: out of the queue first, then each is told
    // (in order), so a `left` that clears the queue (the peer is gone) finds them gone.
    for (let k = 0; k < count; this.head++) {
      if (items[this.head] === null) continue;
      items[this.head] = null;
      this.live--;
      k++;
    }
    for (let k = 0; k < count; k++) {
      const item = batch[k]!;
      batch[k] = null; // not kept alive here
      sender.left(item, rc < 0 ? rc : 0);
    }
    return rc;
  }

  /** Empties the queue, handing each unsent item to `each` (stop, reset, peer gone). */
  clear(each?: (item: T) => void): void {
    const pending: T[] = [];
    for (let i = this.head; i < this.tail; i++) {
      const item = this.items[i];
      if (item !== null) pending.push(item);
      this.items[i] = null;
    }
    this.head = this.tail = this.live = 0;
    if (each) for (const item of pending) each(item);
  }

  /**
   * All sent: start over at 0 (the usual case, so the array never grows). A queue that
   * never empties (a peer that stopped reading) drops its sent half now and then.
   */
  private compact(): void {
    if (this.head === this.tail) {
      this.head = this.tail = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.tail) {
      this.items.copyWithin(0, this.head, this.tail);
      this.items.fill(null, this.tail - this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
    }
  }
}
