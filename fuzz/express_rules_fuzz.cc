// The express path's rules (native/express_rules.cc) over arbitrary packets, routes and parameters:
// no out-of-bounds read, no undefined behaviour, and a forward names bytes inside the packet and a
// route's target.
#include "express_rules.h"

#include <algorithm>

#include "datapath.h"
#include "fuzz_check.h"

using namespace vxtun;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  // A trie of 256 entries and up to two chunks, each entry from the input (any value, as a
  // corrupted table would hold).
  const size_t chunks = in.ConsumeIntegralInRange<size_t>(0, 2);
  const size_t targets = in.ConsumeIntegralInRange<size_t>(0, 4);
  std::vector<int32_t> entries(256 + 256 * chunks, 0);
  const size_t set = in.ConsumeIntegralInRange<size_t>(0, 8);
  for (size_t k = 0; k < set; k++) {
    const size_t at = in.ConsumeIntegralInRange<size_t>(0, entries.size() - 1);
    entries[at] = in.ConsumeIntegralInRange<int32_t>(-4, 5);
  }
  const Trie trie{entries.data(), in.ConsumeBool() ? entries.size() : in.ConsumeIntegralInRange<size_t>(0, entries.size()), targets};
  OutboundParams out;
  out.maxInner = in.ConsumeIntegralInRange<size_t>(0, 65535);
  out.readRoom = in.ConsumeIntegralInRange<size_t>(0, 70000);
  uint8_t mac[6];
  for (uint8_t& b : mac) b = in.ConsumeIntegral<uint8_t>();
  // Anti-spoofing as expressRoutes builds it: switches, our VTEP address and subnets, one underlay
  // address per route target; the sender is one of them or any other address.
  Guard guard;
  guard.unknownPeer = in.ConsumeBool();
  guard.spoofedSource = in.ConsumeBool();
  guard.notForThisNode = in.ConsumeBool();
  guard.vtepIp = in.ConsumeIntegral<uint32_t>();
  const size_t nets = in.ConsumeIntegralInRange<size_t>(0, 2);
  for (size_t k = 0; k < nets; k++) {
    const uint32_t mask = ~0u << in.ConsumeIntegralInRange<int>(0, 31);
    guard.localNets.push_back(in.ConsumeIntegral<uint32_t>() & mask);
    guard.localNets.push_back(mask);
  }
  for (size_t k = 0; k < targets; k++) guard.peerAddrs.push_back(in.ConsumeIntegralInRange<uint32_t>(0, 3));
  guard.knownPeers = guard.peerAddrs;
  std::sort(guard.knownPeers.begin(), guard.knownPeers.end());
  InboundParams inb;
  inb.vni = in.ConsumeIntegralInRange<uint32_t>(0, 0xffffff);
  inb.mac = mac;
  inb.tunMtu = in.ConsumeIntegralInRange<size_t>(68, 65535);
  inb.from = in.ConsumeIntegralInRange<uint32_t>(0, 4);
  inb.routes = &trie;
  inb.guard = &guard;
  const bool inbound = in.ConsumeBool();
  const std::vector<uint8_t> bytes = in.ConsumeRemainingBytes<uint8_t>();
  auto p = Exact(bytes);
  const size_t len = bytes.size();

  if (inbound) {
    const Decision d = InboundCheck(p.get(), len, inb);
    if (d.verdict == Verdict::kForward) {
      FUZZ_CHECK(d.offset == kInnerIp);
      FUZZ_CHECK(d.offset + d.length <= len);
      FUZZ_CHECK(d.length <= inb.tunMtu);
      FUZZ_CHECK(CheckIpv4(p.get() + d.offset, d.length) != 0);
    }
  } else {
    const Decision d = OutboundTarget(p.get(), len, trie, out);
    if (d.verdict == Verdict::kForward) {
      FUZZ_CHECK(d.peer < targets);
      FUZZ_CHECK(d.offset == 0 && d.length == len && len <= out.maxInner && len <= out.readRoom);
    }
    const long peer = len >= 20 ? Lookup(trie, (static_cast<uint32_t>(p[16]) << 24) | (p[17] << 16) | (p[18] << 8) | p[19]) : -1;
    FUZZ_CHECK(peer < static_cast<long>(targets));
  }
  const size_t ihl = CheckIpv4(p.get(), len);
  if (ihl != 0) {
    FUZZ_CHECK(ihl >= 20 && ihl <= len);
    (void)L4ChecksumFinal(p.get(), ihl, Get16(p.get() + 2));
    (void)ChecksumStartPastHeader(p.get(), len);
  }
  if (len >= kVnetHdrLen) (void)PlainVirtioHeader(p.get());
  return 0;
}
