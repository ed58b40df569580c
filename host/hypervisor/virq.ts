// VIRQ_ARGO delivery for one domain: a pending bit that coalesces signals, delivered to
// callbacks from a microtask (never inside the hypercall that raised it, so a handler
// can make hypercalls) or taken by polling.
//
// Isolation: a handler is guest-side code (a frontend, a backend, a driver) run on
// behalf of one domain. Whatever it throws is caught here, counted on this domain and
// handed to `onError`; it never reaches the other handlers, another domain's delivery
// or the process (an exception escaping a microtask would end Node, and every domain
// with it).

import type { VirqHandler } from "../abi/guest-domain.ts";
export type { VirqHandler };

/** Receives what a handler threw; must not throw itself (a throw from it is dropped). */
export type VirqErrorSink = (error: unknown) => void;

export class Virq {
  /** Signals raised, coalesced or not (for observability and tests). */
  raised = 0;
  /** Deliveries made (callback runs or successful polls). */
  delivered = 0;
  /** Handler runs that threw: each was caught, reported and the others still ran. */
  handlerErrors = 0;
  private pending = false;
  private scheduled = false;
  /**
   * Copy-on-write: on() and the remover replace the array, so a delivery iterates the
   * array it started with without copying it per signal. A handler added during a
   * delivery runs from the next one; one removed during it still runs in this one.
   */
  private handlers: readonly VirqHandler[] = [];
  private readonly deliver = (): void => {
    this.scheduled = false;
    const hs = this.handlers;
    if (!this.pending || hs.length === 0) return;
    this.pending = false;
    this.delivered++;
    for (let i = 0; i < hs.length; i++) {
      try {
        hs[i]();
      } catch (e) {
        this.handlerErrors++;
        try {
          this.onError(e);
        } catch {
          // The sink is the VMM's; its own failure must not undo the isolation.
        }
      }
    }
  };

  /** `onError` receives each exception a handler throws (default: dropped after counting). */
  constructor(private readonly onError: VirqErrorSink = () => {}) {}

  raise(): void {
    this.raised++;
    this.pending = true;
    if (this.handlers.length !== 0 && !this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.deliver);
    }
  }

  /**
   * Delivers a pending VIRQ now, from the caller's stack (the scheduler's yield, below a
   * vCPU blocked on a trapped register access); the queued microtask then finds nothing
   * pending. Returns true if handlers ran.
   */
  deliverNow(): boolean {
    if (!this.pending || this.handlers.length === 0) return false;
    this.deliver();
    return true;
  }

  /** Takes the pending bit: true if a VIRQ was raised since the last poll or delivery. */
  poll(): boolean {
    if (!this.pending) return false;
    this.pending = false;
    this.delivered++;
    return true;
  }

  /** Registers a handler; returns a function that removes it. */
  on(handler: VirqHandler): () => void {
    this.handlers = [...this.handlers, handler];
    if (this.pending && !this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.deliver);
    }
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const i = this.handlers.indexOf(handler);
      if (i >= 0) this.handlers = [...this.handlers.slice(0, i), ...this.handlers.slice(i + 1)];
    };
  }
}
