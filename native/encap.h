// encapBatch's header copy (encap.cc) without N-API, so fuzz/encap_fuzz.cc reaches it as the addon runs it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vxtun {

struct EncapBatchArgs {
  uint8_t* arena;
  size_t arenaLen;
  const int32_t* starts;
  const int32_t* slots;
  size_t count;  // packets: starts and slots hold at least this many
  const uint8_t* templates;
  size_t ntemplates;  // 22-byte headers in templates
};

enum class EncapRefusal { kNone, kSlotPastTemplates, kStartPastArena };

// Why the batch cannot be written (and *bad = the first packet at fault), before anything is written.
EncapRefusal EncapBatchCheck(const EncapBatchArgs& batch, size_t* bad);
// Writes the headers of a batch EncapBatchCheck accepted; returns how many.
uint32_t EncapBatchWrite(const EncapBatchArgs& batch);

}  // namespace vxtun
