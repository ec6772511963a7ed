// What the parts of the data path share (udp.cc, tun_offload.cc, express.cc): the counter layouts
// JS reads from shared memory, the virtio_net_hdr of a TUN opened with IFF_VNET_HDR, and the cores
// of a few system-call sequences that the batch calls and the express path both run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <netinet/in.h>
#include <sys/uio.h>

namespace vxtun {

// Index of each UDP counter in the caller's Float64Array (mirrored by UdpCounter in src/io/bind-native.ts).
enum UdpCounter {
  kRecvCalls = 0,     // recvmmsg calls that returned datagrams
  kRecvPackets = 1,   // datagrams received
  kRecvBytes = 2,     // their bytes
  kRecvTruncated = 3, // datagrams longer than a slot (MSG_TRUNC): dropped here
  kSendCalls = 4,     // sendmmsg / sendmsg calls
  kSendPackets = 5,   // datagrams handed to the kernel
  kSendBytes = 6,
  kSendAgain = 7,     // datagrams not sent because the socket buffer was full (EAGAIN/ENOBUFS)
  kSendErrors = 8,    // datagrams refused with any other error
  kGsoSends = 9,      // messages sent as one UDP_SEGMENT super-datagram
  kGsoSegments = 10,  // datagrams carried in them
  kGsoDisabled = 11,  // 1 once a GSO send failed with EIO and GSO was turned off for the socket
  kLastErrno = 12,    // errno of the last send/recv error (0 = none)
  kGroReceives = 13,  // messages that arrived coalesced (UDP_GRO: several datagrams of gso_size)
  kGroSegments = 14,  // datagrams carried in them
  kUdpCounterCount = 15,
};

// Index of each TUN offload counter (mirrored by TunCounter in src/io/tun-offload.ts).
enum TunCounter {
  kReads = 0,          // packets read from the device (super-packets count once)
  kGsoPackets = 1,     // super-packets segmented
  kTunGsoSegments = 2, // packets made from them
  kCsumCompleted = 3,  // NEEDS_CSUM packets finished
  kBadVnetHdr = 4,     // packets whose header or GSO fields we cannot honour: dropped
  kWrites = 5,         // packets written (a coalesced super-packet counts its segments)
  kCoalescedWrites = 6,   // super-packets written
  kCoalescedPackets = 7,  // packets carried in them
  kSuperWrites = 8,       // packets written with the caller's GSO header (super-packets passed whole)
  kUdpCoalescedWrites = 9,    // UDP super-packets written (USO)
  kUdpCoalescedPackets = 10,  // datagrams carried in them
  kUdpGsoPackets = 11,        // UDP super-packets read and segmented (also counted in kGsoPackets)
  kTunCounterCount = 12,
};

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

// tunReadOffload's state[1] when state[0] holds the length of a raw read (header and packet in
// scratch, not looked at yet) that the express path made and handed over (express.cc).
constexpr int32_t kStateRawRead = -1;

// Finishes a CHECKSUM_PARTIAL packet: the field at start + offset holds the pseudo-header sum,
// the checksum covers [start, len). Returns false if the fields point outside the packet.
bool FinishChecksum(uint8_t* p, size_t len, size_t start, size_t offset);

// RFC 7348 §5 flow hash of an inner packet (addresses, protocol, ports); etherType says which IP.
uint32_t InnerIpFlowHash(uint16_t etherType, const uint8_t* ip, size_t ipLen);

// recvmmsg of up to n messages into arena slots (see udpRecvBatch). Returns the count, 0 when
// nothing waits (or an ICMP error was taken off the queue), -errno on a lasting error.
int RecvMessages(int fd, uint8_t* arena, size_t slotSize, size_t n, int32_t* sizes, uint32_t* addrs,
                 uint16_t* ports, int32_t* gsoSizes, double* ctr);

// One datagram by sendmsg (MSG_DONTWAIT), counted like a batch of one. True if the kernel took it.
bool SendDatagram(int fd, const iovec* iov, int iovcnt, size_t bytes, const sockaddr_in& dst, double* ctr);

}  // namespace vxtun
