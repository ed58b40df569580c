// do_argo_op: the hypercall entry. Decodes Xen's structs from the calling guest's memory
// (each read bounds-checked: a bad handle is -EFAULT, never an exception), in the order
// argo.c does, then calls the op. Guest-written values are copied into hypervisor
// scratch once; nothing below reads them from guest memory again.
import { EFAULT, EINVAL, EOPNOTSUPP } from "../abi/errno.ts";
import {
  ADDR_APORT, ADDR_DOMID, ENT_FLAGS, ENT_MAX_MESSAGE_SIZE, ENT_RING, ENT_SPACE_REQUIRED, GFN_SIZE,
  IOV_HND, IOV_LEN, IOV_PAD, IOV_SIZE, MAX_NOTIFY_COUNT, MAX_RING_SIZE, MAXIOV, OP_NOTIFY, OP_REGISTER_RING,
  OP_SENDV, OP_UNREGISTER_RING, PAGE_SHIFT, REGISTER_APORT, REGISTER_LEN, REGISTER_PAD, REGISTER_PARTNER,
  REGISTER_RING_SIZE, RING_DATA_ENT_SIZE, RING_DATA_ENTS, RING_DATA_NENT, RING_DATA_SIZE, SEND_ADDR_DST,
  SEND_ADDR_SIZE, SEND_ADDR_SRC, UNREGISTER_RING_SIZE,
} from "../abi/argo.ts";
import { EACCES } from "../abi/errno.ts";
import type { Domain } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { registerRing } from "./register.ts";
import { unregisterRing } from "./unregister.ts";
import { sendv } from "./sendv.ts";
import { fillRingData, notifyBegin, type RingDataEnt } from "./notify.ts";

/** An `unsigned long` argument that fits in 32 bits (do_argo_op's first check). */
function isU32(x: number): boolean {
  // Exactly the integers 0..2^32-1: `>>> 0` changes every other number (fractions,
  // negatives, 2^32 and up, NaN); the typeof keeps a BigInt (which `>>>` throws on) out.
  return typeof x === "number" && (x >>> 0) === x;
}

/** A guest handle: a non-negative integer address (0 is NULL). */
function isHandle(x: number): boolean {
  return typeof x === "number" && Number.isInteger(x) && x >= 0;
}

export function doArgoOp(hv: Hypervisor, d: Domain, cmd: number, arg1: number, arg2: number, arg3: number, arg4: number): number {
  if (!isU32(arg3) || !isU32(arg4)) return -EINVAL;
  if (!hv.options.argo) return -EOPNOTSUPP;
  const rc = hv.mac.argoEnable(d);
  if (rc) return rc;
  switch (cmd) {
    case OP_REGISTER_RING: return opRegister(hv, d, arg1, arg2, arg3, arg4);
    case OP_UNREGISTER_RING: return opUnregister(hv, d, arg1, arg2, arg3, arg4);
    case OP_SENDV: return opSendv(hv, d, arg1, arg2, arg3, arg4);
    case OP_NOTIFY: return opNotify(hv, d, arg1, arg2, arg3, arg4);
    default: return -EOPNOTSUPP;
  }
}

function opRegister(hv: Hypervisor, d: Domain, regHnd: number, gfnHnd: number, npage: number, flags: number): number {
  const mem = d.mem;
  if (npage > MAX_RING_SIZE >>> PAGE_SHIFT) return -EINVAL;
  // do_argo_op's guest_handle_okay(gfn_hnd, npage) is always true on HVM and Arm guests:
  // the list is not checked as a whole here, each gfn is read (and may fault) in turn by
  // find_ring_mfns, after the length checks. So npage 0 at any address is register_ring's
  // -EINVAL (no ring has 0 pages), and a list running off the end of memory is -EFAULT
  // only once the checks before it pass.
  if (!isHandle(gfnHnd)) return -EFAULT; // not an address at all (a JS caller's NaN, -1...)
  // register_ring checks flags before it copies the struct in.
  if ((flags & ~1) !== 0) return -EINVAL;
  if (!isHandle(regHnd) || !mem.ok(regHnd, REGISTER_RING_SIZE)) return -EFAULT;
  const dv = mem.dv;
  const reg = {
    aport: dv.getUint32(regHnd + REGISTER_APORT, true),
    partnerId: dv.getUint16(regHnd + REGISTER_PARTNER, true),
    pad: dv.getUint16(regHnd + REGISTER_PAD, true),
    len: dv.getUint32(regHnd + REGISTER_LEN, true),
  };
  // __copy_from_guest_offset per gfn: an entry outside memory is -EFAULT; a gfn of 2^53
  // or more reads as -1 (invalid).
  return registerRing(hv, d, reg, (i) => {
    const at = gfnHnd + i * GFN_SIZE;
    if (!mem.ok(at, GFN_SIZE)) return -EFAULT;
    const gfn = mem.u64(at);
    return gfn < 0 ? -EINVAL : gfn;
  }, npage, flags);
}

function opUnregister(hv: Hypervisor, d: Domain, hnd: number, arg2: number, arg3: number, arg4: number): number {
  if (arg2 !== 0 || arg3 !== 0 || arg4 !== 0) return -EINVAL;
  const mem = d.mem;
  if (!isHandle(hnd) || !mem.ok(hnd, UNREGISTER_RING_SIZE)) return -EFAULT;
  const dv = mem.dv;
  return unregisterRing(hv, d, dv.getUint32(hnd + REGISTER_APORT, true), dv.getUint16(hnd + REGISTER_PARTNER, true),
    dv.getUint16(hnd + REGISTER_PAD, true));
}

function opSendv(hv: Hypervisor, d: Domain, addrHnd: number, iovHnd: number, niov: number, messageType: number): number {
  const mem = d.mem;
  // ok() holds only for integers inside memory, so it also says "is a handle".
  if (!mem.ok(addrHnd, SEND_ADDR_SIZE)) return -EFAULT;
  if (niov > MAXIOV) return -EINVAL;
  // copy_from_guest(iovs, iovs_hnd, niov): with niov 0 nothing is read, so any handle
  // works and an empty message is sent, as in Xen.
  if (niov !== 0 ? !mem.ok(iovHnd, niov * IOV_SIZE) : !isHandle(iovHnd)) return -EFAULT;
  const s = hv.sendScratch;
  let srcAport: number, srcWord: number, dstAport: number, dstWord: number;
  if (((addrHnd | iovHnd) & 3) === 0) {
    // Word-aligned structs (what every driver passes): plain u32 loads, no per-field
    // alignment test. Both ranges were checked just above, so every index is in bounds.
    const u32 = mem.u32;
    for (let i = 0, w = iovHnd >>> 2; i < niov; i++, w += IOV_SIZE >>> 2) {
      // iov_hnd is a u64; 2^53 and up is never an address: -1, refused by the copy.
      const hi = u32[w + ((IOV_HND + 4) >>> 2)];
      s.hnd[i] = hi === 0 ? u32[w + (IOV_HND >>> 2)] : hi >= 0x200000 ? -1 : hi * 0x100000000 + u32[w + (IOV_HND >>> 2)];
      s.len[i] = u32[w + (IOV_LEN >>> 2)];
      s.pad[i] = u32[w + (IOV_PAD >>> 2)];
    }
    const a = addrHnd >>> 2;
    srcAport = u32[a + ((SEND_ADDR_SRC + ADDR_APORT) >>> 2)];
    srcWord = u32[a + ((SEND_ADDR_SRC + ADDR_DOMID) >>> 2)];
    dstAport = u32[a + ((SEND_ADDR_DST + ADDR_APORT) >>> 2)];
    dstWord = u32[a + ((SEND_ADDR_DST + ADDR_DOMID) >>> 2)];
  } else {
    for (let i = 0; i < niov; i++) {
      const at = iovHnd + i * IOV_SIZE;
      s.hnd[i] = mem.u64(at + IOV_HND);
      s.len[i] = mem.read32(at + IOV_LEN);
      s.pad[i] = mem.read32(at + IOV_PAD);
    }
    srcAport = mem.read32(addrHnd + SEND_ADDR_SRC + ADDR_APORT);
    srcWord = mem.read32(addrHnd + SEND_ADDR_SRC + ADDR_DOMID);
    dstAport = mem.read32(addrHnd + SEND_ADDR_DST + ADDR_APORT);
    dstWord = mem.read32(addrHnd + SEND_ADDR_DST + ADDR_DOMID);
  }
  // xen_argo_addr_t is {u32 aport; u16 domain_id; u16 pad}: the second word holds both.
  return sendv(hv, d,
    srcAport, srcWord & 0xffff, srcWord >>> 16,
    dstAport, dstWord & 0xffff, dstWord >>> 16,
    s, niov, messageType);
}

function opNotify(hv: Hypervisor, d: Domain, hnd: number, arg2: number, arg3: number, arg4: number): number {
  if (arg2 !== 0 || arg3 !== 0 || arg4 !== 0) return -EINVAL;
  let rc = notifyBegin(hv, d);
  if (rc || hnd === 0) return rc;
  const mem = d.mem;
  if (!isHandle(hnd) || !mem.ok(hnd, RING_DATA_SIZE)) return -EFAULT;
  const dv = mem.dv;
  let nent = dv.getUint32(hnd + RING_DATA_NENT, true);
  if (nent > MAX_NOTIFY_COUNT) return -EACCES; // Xen's answer to an oversized query
  let at = hnd + RING_DATA_ENTS;
  // guest_handle_okay(ent_hnd, nent) is always true on HVM and Arm: fill_ring_data copies
  // each entry in and out in turn, so the first entry outside memory is -EFAULT and the
  // entries before it stay written (and their waits queued).
  const ent = hv.notifyScratch;
  while (!rc && nent-- > 0) {
    if (!mem.ok(at, RING_DATA_ENT_SIZE)) return -EFAULT;
    ent.aport = dv.getUint32(at + ENT_RING + ADDR_APORT, true);
    ent.domid = dv.getUint16(at + ENT_RING + ADDR_DOMID, true);
    ent.spaceRequired = dv.getUint32(at + ENT_SPACE_REQUIRED, true);
    ent.maxMessageSize = dv.getUint32(at + ENT_MAX_MESSAGE_SIZE, true);
    rc = fillRingData(hv, d, ent);
    if (!rc) {
      dv.setUint16(at + ENT_FLAGS, ent.flags, true);
      dv.setUint32(at + ENT_MAX_MESSAGE_SIZE, ent.maxMessageSize, true);
    }
    at += RING_DATA_ENT_SIZE;
  }
  return rc;
}

export type { RingDataEnt };
