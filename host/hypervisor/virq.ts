// VIRQ_ARGO delivery for one domain: a pending bit that coalesces signals, delivered to
// callbacks from a microtask (never inside the hypercall that raised it, so a handler
// can make hypercalls) or taken by polling.

export type VirqHandler = () => void;

export class Virq {
  /** Signals raised, coalesced or not (for observability and tests). */
  raised = 0;
  /** Deliveries made (callback runs or successful polls). */
  delivered = 0;
  private pending = false;
  private scheduled = false;
  private readonly handlers: VirqHandler[] = [];
  private readonly deliver = (): void => {
    this.scheduled = false;
    if (!this.pending || this.handlers.length === 0) return;
    this.pending = false;
    this.delivered++;
    for (const h of [...this.handlers]) h();
  };

  raise(): void {
    this.raised++;
    this.pending = true;
    if (this.handlers.length !== 0 && !this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.deliver);
    }
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
    this.handlers.push(handler);
    if (this.pending && !this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.deliver);
    }
    return () => {
      const i = this.handlers.indexOf(handler);
      if (i >= 0) this.handlers.splice(i, 1);
    };
  }
}
