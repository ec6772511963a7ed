/*
 * hop_capture: the kernel's hops of a lab packet, seen by a packet socket (vxtun lab tour, vxtun trace --lab).
 * Run inside one network namespace (ip netns exec NS hop_capture [VXLAN_PORT [POD_NETWORK]]). One unbound
 * AF_PACKET socket sees every interface of that namespace in both directions; for each IPv4 packet that is
 * ICMP, a UDP datagram to/from the VXLAN port (default 8472), or TCP/UDP with an address in the pod
 * network (default 10.244.0.0/16) it prints one line, at most REPORTS_PER_SECOND a second (past that a
 * burst goes unreported, so bulk traffic cannot swamp the lab):
 *
 *   <CLOCK_MONOTONIC ns> <in|out> <interface> <IP length> <hex of the first 128 bytes from the IP header>
 *
 * Clocks: the kernel stamps each packet with CLOCK_REALTIME (SO_TIMESTAMPNS); vxtun's observation points
 * carry CLOCK_MONOTONIC. The offset between the two is read when each packet is delivered (a realtime
 * reading between two monotonic ones, the tightest of three tries) and kept while it stays within 1 µs,
 * so the mapping follows any NTP slew and is off only by what the clocks moved apart in the
 * microseconds since the kernel's stamp (and that 1 µs).
 * Prints "ready" once the socket is open; dies with its parent (ip netns exec execs it in place).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t ns_of(const struct timespec *t) { return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec; }

static int64_t clock_ns(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return ns_of(&t);
}

/* CLOCK_REALTIME - CLOCK_MONOTONIC, now. */
static int64_t realtime_minus_monotonic(void) {
  int64_t best_gap = INT64_MAX, offset = 0;
  for (int i = 0; i < 3; i++) {
    int64_t m1 = clock_ns(CLOCK_MONOTONIC), r = clock_ns(CLOCK_REALTIME), m2 = clock_ns(CLOCK_MONOTONIC);
    if (m2 - m1 < best_gap) {
      best_gap = m2 - m1;
      offset = r - (m1 + (m2 - m1) / 2);
    }
  }
  return offset;
}

#define REPORTS_PER_SECOND 5000

static int in_network(const unsigned char *addr, uint32_t net, uint32_t mask) {
  uint32_t a = (uint32_t)addr[0] << 24 | (uint32_t)addr[1] << 16 | (uint32_t)addr[2] << 8 | addr[3];
  return (a & mask) == net;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8472;
  struct in_addr net_addr = {htonl(0x0af40000)};
  int prefix = 16;
  if (argc > 2) {
    char text[64];
    snprintf(text, sizeof text, "%s", argv[2]);
    char *slash = strchr(text, '/');
    if (slash != NULL) {
      *slash = '\0';
      prefix = atoi(slash + 1);
    }
    if (slash == NULL || inet_pton(AF_INET, text, &net_addr) != 1 || prefix < 0 || prefix > 32) {
      fprintf(stderr, "hop_capture: POD_NETWORK %s is not an IPv4 CIDR\n", argv[2]);
      return 2;
    }
  }
  uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
  uint32_t net = ntohl(net_addr.s_addr) & mask;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) return 1;
  int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
  if (fd < 0) {
    perror("hop_capture: socket(AF_PACKET)");
    return 1;
  }
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) {
    perror("hop_capture: SO_TIMESTAMPNS");
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  unsigned char buf[2048];
  int64_t offset = 0;
  int offset_known = 0;
  time_t budget_second = 0;
  int reports = 0;
  char control[256];
  for (;;) {
    struct sockaddr_ll from;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(fd, &msg, 0);
    if (n < 0) continue;
    if (from.sll_protocol != htons(ETH_P_IP) || n < 20 || (buf[0] >> 4) != 4) continue;
    int ihl = (buf[0] & 0x0f) * 4;
    int pods = in_network(buf + 12, net, mask) || in_network(buf + 16, net, mask);
    if (buf[9] == 17) {
      if (n < ihl + 8) continue;
      int sport = buf[ihl] << 8 | buf[ihl + 1], dport = buf[ihl + 2] << 8 | buf[ihl + 3];
      if (sport != port && dport != port && !pods) continue;
    } else if (buf[9] == 6) {
      if (!pods) continue;
    } else if (buf[9] != 1) {
      continue;
    }
    /* the budget: REPORTS_PER_SECOND lines per wall second at most */
    time_t second = time(NULL);
    if (second != budget_second) budget_second = second, reports = 0;
    if (++reports > REPORTS_PER_SECOND) continue;
    int64_t stamp = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
        struct timespec t;
        memcpy(&t, CMSG_DATA(c), sizeof t);
        stamp = ns_of(&t);
      }
    }
    if (stamp >= 0) {
      /* One offset for as long as it holds to within a microsecond: packets the kernel stamped alike
       * (a bridge port and its bridge) keep equal times rather than differ by the reading's jitter. */
      int64_t now = realtime_minus_monotonic();
      if (offset_known == 0 || now - offset > 1000 || offset - now > 1000) offset = now, offset_known = 1;
    }
    int64_t mono = stamp >= 0 ? stamp - offset : clock_ns(CLOCK_MONOTONIC);
    char name[IF_NAMESIZE] = "?";
    if (if_indextoname((unsigned)from.sll_ifindex, name) == NULL) snprintf(name, sizeof name, "if%d", from.sll_ifindex);
    int ip_length = buf[2] << 8 | buf[3];
    printf("%lld %s %s %d ", (long long)mono, from.sll_pkttype == PACKET_OUTGOING ? "out" : "in", name, ip_length);
    for (ssize_t i = 0; i < n && i < 128; i++) printf("%02x", buf[i]);
    printf("\n");
  }
}
