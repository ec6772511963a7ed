/*
 * A hostile underlay host for the flood benchmark and tests: sends UDP datagrams to one address and
 * port as fast as one core can (sendmmsg of 64 at a time) for a number of seconds or datagrams,
 * whichever ends first, then prints what it sent as one JSON line. The payload looks like VXLAN
 * (flags 0x08, the given VNI) followed by zeros, so a receiver has to look at it to drop it.
 *
 *   udp-flood <dst-ip> <dst-port> <seconds> [size=1400] [count=0: no limit] [vni=1]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: udp-flood <dst-ip> <dst-port> <seconds> [size=1400] [count=0] [vni=1]\n");
    return 2;
  }
  struct sockaddr_in dst;
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
    fprintf(stderr, "udp-flood: not an IPv4 address: %s\n", argv[1]);
    return 2;
  }
  double seconds = atof(argv[3]);
  size_t size = argc > 4 ? (size_t)atol(argv[4]) : 1400;
  long long count = argc > 5 ? atoll(argv[5]) : 0;
  unsigned vni = argc > 6 ? (unsigned)atoi(argv[6]) : 1;
  if (size < 8 || size > 65000) {
    fprintf(stderr, "udp-flood: size must be in [8, 65000]: %zu\n", size);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("udp-flood: socket");
    return 1;
  }
  unsigned char* payload = calloc(1, size);
  payload[0] = 0x08;
  payload[4] = (unsigned char)(vni >> 16);
  payload[5] = (unsigned char)(vni >> 8);
  payload[6] = (unsigned char)vni;
  struct iovec iov = {payload, size};
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    msgs[i].msg_hdr.msg_name = &dst;
    msgs[i].msg_hdr.msg_namelen = sizeof dst;
    msgs[i].msg_hdr.msg_iov = &iov;
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  long long sent = 0, refused = 0;
  double start = now(), end = start + seconds;
  while (now() < end && (count == 0 || sent < count)) {
    unsigned n = BATCH;
    if (count != 0 && count - sent < BATCH) n = (unsigned)(count - sent);
    int r = sendmmsg(fd, msgs, n, 0);
    if (r > 0) {
      sent += r;
    } else if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED || errno == EINTR) {
      refused++;
    } else {
      perror("udp-flood: sendmmsg");
      return 1;
    }
  }
  double took = now() - start;
  printf("{\"sent\":%lld,\"seconds\":%.3f,\"perSecond\":%.0f,\"refused\":%lld}\n", sent, took, sent / (took > 0 ? took : 1), refused);
  return 0;
}
