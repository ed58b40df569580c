// Shared set-up for the MAC tests: plain Subjects (as the hypervisor's Domain looks to
// host/mac) and a small policy text builder.
import type { Subject } from "../../host/mac/index.ts";

let nextDomid = 1;

/** A plain subject with a fresh domid, not yet bound (sid -1). */
export function subject(label: string, name = label.replace(/_t$/, "")): Subject {
  return { domid: nextDomid++, name, label, sid: -1 };
}

/** A two-label policy (guest_t, backend_t) with one pair; `pair` adds lines inside that pair. */
export function onePair(allow: string, pair = "", device = "blk"): string {
  return `domains: [guest_t, backend_t]
pairs:
  - frontend: guest_t
    backend: backend_t
    device: ${device}
    allow: [${allow}]
${pair}`;
}
