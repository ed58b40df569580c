/* Split and packed ring layouts and constants from the real <linux/virtio_ring.h>
 * (Debian linux-libc-dev), for test/vring/layout.test.ts: struct sizes and offsets, flag
 * values, and vring_init / vring_size for many queue sizes and alignments. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/virtio_ring.h>

#define P(name, v) printf("%s %lu\n", name, (unsigned long)(v))

int main(void)
{
    P("VRING_DESC_F_NEXT", VRING_DESC_F_NEXT);
    P("VRING_DESC_F_WRITE", VRING_DESC_F_WRITE);
    P("VRING_DESC_F_INDIRECT", VRING_DESC_F_INDIRECT);
    P("VRING_PACKED_DESC_F_AVAIL", VRING_PACKED_DESC_F_AVAIL);
    P("VRING_PACKED_DESC_F_USED", VRING_PACKED_DESC_F_USED);
    P("VRING_PACKED_EVENT_FLAG_ENABLE", VRING_PACKED_EVENT_FLAG_ENABLE);
    P("VRING_PACKED_EVENT_FLAG_DISABLE", VRING_PACKED_EVENT_FLAG_DISABLE);
    P("VRING_PACKED_EVENT_FLAG_DESC", VRING_PACKED_EVENT_FLAG_DESC);
    P("VRING_PACKED_EVENT_F_WRAP_CTR", VRING_PACKED_EVENT_F_WRAP_CTR);
    P("sizeof.vring_desc", sizeof(struct vring_desc));
    P("vring_desc.addr", offsetof(struct vring_desc, addr));
    P("vring_desc.len", offsetof(struct vring_desc, len));
    P("vring_desc.flags", offsetof(struct vring_desc, flags));
    P("vring_desc.next", offsetof(struct vring_desc, next));
    P("vring_avail.flags", offsetof(struct vring_avail, flags));
    P("vring_avail.idx", offsetof(struct vring_avail, idx));
    P("vring_avail.ring", offsetof(struct vring_avail, ring));
    P("sizeof.vring_used_elem", sizeof(struct vring_used_elem));
    P("vring_used_elem.id", offsetof(struct vring_used_elem, id));
    P("vring_used_elem.len", offsetof(struct vring_used_elem, len));
    P("vring_used.idx", offsetof(struct vring_used, idx));
    P("vring_used.ring", offsetof(struct vring_used, ring));
    P("sizeof.vring_packed_desc", sizeof(struct vring_packed_desc));
    P("vring_packed_desc.addr", offsetof(struct vring_packed_desc, addr));
    P("vring_packed_desc.len", offsetof(struct vring_packed_desc, len));
    P("vring_packed_desc.id", offsetof(struct vring_packed_desc, id));
    P("vring_packed_desc.flags", offsetof(struct vring_packed_desc, flags));
    P("sizeof.vring_packed_desc_event", sizeof(struct vring_packed_desc_event));
    P("vring_packed_desc_event.off_wrap", offsetof(struct vring_packed_desc_event, off_wrap));
    P("vring_packed_desc_event.flags", offsetof(struct vring_packed_desc_event, flags));
    static const unsigned long aligns[] = {4, 16, 64, 4096};
    for (unsigned qs = 1; qs <= 32768; qs = qs < 8 ? qs + 1 : qs * 2) {
        for (unsigned a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            struct vring vr;
            char *base = (char *)(uintptr_t)0x10000;
            vring_init(&vr, qs, base, aligns[a]);
            printf("layout %u %lu %lu %lu %lu %lu\n", qs, aligns[a], (unsigned long)((char *)vr.desc - base),
                   (unsigned long)((char *)vr.avail - base), (unsigned long)((char *)vr.used - base),
                   (unsigned long)vring_size(qs, aligns[a]));
        }
    }
    return 0;
}
