/*
 * udp-proxy-c: a C udp proxy in the design of flannel's udp backend (one read and one sendto per
 * packet), written for vxtun as a baseline and an interop peer. It is not flannel's code.
 *
 * One process, one TUN device, one UDP socket, one poll loop over both:
 *   TUN readable    -> one read() of one packet -> check IPv4 -> longest-prefix route of the
 *                      destination -> TTL − 1 -> one sendto() of the bare IPv4 packet to the peer
 *   socket readable -> one recvfrom() of one datagram -> check IPv4 -> TTL − 1 -> one write() to the TUN
 * The wire format is flannel's udp backend's: the UDP payload is the inner IPv4 packet, no header,
 * both ends on one port (8285). Each proxy direction is a router hop, as in vxtun's udp backend
 * (src/engine/flannel-udp.ts), so both decrement the TTL the same way. Default socket buffers and
 * blocking descriptors: the one-packet-per-syscall design is the point of this baseline.
 * A packet with no route, a malformed one or one whose TTL would reach 0 is dropped under a named
 * counter (the reason names are vxtun's); nothing that arrives stops the loop.
 *
 * The node is set up the way a flannel udp node looks from outside: the TUN (IFF_TUN|IFF_NO_PI) is
 * named flannel%d, has the lease's first address with the whole network's prefix length (so the
 * network routes into it), MTU = the underlay interface's MTU − 28 (IPv4 + UDP headers); the socket
 * is bound to the node's underlay IP and port. Peers come from the command line:
 *
 *   udp-proxy-c --public-ip 198.18.0.1 --tun-ip 10.244.1.0/16
 *               [--port 8285] [--mtu N] [--name flannel%d]
 *               [--route 10.244.2.0/24=198.18.0.2[:port]]...
 *
 * stdout: one "ready" line once set up; SIGUSR1 prints a numbered counters line; SIGTERM/SIGINT
 * print the counters and "stopped", close everything (the TUN device goes with it) and exit 0.
 * Errors are one line on stderr: exit 2 for a bad argument, 1 for a host failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROG "udp-proxy-c"
#define MAX_ROUTES 256
#define ENCAP_OVERHEAD 28 /* outer IPv4 (20) + UDP (8) */
#define IPV4_MIN_HEADER 20
/* Room for any packet the TUN or the socket can hand over, so nothing is silently truncated. */
#define PACKET_BUFFER 65536

struct route {
	uint32_t net;  /* host order, already masked */
	uint32_t mask; /* host order */
	int prefix_len;
	struct sockaddr_in peer;
};

/* Every packet ends as tx, rx or one of these drops. */
enum drop_reason { TUN_MALFORMED, NO_ROUTE, TTL_EXPIRED, SEND_FAILED, MALFORMED_INNER_IPV4, TUN_WRITE_FAILED, DROP_REASONS };
static const char *const DROP_NAMES[DROP_REASONS] = {
	"tun-malformed", "no-route", "ttl-expired", "send-failed", "malformed-inner-ipv4", "tun-write-failed",
};

static struct {
	unsigned long long tx_packets, tx_bytes, rx_packets, rx_bytes;
	unsigned long long dropped[DROP_REASONS];
} counters;

static struct route routes[MAX_ROUTES];
static int nroutes;

static volatile sig_atomic_t stop_requested, counters_requested;

static void bad_arg(const char *field, const char *value, const char *why) {
	fprintf(stderr, PROG ": %s: \"%s\": %s\n", field, value, why);
	exit(2);
}

static void host_fail(const char *what, const char *detail) {
	fprintf(stderr, PROG ": %s: %s\n", what, detail);
	exit(1);
}

static struct in_addr parse_ip(const char *field, const char *s) {
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1) bad_arg(field, s, "not an IPv4 address");
	return a;
}

static int parse_int(const char *field, const char *s, int min, int max) {
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		char why[64];
		snprintf(why, sizeof(why), "not an integer in %d..%d", min, max);
		bad_arg(field, s, why);
	}
	return (int)v;
}

/* "a.b.c.d/len" */
static void parse_cidr(const char *field, const char *s, struct in_addr *ip, int *len) {
	char buf[64];
	char *slash;
	if (strlen(s) >= sizeof(buf)) bad_arg(field, s, "not a CIDR (a.b.c.d/len)");
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash) bad_arg(field, s, "not a CIDR (a.b.c.d/len)");
	*slash = '\0';
	*ip = parse_ip(field, buf);
	*len = parse_int(field, slash + 1, 0, 32);
}

static uint32_t prefix_mask(int len) {
	return len == 0 ? 0 : ~(uint32_t)0 << (32 - len);
}

/* "10.244.2.0/24=198.18.0.2[:port]" */
static struct route parse_route(const char *s, int default_port) {
	struct route r;
	struct in_addr net, peer;
	char buf[96];
	char *eq, *colon;
	int port = default_port;
	if (strlen(s) >= sizeof(buf)) bad_arg("--route", s, "too long");
	strcpy(buf, s);
	eq = strchr(buf, '=');
	if (!eq) bad_arg("--route", s, "expected <subnet>/<len>=<peer ip>[:<port>]");
	*eq = '\0';
	parse_cidr("--route", buf, &net, &r.prefix_len);
	colon = strchr(eq + 1, ':');
	if (colon) {
		*colon = '\0';
		port = parse_int("--route", colon + 1, 1, 65535);
	}
	peer = parse_ip("--route", eq + 1);
	r.mask = prefix_mask(r.prefix_len);
	r.net = ntohl(net.s_addr) & r.mask;
	memset(&r.peer, 0, sizeof(r.peer));
	r.peer.sin_family = AF_INET;
	r.peer.sin_addr = peer;
	r.peer.sin_port = htons((uint16_t)port);
	return r;
}

/* Longest prefix first, so the first match of a linear scan is the longest one. */
static int by_prefix_desc(const void *a, const void *b) {
	return ((const struct route *)b)->prefix_len - ((const struct route *)a)->prefix_len;
}

static const struct route *lookup(uint32_t dst) {
	for (int i = 0; i < nroutes; i++)
		if ((dst & routes[i].mask) == routes[i].net) return &routes[i];
	return NULL;
}

/* The MTU and name of the interface that holds `ip`, or -1 when no interface has it. */
static int underlay_mtu(struct in_addr ip, char *name, size_t name_len) {
	struct ifaddrs *ifs, *i;
	int mtu = -1;
	if (getifaddrs(&ifs) != 0) host_fail("getifaddrs", strerror(errno));
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
		if (((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr != ip.s_addr) continue;
		struct ifreq ifr;
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", i->ifa_name);
		if (fd >= 0 && ioctl(fd, SIOCGIFMTU, &ifr) == 0) mtu = ifr.ifr_mtu;
		if (fd >= 0) close(fd);
		snprintf(name, name_len, "%s", i->ifa_name);
		break;
	}
	freeifaddrs(ifs);
	return mtu;
}

/* A "%d" in the name lets the kernel pick the number (flannel0 unless taken). */
static int open_tun(const char *pattern, char *name) {
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) host_fail("/dev/net/tun", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", pattern);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) host_fail("TUNSETIFF", strerror(errno));
	snprintf(name, IFNAMSIZ, "%s", ifr.ifr_name);
	return fd;
}

/* Address with the network's prefix length (its connected route sends the network into the TUN), MTU, up. */
static void configure_tun(const char *name, struct in_addr ip, int prefix_len, int mtu) {
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) host_fail("socket", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	sin->sin_family = AF_INET;
	sin->sin_addr = ip;
	if (ioctl(fd, SIOCSIFADDR, &ifr) < 0) host_fail("SIOCSIFADDR", strerror(errno));
	sin->sin_addr.s_addr = htonl(prefix_mask(prefix_len));
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0) host_fail("SIOCSIFNETMASK", strerror(errno));
	ifr.ifr_mtu = mtu;
	if (ioctl(fd, SIOCSIFMTU, &ifr) < 0) host_fail("SIOCSIFMTU", strerror(errno));
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) host_fail("SIOCGIFFLAGS", strerror(errno));
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) host_fail("SIOCSIFFLAGS", strerror(errno));
	close(fd);
}

static int open_socket(struct in_addr ip, int port, const char *ip_text) {
	struct sockaddr_in addr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) host_fail("socket", strerror(errno));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr = ip;
	addr.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		char what[64];
		snprintf(what, sizeof(what), "bind %s:%d", ip_text, port);
		host_fail(what, strerror(errno));
	}
	return fd;
}

static uint16_t read16(const uint8_t *p) {
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The packet's IPv4 total length when `len` bytes hold a well-formed IPv4 header and packet, else 0. */
static size_t ipv4_length(const uint8_t *p, size_t len) {
	size_t header, total;
	if (len < IPV4_MIN_HEADER || p[0] >> 4 != 4) return 0;
	header = (size_t)(p[0] & 0x0f) * 4;
	total = read16(p + 2);
	if (header < IPV4_MIN_HEADER || header > len || total < header || total > len) return 0;
	return total;
}

/* Off-the-wire headers are checked in full (the kernel would drop a bad one after we counted it as rx). */
static int ipv4_header_checksum_ok(const uint8_t *p) {
	size_t header = (size_t)(p[0] & 0x0f) * 4;
	uint32_t sum = 0;
	for (size_t i = 0; i < header; i += 2) sum += read16(p + i);
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* TTL − 1 with the header checksum patched incrementally (RFC 1624, eqn. 3); 0 when it would reach 0. */
static int decrement_ttl(uint8_t *p) {
	uint16_t old_word, new_word, checksum;
	uint32_t sum;
	if (p[8] <= 1) return 0;
	old_word = read16(p + 8);
	p[8]--;
	new_word = read16(p + 8);
	checksum = read16(p + 10);
	sum = (uint32_t)(uint16_t)~checksum + (uint16_t)~old_word + new_word;
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	checksum = (uint16_t)~sum;
	p[10] = (uint8_t)(checksum >> 8);
	p[11] = (uint8_t)checksum;
	return 1;
}

/* TUN -> peer: one read, one sendto. */
static void tun_to_udp(int tun, int sock, uint8_t *buf) {
	ssize_t n = read(tun, buf, PACKET_BUFFER);
	size_t len;
	uint32_t dst;
	const struct route *r;
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN) return;
		host_fail("read from the TUN device", strerror(errno));
	}
	len = ipv4_length(buf, (size_t)n);
	if (len == 0) {
		counters.dropped[TUN_MALFORMED]++; /* also IPv6: the udp wire format carries IPv4 only */
		return;
	}
	memcpy(&dst, buf + 16, sizeof(dst));
	r = lookup(ntohl(dst));
	if (!r) {
		counters.dropped[NO_ROUTE]++;
		return;
	}
	if (!decrement_ttl(buf)) {
		counters.dropped[TTL_EXPIRED]++;
		return;
	}
	if (sendto(sock, buf, len, 0, (const struct sockaddr *)&r->peer, sizeof(r->peer)) != (ssize_t)len) {
		counters.dropped[SEND_FAILED]++;
		return;
	}
	counters.tx_packets++;
	counters.tx_bytes += len;
}

/* peer -> TUN: one recvfrom, one write. Any sender on the underlay is accepted, as flannel's udp backend does. */
static void udp_to_tun(int sock, int tun, uint8_t *buf) {
	struct sockaddr_in from;
	socklen_t from_len = sizeof(from);
	ssize_t n = recvfrom(sock, buf, PACKET_BUFFER, 0, (struct sockaddr *)&from, &from_len);
	size_t len;
	if (n < 0) {
		/* ICMP errors for earlier sends can surface here; they are not this datagram's fault. */
		if (errno == EINTR || errno == EAGAIN || errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) return;
		host_fail("recvfrom on the UDP socket", strerror(errno));
	}
	len = ipv4_length(buf, (size_t)n);
	if (len == 0 || !ipv4_header_checksum_ok(buf)) {
		counters.dropped[MALFORMED_INNER_IPV4]++;
		return;
	}
	if (!decrement_ttl(buf)) {
		counters.dropped[TTL_EXPIRED]++;
		return;
	}
	if (write(tun, buf, len) != (ssize_t)len) {
		counters.dropped[TUN_WRITE_FAILED]++;
		return;
	}
	counters.rx_packets++;
	counters.rx_bytes += len;
}

static void print_counters(const char *label) {
	printf(PROG " %s: tx-packets=%llu tx-bytes=%llu rx-packets=%llu rx-bytes=%llu", label, counters.tx_packets, counters.tx_bytes,
	       counters.rx_packets, counters.rx_bytes);
	for (int i = 0; i < DROP_REASONS; i++) printf(" drop:%s=%llu", DROP_NAMES[i], counters.dropped[i]);
	printf("\n");
	fflush(stdout);
}

static void on_stop(int sig) {
	(void)sig;
	stop_requested = 1;
}

static void on_counters(int sig) {
	(void)sig;
	counters_requested = 1;
}

int main(int argc, char **argv) {
	const char *route_args[MAX_ROUTES];
	const char *name_pattern = "flannel%d";
	const char *public_ip_arg = NULL, *tun_ip_arg = NULL;
	int port = 8285, mtu = -1, i;
	static uint8_t buf[PACKET_BUFFER];

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) bad_arg(a, "", "missing value (or unknown flag)");
		if (strcmp(a, "--public-ip") == 0) public_ip_arg = v;
		else if (strcmp(a, "--tun-ip") == 0) tun_ip_arg = v;
		else if (strcmp(a, "--port") == 0) port = parse_int(a, v, 1, 65535);
		else if (strcmp(a, "--mtu") == 0) mtu = parse_int(a, v, 68, 65535);
		else if (strcmp(a, "--name") == 0) {
			if (strlen(v) >= IFNAMSIZ) bad_arg(a, v, "longer than 15 characters");
			name_pattern = v;
		} else if (strcmp(a, "--route") == 0) {
			if (nroutes == MAX_ROUTES) bad_arg(a, v, "too many routes");
			route_args[nroutes++] = v;
		} else bad_arg("argument", a, "unknown flag");
		i++;
	}
	if (!public_ip_arg) bad_arg("--public-ip", "", "required");
	if (!tun_ip_arg) bad_arg("--tun-ip", "", "required (the lease's first address / the network's prefix length, e.g. 10.244.1.0/16)");
	/* Routes parse after the flags so a --port anywhere is every peer's default port. */
	for (i = 0; i < nroutes; i++) routes[i] = parse_route(route_args[i], port);
	qsort(routes, (size_t)nroutes, sizeof(routes[0]), by_prefix_desc);

	struct in_addr public_ip = parse_ip("--public-ip", public_ip_arg);
	struct in_addr tun_ip;
	int tun_prefix;
	parse_cidr("--tun-ip", tun_ip_arg, &tun_ip, &tun_prefix);

	char underlay[IFNAMSIZ] = "";
	int underlay_mtu_value = underlay_mtu(public_ip, underlay, sizeof(underlay));
	if (underlay_mtu_value < 0) bad_arg("--public-ip", public_ip_arg, "not an address of any interface on this host");
	if (mtu < 0) mtu = underlay_mtu_value - ENCAP_OVERHEAD;

	/* Signals are blocked except inside ppoll(), so a stop or counters request never slips in between check and wait. */
	sigset_t handled, during_poll;
	struct sigaction sa;
	sigemptyset(&handled);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGINT);
	sigaddset(&handled, SIGUSR1);
	sigprocmask(SIG_BLOCK, &handled, &during_poll);
	sigdelset(&during_poll, SIGTERM);
	sigdelset(&during_poll, SIGINT);
	sigdelset(&during_poll, SIGUSR1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_counters;
	sigaction(SIGUSR1, &sa, NULL);

	char tun_name[IFNAMSIZ];
	int tun = open_tun(name_pattern, tun_name);
	configure_tun(tun_name, tun_ip, tun_prefix, mtu);
	int sock = open_socket(public_ip, port, public_ip_arg);

	printf(PROG " ready: tun %s %s mtu %d, udp %s:%d on %s, %d route(s)\n", tun_name, tun_ip_arg, mtu, public_ip_arg, port, underlay, nroutes);
	fflush(stdout);

	struct pollfd fds[2] = { { .fd = tun, .events = POLLIN }, { .fd = sock, .events = POLLIN } };
	unsigned long counters_printed = 0;
	while (!stop_requested) {
		if (counters_requested) {
			char label[32];
			counters_requested = 0;
			snprintf(label, sizeof(label), "counters #%lu", ++counters_printed);
			print_counters(label);
		}
		if (ppoll(fds, 2, NULL, &during_poll) < 0) {
			if (errno == EINTR) continue;
			host_fail("ppoll", strerror(errno));
		}
		if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) host_fail("TUN device", "error or hang-up on its descriptor");
		if (fds[0].revents & POLLIN) tun_to_udp(tun, sock, buf);
		if (fds[1].revents & POLLIN) udp_to_tun(sock, tun, buf);
		/* POLLERR on the socket is a pending ICMP error; recvfrom() collects and clears it. */
		else if (fds[1].revents & POLLERR) udp_to_tun(sock, tun, buf);
	}

	print_counters("counters at stop");
	close(sock);
	close(tun); /* not persistent: the device, its address and its route go with it */
	printf(PROG " stopped\n");
	fflush(stdout);
	return 0;
}
