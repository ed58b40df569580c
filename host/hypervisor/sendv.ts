// XEN_ARGO_OP_sendv (sendv, iov_count and ringbuf_insert in argo.c): the one path by
// which bytes cross from one domain's memory into another's. The iovs have been copied
// into the hypervisor's scratch (SendScratch) by the caller, so the guest cannot change
// them during the send (no double fetch).
import { ECONNREFUSED, EFAULT, EINVAL, EMSGSIZE, ENODEV, EPERM, ESRCH, EAGAIN } from "../abi/errno.ts";
import { DOMID_ANY, MAX_MESSAGE_SIZE, MAXIOV, MSG_HEADER_SIZE, RING_TX_PTR } from "../abi/argo.ts";
import type { Domain } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { pendingRequeue } from "./pending.ts";
import { ringKey, type RingInfo } from "./ring.ts";
import { SEND_CACHE_SLOTS, type ArgoState } from "./argo-state.ts";

/** Hypervisor-private copy of a sendv's iovs (xen_argo_iov_t iovs[XEN_ARGO_MAXIOV]). */
export class SendScratch {
  readonly hnd = new Float64Array(MAXIOV);
  readonly len = new Float64Array(MAXIOV);
  readonly pad = new Float64Array(MAXIOV);
}

/**
 * iov_count: total payload, or a negative errno. Each iov_len is bounded before it is
 * added, so the running sum never exceeds 2 * MAX_MESSAGE_SIZE (no overflow in C; exact here).
 */
export function iovCount(s: SendScratch, niov: number): number {
  if (niov > MAXIOV) return -EINVAL;
  let sum = 0;
  for (let i = 0; i < niov; i++) {
    if (s.pad[i] !== 0) return -EINVAL; // padding must be zero: keeps it usable later
    const len = s.len[i];
    if (len > MAX_MESSAGE_SIZE) return -EINVAL;
    sum += len;
    if (sum > MAX_MESSAGE_SIZE) return -EMSGSIZE;
  }
  return sum;
}

/** find_ring_info_by_match: the ring for exactly this sender first, then the wildcard ring. */
export function findRingByMatch(dstState: ArgoState, aport: number, senderId: number): RingInfo | undefined {
  const rings = dstState.rings;
  return rings.get(ringKey(aport, senderId)) ?? rings.get(ringKey(aport, DOMID_ANY));
}

/**
 * The ring `srcState`'s domain last found at (dstDomid, dstAport), if the lookup was made
 * under the current ring generation (see ArgoState.sendCacheKeys); null otherwise. A hit
 * means: the destination is alive with Argo state, and findRingByMatch would return this
 * ring now. `key` is dstAport * 2^16 + dstDomid (both guest u32/u16: exact).
 */
function cachedRing(hv: Hypervisor, srcState: ArgoState, key: number, slot: number): RingInfo | null {
  if (srcState.sendCacheGen !== hv.ringGen || srcState.sendCacheKeys[slot] !== key) return null;
  return srcState.sendCacheRings[slot];
}

function cacheRing(hv: Hypervisor, srcState: ArgoState, key: number, slot: number, ring: RingInfo): void {
  if (srcState.sendCacheGen !== hv.ringGen) {
    // Made under an older generation: every entry may be stale.
    srcState.sendCacheKeys.fill(-1);
    srcState.sendCacheRings.fill(null);
    srcState.sendCacheGen = hv.ringGen;
  }
  srcState.sendCacheKeys[slot] = key;
  srcState.sendCacheRings[slot] = ring;
}

/**
 * sendv. Returns the payload length sent or a negative errno. On -EAGAIN the sender is
 * queued for a wakeup: a space notification (full ring) or a timer (rate limit, until
 * the pair's bucket refills). On success VIRQ_ARGO is raised on the destination.
 */
export function sendv(
  hv: Hypervisor, src: Domain,
  srcAport: number, srcDomid: number, srcPad: number,
  dstAport: number, dstDomid: number, dstPad: number,
  s: SendScratch, niov: number, messageType: number,
): number {
  if (srcPad !== 0 || dstPad !== 0) return -EINVAL;
  // DOMID_ANY as source means "me"; any other domid than the sender's is a forgery.
  if (srcDomid === DOMID_ANY) srcDomid = src.domid;
  if (srcDomid !== src.domid) return -EPERM;

  // The lookups below (destination, its Argo state, its ring) come from the sender's
  // cache when nothing changed since they were made; the checks and their order are
  // the same either way.
  // The key is exact only for a u32 aport and a u16 domid (always so from the hypercall;
  // a typed-API caller may pass anything, and then goes the uncached way).
  const srcState = hv.argoOf(src);
  const cacheable = srcState !== null && (dstAport >>> 0) === dstAport && (dstDomid & 0xffff) === dstDomid;
  const key = dstAport * 0x10000 + dstDomid;
  const slot = (dstAport ^ dstDomid) & (SEND_CACHE_SLOTS - 1);
  let ring = cacheable ? cachedRing(hv, srcState, key, slot) : null;
  const dst = ring !== null ? ring.owner : hv.domainById(dstDomid);
  if (!dst) return -ESRCH;
  // The size is needed by the policy's message-size limit; its own errors are reported
  // after the ring lookup, where argo.c reports them.
  const len = iovCount(s, niov);
  // XSM hook send(sender, receiver) before any state is touched or revealed.
  const denied = hv.mac.send(src, dst, len < 0 ? 0 : len);
  if (denied) {
    // -EAGAIN from the MAC is the rate limit: queue the sender's wakeup, as a full ring
    // queues a pending-space entry, so a sender that waits for VIRQ_ARGO never stalls.
    if (denied === -EAGAIN) hv.rateLimited(src);
    return denied;
  }
  if (srcState === null) return -ENODEV;
  if (ring === null) {
    const dstState = hv.argoOf(dst);
    if (!dstState) return -ECONNREFUSED;
    ring = findRingByMatch(dstState, dstAport, src.domid) ?? null;
    if (ring !== null && cacheable) cacheRing(hv, srcState, key, slot, ring);
  }
  let rc: number;
  if (!ring) {
    rc = -ECONNREFUSED;
  } else if (len < 0) {
    rc = len;
  } else {
    rc = ringbufInsert(src, ring, srcAport, s, niov, messageType, len);
    if (rc === -EAGAIN) {
      const q = pendingRequeue(hv, ring, src.domid, len);
      if (q) rc = q;
    }
  }
  if (rc >= 0) dst.raiseVirq();
  return rc < 0 ? rc : len;
}

/**
 * ringbuf_insert: header via the owner's Wasm engine (size checks against the sanitized
 * rx_ptr), payload by native copies from the sender's memory, tx_ptr published last.
 * A bad iov handle returns -EFAULT before tx_ptr moves, so the receiver sees nothing.
 */
function ringbufInsert(
  src: Domain, ring: RingInfo, srcAport: number, s: SendScratch, niov: number, messageType: number, len: number,
): number {
  const owner = ring.owner;
  owner.mem.fresh(); // an emulator's memory may have grown since the owner last ran
  const ringLen = ring.len;
  const tx = ring.txPtr;
  const nextTx = owner.engine.argoReserve(ring.ringGpa, ringLen, tx, ring.dataGpa(tx), len, srcAport, src.domid, messageType);
  if (nextTx < 0) return nextTx;

  // The reserve proved 16 + roundup(len) < free space, so none of the writes below can
  // reach rx_ptr; each is split at the wrap so it stays inside [0, ringLen).
  let off = tx + MSG_HEADER_SIZE;
  if (off === ringLen) off = 0;
  const srcMem = src.mem;
  for (let i = 0; i < niov; i++) {
    let hnd = s.hnd[i];
    let n = s.len[i];
    if (n === 0) continue;
    if (!srcMem.ok(hnd, n)) return -EFAULT;
    const tail = ringLen - off;
    if (n > tail) {
      ring.copyIn(off, srcMem, hnd, tail);
      hnd += tail;
      n -= tail;
      off = 0;
    }
    ring.copyIn(off, srcMem, hnd, n);
    off += n;
    if (off === ringLen) off = 0;
  }
  // update_tx_ptr: publish last, so the receiver never sees a half-written message.
  ring.txPtr = nextTx;
  const ownerMem = owner.mem;
  ownerMem.u32[(ring.ringGpa + RING_TX_PTR) >>> 2] = nextTx;
  if (ownerMem.onWrite !== null) {
    ownerMem.onWrite(ring.ringGpa + RING_TX_PTR, 4);
    ownerMem.onWrite(ring.dataGpa(tx), MSG_HEADER_SIZE);
  }
  return 0;
}
