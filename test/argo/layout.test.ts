// Our view of Xen's argo.h against the real header (Debian libxen-dev): what the C oracle
// test/oracle/argo_layout.c printed (committed; checked against the header where it is installed).
import { describe, expect, it } from "vitest";
import { oracleOutput, parseKeyValues } from "../oracle/compile.ts";
import * as L from "../../host/abi/argo.ts";
import * as E from "../../host/abi/errno.ts";
import * as R from "../../host/abi/argo-reader.ts";
import { instantiate } from "../../host/wasm.ts";

const xen = parseKeyValues(oracleOutput("argo_layout"));

const ours: Record<string, number> = {
  DOMID_ANY: L.DOMID_ANY, MAX_RING_SIZE: L.MAX_RING_SIZE, MAXIOV: L.MAXIOV, MSG_SLOT_SIZE: L.MSG_SLOT_SIZE,
  OP_REGISTER_RING: L.OP_REGISTER_RING, OP_UNREGISTER_RING: L.OP_UNREGISTER_RING, OP_SENDV: L.OP_SENDV,
  OP_NOTIFY: L.OP_NOTIFY, REGISTER_FLAG_FAIL_EXIST: L.REGISTER_FLAG_FAIL_EXIST,
  RING_EXISTS: L.RING_EXISTS, RING_SHARED: L.RING_SHARED, RING_EMPTY: L.RING_EMPTY,
  RING_SUFFICIENT: L.RING_SUFFICIENT, RING_EMSGSIZE: L.RING_EMSGSIZE, RING_EBUSY: L.RING_EBUSY,
  "sizeof.xen_argo_ring_t": L.RING_HEADER_SIZE, "offsetof.ring.rx_ptr": L.RING_RX_PTR,
  "offsetof.ring.tx_ptr": L.RING_TX_PTR, "offsetof.ring.ring": L.RING_HEADER_SIZE,
  "sizeof.message_header": L.MSG_HEADER_SIZE, "offsetof.message_header.len": 0,
  "offsetof.message_header.source.aport": 4, "offsetof.message_header.source.domain_id": 8,
  "offsetof.message_header.message_type": 12,
  "sizeof.xen_argo_addr_t": L.ADDR_SIZE, "offsetof.addr.aport": L.ADDR_APORT,
  "offsetof.addr.domain_id": L.ADDR_DOMID, "offsetof.addr.pad": L.ADDR_PAD,
  "sizeof.xen_argo_send_addr_t": L.SEND_ADDR_SIZE, "offsetof.send_addr.src": L.SEND_ADDR_SRC,
  "offsetof.send_addr.dst": L.SEND_ADDR_DST,
  "sizeof.xen_argo_iov_t": L.IOV_SIZE, "offsetof.iov.iov_hnd": L.IOV_HND, "offsetof.iov.iov_len": L.IOV_LEN,
  "offsetof.iov.pad": L.IOV_PAD,
  "sizeof.xen_argo_register_ring_t": L.REGISTER_RING_SIZE, "offsetof.register.aport": L.REGISTER_APORT,
  "offsetof.register.partner_id": L.REGISTER_PARTNER, "offsetof.register.pad": L.REGISTER_PAD,
  "offsetof.register.len": L.REGISTER_LEN, "sizeof.xen_argo_unregister_ring_t": L.UNREGISTER_RING_SIZE,
  "sizeof.xen_argo_gfn_t": L.GFN_SIZE, "sizeof.xen_argo_ring_data_t": L.RING_DATA_SIZE,
  "offsetof.ring_data.nent": L.RING_DATA_NENT, "offsetof.ring_data.data": L.RING_DATA_ENTS,
  "sizeof.xen_argo_ring_data_ent_t": L.RING_DATA_ENT_SIZE, "offsetof.ent.ring": L.ENT_RING,
  "offsetof.ent.flags": L.ENT_FLAGS, "offsetof.ent.pad": L.ENT_PAD,
  "offsetof.ent.space_required": L.ENT_SPACE_REQUIRED, "offsetof.ent.max_message_size": L.ENT_MAX_MESSAGE_SIZE,
  "errno.EPERM": E.EPERM, "errno.ENOENT": E.ENOENT, "errno.ESRCH": E.ESRCH, "errno.EAGAIN": E.EAGAIN,
  "errno.ENOMEM": E.ENOMEM, "errno.EACCES": E.EACCES, "errno.EFAULT": E.EFAULT, "errno.EBUSY": E.EBUSY,
  "errno.EEXIST": E.EEXIST, "errno.ENODEV": E.ENODEV, "errno.EINVAL": E.EINVAL, "errno.ENOSPC": E.ENOSPC,
  "errno.EMSGSIZE": E.EMSGSIZE, "errno.EOPNOTSUPP": E.EOPNOTSUPP, "errno.ECONNREFUSED": E.ECONNREFUSED,
};

describe("argo.h layout and constants (real libxen-dev header)", () => {
  it("the oracle printed every value we check", () => {
    expect([...xen.keys()].sort()).toEqual(Object.keys(ours).sort());
  });
  for (const [name, value] of Object.entries(ours)) {
    it(name, () => expect(value).toBe(xen.get(name)));
  }
});

describe("the guest reader's codes (host/abi/argo-reader.ts) are build/argo.wasm's", () => {
  const exports = instantiate<Record<string, WebAssembly.Global>>("argo", new WebAssembly.Memory({ initial: 1 }));
  const codes = { READ_EMPTY: R.READ_EMPTY, READ_BAD_RING: R.READ_BAD_RING, READ_BAD_POINTER: R.READ_BAD_POINTER,
    READ_BAD_MESSAGE: R.READ_BAD_MESSAGE, READ_BAD_BUFFER: R.READ_BAD_BUFFER };
  for (const [name, value] of Object.entries(codes)) {
    it(name, () => expect(exports[name]?.value).toBe(value));
  }
  it("every code is distinct and negative, so a length can never be mistaken for one", () => {
    const values = Object.values(codes);
    expect(new Set(values).size).toBe(values.length);
    expect(values.every((v) => v < 0)).toBe(true);
  });
});
