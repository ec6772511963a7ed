// What the parts of the data path share (udp.cc, tun_offload.cc, express.cc): the counter layouts
// JS reads from shared memory (counters.def), the virtio_net_hdr of a TUN opened with IFF_VNET_HDR,
// and the cores of a few system-call sequences that the batch calls and the express path both run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <netinet/in.h>
#include <sys/uio.h>

#include "counters.def"

namespace vxtun {

// Index of each counter in the Float64Arrays shared with JS (one definition: counters.def).
#define VXTUN_COUNTER_ENUMERATOR(id, name, doc) id,
enum UdpCounter { VXTUN_UDP_COUNTERS(VXTUN_COUNTER_ENUMERATOR) kUdpCounterCount };
enum TunCounter { VXTUN_TUN_COUNTERS(VXTUN_COUNTER_ENUMERATOR) kTunCounterCount };
enum ExpressCounter { VXTUN_EXPRESS_COUNTERS(VXTUN_COUNTER_ENUMERATOR) kExpressCounterCount };
#undef VXTUN_COUNTER_ENUMERATOR

// struct virtio_net_hdr of <linux/virtio_net.h> (not includable from C++: a field is named `class`).
// Fields are in native byte order on a legacy (TUNSETVNETLE unset) little-endian host.
struct virtio_net_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
constexpr uint8_t VIRTIO_NET_HDR_GSO_UDP_L4 = 5;  // Linux 6.2: IPv4 and IPv6 alike
constexpr uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;
constexpr size_t kVnetHdrLen = sizeof(virtio_net_hdr);  // 10
static_assert(sizeof(virtio_net_hdr) == 10, "virtio_net_hdr is 10 bytes");

// Big-endian fields of packet headers.
inline uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void Put16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline uint32_t Get32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) | (static_cast<uint32_t>(p[2]) << 8) | p[3];
}
inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Finishes a CHECKSUM_PARTIAL packet: the field at start + offset holds the pseudo-header sum,
// the checksum covers [start, len). Returns false if the fields point outside the packet.
bool FinishChecksum(uint8_t* p, size_t len, size_t start, size_t offset);

// RFC 7348 §5 flow hash of an inner packet (addresses, protocol, ports); etherType says which IP.
uint32_t InnerIpFlowHash(uint16_t etherType, const uint8_t* ip, size_t ipLen);

// recvmmsg of up to n messages into arena slots (see udpRecvBatch). Returns the count, 0 when
// nothing waits (or an ICMP error was taken off the queue), -errno on a lasting error. With `codel`
// (its state, codel.h; nullptr or a zero target: off) a message CoDel drops is counted in CodelDrops
// and not handed over.
int RecvMessages(int fd, uint8_t* arena, size_t slotSize, size_t n, int32_t* sizes, uint32_t* addrs,
                 uint16_t* ports, int32_t* gsoSizes, double* ctr, double* codel);

// Where a TCP or UDP super-packet's pieces are; filled by ParseGso.
// (tun_offload.cc, the offload reader; the express path segments with it too)
struct Gso {
  size_t ipHeaderLen;  // == csum_start: start of TCP/UDP
  size_t headerLen;    // IP + TCP/UDP headers
  size_t payloadLen;
  size_t mss;
  bool v6;
  bool udp;
  uint32_t segments;
};

// Whether the header h describes a TCP or UDP super-packet p[0, len) we can segment (then g is filled).
bool ParseGso(const uint8_t* p, size_t len, const virtio_net_hdr& h, Gso* g);
// Writes segment k of the super-packet p into out (room for headerLen + gso size); returns its length.
size_t MakeSegment(const uint8_t* p, const Gso& g, uint32_t k, uint8_t* out);

// SendBatch: the core of udpSendBatch (udp.cc): iovs[i] (one datagram each, VXLAN header first) for i < count to dst,
// datagram i on pool[InnerFlowHash % poolLen]; with gso, runs of equal sizes on one socket as UDP_SEGMENT
// messages. Counted in ctr (UdpCounter); returns how many the kernel took.
int SendBatch(const int32_t* pool, size_t poolLen, iovec* iovs, int count, const sockaddr_in& dst, bool gso, double* ctr);

// Writes data[i][0, sizes[i]) for i < count into the TUN fd (IFF_VNET_HDR) by tunWriteOffload's rules:
// `coalesce` bits (1 TCP, 2 UDP) join runs of one flow into super-packets, `given` (10 bytes per
// packet, or nullptr) a packet's own header; counted in ctr (TunCounter). Returns how many went in
// (refused, if not nullptr, gets 1 per packet that did not), or -1 with *error set for an error
// before any went in, which the caller reports.
int64_t WriteTunBatch(int fd, uint8_t* const* data, const int32_t* sizes, int64_t count, int32_t coalesce, const uint8_t* given, uint8_t* refused, double* ctr, int* error);

// One datagram by sendmsg (MSG_DONTWAIT), counted like a batch of one. True if the kernel took it.
bool SendDatagram(int fd, const iovec* iov, int iovcnt, size_t bytes, const sockaddr_in& dst, double* ctr);

}  // namespace vxtun
