// The express path's per-packet rules (see express_rules.h), and the addon's test entry points to them.
#include "express_rules.h"

#include "checksum.h"
#include "common.h"
#include "datapath.h"

#include <algorithm>
#include <cstring>

namespace vxtun {

namespace {

Decision Forward() {
  Decision d;
  d.verdict = Verdict::kForward;
  return d;
}
Decision Drop(Reason r) {
  Decision d;
  d.verdict = Verdict::kDrop;
  d.reason = r;
  return d;
}
Decision HandOver(Reason r) {
  Decision d;
  d.verdict = Verdict::kHandOver;
  d.reason = r;
  return d;
}

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherIpv6 = 0x86dd;

}  // namespace

size_t CheckIpv4(const uint8_t* p, size_t len) {
  if (len < 20 || (p[0] >> 4) != 4) return 0;
  size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > len) return 0;
  size_t total = Get16(p + 2);
  if (total < ihl || total > len) return 0;
  return ihl;
}

long Lookup(const Trie& t, uint32_t dst) {
  if (t.length < 256) return -1;
  int32_t e = t.entries[dst >> 24];
  for (int shift = 16; e < 0 && shift >= 0; shift -= 8) {
    size_t at = (static_cast<size_t>(~e) << 8) | ((dst >> shift) & 0xff);
    if (at >= t.length) return -1;
    e = t.entries[at];
  }
  if (e <= 0 || static_cast<size_t>(e) > t.targets) return -1;
  return static_cast<long>(e) - 1;
}

// In classifyOutbound's order: IP header, route, size.
Decision OutboundTarget(const uint8_t* p, size_t len, const Trie& routes, const OutboundParams& params) {
  if (len > params.readRoom) return HandOver(Reason::kLongerThanRead);
  uint8_t version = len > 0 ? p[0] >> 4 : 0;
  if (version == 6) return HandOver(Reason::kIpv6);
  if (version != 4 || CheckIpv4(p, len) == 0) return Drop(Reason::kTunMalformed);
  long peer = Lookup(routes, (static_cast<uint32_t>(p[16]) << 24) | (p[17] << 16) | (p[18] << 8) | p[19]);
  if (peer < 0) return Drop(Reason::kNoRoute);  // the policy answers (ICMP unreachable) or drops
  if (len > params.maxInner) return Drop(Reason::kTooBig);  // the policy answers (frag-needed) or drops
  Decision d = Forward();
  d.peer = static_cast<size_t>(peer);
  d.offset = 0;
  d.length = len;
  return d;
}

constexpr size_t kPeerRecord = 22 + 4 + 2;  // express.cc's route record: header template, IPv4 address, port
constexpr size_t kGuardHead = 8;
constexpr uint8_t kGuardUnknownPeer = 1, kGuardSpoofedSource = 2, kGuardNotForThisNode = 4;

bool BuildGuard(const uint8_t* records, size_t count, const uint8_t* g, size_t gLen, Guard* out) {
  if (gLen < kGuardHead || (gLen - kGuardHead) % 8 != 0 || (g[0] & ~7) != 0 || (g[1] | g[2] | g[3]) != 0) return false;
  Guard guard;
  guard.unknownPeer = (g[0] & kGuardUnknownPeer) != 0;
  guard.spoofedSource = (g[0] & kGuardSpoofedSource) != 0;
  guard.notForThisNode = (g[0] & kGuardNotForThisNode) != 0;
  guard.vtepIp = Get32(g + 4);
  for (size_t at = kGuardHead; at < gLen; at += 8) {
    guard.localNets.push_back(Get32(g + at) & Get32(g + at + 4));
    guard.localNets.push_back(Get32(g + at + 4));
  }
  for (size_t i = 0; i < count; i++) guard.peerAddrs.push_back(Get32(records + i * kPeerRecord + 22));
  guard.knownPeers = guard.peerAddrs;
  std::sort(guard.knownPeers.begin(), guard.knownPeers.end());
  *out = std::move(guard);
  return true;
}

namespace {

// spoofCheck4 (policy.ts): the inner source must be routed to the sender, the destination be ours.
Reason SpoofCheck(uint32_t src, uint32_t dst, const InboundParams& params) {
  const Guard& g = *params.guard;
  if (g.spoofedSource) {
    long target = Lookup(*params.routes, src);
    if (target < 0 || static_cast<size_t>(target) >= g.peerAddrs.size() || g.peerAddrs[target] != params.from) return Reason::kSpoofedSource;
  }
  if (g.notForThisNode && dst != g.vtepIp) {
    bool ours = false;
    for (size_t i = 0; i + 1 < g.localNets.size() && !ours; i += 2) ours = (dst & g.localNets[i + 1]) == g.localNets[i];
    if (!ours) return Reason::kNotForThisNode;
  }
  return Reason::kNone;
}

}  // namespace

// In checkInbound's order: the sender, then Linux's vxlan_rcv: length, flags, reserved bits, VNI,
// inner Ethernet, ARP, destination MAC, EtherType, inner IPv4; anti-spoofing; size, checksum.
Decision InboundCheck(const uint8_t* d, size_t len, const InboundParams& params) {
  const Guard& guard = *params.guard;
  if (guard.unknownPeer && !std::binary_search(guard.knownPeers.begin(), guard.knownPeers.end(), params.from)) return Drop(Reason::kUnknownPeer);
  if (len < kVxlanLen) return Drop(Reason::kShortDatagram);
  if (d[0] != 0x08) return Drop(Reason::kBadFlags);
  if ((d[1] | d[2] | d[3] | d[7]) != 0) return Drop(Reason::kReservedBitsSet);
  if (((static_cast<uint32_t>(d[4]) << 16) | (d[5] << 8) | d[6]) != params.vni) return Drop(Reason::kWrongVni);
  if (len < kInnerIp) return Drop(Reason::kTruncatedInner);
  uint16_t etherType = Get16(d + 20);
  if (etherType == kEtherArp) return HandOver(Reason::kArpRequest);  // broadcast to ask for us: the engine's
  if (std::memcmp(d + kVxlanLen, params.mac, 6) != 0) return Drop(Reason::kWrongDstMac);
  if (etherType == kEtherIpv6) return HandOver(Reason::kIpv6);
  if (etherType != kEtherIpv4) return Drop(Reason::kUnsupportedEtherType);
  const uint8_t* ip = d + kInnerIp;
  size_t ihl = CheckIpv4(ip, len - kInnerIp);
  if (ihl == 0) return Drop(Reason::kMalformedInnerIpv4);
  Reason spoofed = SpoofCheck(Get32(ip + 12), Get32(ip + 16), params);
  if (spoofed != Reason::kNone) return Drop(spoofed);
  size_t total = Get16(ip + 2);
  if (total > params.tunMtu) return HandOver(Reason::kOversize);
  if (!L4ChecksumFinal(ip, ihl, total)) return HandOver(Reason::kChecksumNotFinal);
  Decision r = Forward();
  r.offset = kInnerIp;
  r.length = total;
  return r;
}

bool L4ChecksumFinal(const uint8_t* ip, size_t ihl, size_t total) {
  uint8_t proto = ip[9];
  if ((Get16(ip + 6) & 0x3fff) != 0 || (proto != 6 && proto != 17)) return true;  // not checksummed by l4checksum.ts
  size_t l4Len = total - ihl;
  const uint8_t* l4 = ip + ihl;
  if (proto == 6) {
    if (l4Len < 20 || (l4[12] >> 4) * 4u < 20 || (l4[12] >> 4) * 4u > l4Len) return false;
  } else {
    if (l4Len < 8) return false;
    size_t udpLen = Get16(l4 + 4);
    if (udpLen < 8 || udpLen > l4Len) return false;
    l4Len = udpLen;  // what the checksum covers (as l4checksum.ts)
    if (Get16(l4 + 6) == 0) return true;
  }
  uint32_t pseudo = Csum16(ip + 12, 8, proto + static_cast<uint32_t>(l4Len));
  // As findPartialL4Checksum (l4checksum.ts): only a field that holds the pseudo-header sum (TCP's 0
  // when that sum is 0xffff) can be a kernel peer's CHECKSUM_PARTIAL, so only then is the segment
  // summed. Any other field, valid or not, is written as it is, so it needs no pass over the payload
  // here: the TUN writer sums each segment before it coalesces (summing twice was ~9 % of a
  // receiving node's CPU under one TCP stream).
  uint32_t field = Get16(l4 + (proto == 6 ? 16 : 6));
  if (field != pseudo && !(proto == 6 && field == 0 && pseudo == 0xffff)) return true;
  return Csum16(l4, l4Len, pseudo) == 0xffff;
}

bool PlainVirtioHeader(const uint8_t* hdr) {
  virtio_net_hdr h;
  std::memcpy(&h, hdr, kVnetHdrLen);
  return h.gso_type == VIRTIO_NET_HDR_GSO_NONE && (h.flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) == 0;
}

bool ChecksumStartPastHeader(const uint8_t* p, size_t csumStart) { return csumStart >= static_cast<size_t>(p[0] & 0x0f) * 4; }

namespace {

bool Param(Napi::Env env, Napi::Object o, const char* fn, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi))) {
    ThrowRange(env, std::string(fn) + ": " + key + " must be a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

Napi::Object DecisionObject(Napi::Env env, const Decision& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("verdict", static_cast<double>(d.verdict));
  o.Set("reason", static_cast<double>(d.reason));
  o.Set("peer", static_cast<double>(d.peer));
  o.Set("offset", static_cast<double>(d.offset));
  o.Set("length", static_cast<double>(d.length));
  return o;
}

// expressDecideOutbound(packet, trie: Int32Array, peers: Uint8Array, { maxInnerSize, readRoom }):
// { verdict, reason, peer, offset, length } — what the express path decides for this IP packet read
// from the TUN, with expressRoutes' table (a target whose record has port 0 is not served).
Napi::Value DecideOutbound(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* p;
  size_t len;
  int32_t* trie;
  size_t trieLen;
  uint8_t* rec;
  size_t recLen;
  if (info.Length() < 4 || !info[3].IsObject()) {
    ThrowType(env, "expressDecideOutbound(packet, trie, peers, params)");
    return env.Undefined();
  }
  if (!ArgBytes(env, info[0], "expressDecideOutbound: packet", &p, &len) || !ArgInt32s(env, info[1], "expressDecideOutbound: trie", &trie, &trieLen) ||
      !ArgBytes(env, info[2], "expressDecideOutbound: peers", &rec, &recLen))
    return env.Undefined();
  OutboundParams params;
  int64_t v;
  Napi::Object o = info[3].As<Napi::Object>();
  if (!Param(env, o, "expressDecideOutbound", "maxInnerSize", 0, 65535, &v)) return env.Undefined();
  params.maxInner = static_cast<size_t>(v);
  if (!Param(env, o, "expressDecideOutbound", "readRoom", 0, INT32_MAX, &v)) return env.Undefined();
  params.readRoom = static_cast<size_t>(v);
  Trie routes{trie, trieLen, recLen / kPeerRecord};
  Decision d = OutboundTarget(p, len, routes, params);
  if (d.verdict == Verdict::kForward && Get16(rec + d.peer * kPeerRecord + 26) == 0) d = HandOver(Reason::kPeerNotServed);
  return DecisionObject(env, d);
}

// expressDecideInbound(datagram, trie: Int32Array, peers: Uint8Array, guard: Uint8Array, { vni, vtepMac, tunMtu, from }):
// { verdict, reason, peer, offset, length } — what the express path decides for this VXLAN datagram
// (a lone, not coalesced one) from the underlay IPv4 address `from` (a uint32), with expressRoutes' table.
Napi::Value DecideInbound(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* d;
  size_t len;
  int32_t* trie;
  size_t trieLen;
  uint8_t* rec;
  size_t recLen;
  uint8_t* g;
  size_t gLen;
  if (info.Length() < 5 || !info[4].IsObject()) {
    ThrowType(env, "expressDecideInbound(datagram, trie, peers, guard, params)");
    return env.Undefined();
  }
  if (!ArgBytes(env, info[0], "expressDecideInbound: datagram", &d, &len) || !ArgInt32s(env, info[1], "expressDecideInbound: trie", &trie, &trieLen) ||
      !ArgBytes(env, info[2], "expressDecideInbound: peers", &rec, &recLen) || !ArgBytes(env, info[3], "expressDecideInbound: guard", &g, &gLen))
    return env.Undefined();
  Guard guard;
  if (!BuildGuard(rec, recLen / kPeerRecord, g, gLen, &guard)) {
    ThrowRange(env, "expressDecideInbound: guard must be 8 bytes (flags, 0, 0, 0, VTEP address) and 8 per local subnet");
    return env.Undefined();
  }
  Napi::Object o = info[4].As<Napi::Object>();
  InboundParams params;
  int64_t v;
  if (!Param(env, o, "expressDecideInbound", "vni", 0, 0xffffff, &v)) return env.Undefined();
  params.vni = static_cast<uint32_t>(v);
  if (!Param(env, o, "expressDecideInbound", "tunMtu", 68, 65535, &v)) return env.Undefined();
  params.tunMtu = static_cast<size_t>(v);
  if (!Param(env, o, "expressDecideInbound", "from", 0, UINT32_MAX, &v)) return env.Undefined();
  params.from = static_cast<uint32_t>(v);
  uint8_t* mac;
  size_t macLen;
  if (!ArgBytes(env, o.Get("vtepMac"), "expressDecideInbound: vtepMac", &mac, &macLen)) return env.Undefined();
  if (macLen != 6) {
    ThrowRange(env, "expressDecideInbound: vtepMac must be 6 bytes");
    return env.Undefined();
  }
  params.mac = mac;
  Trie routes{trie, trieLen, recLen / kPeerRecord};
  params.routes = &routes;
  params.guard = &guard;
  return DecisionObject(env, InboundCheck(d, len, params));
}

Napi::Array Names(Napi::Env env, const char* const* names, size_t count) {
  Napi::Array a = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; i++) a.Set(static_cast<uint32_t>(i), names[i]);
  return a;
}

}  // namespace

void InitExpressRules(Napi::Env env, Napi::Object exports) {
#define VXTUN_NAME_ENTRY(name, text) text,
  static const char* const verdicts[] = {VXTUN_VERDICTS(VXTUN_NAME_ENTRY)};
  static const char* const reasons[] = {VXTUN_DROP_REASONS(VXTUN_NAME_ENTRY) VXTUN_HANDOVER_REASONS(VXTUN_NAME_ENTRY)};
#undef VXTUN_NAME_ENTRY
  exports.Set("expressVerdicts", Names(env, verdicts, sizeof verdicts / sizeof verdicts[0]));
  exports.Set("expressReasons", Names(env, reasons, sizeof reasons / sizeof reasons[0]));
  exports.Set("expressDecideOutbound", Napi::Function::New(env, DecideOutbound, "expressDecideOutbound"));
  exports.Set("expressDecideInbound", Napi::Function::New(env, DecideInbound, "expressDecideInbound"));
}

}  // namespace vxtun
