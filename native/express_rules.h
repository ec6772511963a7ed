// The express path's per-packet rules (express.cc calls them; its I/O is kept apart): pure functions
// over bytes, the twin of src/packet/policy.ts. They forward only what the policy forwards unchanged;
// for anything else they name what the policy would do when they know it (a drop reason) or hand it
// over, and express.cc hands every non-forward to the JS pipeline. test/unit/express-twin.test.ts
// holds them to the policy through the addon's expressDecideOutbound/expressDecideInbound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vxtun {

// Verdict codes: policy.ts's Verdict, in its order (the addon exports the names as expressVerdicts).
#define VXTUN_VERDICTS(X) \
  X(kForward, "forward")  \
  X(kDrop, "drop")        \
  X(kAnswer, "answer")    \
  X(kArp, "arp")          \
  X(kHandOver, "hand-over")

// Reasons: first DropReason of src/packet/counters.ts in its order (a reason's code is its index in
// policy.ts's DROP_REASON_CODES), then the express path's own reasons for handing a packet over.
// The addon exports the names (expressReasons); the twin test checks the first part against DropReason.
#define VXTUN_DROP_REASONS(X)                        \
  X(kTunMalformed, "tun-malformed")                  \
  X(kNoRoute, "no-route")                            \
  X(kTooBig, "too-big")                              \
  X(kIcmpRateLimited, "icmp-rate-limited")           \
  X(kSendFailed, "send-failed")                      \
  X(kTtlExpired, "ttl-expired")                      \
  X(kUnknownPeer, "unknown-peer")                    \
  X(kShortDatagram, "short-datagram")                \
  X(kBadFlags, "bad-flags")                          \
  X(kReservedBitsSet, "reserved-bits-set")           \
  X(kWrongVni, "wrong-vni")                          \
  X(kTruncatedInner, "truncated-inner")              \
  X(kWrongDstMac, "wrong-dst-mac")                   \
  X(kUnsupportedEtherType, "unsupported-ethertype")  \
  X(kMalformedInnerIpv4, "malformed-inner-ipv4")     \
  X(kMalformedInnerIpv6, "malformed-inner-ipv6")     \
  X(kSpoofedSource, "spoofed-source")                \
  X(kNotForThisNode, "not-for-this-node")            \
  X(kMalformedArp, "malformed-arp")                  \
  X(kArpNotForUs, "arp-not-for-us")                  \
  X(kArpIgnored, "arp-ignored")                      \
  X(kTunWriteFailed, "tun-write-failed")
#define VXTUN_HANDOVER_REASONS(X)                                                   \
  X(kNone, "none")                          /* forwarded */                         \
  X(kIpv6, "ipv6")                          /* the express path carries IPv4 only */ \
  X(kArpRequest, "arp")                     /* ARP: the engine judges and answers */ \
  X(kLongerThanRead, "longer-than-read")    /* the pipeline would read it cut short */ \
  X(kPeerNotServed, "peer-not-served")      /* a target without an IPv4 endpoint */ \
  X(kOversize, "oversize")                  /* a super-packet: segmenting is the engine's */ \
  X(kChecksumNotFinal, "checksum-not-final") /* partial, or an L4 header not parsed: the engine's to judge */

#define VXTUN_ENUM_ENTRY(name, text) name,
enum class Verdict : uint8_t { VXTUN_VERDICTS(VXTUN_ENUM_ENTRY) };
enum class Reason : uint8_t { VXTUN_DROP_REASONS(VXTUN_ENUM_ENTRY) VXTUN_HANDOVER_REASONS(VXTUN_ENUM_ENTRY) };
#undef VXTUN_ENUM_ENTRY

// What a rule decided. Forward: outbound `peer` (the target record's index), inbound the inner packet
// is datagram[offset, offset + length). Otherwise `reason` says why not.
struct Decision {
  Verdict verdict = Verdict::kHandOver;
  Reason reason = Reason::kNone;
  size_t peer = 0;
  size_t offset = 0;
  size_t length = 0;
};

// The engine's IPv4 trie (src/packet/routes.ts): 0 none, k > 0 target k - 1, ~c go to chunk c.
struct Trie {
  const int32_t* entries = nullptr;
  size_t length = 0;
  size_t targets = 0;
};

struct OutboundParams {
  size_t maxInner = 0;  // the engine's maxInnerSize
  size_t readRoom = 0;  // what the pipeline's read buffers take (a longer read is cut there)
};

// Anti-spoofing (policy.ts's AntiSpoofing, unknownSender, spoofCheck4): which checks run, who the
// peers are (the routes' target records) and what is ours. The default, before expressRoutes gave
// one, runs every check with no peers and nothing of ours: every datagram goes to the engine.
struct Guard {
  bool unknownPeer = true;
  bool spoofedSource = true;
  bool notForThisNode = true;
  uint32_t vtepIp = 0;
  std::vector<uint32_t> localNets;   // this node's IPv4 subnets: network, mask, network, mask, ...
  std::vector<uint32_t> peerAddrs;   // per route target: its underlay IPv4 address (0: none)
  std::vector<uint32_t> knownPeers;  // the same, sorted
};

// The guard from expressRoutes' records (count of them) and its guard bytes: flags (bit 0 unknown-peer,
// 1 spoofed-source, 2 not-for-this-node), 3 zero bytes, VTEP IPv4 address, then per local IPv4 subnet
// its network and mask (all big-endian). False if the guard bytes are not that shape.
bool BuildGuard(const uint8_t* records, size_t count, const uint8_t* g, size_t gLen, Guard* out);

struct InboundParams {
  uint32_t vni = 0;
  const uint8_t* mac = nullptr;  // our VTEP MAC, 6 bytes
  size_t tunMtu = 0;
  uint32_t from = 0;  // the sender's underlay IPv4 address (host order)
  const Trie* routes = nullptr;
  const Guard* guard = nullptr;
};

constexpr size_t kVxlanLen = 8;
constexpr size_t kInnerIp = kVxlanLen + 14;  // VXLAN header and inner Ethernet header

// The header length of the IPv4 packet p[0, len) if Ipv4Packet.check (src/packet/wire/ipv4.ts) accepts it, else 0.
size_t CheckIpv4(const uint8_t* p, size_t len);
// The target index the trie names for dst, or -1 for none.
long Lookup(const Trie& t, uint32_t dst);
// classifyOutbound on the IP packet p[0, len) read from the TUN.
Decision OutboundTarget(const uint8_t* p, size_t len, const Trie& routes, const OutboundParams& params);
// checkInbound on the VXLAN datagram d[0, len).
Decision InboundCheck(const uint8_t* d, size_t len, const InboundParams& params);
// Whether the TCP/UDP checksum of the IPv4 packet ip (header ihl, total bytes) is one the policy
// passes on unchanged: anything but a kernel peer's CHECKSUM_PARTIAL (a field holding the
// pseudo-header sum that does not verify), which the policy completes; also false for a TCP/UDP
// header the addon does not parse.
bool L4ChecksumFinal(const uint8_t* ip, size_t ihl, size_t total);
// The virtio_net_hdr of a TUN read (10 bytes) says the packet is plain: no GSO, no flag but
// NEEDS_CSUM and DATA_VALID (which means nothing to the offload reader either).
bool PlainVirtioHeader(const uint8_t* hdr);
// Whether the unfinished checksum a NEEDS_CSUM header describes (csum_start) may be finished before
// the policy judges the IPv4 packet p: not when it starts inside the IP header, which it could change.
bool ChecksumStartPastHeader(const uint8_t* p, size_t csumStart);

}  // namespace vxtun
