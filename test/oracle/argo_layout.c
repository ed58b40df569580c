/* Prints the layout and constants of Xen's public/argo.h (Debian libxen-dev) as
 * "name value" lines; test/argo/layout.test.ts compares them with host/hypervisor/layout.ts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/xen.h>
#include <xen/argo.h>
#include <xen/errno.h>

#define P(name, value) printf("%s %llu\n", name, (unsigned long long)(value))

int main(void)
{
    P("DOMID_ANY", XEN_ARGO_DOMID_ANY);
    P("MAX_RING_SIZE", XEN_ARGO_MAX_RING_SIZE);
    P("MAXIOV", XEN_ARGO_MAXIOV);
    P("MSG_SLOT_SIZE", XEN_ARGO_MSG_SLOT_SIZE);
    P("OP_REGISTER_RING", XEN_ARGO_OP_register_ring);
    P("OP_UNREGISTER_RING", XEN_ARGO_OP_unregister_ring);
    P("OP_SENDV", XEN_ARGO_OP_sendv);
    P("OP_NOTIFY", XEN_ARGO_OP_notify);
    P("REGISTER_FLAG_FAIL_EXIST", XEN_ARGO_REGISTER_FLAG_FAIL_EXIST);
    P("RING_EXISTS", XEN_ARGO_RING_EXISTS);
    P("RING_SHARED", XEN_ARGO_RING_SHARED);
    P("RING_EMPTY", XEN_ARGO_RING_EMPTY);
    P("RING_SUFFICIENT", XEN_ARGO_RING_SUFFICIENT);
    P("RING_EMSGSIZE", XEN_ARGO_RING_EMSGSIZE);
    P("RING_EBUSY", XEN_ARGO_RING_EBUSY);

    P("sizeof.xen_argo_ring_t", sizeof(xen_argo_ring_t));
    P("offsetof.ring.rx_ptr", offsetof(xen_argo_ring_t, rx_ptr));
    P("offsetof.ring.tx_ptr", offsetof(xen_argo_ring_t, tx_ptr));
    P("offsetof.ring.ring", offsetof(xen_argo_ring_t, ring));
    P("sizeof.message_header", sizeof(struct xen_argo_ring_message_header));
    P("offsetof.message_header.len", offsetof(struct xen_argo_ring_message_header, len));
    P("offsetof.message_header.source.aport", offsetof(struct xen_argo_ring_message_header, source.aport));
    P("offsetof.message_header.source.domain_id", offsetof(struct xen_argo_ring_message_header, source.domain_id));
    P("offsetof.message_header.message_type", offsetof(struct xen_argo_ring_message_header, message_type));
    P("sizeof.xen_argo_addr_t", sizeof(xen_argo_addr_t));
    P("offsetof.addr.aport", offsetof(xen_argo_addr_t, aport));
    P("offsetof.addr.domain_id", offsetof(xen_argo_addr_t, domain_id));
    P("offsetof.addr.pad", offsetof(xen_argo_addr_t, pad));
    P("sizeof.xen_argo_send_addr_t", sizeof(xen_argo_send_addr_t));
    P("offsetof.send_addr.src", offsetof(xen_argo_send_addr_t, src));
    P("offsetof.send_addr.dst", offsetof(xen_argo_send_addr_t, dst));
    P("sizeof.xen_argo_iov_t", sizeof(xen_argo_iov_t));
    P("offsetof.iov.iov_hnd", offsetof(xen_argo_iov_t, iov_hnd));
    P("offsetof.iov.iov_len", offsetof(xen_argo_iov_t, iov_len));
    P("offsetof.iov.pad", offsetof(xen_argo_iov_t, pad));
    P("sizeof.xen_argo_register_ring_t", sizeof(xen_argo_register_ring_t));
    P("offsetof.register.aport", offsetof(xen_argo_register_ring_t, aport));
    P("offsetof.register.partner_id", offsetof(xen_argo_register_ring_t, partner_id));
    P("offsetof.register.pad", offsetof(xen_argo_register_ring_t, pad));
    P("offsetof.register.len", offsetof(xen_argo_register_ring_t, len));
    P("sizeof.xen_argo_unregister_ring_t", sizeof(xen_argo_unregister_ring_t));
    P("sizeof.xen_argo_gfn_t", sizeof(xen_argo_gfn_t));
    P("sizeof.xen_argo_ring_data_t", sizeof(xen_argo_ring_data_t));
    P("offsetof.ring_data.nent", offsetof(xen_argo_ring_data_t, nent));
    P("offsetof.ring_data.data", offsetof(xen_argo_ring_data_t, data));
    P("sizeof.xen_argo_ring_data_ent_t", sizeof(xen_argo_ring_data_ent_t));
    P("offsetof.ent.ring", offsetof(xen_argo_ring_data_ent_t, ring));
    P("offsetof.ent.flags", offsetof(xen_argo_ring_data_ent_t, flags));
    P("offsetof.ent.pad", offsetof(xen_argo_ring_data_ent_t, pad));
    P("offsetof.ent.space_required", offsetof(xen_argo_ring_data_ent_t, space_required));
    P("offsetof.ent.max_message_size", offsetof(xen_argo_ring_data_ent_t, max_message_size));
    P("errno.EPERM", XEN_EPERM);
    P("errno.ENOENT", XEN_ENOENT);
    P("errno.ESRCH", XEN_ESRCH);
    P("errno.EAGAIN", XEN_EAGAIN);
    P("errno.ENOMEM", XEN_ENOMEM);
    P("errno.EACCES", XEN_EACCES);
    P("errno.EFAULT", XEN_EFAULT);
    P("errno.EBUSY", XEN_EBUSY);
    P("errno.EEXIST", XEN_EEXIST);
    P("errno.ENODEV", XEN_ENODEV);
    P("errno.EINVAL", XEN_EINVAL);
    P("errno.ENOSPC", XEN_ENOSPC);
    P("errno.EMSGSIZE", XEN_EMSGSIZE);
    P("errno.EOPNOTSUPP", XEN_EOPNOTSUPP);
    P("errno.ECONNREFUSED", XEN_ECONNREFUSED);
    return 0;
}
