// The underlay UDP socket of the fast path: open/bind, recvmmsg into a caller-owned arena (with
// UDP_GRO, a message may carry several datagrams: their size comes back for the caller to split),
// sendmmsg of a batch to one destination, with UDP GSO (UDP_SEGMENT) for runs of equal-sized
// datagrams when the kernel has it. Counters live in a Float64Array the caller owns and reads
// without a call (layout: UdpCounter, counters.def).
#include "common.h"
#include "datapath.h"
#include "codel.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <vector>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace vxtun {
namespace {

constexpr int kMaxBatch = 256;
// UDP_MAX_SEGMENTS is 64 before Linux 5.x raised it to 128: stay with what every kernel takes.
constexpr int kMaxGsoSegments = 64;
// A GSO message must fit an IPv4 datagram: 65535 - 20 (IP) - 8 (UDP).
constexpr size_t kMaxGsoBytes = 65507;

template <typename T>
bool GetTyped(Napi::Env env, napi_value v, napi_typedarray_type want, const char* name, T** out, size_t* len) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (TypedArrayOf(env, v, &type, &p, len) && type == want) {
    *out = static_cast<T*>(p);
    return true;
  }
  ThrowType(env, std::string(name) + " has the wrong typed-array type");
  return false;
}

bool SetBuf(int fd, int opt, int forceOpt, int bytes) {
  // SO_*BUFFORCE passes net.core.*mem_max when we are root; the plain option is capped by it.
  if (::setsockopt(fd, SOL_SOCKET, forceOpt, &bytes, sizeof bytes) == 0) return true;
  return ::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes) == 0;
}

int GetBuf(int fd, int opt) {
  int v = 0;
  socklen_t l = sizeof v;
  ::getsockopt(fd, SOL_SOCKET, opt, &v, &l);
  return v;
}

// udpOpen(address, port, { recvBufferSize, sendBufferSize, gso, gro, reusePort, timestamps }):
//   { fd, port, recvBufferSize, sendBufferSize, gso, gro, timestamps }
// A non-blocking IPv4 UDP socket bound to address:port; gso/gro say which offloads the kernel took,
// timestamps whether each datagram carries its arrival time (SO_TIMESTAMPNS, what CoDel reads).
Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  int64_t port = 0;
  if (!ArgString(info, 0, "address", &address)) return env.Undefined();
  if (!ArgInt(info, 1, "port", 0, 65535, &port)) return env.Undefined();
  int rcvbuf = 4 << 20, sndbuf = 4 << 20;
  bool wantGso = true, wantGro = false, reusePort = false, wantTimestamps = false;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    Napi::Value v = o.Get("recvBufferSize");
    if (v.IsNumber()) rcvbuf = v.As<Napi::Number>().Int32Value();
    v = o.Get("sendBufferSize");
    if (v.IsNumber()) sndbuf = v.As<Napi::Number>().Int32Value();
    v = o.Get("gso");
    if (!v.IsUndefined()) wantGso = v.ToBoolean().Value();
    v = o.Get("gro");
    if (!v.IsUndefined()) wantGro = v.ToBoolean().Value();
    v = o.Get("reusePort");
    if (!v.IsUndefined()) reusePort = v.ToBoolean().Value();
    v = o.Get("timestamps");
    if (!v.IsUndefined()) wantTimestamps = v.ToBoolean().Value();
  }
  in_addr addr;
  if (inet_pton(AF_INET, address.c_str(), &addr) != 1) {
    ThrowType(env, "address is not an IPv4 address: \"" + address + "\"");
    return env.Undefined();
  }
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket", "AF_INET/SOCK_DGRAM");
    return env.Undefined();
  }
  std::string subject = address + ":" + std::to_string(port);
  // Worker threads each bind the VXLAN port: the kernel spreads datagrams over them by flow.
  int one = 1;
  if (reusePort && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, "setsockopt SO_REUSEPORT", subject);
    return env.Undefined();
  }
  sockaddr_in sin;
  std::memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr = addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) < 0) {
    int err = errno;
    ::close(fd);
    const char* hint = err == EADDRINUSE ? "the port is in use" : err == EADDRNOTAVAIL ? "the address is not on this host" : nullptr;
    ThrowErrno(env, err, "bind", subject, hint);
    return env.Undefined();
  }
  // Bursts of a TCP window arrive faster than one turn drains them: give the kernel room.
  SetBuf(fd, SO_RCVBUF, SO_RCVBUFFORCE, rcvbuf);
  SetBuf(fd, SO_SNDBUF, SO_SNDBUFFORCE, sndbuf);
  // Probe GSO: a socket-level UDP_SEGMENT of 0 is accepted exactly when the kernel knows the option
  // (Linux >= 4.18); the size itself goes per message in a cmsg.
  bool gso = false;
  if (wantGso) {
    int zero = 0;
    gso = ::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
  }
  bool gro = false;
  if (wantGro) {
    int one = 1;
    gro = ::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  }
  // The kernel's count of datagrams it dropped on this socket rides along with each received one.
  ::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  bool timestamps = wantTimestamps && ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) == 0;
  socklen_t sl = sizeof sin;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &sl);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("port", Napi::Number::New(env, ntohs(sin.sin_port)));
  out.Set("recvBufferSize", Napi::Number::New(env, GetBuf(fd, SO_RCVBUF)));
  out.Set("sendBufferSize", Napi::Number::New(env, GetBuf(fd, SO_SNDBUF)));
  out.Set("gso", Napi::Boolean::New(env, gso));
  out.Set("gro", Napi::Boolean::New(env, gro));
  out.Set("timestamps", Napi::Boolean::New(env, timestamps));
  return out;
}

// The peer filter: a classic BPF socket filter that keeps datagrams whose IPv4 source is in a sorted
// set and drops the rest in the kernel, before they take room in the receive buffer or wake anyone.
// A balanced search tree, each node "equal: keep; greater: jump right; else fall into the left
// subtree"; conditional jumps only skip one instruction (their offsets are 8 bits) and `ja` (32 bits)
// carries the long ones. 5 instructions a peer: BPF_MAXINSNS (4096) holds kMaxFilterPeers.
constexpr size_t kMaxFilterPeers = 800;

void EmitSearch(std::vector<sock_filter>& prog, const std::vector<uint32_t>& peers, size_t lo, size_t hi) {
  if (lo >= hi) {
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, 0));
    return;
  }
  size_t mid = lo + (hi - lo) / 2;
  prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, peers[mid], 0, 1));
  prog.push_back(BPF_STMT(BPF_RET | BPF_K, 0xffffffffu));
  prog.push_back(BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, peers[mid], 0, 1));
  size_t jump = prog.size();
  prog.push_back(BPF_STMT(BPF_JMP | BPF_JA, 0));
  EmitSearch(prog, peers, lo, mid);
  prog[jump].k = static_cast<uint32_t>(prog.size() - jump - 1);
  EmitSearch(prog, peers, mid + 1, hi);
}

// udpPeerFilter(fd, peers: Uint32Array | null): boolean
// Keeps only datagrams from `peers` (IPv4, host order) on the socket; null removes the filter. More
// peers than the filter holds also remove it (every datagram is taken, as without one): false then.
Napi::Value UdpPeerFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  std::vector<uint32_t> peers;
  bool remove = info.Length() < 2 || info[1].IsNull() || info[1].IsUndefined();
  if (!remove) {
    uint32_t* p;
    size_t n;
    if (!GetTyped(env, info[1], napi_uint32_array, "udpPeerFilter: peers", &p, &n)) return env.Undefined();
    peers.assign(p, p + n);
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    remove = peers.size() > kMaxFilterPeers;
  }
  if (remove) {
    int dummy = 0;
    if (::setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy) < 0 && errno != ENOENT) {
      ThrowErrno(env, errno, "setsockopt SO_DETACH_FILTER", "fd " + std::to_string(fd));
      return env.Undefined();
    }
    return Napi::Boolean::New(env, false);
  }
  std::vector<sock_filter> prog;
  prog.reserve(peers.size() * 5 + 2);
  // A socket filter's data starts at the UDP header: the IPv4 source sits at network header + 12.
  prog.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_NET_OFF + 12)));
  EmitSearch(prog, peers, 0, peers.size());
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
  if (::setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) < 0) {
    ThrowErrno(env, errno, "setsockopt SO_ATTACH_FILTER", "fd " + std::to_string(fd));
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

}  // namespace

// The core of udpRecvBatch (see datapath.h).
int RecvMessages(int fd, uint8_t* arena, size_t slotSize, size_t n, int32_t* sizes, uint32_t* addrs,
                 uint16_t* ports, int32_t* gsoSizes, double* ctr, double* codel) {
  mmsghdr msgs[kMaxBatch];
  iovec iovs[kMaxBatch];
  sockaddr_in srcs[kMaxBatch];
  // UDP_GRO reports the segment size of a coalesced message as an int in a cmsg; SO_RXQ_OVFL the
  // socket's drop count so far as a uint32; SO_TIMESTAMPNS (with CoDel) its arrival time.
  alignas(cmsghdr) char control[kMaxBatch][CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(timespec))];
  for (size_t i = 0; i < n; i++) {
    iovs[i].iov_base = arena + i * slotSize;
    iovs[i].iov_len = slotSize;
    std::memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &srcs[i];
    msgs[i].msg_hdr.msg_namelen = sizeof srcs[i];
    msgs[i].msg_hdr.msg_control = control[i];
    msgs[i].msg_hdr.msg_controllen = sizeof control[i];
    msgs[i].msg_len = 0;
  }
  int r;
  do {
    r = ::recvmmsg(fd, msgs, static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return 0;
    // ICMP errors queued on the socket (ECONNREFUSED from a peer's port unreachable) surface here:
    // count and carry on, the next call reads the datagrams behind them.
    ctr[kLastErrno] = err;
    if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH) return 0;
    return -err;
  }
  int out = 0;
  double datagrams = 0;
  const bool codelOn = codel != nullptr && codel[kCodelTarget] > 0;
  double now = 0;
  if (codelOn) {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);  // the clock the kernel stamps arrivals with
    now = static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  }
  for (int i = 0; i < r; i++) {
    if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      ctr[kRecvTruncated] += 1;
      continue;
    }
    unsigned len = msgs[i].msg_len;
    int gso = 0;
    double arrived = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != nullptr; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        std::memcpy(&gso, CMSG_DATA(c), sizeof gso);
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(timespec))) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        arrived = static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
        // A running total for the socket (it wraps at 2^32, which a counter of drops never meets in practice).
        uint32_t dropped;
        std::memcpy(&dropped, CMSG_DATA(c), sizeof dropped);
        if (dropped > ctr[kRecvOverflows]) ctr[kRecvOverflows] = dropped;
      }
    }
    if (gso <= 0 || len <= static_cast<unsigned>(gso)) gso = 0;  // one datagram after all
    const double segs = gso > 0 ? (len + static_cast<unsigned>(gso) - 1) / static_cast<unsigned>(gso) : 1;
    if (codelOn && arrived >= 0) {
      // A clock step (or a stamp from before one) gives no sojourn time worth acting on.
      double sojourn = now - arrived;
      if (sojourn < 0 || sojourn > 1e9) sojourn = 0;
      bool emptied = i == r - 1 && static_cast<size_t>(r) < n;
      if (CodelDequeue(codel, sojourn, now, emptied)) {
        ctr[kCodelDrops] += segs;
        continue;
      }
    }
    if (gsoSizes != nullptr) gsoSizes[out] = gso;
    if (out != i) std::memmove(arena + static_cast<size_t>(out) * slotSize, arena + static_cast<size_t>(i) * slotSize, len);
    sizes[out] = static_cast<int32_t>(len);
    addrs[out] = ntohl(srcs[i].sin_addr.s_addr);
    ports[out] = ntohs(srcs[i].sin_port);
    ctr[kRecvBytes] += len;
    if (gso > 0) {
      ctr[kGroReceives] += 1;
      ctr[kGroSegments] += segs;
    }
    datagrams += segs;
    out++;
  }
  ctr[kRecvCalls] += 1;
  ctr[kRecvPackets] += datagrams;
  return out;
}

namespace {

// udpRecvBatch(fd, arena, slotSize, maxCount, sizes: Int32Array, addrs: Uint32Array, ports: Uint16Array,
//              counters: Float64Array, gsoSizes?: Int32Array, codel?: Float64Array): number
// Message i lands at arena[i * slotSize]; its length, source address (host order) and port are
// written to sizes[i], addrs[i], ports[i]. Returns the count (0 when nothing waits). A message
// longer than a slot is dropped and counted, never handed over cut.
// On a UDP_GRO socket a message may hold several datagrams of the sender: gsoSizes[i] is then their
// size (the last may be shorter; 0 = one datagram), and the caller splits the message. RecvPackets
// counts datagrams, not messages.
Napi::Value UdpRecvBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0, slotSize = 0, maxCount = 0;
  uint8_t* arena;
  size_t arenaLen;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  if (info.Length() < 8 || !ArgBytes(env, info[1], "udpRecvBatch: arena", &arena, &arenaLen)) return env.Undefined();
  if (!ArgInt(info, 2, "slotSize", 1, INT_MAX, &slotSize)) return env.Undefined();
  if (!ArgInt(info, 3, "maxCount", 1, kMaxBatch, &maxCount)) return env.Undefined();
  int32_t* sizes;
  uint32_t* addrs;
  uint16_t* ports;
  double* ctr;
  size_t ls, la, lp;
  if (!GetTyped(env, info[4], napi_int32_array, "udpRecvBatch: sizes", &sizes, &ls) ||
      !GetTyped(env, info[5], napi_uint32_array, "udpRecvBatch: addrs", &addrs, &la) ||
      !GetTyped(env, info[6], napi_uint16_array, "udpRecvBatch: ports", &ports, &lp) || !ArgCounters(env, info[7], kUdpCounterCount, &ctr))
    return env.Undefined();
  int32_t* gsoSizes = nullptr;
  size_t lg = 0;
  if (info.Length() > 8 && !info[8].IsUndefined() &&
      !GetTyped(env, info[8], napi_int32_array, "udpRecvBatch: gsoSizes", &gsoSizes, &lg))
    return env.Undefined();
  double* codel = nullptr;
  size_t lc = 0;
  if (info.Length() > 9 && !info[9].IsUndefined()) {
    if (!GetTyped(env, info[9], napi_float64_array, "udpRecvBatch: codel", &codel, &lc)) return env.Undefined();
    if (lc < kCodelSlots) {
      ThrowRange(env, "udpRecvBatch: codel needs " + std::to_string(kCodelSlots) + " entries");
      return env.Undefined();
    }
  }
  size_t n = static_cast<size_t>(maxCount);
  if (ls < n || la < n || lp < n || (gsoSizes != nullptr && lg < n) || arenaLen < n * static_cast<size_t>(slotSize)) {
    ThrowRange(env, "udpRecvBatch: arena or result arrays smaller than maxCount slots");
    return env.Undefined();
  }
  int got = RecvMessages(static_cast<int>(fd), arena, static_cast<size_t>(slotSize), n, sizes, addrs, ports, gsoSizes, ctr, codel);
  if (got < 0) {
    ThrowErrno(env, -got, "recvmmsg", "fd " + std::to_string(fd));
    return env.Undefined();
  }
  return Napi::Number::New(env, got);
}

// codelDequeue(state: Float64Array, sojournNs, nowNs, emptied): boolean
// CodelDequeue (codel.h) as RecvMessages runs it, for the test that holds it to src/packet/codel.ts.
Napi::Value CodelDequeueBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double* state;
  size_t len;
  if (info.Length() < 4 || !GetTyped(env, info[0], napi_float64_array, "codelDequeue: state", &state, &len)) return env.Undefined();
  if (len < kCodelSlots || !info[1].IsNumber() || !info[2].IsNumber()) {
    ThrowType(env, "codelDequeue(state: Float64Array(" + std::to_string(kCodelSlots) + "), sojournNs, nowNs, emptied)");
    return env.Undefined();
  }
  bool drop = CodelDequeue(state, info[1].As<Napi::Number>().DoubleValue(), info[2].As<Napi::Number>().DoubleValue(), info[3].ToBoolean().Value());
  return Napi::Boolean::New(env, drop);
}

// One message of a send batch: a run of iovecs, with a GSO segment size when more than one, on
// socket `bucket` of the pool.
struct Run {
  int first;
  int count;
  uint16_t segSize;
  int bucket;
};

inline uint32_t Mix(uint32_t h, uint32_t v) {
  v *= 0xcc9e2d51u;
  v = (v << 15) | (v >> 17);
  v *= 0x1b873593u;
  h ^= v;
  h = (h << 13) | (h >> 19);
  return h * 5 + 0xe6546b64u;
}

inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

// RFC 7348 §5 (see datapath.h): the same hash whether the packet is behind VXLAN + Ethernet or bare.
uint32_t InnerIpFlowHash(uint16_t etherType, const uint8_t* ip, size_t ipLen) {
  uint32_t h = 0x7348;
  if (ipLen < 20) return h;
  uint8_t proto;
  size_t l4;
  if (etherType == 0x0800 && (ip[0] >> 4) == 4) {
    proto = ip[9];
    h = Mix(Mix(h, Load32(ip + 12)), Load32(ip + 16));
    l4 = static_cast<size_t>(ip[0] & 0x0f) * 4;
    if ((((ip[6] << 8) | ip[7]) & 0x1fff) != 0) l4 = 0;  // a later fragment has no ports
  } else if (etherType == 0x86dd && ipLen >= 40 && (ip[0] >> 4) == 6) {
    proto = ip[6];
    for (int k = 8; k < 40; k += 4) h = Mix(h, Load32(ip + k));
    l4 = 40;
  } else {
    return h;
  }
  h = Mix(h, proto);
  if (l4 != 0 && (proto == 6 || proto == 17 || proto == 132) && l4 + 4 <= ipLen) h = Mix(h, Load32(ip + l4));
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return h;
}

bool SendDatagram(int fd, const iovec* iov, int iovcnt, size_t bytes, const sockaddr_in& dst, double* ctr) {
  msghdr h;
  std::memset(&h, 0, sizeof h);
  h.msg_name = const_cast<sockaddr_in*>(&dst);
  h.msg_namelen = sizeof dst;
  h.msg_iov = const_cast<iovec*>(iov);
  h.msg_iovlen = static_cast<size_t>(iovcnt);
  ssize_t r;
  do {
    r = ::sendmsg(fd, &h, MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  ctr[kSendCalls] += 1;
  if (r >= 0) {
    ctr[kSendPackets] += 1;
    ctr[kSendBytes] += static_cast<double>(bytes);
    return true;
  }
  int err = errno;
  ctr[kLastErrno] = err;
  ctr[(err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) ? kSendAgain : kSendErrors] += 1;
  return false;
}

namespace {

// RFC 7348 §5: a hash of the inner frame's flow (addresses, protocol, ports), so that one flow
// keeps one outer source port (no reordering) and different flows spread over ECMP paths.
// `d` is a VXLAN datagram: 8 VXLAN + 14 Ethernet + the inner IP packet.
uint32_t InnerFlowHash(const uint8_t* d, size_t len) {
  if (len < 22 + 20) return 0x7348;
  return InnerIpFlowHash(static_cast<uint16_t>((d[20] << 8) | d[21]), d + 22, len - 22);
}

}  // namespace

int SendBatch(const int32_t* pool, size_t poolLen, iovec* iovs, int count, const sockaddr_in& dst, bool gso, double* ctr) {
  if (ctr[kGsoDisabled] != 0) gso = false;

  // Group into runs: with GSO, equal sizes (a shorter last one closes the run) up to the limits.
  int buckets[kMaxBatch];
  for (int64_t i = 0; i < count; i++)
    buckets[i] = poolLen > 1 ? static_cast<int>(InnerFlowHash(static_cast<uint8_t*>(iovs[i].iov_base), iovs[i].iov_len) % poolLen) : 0;
  Run runs[kMaxBatch];
  int nruns = 0;
  for (int i = 0; i < count;) {
    Run run{i, 1, static_cast<uint16_t>(iovs[i].iov_len), buckets[i]};
    size_t total = iovs[i].iov_len;
    if (gso && iovs[i].iov_len > 0) {
      while (i + run.count < count && run.count < kMaxGsoSegments && buckets[i + run.count] == run.bucket) {
        size_t l = iovs[i + run.count].iov_len;
        if (l == 0 || l > run.segSize || total + l > kMaxGsoBytes) break;
        total += l;
        run.count++;
        if (l < run.segSize) break;  // a short segment can only end a run
      }
    }
    runs[nruns++] = run;
    i += run.count;
  }

  alignas(cmsghdr) char control[kMaxBatch][CMSG_SPACE(sizeof(uint16_t))];
  mmsghdr msgs[kMaxBatch];
  for (int k = 0; k < nruns; k++) {
    msghdr& h = msgs[k].msg_hdr;
    std::memset(&h, 0, sizeof h);
    h.msg_name = const_cast<sockaddr_in*>(&dst);
    h.msg_namelen = sizeof dst;
    h.msg_iov = &iovs[runs[k].first];
    h.msg_iovlen = static_cast<size_t>(runs[k].count);
    if (runs[k].count > 1) {
      h.msg_control = control[k];
      h.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      std::memcpy(CMSG_DATA(c), &runs[k].segSize, sizeof(uint16_t));
    }
    msgs[k].msg_len = 0;
  }

  int sentPackets = 0;
  int k = 0;
  while (k < nruns) {
    // One sendmmsg per stretch of runs on the same socket of the pool.
    int end = k + 1;
    while (end < nruns && runs[end].bucket == runs[k].bucket) end++;
    int sfd = pool[runs[k].bucket];
    int r;
    do {
      r = ::sendmmsg(sfd, msgs + k, static_cast<unsigned>(end - k), MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    ctr[kSendCalls] += 1;
    if (r > 0) {
      for (int j = k; j < k + r; j++) {
        sentPackets += runs[j].count;
        for (int s = 0; s < runs[j].count; s++) ctr[kSendBytes] += iovs[runs[j].first + s].iov_len;
        if (runs[j].count > 1) {
          ctr[kGsoSends] += 1;
          ctr[kGsoSegments] += runs[j].count;
        }
      }
      k += r;
      continue;
    }
    int err = errno;
    ctr[kLastErrno] = err;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      // This socket's buffer is full: drop its stretch (counted), other sockets of the pool go on.
      for (int j = k; j < end; j++) ctr[kSendAgain] += runs[j].count;
      k = end;
      continue;
    }
    if (err == EIO && runs[k].count > 1) {
      // The device cannot checksum-offload a GSO message (wireguard-go meets the same): turn GSO off
      // for good and send this run one datagram per message.
      ctr[kGsoDisabled] = 1;
      int sent = 0;
      for (int s = 0; s < runs[k].count; s++) {
        msghdr h;
        std::memset(&h, 0, sizeof h);
        h.msg_name = const_cast<sockaddr_in*>(&dst);
        h.msg_namelen = sizeof dst;
        h.msg_iov = &iovs[runs[k].first + s];
        h.msg_iovlen = 1;
        if (::sendmsg(sfd, &h, MSG_DONTWAIT) >= 0) {
          sent++;
          ctr[kSendBytes] += iovs[runs[k].first + s].iov_len;
        } else {
          ctr[kSendErrors] += 1;
        }
      }
      sentPackets += sent;
      k++;
      continue;
    }
    // A refused message (EMSGSIZE, ECONNREFUSED from an earlier ICMP error, EHOSTUNREACH): skip it.
    ctr[kSendErrors] += runs[k].count;
    k++;
  }
  ctr[kSendPackets] += sentPackets;
  return sentPackets;
}

namespace {

// udpSendBatch(fd | fds: Int32Array, bufs, sizes: Int32Array, offset, count, addr (host order), port,
//              gso: boolean, counters: Float64Array): number
// Sends bufs[i][offset, offset + sizes[i]) for i < count to addr:port. With a pool of sockets (each
// bound to its own source port), datagram i leaves on fds[InnerFlowHash % fds.length]. With gso,
// consecutive datagrams of one size on one socket (the last of a run may be shorter) go as one
// UDP_SEGMENT message.
// Returns how many datagrams the kernel took; failures are counted, never thrown.
Napi::Value UdpSendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0, offset = 0, count = 0, addr = 0, port = 0;
  // info[0]: one descriptor, or an Int32Array pool of them (flow-hashed source ports).
  int32_t* pool = nullptr;
  size_t poolLen = 0;
  bool isTyped = false;
  if (info.Length() > 0 && napi_is_typedarray(env, info[0], &isTyped) == napi_ok && isTyped) {
    napi_typedarray_type type;
    void* p = nullptr;
    if (napi_get_typedarray_info(env, info[0], &type, &poolLen, &p, nullptr, nullptr) != napi_ok ||
        type != napi_int32_array || poolLen == 0) {
      ThrowType(env, "udpSendBatch: fds must be a non-empty Int32Array");
      return env.Undefined();
    }
    pool = static_cast<int32_t*>(p);
  } else if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) {
    return env.Undefined();
  }
  int32_t single = static_cast<int32_t>(fd);
  if (pool == nullptr) {
    pool = &single;
    poolLen = 1;
  }
  bool isArray = false;
  if (info.Length() < 9 || napi_is_array(env, info[1], &isArray) != napi_ok || !isArray) {
    ThrowType(env, "udpSendBatch: bufs must be an array of Buffers");
    return env.Undefined();
  }
  napi_value bufs = info[1];
  uint32_t nbufs = 0;
  napi_get_array_length(env, bufs, &nbufs);
  int32_t* sizes;
  size_t ls;
  if (!GetTyped(env, info[2], napi_int32_array, "udpSendBatch: sizes", &sizes, &ls)) return env.Undefined();
  if (!ArgInt(info, 3, "offset", 0, INT_MAX, &offset)) return env.Undefined();
  if (!ArgInt(info, 4, "count", 0, std::min<int64_t>(nbufs, std::min<int64_t>(ls, kMaxBatch)), &count)) return env.Undefined();
  if (!ArgInt(info, 5, "addr", 0, 0xffffffffLL, &addr)) return env.Undefined();
  if (!ArgInt(info, 6, "port", 1, 65535, &port)) return env.Undefined();
  bool gso = info[7].ToBoolean().Value();
  double* ctr;
  if (!ArgCounters(env, info[8], kUdpCounterCount, &ctr)) return env.Undefined();

  iovec iovs[kMaxBatch];
  for (int64_t i = 0; i < count; i++) {
    napi_value b;
    uint8_t* data;
    size_t len;
    if (napi_get_element(env, bufs, static_cast<uint32_t>(i), &b) != napi_ok ||
        !ArgBytes(env, b, "udpSendBatch: bufs[i]", &data, &len))
      return env.Undefined();
    if (sizes[i] < 0 || static_cast<size_t>(offset) + static_cast<size_t>(sizes[i]) > len) {
      ThrowRange(env, "udpSendBatch: offset + sizes[" + std::to_string(i) + "] exceeds the buffer");
      return env.Undefined();
    }
    iovs[i].iov_base = data + offset;
    iovs[i].iov_len = static_cast<size_t>(sizes[i]);
  }

  sockaddr_in dst;
  std::memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  dst.sin_addr.s_addr = htonl(static_cast<uint32_t>(addr));
  return Napi::Number::New(env, SendBatch(pool, poolLen, iovs, static_cast<int>(count), dst, gso, ctr));
}

}  // namespace

void InitUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("udpOpen", Napi::Function::New(env, UdpOpen, "udpOpen"));
  exports.Set("udpRecvBatch", Napi::Function::New(env, UdpRecvBatch, "udpRecvBatch"));
  exports.Set("udpSendBatch", Napi::Function::New(env, UdpSendBatch, "udpSendBatch"));
  exports.Set("codelDequeue", Napi::Function::New(env, CodelDequeueBinding, "codelDequeue"));
  exports.Set("udpPeerFilter", Napi::Function::New(env, UdpPeerFilter, "udpPeerFilter"));
}

}  // namespace vxtun
