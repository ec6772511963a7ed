// Batched I/O on a TUN device opened with IFF_VNET_HDR and TUNSETOFFLOAD(CSUM|TSO4|TSO6[|USO4|USO6]),
// in the manner of wireguard-go's tun/offload_linux.go. Every packet carries a 10-byte virtio_net_hdr.
//   read:  the kernel may hand us a TCP super-packet of up to 64 KB (gso_type TCPV4/TCPV6), with USO
//          a UDP one (gso_type UDP_L4, from a local UDP_SEGMENT sender), or a packet whose TCP/UDP
//          checksum is unfinished (NEEDS_CSUM). We segment super-packets at gso_size into MTU-sized
//          packets (TCP: sequence numbers, flags; UDP: lengths; both: IPv4 ids and lengths, full
//          checksums) and finish the other, so the caller sees only plain IP packets at `offset`.
//          A super-packet that does not fit the buffers left is kept (the queue's scratch and state,
//          tun_queue.h) and continued next call.
//   write: a zero header (no GSO, checksum already valid) in front of each packet, by writev; runs of
//          one TCP flow's segments, or with USO of one UDP flow's datagrams, as one super-packet the
//          kernel splits back into the same packets; or the header the caller built for a packet (a
//          kernel peer's TCP super-packet written whole).
// Counters (Float64Array, layout TunCounter: counters.def).
#include "checksum.h"
#include "common.h"
#include "datapath.h"
#include "tun_queue.h"

#include <cerrno>
#include <climits>
#include <cstring>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace vxtun {
namespace {

constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;

}  // namespace

bool FinishChecksum(uint8_t* p, size_t len, size_t start, size_t offset) {
  if (start + offset + 2 > len) return false;
  uint32_t sum = Csum16(p + start, len - start, 0);
  uint32_t c = ~sum & 0xffffu;
  // UDP (field 6 bytes in) stores a computed 0 as 0xffff; for TCP 0 and 0xffff are the same value.
  if (c == 0 && offset == 6) c = 0xffff;
  Put16(p + start + offset, c);
  return true;
}

bool ParseGso(const uint8_t* p, size_t len, const virtio_net_hdr& h, Gso* g) {
  uint8_t type = h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if (type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6 && type != VIRTIO_NET_HDR_GSO_UDP_L4) return false;
  if (len < 20) return false;
  g->v6 = (p[0] >> 4) == 6;
  g->udp = type == VIRTIO_NET_HDR_GSO_UDP_L4;
  if (!g->udp && g->v6 != (type == VIRTIO_NET_HDR_GSO_TCPV6)) return false;
  if (!g->v6 && (p[0] >> 4) != 4) return false;
  // The kernel points csum_start at the L4 header (extension headers included); without
  // NEEDS_CSUM it may be unset, and the IP header says where TCP starts (UDP GSO always sets it).
  if (g->udp && (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) == 0) return false;
  g->ipHeaderLen = (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0 ? h.csum_start
                   : g->v6                                      ? 40u
                                                                : static_cast<size_t>(p[0] & 0x0f) * 4;
  uint8_t proto = g->udp ? kProtoUdp : kProtoTcp;
  if (!g->v6 ? p[9] != proto : (g->ipHeaderLen == 40 && p[6] != proto)) return false;
  // IPv4 has no extension headers: the L4 header starts right behind the IP header (whose checksum
  // each segment gets over ihl bytes), whatever csum_start says (as src/io/tun-offload.ts).
  if (!g->v6 && g->ipHeaderLen != static_cast<size_t>(p[0] & 0x0f) * 4) return false;
  if (g->ipHeaderLen < (g->v6 ? 40u : 20u) || g->ipHeaderLen + (g->udp ? 8u : 20u) > len) return false;
  size_t l4HeaderLen = g->udp ? 8u : static_cast<size_t>(p[g->ipHeaderLen + 12] >> 4) * 4;
  if (l4HeaderLen < 8 || (!g->udp && l4HeaderLen < 20)) return false;
  g->headerLen = g->ipHeaderLen + l4HeaderLen;
  if (g->headerLen > len) return false;
  g->payloadLen = len - g->headerLen;
  g->mss = h.gso_size;
  if (g->mss == 0) return false;
  g->segments = static_cast<uint32_t>((g->payloadLen + g->mss - 1) / g->mss);
  if (g->segments == 0) g->segments = 1;
  return true;
}

// Writes segment k of the super-packet p into out; returns its length.
size_t MakeSegment(const uint8_t* p, const Gso& g, uint32_t k, uint8_t* out) {
  size_t start = static_cast<size_t>(k) * g.mss;
  size_t chunk = g.payloadLen - start < g.mss ? g.payloadLen - start : g.mss;
  std::memcpy(out, p, g.headerLen);
  std::memcpy(out + g.headerLen, p + g.headerLen + start, chunk);
  size_t total = g.headerLen + chunk;
  uint8_t* l4 = out + g.ipHeaderLen;
  size_t l4Len = total - g.ipHeaderLen;
  uint8_t proto = g.udp ? kProtoUdp : kProtoTcp;
  uint32_t pseudo;
  if (!g.v6) {
    size_t ihl = static_cast<size_t>(out[0] & 0x0f) * 4;
    Put16(out + 2, static_cast<uint32_t>(total));
    Put16(out + 4, (Get16(p + 4) + k) & 0xffffu);
    Put16(out + 10, 0);
    Put16(out + 10, ~Csum16(out, ihl, 0) & 0xffffu);
    pseudo = Csum16(out + 12, 8, proto + static_cast<uint32_t>(l4Len));
  } else {
    Put16(out + 4, static_cast<uint32_t>(total - 40));
    pseudo = Csum16(out + 8, 32, proto + static_cast<uint32_t>(l4Len));
  }
  if (g.udp) {
    Put16(l4 + 4, static_cast<uint32_t>(l4Len));
    Put16(l4 + 6, 0);
    uint32_t c = ~Csum16(l4, l4Len, pseudo) & 0xffffu;
    Put16(l4 + 6, c == 0 ? 0xffff : c);  // a computed 0 is sent as all ones (RFC 768)
    return total;
  }
  Put32(l4 + 4, Get32(p + g.ipHeaderLen + 4) + static_cast<uint32_t>(start));
  uint8_t flags = l4[13];
  if (k + 1 != g.segments) flags &= static_cast<uint8_t>(~(0x01 | 0x08));  // FIN, PSH only on the last
  if (k != 0) flags &= static_cast<uint8_t>(~0x80);                          // CWR only on the first
  l4[13] = flags;
  Put16(l4 + 16, 0);
  Put16(l4 + 16, ~Csum16(l4, l4Len, pseudo) & 0xffffu);
  return total;
}

namespace {

// tunQueueRead(queue, bufs, offset, sizes: Int32Array, counters): number — for a queue opened with
// vnetHdr. Fills bufs[i] at offset with plain IP packets; returns how many. What does not fit (the
// rest of a super-packet) stays in the queue's scratch for the next call (tunQueuePending).
Napi::Value TunQueueRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t offset = 0;
  int32_t* sizes;
  size_t sizesLen;
  double* ctr;
  if (info.Length() < 5) {
    ThrowType(env, "tunQueueRead(queue, bufs, offset, sizes, counters)");
    return env.Undefined();
  }
  TunQueue* q = TunQueueOf(env, info[0], "tunQueueRead");
  if (q == nullptr) return env.Undefined();
  if (!q->vnetHdr) {
    ThrowType(env, "tunQueueRead: the queue was opened without vnetHdr (read it with readBatch)");
    return env.Undefined();
  }
  int fd = q->fd;
  uint8_t* scratch = q->scratch.data();
  size_t scratchLen = q->scratch.size();
  int32_t* state = q->state;
  bool isArray = false;
  if (napi_is_array(env, info[1], &isArray) != napi_ok || !isArray) {
    ThrowType(env, "tunQueueRead: bufs must be an array of Buffers");
    return env.Undefined();
  }
  napi_value bufs = info[1];
  uint32_t n = 0;
  napi_get_array_length(env, bufs, &n);
  if (!ArgInt(info, 2, "offset", 0, INT_MAX, &offset)) return env.Undefined();
  if (!ArgInt32s(env, info[3], "tunQueueRead: sizes", &sizes, &sizesLen) || !ArgCounters(env, info[4], kTunCounterCount, &ctr)) return env.Undefined();
  if (sizesLen < n) {
    ThrowRange(env, "tunQueueRead: sizes needs one entry per buffer");
    return env.Undefined();
  }

  uint32_t count = 0;
  auto slot = [&](uint32_t i, uint8_t** data, size_t* room) -> bool {
    napi_value b;
    size_t len;
    if (napi_get_element(env, bufs, i, &b) != napi_ok || !ArgBytes(env, b, "tunQueueRead: bufs[i]", data, &len)) return false;
    if (static_cast<size_t>(offset) >= len) {
      ThrowRange(env, "tunQueueRead: offset leaves no room in a buffer");
      return false;
    }
    *data += offset;
    *room = len - static_cast<size_t>(offset);
    return true;
  };

  while (count < n) {
    if (state[0] == 0 || state[1] == kStateRawRead) {
      ssize_t r;
      if (state[1] == kStateRawRead) {
        // Read by the express path (already counted in kReads), handed over as it came.
        if (state[0] <= 0) {
          state[0] = state[1] = 0;
          continue;
        }
        r = state[0];
        state[0] = 0;
        state[1] = 0;
      } else {
        do {
          r = ::read(fd, scratch, scratchLen);
        } while (r < 0 && errno == EINTR);
        if (r > 0) ctr[kReads] += 1;
      }
      if (r < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) break;
        if (count > 0) break;
        ThrowErrno(env, err, "read", "fd " + std::to_string(fd));
        return env.Undefined();
      }
      if (r == 0) break;
      // read() reports the packet's whole length even when it did not fit: never parse past scratch.
      if (static_cast<size_t>(r) <= kVnetHdrLen || static_cast<size_t>(r) > scratchLen) {
        ctr[kBadVnetHdr] += 1;
        continue;
      }
      virtio_net_hdr h;
      std::memcpy(&h, scratch, kVnetHdrLen);
      uint8_t* p = scratch + kVnetHdrLen;
      size_t len = static_cast<size_t>(r) - kVnetHdrLen;
      if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
        if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0) {
          if (!FinishChecksum(p, len, h.csum_start, h.csum_offset)) {
            ctr[kBadVnetHdr] += 1;
            continue;
          }
          ctr[kCsumCompleted] += 1;
        }
        uint8_t* out;
        size_t room;
        if (!slot(count, &out, &room)) return env.Undefined();
        size_t take = len < room ? len : room;  // as a plain TUN read would truncate
        std::memcpy(out, p, take);
        sizes[count++] = static_cast<int32_t>(take);
        continue;
      }
      Gso g;
      if (!ParseGso(p, len, h, &g)) {
        ctr[kBadVnetHdr] += 1;
        continue;
      }
      ctr[kGsoPackets] += 1;
      if (g.udp) ctr[kUdpGsoPackets] += 1;
      state[0] = static_cast<int32_t>(r);
      state[1] = 0;
    }
    // Continue the super-packet kept in scratch.
    virtio_net_hdr h;
    std::memcpy(&h, scratch, kVnetHdrLen);
    uint8_t* p = scratch + kVnetHdrLen;
    size_t len = static_cast<size_t>(state[0]) - kVnetHdrLen;
    Gso g;
    ParseGso(p, len, h, &g);  // parsed successfully when it was read
    while (count < n && static_cast<uint32_t>(state[1]) < g.segments) {
      uint8_t* out;
      size_t room;
      if (!slot(count, &out, &room)) return env.Undefined();
      uint32_t k = static_cast<uint32_t>(state[1]);
      size_t chunk = g.payloadLen - static_cast<size_t>(k) * g.mss < g.mss ? g.payloadLen - static_cast<size_t>(k) * g.mss : g.mss;
      if (g.headerLen + chunk > room) {
        ctr[kBadVnetHdr] += 1;  // gso_size larger than our buffers: cannot happen with an MTU-sized room
        state[1] = static_cast<int32_t>(g.segments);
        break;
      }
      sizes[count++] = static_cast<int32_t>(MakeSegment(p, g, k, out));
      ctr[kTunGsoSegments] += 1;
      state[1] = static_cast<int32_t>(k + 1);
    }
    if (static_cast<uint32_t>(state[1]) >= g.segments) state[0] = 0;
  }
  // The express path's busy hint: while reads come back with more than one packet, a wake-up is
  // traffic and all of it is the pipeline's (express.cc); a read of one clears it.
  if (count != 0) state[2] = count > 1 ? 1 : 0;
  return Napi::Number::New(env, count);
}

const napi_type_tag kTunQueueTag = {0x76787475'6e717565ULL, 0x51c0'7e2a'9b34'd611ULL};

void FinalizeQueue(Napi::Env /*env*/, TunQueue* q) { delete q; }

// tunQueueOpen(fd, vnetHdr): handle. The queue's read state lives in the addon (tun_queue.h).
Napi::Value TunQueueOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  auto q = new TunQueue();
  q->fd = static_cast<int>(fd);
  q->vnetHdr = info.Length() > 1 && info[1].ToBoolean().Value();
  if (q->vnetHdr) q->scratch.resize(kVnetHdrLen + 40 + 65535);
  Napi::External<TunQueue> handle = Napi::External<TunQueue>::New(env, q, FinalizeQueue);
  napi_type_tag_object(env, handle, &kTunQueueTag);
  return handle;
}

// tunQueuePending(queue): boolean — part of a super-packet (or a handed-over read) waits in scratch,
// which epoll will not report: the reader must come back for it.
Napi::Value TunQueuePending(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TunQueue* q = TunQueueOf(env, info[0], "tunQueuePending");
  if (q == nullptr) return env.Undefined();
  return Napi::Boolean::New(env, q->state[0] != 0);
}

// The TCP flow facts two packets must share to be coalesced, and where their pieces are.
struct TcpView {
  uint8_t* p;
  size_t len;
  bool v6;
  size_t ipHeaderLen;
  size_t headerLen;  // IP + TCP
  size_t payloadLen;
  uint32_t seq;
  uint8_t flags;
};

// A plain TCP packet (IPv4 without options-free restriction but no fragments, IPv6 without
// extension headers) whose checksums verify: the only kind we hand the kernel coalesced, since it
// will trust the checksum of the super-packet.
bool ViewTcp(uint8_t* p, size_t len, TcpView* v) {
  if (len < 40) return false;
  v->p = p;
  v->len = len;
  uint32_t pseudo;
  if ((p[0] >> 4) == 4) {
    size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
    if (ihl < 20 || p[9] != 6 || Get16(p + 2) != len || (Get16(p + 6) & 0x3fff) != 0) return false;  // fragments
    // Room for the TCP header's fixed part before data offset is read from it.
    if (ihl + 20 > len || Csum16(p, ihl, 0) != 0xffff) return false;
    v->v6 = false;
    v->ipHeaderLen = ihl;
    pseudo = Csum16(p + 12, 8, 6 + static_cast<uint32_t>(len - ihl));
  } else if ((p[0] >> 4) == 6) {
    if (len < 60 || p[6] != 6 || Get16(p + 4) + 40u != len) return false;
    v->v6 = true;
    v->ipHeaderLen = 40;
    pseudo = Csum16(p + 8, 32, 6 + static_cast<uint32_t>(len - 40));
  } else {
    return false;
  }
  size_t thl = static_cast<size_t>(p[v->ipHeaderLen + 12] >> 4) * 4;
  if (thl < 20 || v->ipHeaderLen + thl > len) return false;
  v->headerLen = v->ipHeaderLen + thl;
  v->payloadLen = len - v->headerLen;
  v->seq = Get32(p + v->ipHeaderLen + 4);
  v->flags = p[v->ipHeaderLen + 13];
  if (Csum16(p + v->ipHeaderLen, len - v->ipHeaderLen, pseudo) != 0xffff) return false;
  return true;
}

// Whether b continues a: same addresses, ports, ack, window, options, IP fields that GSO copies.
bool Continues(const TcpView& a, const TcpView& b, uint32_t expectedSeq) {
  if (a.v6 != b.v6 || a.headerLen != b.headerLen || b.seq != expectedSeq) return false;
  const uint8_t* x = a.p;
  const uint8_t* y = b.p;
  if (!a.v6) {
    // version/ihl, tos, (length differs), (id differs), flags/frag, ttl, proto, (csum), addresses
    if (x[0] != y[0] || x[1] != y[1] || x[6] != y[6] || x[8] != y[8] || std::memcmp(x + 12, y + 12, 8) != 0) return false;
    if (a.ipHeaderLen > 20 && std::memcmp(x + 20, y + 20, a.ipHeaderLen - 20) != 0) return false;
  } else {
    if (std::memcmp(x, y, 4) != 0 || x[7] != y[7] || std::memcmp(x + 8, y + 8, 32) != 0) return false;
  }
  const uint8_t* s = x + a.ipHeaderLen;
  const uint8_t* t = y + b.ipHeaderLen;
  // ports, ack (skip seq), data offset, window, options; flags compared by the caller
  if (std::memcmp(s, t, 4) != 0 || std::memcmp(s + 8, t + 8, 5) != 0 || std::memcmp(s + 14, t + 14, 2) != 0) return false;
  size_t thl = a.headerLen - a.ipHeaderLen;
  if (thl > 20 && std::memcmp(s + 20, t + 20, thl - 20) != 0) return false;
  return true;
}

constexpr uint8_t kTcpAck = 0x10, kTcpPsh = 0x08;
constexpr int kMaxCoalesce = 64;  // the kernel takes up to 128 UDP segments (UDP_MAX_SEGMENTS), any number of TCP ones
constexpr size_t kMaxSuper = 65535;
// tunWriteOffload's `coalesce` bits.
constexpr int32_t kCoalesceTcp = 1, kCoalesceUdp = 2;

// Whether the caller gave packet i a GSO header of its own (10 bytes, not all zero).
bool HasHeader(const uint8_t* given, int64_t i) {
  if (given == nullptr) return false;
  const uint8_t* g = given + static_cast<size_t>(i) * kVnetHdrLen;
  for (size_t k = 0; k < kVnetHdrLen; k++)
    if (g[k] != 0) return true;
  return false;
}

// Turns the first packet of a coalesced run into the super-packet's header: IP lengths (and IPv4
// header checksum) for `total` bytes, and at l4 + csumOffset the pseudo-header sum that
// CHECKSUM_PARTIAL wants (the kernel finishes the checksum per segment).
void WriteSuperHeaders(uint8_t* p, size_t ipHeaderLen, bool v6, size_t total, uint8_t proto, size_t csumOffset) {
  uint32_t l4Len = static_cast<uint32_t>(total - ipHeaderLen);
  uint32_t pseudo;
  if (!v6) {
    Put16(p + 2, static_cast<uint32_t>(total));
    Put16(p + 10, 0);
    Put16(p + 10, ~Csum16(p, ipHeaderLen, 0) & 0xffffu);
    pseudo = Csum16(p + 12, 8, proto + l4Len);
  } else {
    Put16(p + 4, static_cast<uint32_t>(total - 40));
    pseudo = Csum16(p + 8, 32, proto + l4Len);
  }
  Put16(p + ipHeaderLen + csumOffset, pseudo);
}

// Packets i, i+1, ... that continue one TCP flow (contiguous sequence numbers, equal sizes but a
// shorter last one, only ACK/PSH set, checksums valid) as one super-packet: iov[1..] and h filled,
// the first packet's headers rewritten. Returns the run's length; 1 means nothing was coalesced.
int CoalesceTcp(uint8_t* const* data, const int32_t* sizes, int64_t i, int64_t count, const uint8_t* given, iovec* iov, virtio_net_hdr* h) {
  TcpView first;
  size_t total = static_cast<size_t>(sizes[i]);
  if (!ViewTcp(data[i], total, &first) || first.payloadLen == 0 || (first.flags & ~kTcpAck) != 0) return 1;
  uint32_t nextSeq = first.seq + static_cast<uint32_t>(first.payloadLen);
  size_t mss = first.payloadLen;
  size_t lastLen = mss;
  int run = 1;
  while (i + run < count && run < kMaxCoalesce && lastLen == mss && !HasHeader(given, i + run)) {
    TcpView v;
    uint8_t* q = data[i + run];
    if (!ViewTcp(q, static_cast<size_t>(sizes[i + run]), &v) || v.payloadLen == 0 || v.payloadLen > mss) break;
    if ((v.flags & ~(kTcpAck | kTcpPsh)) != 0 || !(v.flags & kTcpAck)) break;
    if (!Continues(first, v, nextSeq) || total + v.payloadLen > kMaxSuper) break;
    iov[1 + run] = {q + v.headerLen, v.payloadLen};
    total += v.payloadLen;
    nextSeq += static_cast<uint32_t>(v.payloadLen);
    lastLen = v.payloadLen;
    run++;
    if (v.flags & kTcpPsh) {
      first.p[first.ipHeaderLen + 13] |= kTcpPsh;  // the super-packet ends where the sender pushed
      break;
    }
  }
  if (run == 1) return 1;
  WriteSuperHeaders(first.p, first.ipHeaderLen, first.v6, total, kProtoTcp, 16);
  h->gso_type = first.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
  h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h->hdr_len = static_cast<uint16_t>(first.headerLen);
  h->gso_size = static_cast<uint16_t>(mss);
  h->csum_start = static_cast<uint16_t>(first.ipHeaderLen);
  h->csum_offset = 16;
  return run;
}

struct UdpView {
  uint8_t* p;
  bool v6;
  size_t ipHeaderLen;  // 20 or 40: no IPv4 options, no IPv6 extension headers
  size_t payloadLen;
};

// A UDP datagram that the kernel's USO split gives back byte for byte once coalesced: IPv4 without
// options and not a fragment, with a good header checksum, IPv6 without extension headers, some
// payload, and a UDP checksum that is not zero and verifies (the split computes a fresh one per datagram: a zero checksum would come
// out non-zero, a wrong one right).
bool ViewUdp(uint8_t* p, size_t len, UdpView* v) {
  if (len < 29) return false;
  uint32_t pseudo;
  if (p[0] == 0x45) {
    if (p[9] != kProtoUdp || Get16(p + 2) != len || (Get16(p + 6) & 0x3fff) != 0) return false;  // MF, offset
    if (Csum16(p, 20, 0) != 0xffff) return false;  // the split writes a good header checksum
    v->v6 = false;
    v->ipHeaderLen = 20;
    pseudo = Csum16(p + 12, 8, kProtoUdp + static_cast<uint32_t>(len - 20));
  } else if ((p[0] >> 4) == 6) {
    if (len < 49 || p[6] != kProtoUdp || Get16(p + 4) + 40u != len) return false;
    v->v6 = true;
    v->ipHeaderLen = 40;
    pseudo = Csum16(p + 8, 32, kProtoUdp + static_cast<uint32_t>(len - 40));
  } else {
    return false;
  }
  const uint8_t* u = p + v->ipHeaderLen;
  size_t udpLen = len - v->ipHeaderLen;
  if (Get16(u + 4) != udpLen || Get16(u + 6) == 0) return false;
  if (Csum16(u, udpLen, pseudo) != 0xffff) return false;
  v->p = p;
  v->payloadLen = udpLen - 8;
  return true;
}

// Whether b is datagram k (k >= 1) of the run that a starts: the fields the kernel copies from the
// super-packet's header into every datagram are equal, and b's IPv4 id is the one it would assign.
bool UdpContinues(const UdpView& a, const UdpView& b, uint32_t k) {
  if (a.v6 != b.v6) return false;
  const uint8_t* x = a.p;
  const uint8_t* y = b.p;
  if (!a.v6) {
    // tos, DF, ttl, addresses (version/ihl, protocol, no fragment: ViewUdp); the split numbers ids on
    if (x[1] != y[1] || x[6] != y[6] || x[8] != y[8] || std::memcmp(x + 12, y + 12, 8) != 0) return false;
    if (Get16(y + 4) != ((Get16(x + 4) + k) & 0xffffu)) return false;
  } else {
    // version, traffic class, flow label, next header, hop limit, addresses
    if (std::memcmp(x, y, 4) != 0 || x[6] != y[6] || x[7] != y[7] || std::memcmp(x + 8, y + 8, 32) != 0) return false;
  }
  return std::memcmp(x + a.ipHeaderLen, y + b.ipHeaderLen, 4) == 0;  // ports
}

// Packets i, i+1, ... that continue one UDP flow (UdpContinues; equal payload sizes but a shorter
// last one) as one super-packet with gso_type UDP_L4 (USO): iov[1..] and h filled, the first packet's
// headers rewritten. Returns the run's length; 1 means nothing was coalesced.
int CoalesceUdp(uint8_t* const* data, const int32_t* sizes, int64_t i, int64_t count, const uint8_t* given, iovec* iov, virtio_net_hdr* h) {
  UdpView first;
  size_t total = static_cast<size_t>(sizes[i]);
  if (!ViewUdp(data[i], total, &first)) return 1;
  size_t mss = first.payloadLen;
  size_t lastLen = mss;
  int run = 1;
  while (i + run < count && run < kMaxCoalesce && lastLen == mss && !HasHeader(given, i + run)) {
    UdpView v;
    if (!ViewUdp(data[i + run], static_cast<size_t>(sizes[i + run]), &v) || v.payloadLen > mss) break;
    if (!UdpContinues(first, v, static_cast<uint32_t>(run)) || total + v.payloadLen > kMaxSuper) break;
    iov[1 + run] = {v.p + v.ipHeaderLen + 8, v.payloadLen};
    total += v.payloadLen;
    lastLen = v.payloadLen;
    run++;
  }
  if (run == 1) return 1;
  // The split derives each datagram's length and checksum from these two.
  Put16(first.p + first.ipHeaderLen + 4, static_cast<uint32_t>(total - first.ipHeaderLen));
  WriteSuperHeaders(first.p, first.ipHeaderLen, first.v6, total, kProtoUdp, 6);
  h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h->gso_type = VIRTIO_NET_HDR_GSO_UDP_L4;
  h->hdr_len = static_cast<uint16_t>(first.ipHeaderLen + 8);
  h->gso_size = static_cast<uint16_t>(mss);
  h->csum_start = static_cast<uint16_t>(first.ipHeaderLen);
  h->csum_offset = 6;
  return run;
}

}  // namespace

int64_t WriteTunBatch(int fd, uint8_t* const* data, const int32_t* sizes, int64_t count, int32_t coalesce, const uint8_t* given, uint8_t* refused, double* ctr, int* error) {
  uint32_t written = 0;
  int64_t i = 0;
  iovec iov[kMaxCoalesce + 1];
  // The first packet's headers as they were before coalescing rewrote them (IP and TCP at most 120),
  // put back after the write.
  uint8_t saved[120];
  while (i < count) {
    virtio_net_hdr h = {};
    iov[1] = {data[i], static_cast<size_t>(sizes[i])};
    bool super = HasHeader(given, i);
    int run = 1;
    size_t savedLen = std::min(sizeof saved, static_cast<size_t>(sizes[i]));
    if (super) {
      std::memcpy(&h, given + static_cast<size_t>(i) * kVnetHdrLen, kVnetHdrLen);
    } else if (coalesce != 0) {
      std::memcpy(saved, data[i], savedLen);
      if (coalesce & kCoalesceTcp) run = CoalesceTcp(data, sizes, i, count, given, iov, &h);
      if (run == 1 && (coalesce & kCoalesceUdp)) run = CoalesceUdp(data, sizes, i, count, given, iov, &h);
    }
    iov[0] = {&h, kVnetHdrLen};
    ssize_t r;
    do {
      r = ::writev(fd, iov, run + 1);
    } while (r < 0 && errno == EINTR);
    int err = r < 0 ? errno : 0;
    // The caller's packet as it was (a trace shows it after the write), whatever became of the write.
    if (run > 1) std::memcpy(data[i], saved, savedLen);
    if (r < 0) {
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) break;
      if (err == EINVAL && run > 1) {
        // A kernel that refuses our super-packet: the rest of the batch goes packet by packet.
        coalesce = 0;
        continue;
      }
      if (err == EINVAL || err == EIO || err == EMSGSIZE) {
        if (refused != nullptr) std::memset(refused + i, 1, static_cast<size_t>(run));
        i += run;
        continue;
      }
      if (written > 0) break;
      *error = err;
      return -1;
    }
    if (run > 1 && h.gso_type == VIRTIO_NET_HDR_GSO_UDP_L4) {
      ctr[kUdpCoalescedWrites] += 1;
      ctr[kUdpCoalescedPackets] += run;
    } else if (run > 1) {
      ctr[kCoalescedWrites] += 1;
      ctr[kCoalescedPackets] += run;
    }
    if (super) ctr[kSuperWrites] += 1;
    written += static_cast<uint32_t>(run);
    i += run;
  }
  if (refused != nullptr && i < count) std::memset(refused + i, 1, static_cast<size_t>(count - i));  // not tried
  ctr[kWrites] += written;
  return written;
}

namespace {

// tunWriteOffload(fd, bufs, sizes: Int32Array, offset, count, counters, coalesce: number,
//                 headers?: Uint8Array): number
// Writes each packet behind a virtio_net_hdr. `coalesce` bit 1 (kCoalesceTcp): consecutive segments
// of one TCP flow go as one super-packet with gso_type TCPV4/TCPV6 (CoalesceTcp), which the kernel's
// stack takes whole (GRO done for it); bit 2 (kCoalesceUdp, only on a device that took USO):
// consecutive datagrams of one UDP flow go as one UDP_L4 super-packet (CoalesceUdp), which the kernel
// splits back into the same datagrams where it must (at the receiving socket at the latest).
// `headers` holds 10 bytes per packet: a non-zero one is written as it is in front of its packet,
// never coalesced (a super-packet the caller prepared). Returns how many of the `count` packets went in;
// `refused` (optional Uint8Array, a byte per packet) gets 1 for each packet that did not.
Napi::Value TunWriteOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0, offset = 0, count = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  bool isArray = false;
  if (info.Length() < 6 || napi_is_array(env, info[1], &isArray) != napi_ok || !isArray) {
    ThrowType(env, "tunWriteOffload: bufs must be an array of Buffers");
    return env.Undefined();
  }
  napi_value bufs = info[1];
  uint32_t n = 0;
  napi_get_array_length(env, bufs, &n);
  int32_t* sizes;
  size_t sizesLen;
  double* ctr;
  if (!ArgInt32s(env, info[2], "tunWriteOffload: sizes", &sizes, &sizesLen)) return env.Undefined();
  if (!ArgInt(info, 3, "offset", 0, INT_MAX, &offset)) return env.Undefined();
  if (!ArgInt(info, 4, "count", 0, std::min<int64_t>(n, static_cast<int64_t>(sizesLen)), &count)) return env.Undefined();
  if (!ArgCounters(env, info[5], kTunCounterCount, &ctr)) return env.Undefined();
  int32_t coalesce = info.Length() > 6 && info[6].IsNumber() ? info[6].As<Napi::Number>().Int32Value() : 0;
  uint8_t* given = nullptr;
  size_t givenLen = 0;
  if (info.Length() > 7 && !info[7].IsUndefined()) {
    if (!ArgBytes(env, info[7], "tunWriteOffload: headers", &given, &givenLen)) return env.Undefined();
    if (givenLen < static_cast<size_t>(count) * kVnetHdrLen) {
      ThrowRange(env, "tunWriteOffload: headers needs 10 bytes per packet");
      return env.Undefined();
    }
  }

  uint8_t* refused;
  if (!ArgRefused(info, 8, count, "tunWriteOffload: refused", &refused)) return env.Undefined();

  // A write batch is at most a read batch (64) in practice: no heap allocation per call for those.
  uint8_t* stackData[256];
  std::vector<uint8_t*> heapData;
  if (count > 256) heapData.resize(static_cast<size_t>(count));
  uint8_t** data = count > 256 ? heapData.data() : stackData;
  for (int64_t i = 0; i < count; i++) {
    napi_value b;
    size_t len;
    if (napi_get_element(env, bufs, static_cast<uint32_t>(i), &b) != napi_ok ||
        !ArgBytes(env, b, "tunWriteOffload: bufs[i]", &data[static_cast<size_t>(i)], &len))
      return env.Undefined();
    if (sizes[i] < 0 || static_cast<size_t>(offset) + static_cast<size_t>(sizes[i]) > len) {
      ThrowRange(env, "tunWriteOffload: offset + sizes[" + std::to_string(i) + "] exceeds the buffer");
      return env.Undefined();
    }
    data[static_cast<size_t>(i)] += offset;
  }

  int err = 0;
  int64_t written = WriteTunBatch(static_cast<int>(fd), data, sizes, count, coalesce, given, refused, ctr, &err);
  if (written < 0) {
    ThrowErrno(env, err, "writev", "fd " + std::to_string(fd));
    return env.Undefined();
  }
  return Napi::Number::New(env, written);
}

}  // namespace

TunQueue* TunQueueOf(napi_env env, napi_value v, const char* fn) {
  bool tagged = false;
  napi_valuetype t;
  void* q = nullptr;
  if (napi_typeof(env, v, &t) == napi_ok && t == napi_external && napi_check_object_type_tag(env, v, &kTunQueueTag, &tagged) == napi_ok && tagged &&
      napi_get_value_external(env, v, &q) == napi_ok)
    return static_cast<TunQueue*>(q);
  ThrowType(env, std::string(fn) + ": queue must come from tunQueueOpen");
  return nullptr;
}

void InitTunOffload(Napi::Env env, Napi::Object exports) {
  exports.Set("tunQueueOpen", Napi::Function::New(env, TunQueueOpen, "tunQueueOpen"));
  exports.Set("tunQueueRead", Napi::Function::New(env, TunQueueRead, "tunQueueRead"));
  exports.Set("tunQueuePending", Napi::Function::New(env, TunQueuePending, "tunQueuePending"));
  exports.Set("tunWriteOffload", Napi::Function::New(env, TunWriteOffload, "tunWriteOffload"));
}

}  // namespace vxtun
