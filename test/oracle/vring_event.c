/* vring_need_event and vring layout from the real <linux/virtio_ring.h>
 * (Debian linux-libc-dev), for test/transport/split.test.ts. */
#include <stdint.h>
#include <stdio.h>
#include <linux/virtio_ring.h>

int main(void)
{
    static const uint16_t v[] = {0, 1, 2, 3, 7, 8, 100, 255, 256, 32767, 32768, 65533, 65534, 65535};
    const unsigned n = sizeof v / sizeof v[0];
    for (unsigned a = 0; a < n; a++)
        for (unsigned b = 0; b < n; b++)
            for (unsigned c = 0; c < n; c++)
                printf("%u %u %u %d\n", v[a], v[b], v[c], vring_need_event(v[a], v[b], v[c]));
    for (unsigned qs = 1; qs <= 32768; qs *= 2) {
        struct vring vr;
        vring_init(&vr, qs, (void *)0, 4096);
        printf("layout %u %lu %lu %lu\n", qs, (unsigned long)((char *)vr.avail - (char *)0),
               (unsigned long)((char *)vr.used - (char *)0), (unsigned long)vring_size(qs, 4096));
    }
    return 0;
}
