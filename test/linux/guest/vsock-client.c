/*
 * A tiny vsock client for the Linux guest tests (busybox has none): connects to
 * CID:PORT, sends MESSAGE, shuts its sending side, prints what comes back until end of
 * stream, and exits 0; on a refused connection prints "connect: <error>" and exits 1.
 * Built as a static i386 program (gcc -m32 -static) at test time, into a temp dir.
 *
 *   vsock-client CID PORT MESSAGE
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: vsock-client CID PORT MESSAGE\n");
    return 2;
  }
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (s < 0) {
    printf("socket: %s\n", strerror(errno));
    return 1;
  }
  struct sockaddr_vm addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = (unsigned)strtoul(argv[1], NULL, 10);
  addr.svm_port = (unsigned)strtoul(argv[2], NULL, 10);
  if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
    printf("connect: %s\n", strerror(errno));
    return 1;
  }
  size_t len = strlen(argv[3]);
  for (size_t done = 0; done < len;) {
    ssize_t n = write(s, argv[3] + done, len - done);
    if (n <= 0) {
      printf("write: %s\n", strerror(errno));
      return 1;
    }
    done += (size_t)n;
  }
  shutdown(s, SHUT_WR);
  char buf[4096];
  printf("reply: ");
  for (;;) {
    ssize_t n = read(s, buf, sizeof buf);
    if (n < 0) {
      printf("\nread: %s\n", strerror(errno));
      return 1;
    }
    if (n == 0) break;
    fwrite(buf, 1, (size_t)n, stdout);
  }
  printf("\n");
  close(s);
  return 0;
}
