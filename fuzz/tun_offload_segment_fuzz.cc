// Segmentation of the super-packets a TUN read hands over (native/tun_offload.cc's ParseGso and
// MakeSegment, reached by including the file: they are internal to it). Any virtio_net_hdr and
// packet: no out-of-bounds access; each segment is at most headers + gso_size, carries valid IPv4
// header and TCP/UDP checksums, and the segments' payloads put together are the super-packet's.
#include "../native/tun_offload.cc"

#include "fuzz_check.h"

using namespace vxtun;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kVnetHdrLen) return 0;
  virtio_net_hdr h;
  std::memcpy(&h, data, kVnetHdrLen);
  const std::vector<uint8_t> bytes(data + kVnetHdrLen, data + size);
  auto p = Exact(bytes);
  const size_t len = bytes.size();
  Gso g;
  if (!ParseGso(p.get(), len, h, &g)) return 0;
  FUZZ_CHECK(g.headerLen <= len && g.ipHeaderLen < g.headerLen && g.mss > 0);
  FUZZ_CHECK(g.payloadLen == len - g.headerLen);
  if (g.segments > 4096) return 0;  // as correct as a shorter run, only slower
  size_t carried = 0;
  for (uint32_t k = 0; k < g.segments; k++) {
    const size_t room = g.headerLen + g.mss;
    std::unique_ptr<uint8_t[]> out(new uint8_t[room]);
    const size_t n = MakeSegment(p.get(), g, k, out.get());
    FUZZ_CHECK(n >= g.headerLen && n <= room);
    const size_t chunk = n - g.headerLen;
    FUZZ_CHECK(std::memcmp(out.get() + g.headerLen, p.get() + g.headerLen + carried, chunk) == 0);
    carried += chunk;
    const uint8_t proto = g.udp ? 17 : 6;
    const size_t l4Len = n - g.ipHeaderLen;
    uint32_t pseudo;
    if (!g.v6) {
      FUZZ_CHECK(Csum16(out.get(), g.ipHeaderLen, 0) == 0xffff);
      FUZZ_CHECK(Get16(out.get() + 2) == n);
      pseudo = Csum16(out.get() + 12, 8, proto + static_cast<uint32_t>(l4Len));
    } else {
      FUZZ_CHECK(Get16(out.get() + 4) + 40u == n);
      pseudo = Csum16(out.get() + 8, 32, proto + static_cast<uint32_t>(l4Len));
    }
    FUZZ_CHECK(Csum16(out.get() + g.ipHeaderLen, l4Len, pseudo) == 0xffff);
    if (g.udp) FUZZ_CHECK(Get16(out.get() + g.ipHeaderLen + 4) == l4Len);
  }
  FUZZ_CHECK(carried == g.payloadLen);
  return 0;
}
