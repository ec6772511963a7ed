// The send side's per-packet header work: encapBatch's check and copy (native/encap.cc) over any
// batch, and the RFC 7348 flow hash (native/udp.cc's InnerIpFlowHash) that picks the outer source
// port, over any packet. Properties: no out-of-bounds access; a refused batch names a packet at
// fault and writes nothing; an accepted one writes each IPv4/IPv6 packet's header from its template
// with the EtherType of its version and leaves every other byte alone; the flow hash depends only on
// the bytes it reads (the same for the same packet behind other bytes).
#include "encap.h"

#include "datapath.h"
#include "fuzz_check.h"

using namespace vxtun;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const size_t count = in.ConsumeIntegralInRange<size_t>(0, 8);
  std::vector<int32_t> starts(count), slots(count);
  for (size_t i = 0; i < count; i++) {
    starts[i] = in.ConsumeIntegralInRange<int32_t>(-2, 300);
    slots[i] = in.ConsumeIntegralInRange<int32_t>(-1, 3);
  }
  const size_t ntemplates = in.ConsumeIntegralInRange<size_t>(0, 3);
  const std::vector<uint8_t> templateBytes = in.ConsumeBytes<uint8_t>(ntemplates * 22);
  auto templates = Exact(templateBytes);
  const std::vector<uint8_t> before = in.ConsumeRemainingBytes<uint8_t>();
  auto arena = Exact(before);
  const EncapBatchArgs batch{arena.get(), before.size(), starts.data(), slots.data(), count, templates.get(), templateBytes.size() / 22};
  size_t bad = count;
  if (EncapBatchCheck(batch, &bad) != EncapRefusal::kNone) {
    FUZZ_CHECK(bad < count && slots[bad] >= 0);
    FUZZ_CHECK(before.empty() || std::memcmp(arena.get(), before.data(), before.size()) == 0);
  } else {
    const uint32_t written = EncapBatchWrite(batch);
    FUZZ_CHECK(written <= count);
    // The last packet written at a place decides it (packets of a batch may overlap in this input).
    std::vector<uint8_t> want = before;
    uint32_t expected = 0;
    for (size_t i = 0; i < count; i++) {
      if (slots[i] < 0) continue;
      uint8_t* hdr = want.data() + starts[i];
      const uint8_t version = hdr[22] >> 4;
      if (version != 4 && version != 6) continue;
      std::memcpy(hdr, templates.get() + static_cast<size_t>(slots[i]) * 22, 22);
      hdr[20] = version == 4 ? 0x08 : 0x86;
      hdr[21] = version == 4 ? 0x00 : 0xdd;
      expected++;
    }
    FUZZ_CHECK(written == expected);
    FUZZ_CHECK(want.empty() || std::memcmp(arena.get(), want.data(), want.size()) == 0);
  }

  // Flow hash: the packet is the arena's bytes as read; the same bytes copied elsewhere hash the same.
  for (uint16_t etherType : {static_cast<uint16_t>(0x0800), static_cast<uint16_t>(0x86dd), static_cast<uint16_t>(0x0806)}) {
    const uint32_t h = InnerIpFlowHash(etherType, arena.get(), before.size());
    std::vector<uint8_t> copy(before.size() + 3);
    std::memcpy(copy.data() + 3, arena.get(), before.size());
    FUZZ_CHECK(InnerIpFlowHash(etherType, copy.data() + 3, before.size()) == h);
  }
  return 0;
}
