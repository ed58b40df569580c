// The audit log: every MAC denial, as a structured entry and as one line of text in the
// style of Flask's `avc: denied { send } for scontext=... tcontext=... tclass=argo`.
// Bounded, because a hostile guest can cause denials as fast as it can make hypercalls:
// the oldest entries are overwritten and counted in `dropped`, so nothing is hidden.
import type { ArgoPerm } from "./model.ts";
import { errnoLabel } from "./errors.ts";

/** DOMID_XEN: the target domid of checks made against the hypervisor (enable, any-source rings). */
export const DOMID_XEN = 0x7ff2;

/** One denial. */
export interface AuditEntry {
  /** Date.now() when it was denied. */
  readonly time: number;
  readonly perm: ArgoPerm | string;
  /** Label of the acting domain. */
  readonly scontext: string;
  /** Label of the other domain, or xen_t for enable and register_any_source. */
  readonly tcontext: string;
  readonly tclass: "argo" | string;
  readonly srcDomid: number;
  /** DOMID_XEN (0x7FF2) when the target is the hypervisor. */
  readonly tgtDomid: number;
  /** The device pair(s) whose limit was exceeded, e.g. `guest_t/backend_t/blk`. */
  readonly pair?: string;
  /** The negative errno returned to the caller. */
  readonly errno: number;
  /** Why, in one sentence (which rule is missing, or which limit, with file:line). */
  readonly reason: string;
  /**
   * `avc: denied { send } for scontext=guest_t tcontext=backend_t tclass=argo src=1 tgt=2
   * [pair=guest_t/backend_t/blk] errno=-EACCES reason="..."` (one line).
   */
  readonly text: string;
}

/** Builds the one-line text form of an entry. */
export function auditText(e: Omit<AuditEntry, "text">): string {
  const pair = e.pair ? ` pair=${e.pair}` : "";
  return `avc: denied { ${e.perm} } for scontext=${e.scontext} tcontext=${e.tcontext} tclass=${e.tclass} src=${e.srcDomid} tgt=${e.tgtDomid}${pair} errno=${errnoLabel(e.errno)} reason=${JSON.stringify(e.reason)}`;
}

/** Default number of entries kept. */
export const AUDIT_CAPACITY = 4096;

/** A bounded ring of denials with a dropped counter, and synchronous listeners. */
export class AuditLog {
  readonly capacity: number;
  private readonly ring: (AuditEntry | undefined)[];
  private head = 0; // next slot to write
  private count = 0;
  private droppedCount = 0;
  private totalCount = 0;
  private readonly listeners = new Set<(e: AuditEntry) => void>();

  constructor(capacity = AUDIT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`audit capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.ring = new Array(capacity);
  }

  /** Records a denial and tells the listeners. A listener that throws does not stop the hypervisor. */
  record(entry: AuditEntry): void {
    if (this.count === this.capacity) this.droppedCount++;
    else this.count++;
    this.ring[this.head] = entry;
    this.head = (this.head + 1) % this.capacity;
    this.totalCount++;
    for (const cb of this.listeners) {
      try {
        cb(entry);
      } catch (e) {
        // Report it where a bug is seen, but never inside the hypercall that denied.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /** The kept entries, oldest first (a copy). */
  entries(): readonly AuditEntry[] {
    const out: AuditEntry[] = [];
    const start = (this.head - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) out.push(this.ring[(start + i) % this.capacity]!);
    return out;
  }

  /** Entries overwritten because the ring was full (since creation or clear()). */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Denials recorded since creation or clear(), dropped ones included. */
  get total(): number {
    return this.totalCount;
  }

  /** Calls `cb` synchronously on every denial; returns the unsubscribe function. */
  onDenial(cb: (entry: AuditEntry) => void): () => void {
    this.listeners.add(cb);
    return () => {
      this.listeners.delete(cb);
    };
  }

  /** Forgets all entries and zeroes the counters (listeners stay). */
  clear(): void {
    this.ring.fill(undefined);
    this.head = 0;
    this.count = 0;
    this.droppedCount = 0;
    this.totalCount = 0;
  }
}
