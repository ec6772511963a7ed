// RFC 1071 Internet checksum core, header-only so other native parts (e.g. a send path) can use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vxtun {

// Folds a wide ones' complement accumulator to 16 bits (never turns a non-zero sum into 0).
inline uint32_t CsumFold(uint64_t acc) {
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffu) + (acc >> 16);
  acc = (acc & 0xffffu) + (acc >> 16);
  acc = (acc & 0xffffu) + (acc >> 16);
  return static_cast<uint32_t>(acc);
}

// The 16-bit ones' complement sum (folded, not complemented) of `len` bytes read as big-endian
// 16-bit words, an odd trailing byte padded with zero, plus `initial` (a partial sum, any 32-bit value).
// Summing in host order and swapping once at the end is allowed by RFC 1071 §2(B).
inline uint32_t Csum16(const uint8_t* p, size_t len, uint32_t initial) {
  unsigned __int128 acc = 0;  // 64-bit words with the carries collected in the high half
  while (len >= 32) {
    uint64_t w[4];
    std::memcpy(w, p, 32);
    acc += w[0];
    acc += w[1];
    acc += w[2];
    acc += w[3];
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc += w;
    p += 8;
    len -= 8;
  }
  uint64_t tail = 0;  // the last < 8 bytes, kept at their word positions
  if (len > 0) {
    uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(b, p, len);
    std::memcpy(&tail, b, 8);
  }
  acc += tail;
  uint64_t lo = static_cast<uint64_t>(acc);
  uint64_t hi = static_cast<uint64_t>(acc >> 64);  // 2^64 == 1 (mod 0xffff)
  uint64_t s = lo + hi;
  if (s < lo) s++;
  uint32_t r = CsumFold(s);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  r = ((r & 0xffu) << 8) | (r >> 8);
#endif
  return CsumFold(static_cast<uint64_t>(r) + initial);
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all 16-bit.
inline uint32_t CsumIncremental(uint32_t hc, uint32_t m, uint32_t mNew) {
  uint32_t s = (~hc & 0xffffu) + (~m & 0xffffu) + (mNew & 0xffffu);
  return ~CsumFold(s) & 0xffffu;
}

}  // namespace vxtun
