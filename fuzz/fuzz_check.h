// What the fuzz targets share: a property that does not hold is a finding (abort, so libFuzzer
// saves the input), and packets cut from the input each in a heap block of exactly its size, so
// AddressSanitizer reports any read past a packet's end.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: property does not hold: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

// A packet in a block of its own size.
inline std::unique_ptr<uint8_t[]> Exact(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<uint8_t[]> p(new uint8_t[bytes.size() ? bytes.size() : 1]);
  if (!bytes.empty()) std::memcpy(p.get(), bytes.data(), bytes.size());
  return p;
}
