// The RFC 1071 sum (native/checksum.h) against a byte-at-a-time reference, RFC 1624's incremental
// update against a full recomputation, and FinishChecksum (native/tun_offload.cc) against the sum it
// must make verify.
#include "checksum.h"

#include "datapath.h"
#include "fuzz_check.h"

using namespace vxtun;

namespace {

uint32_t ReferenceSum(const uint8_t* p, size_t len, uint32_t initial) {
  uint64_t s = initial;
  for (size_t i = 0; i + 1 < len; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len % 2) s += static_cast<uint32_t>(p[len - 1]) << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint32_t>(s);
}

// Ones' complement values are equal when equal modulo 0xffff (0 and 0xffff are both zero).
bool SameOnes(uint32_t a, uint32_t b) { return a % 0xffff == b % 0xffff; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint32_t initial = in.ConsumeIntegral<uint32_t>();
  const size_t start = in.ConsumeIntegral<uint16_t>();
  const size_t offset = in.ConsumeIntegral<uint8_t>();
  const std::vector<uint8_t> bytes = in.ConsumeRemainingBytes<uint8_t>();
  auto p = Exact(bytes);
  const size_t len = bytes.size();

  const uint32_t sum = Csum16(p.get(), len, initial);
  FUZZ_CHECK(sum <= 0xffff);
  FUZZ_CHECK(SameOnes(sum, ReferenceSum(p.get(), len, initial)));

  if (len >= 2) {
    // Change one aligned word; the incremental update must equal the checksum recomputed.
    const size_t at = (start % (len / 2)) * 2;
    const uint32_t old = Get16(p.get() + at);
    const uint32_t hc = ~Csum16(p.get(), len, 0) & 0xffff;
    const uint32_t word = initial & 0xffff;
    Put16(p.get() + at, word);
    const uint32_t recomputed = ~Csum16(p.get(), len, 0) & 0xffff;
    FUZZ_CHECK(SameOnes(CsumIncremental(hc, old, word), recomputed));
    Put16(p.get() + at, old);
  }

  const uint32_t before = start < len ? Csum16(p.get() + start, len - start, 0) : 0;
  if (FinishChecksum(p.get(), len, start, offset)) {
    FUZZ_CHECK(start + offset + 2 <= len);
    const uint32_t c = Get16(p.get() + start + offset);
    FUZZ_CHECK(CsumFold(static_cast<uint64_t>(before) + c) == 0xffff);
  } else {
    FUZZ_CHECK(start + offset + 2 > len);
  }
  return 0;
}
