// Coalescing of a TUN write batch (native/tun_offload.cc's CoalesceTcp and CoalesceUdp, reached by
// including the file), run as tunWriteOffload runs them. The input is a batch: packets, each behind
// a 2-byte length and a byte whose bit 0 gives it a GSO header of its own. Properties: no
// out-of-bounds access; a run stays within the batch and kMaxCoalesce and under 64 KB; and the
// super-packet, split the way the kernel splits it (ParseGso + MakeSegment), gives back the packets
// of the run: byte for byte for UDP; for TCP but for the IPv4 id and header checksum (the kernel
// numbers ids on from the first, as its GRO does not compare them) and the urgent pointer and
// so the TCP checksum (meaningless without URG, which no coalesced segment has; GRO ignores it too).
#include "../native/tun_offload.cc"

#include "fuzz_check.h"

using namespace vxtun;

namespace {

bool SameBut(const uint8_t* a, const uint8_t* b, size_t n, const Gso& g) {
  for (size_t i = 0; i < n; i++) {
    if (!g.udp && !g.v6 && (i == 4 || i == 5 || i == 10 || i == 11)) continue;
    if (!g.udp && i >= g.ipHeaderLen + 16 && i < g.ipHeaderLen + 20) continue;
    if (a[i] != b[i]) {
      std::fprintf(stderr, "byte %zu of %zu: segment has %02x, the packet had %02x\n", i, n, a[i], b[i]);
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int coalesce = in.ConsumeIntegralInRange<int>(1, 3);
  std::vector<std::vector<uint8_t>> originals;
  std::vector<std::unique_ptr<uint8_t[]>> owned;
  std::vector<uint8_t*> packets;
  std::vector<int32_t> sizes;
  std::vector<uint8_t> given;
  while (in.remaining_bytes() > 0 && packets.size() < 80) {
    const bool header = in.ConsumeIntegral<uint8_t>() & 1;
    const std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 1600));
    originals.push_back(bytes);
    owned.push_back(Exact(bytes));
    packets.push_back(owned.back().get());
    sizes.push_back(static_cast<int32_t>(bytes.size()));
    for (size_t k = 0; k < kVnetHdrLen; k++) given.push_back(header && k == 0 ? 1 : 0);
  }
  const int64_t count = static_cast<int64_t>(packets.size());
  for (int64_t i = 0; i < count;) {
    if (HasHeader(given.data(), i)) {
      i++;
      continue;
    }
    iovec iov[kMaxCoalesce + 1];
    virtio_net_hdr h = {};
    iov[1] = {packets[i], static_cast<size_t>(sizes[i])};
    int run = 1;
    if (coalesce & kCoalesceTcp) run = CoalesceTcp(packets.data(), sizes.data(), i, count, given.data(), iov, &h);
    if (run == 1 && (coalesce & kCoalesceUdp)) run = CoalesceUdp(packets.data(), sizes.data(), i, count, given.data(), iov, &h);
    FUZZ_CHECK(run >= 1 && run <= kMaxCoalesce && i + run <= count);
    if (run > 1) {
      std::vector<uint8_t> super;
      for (int k = 1; k <= run; k++) {
        const uint8_t* b = static_cast<const uint8_t*>(iov[k].iov_base);
        super.insert(super.end(), b, b + iov[k].iov_len);
      }
      FUZZ_CHECK(super.size() <= kMaxSuper);
      auto whole = Exact(super);
      Gso g;
      FUZZ_CHECK(ParseGso(whole.get(), super.size(), h, &g));
      FUZZ_CHECK(g.segments == static_cast<uint32_t>(run));
      FUZZ_CHECK(g.headerLen == h.hdr_len);
      for (int k = 0; k < run; k++) {
        const std::vector<uint8_t>& want = originals[static_cast<size_t>(i + k)];
        std::unique_ptr<uint8_t[]> seg(new uint8_t[g.headerLen + g.mss]);
        const size_t n = MakeSegment(whole.get(), g, static_cast<uint32_t>(k), seg.get());
        FUZZ_CHECK(n == want.size());
        if (!g.udp) FUZZ_CHECK((want[g.ipHeaderLen + 13] & 0x20) == 0);  // no URG
        FUZZ_CHECK(SameBut(seg.get(), want.data(), n, g));
      }
      // tunWriteOffload puts the first packet's headers back after the write.
      std::memcpy(packets[i], originals[static_cast<size_t>(i)].data(), std::min<size_t>(120, originals[static_cast<size_t>(i)].size()));
    }
    i += run;
  }
  return 0;
}
