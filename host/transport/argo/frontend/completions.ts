// The frontend's completion path: a completion fragment from the backend is checked
// against what this side recorded for its request (the backend is another domain and
// is not trusted), and its payload is scattered by the reader straight from our ring into
// the chain's writable buffers: one copy, no staging. The used ring entry is written by
// the frontend once the last fragment arrived (or the request failed).
import { FLAG_ERROR, FLAG_FIRST, FLAG_LAST, type DataHeader } from "../wire.ts";
import type { ArgoEndpoint } from "../endpoint.ts";
import type { InFlight, RequestTable } from "./requests.ts";

export interface CompletionStats {
  bytesIn: number;
}

export class CompletionReceiver {
  private readonly endpoint: ArgoEndpoint;
  private readonly table: RequestTable;
  private readonly stats: CompletionStats;
  private readonly finish: (req: InFlight, written: number, error: boolean) => void;

  /** `finish` writes the used entry of a request that completed (or failed: error true). */
  constructor(endpoint: ArgoEndpoint, table: RequestTable, stats: CompletionStats, finish: (req: InFlight, written: number, error: boolean) => void) {
    this.endpoint = endpoint;
    this.table = table;
    this.stats = stats;
    this.finish = finish;
  }

  /** One completion fragment (header decoded, payload still in the ring). Always consumes it. */
  onData(h: DataHeader, fragLen: number): boolean {
    const ep = this.endpoint;
    const req = this.table.get(h.requestId);
    // Unknown id (already completed, or invented) or wrong queue: refused. A known request
    // with an out-of-order, inconsistent or oversized fragment is failed.
    if (!req || req.queue !== h.queue) return ep.drop();
    if (h.offset !== req.received || h.total > req.capacity || (h.flags & FLAG_FIRST ? h.offset !== 0 : req.received === 0 && h.offset !== 0)) {
      ep.drop();
      this.finish(req, 0, true);
      return true;
    }
    if (h.flags & FLAG_FIRST) req.completionTotal = h.total;
    else if (h.total !== req.completionTotal) {
      ep.drop();
      this.finish(req, 0, true);
      return true;
    }
    // Scatter the payload into the chain's writable buffers from `offset` on:
    // offset + fragLen <= total (decodeData) <= capacity, so the pieces always hold it,
    // and there are at most as many pieces as the chain has buffers (maxScatter).
    let skip = h.offset;
    let pieces = 0;
    let left = fragLen;
    const wGpa = req.wGpa;
    const wLen = req.wLen;
    for (let i = 0; i < wGpa.length && left > 0; i++) {
      if (skip >= wLen[i]) { skip -= wLen[i]; continue; }
      const take = Math.min(wLen[i] - skip, left);
      ep.setPiece(pieces++, wGpa[i] + skip, take);
      left -= take;
      skip = 0;
    }
    ep.receive(pieces);
    req.received += fragLen;
    this.stats.bytesIn += fragLen;
    if (h.flags & FLAG_LAST) this.finish(req, req.received, (h.flags & FLAG_ERROR) !== 0);
    return true;
  }
}
