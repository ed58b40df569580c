// /init of the Linux guest's initramfs: a busybox sh script. It loads the virtio modules
// in dependency order, waits (bounded) for the devices the SSDT announced to bind, then
// runs the command it was given between two markers on the serial console and powers
// off, or opens an interactive shell on the console.

/** Printed before the command's output; the exit marker carries its status. */
export const BEGIN_MARKER = "@@VIRTIO-ARGO-BEGIN@@";
export const EXIT_MARKER = "@@VIRTIO-ARGO-EXIT";
export const READY_MARKER = "virtio-argo: ready";

/** Where the command to run lives in the initramfs. */
export const RUN_SCRIPT = "etc/virtio-argo/run.sh";

export function initScript(devices: number): string {
  return `#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko 2>/dev/null || echo "virtio-argo: insmod $m failed"
done
# The SSDT announced ${devices} device(s); wait at most 5 s for their drivers to bind.
n=0
while [ $n -lt 50 ]; do
  bound=$(ls -d /sys/bus/virtio/devices/*/driver 2>/dev/null | wc -l)
  [ "$bound" -ge ${devices} ] && break
  sleep 0.1
  n=$((n + 1))
done
echo "${READY_MARKER} $(cut -d' ' -f1 /proc/uptime) s, $(ls /sys/bus/virtio/devices 2>/dev/null | wc -l) virtio device(s)"
if [ -f /${RUN_SCRIPT} ]; then
  echo "${BEGIN_MARKER}"
  sh /${RUN_SCRIPT}
  echo "${EXIT_MARKER} $?@@"
  sync
  poweroff -f
fi
echo "virtio-argo: interactive shell (Ctrl-A x quits the VMM)"
exec setsid cttyhack sh -l
`;
}
