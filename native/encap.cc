// Batch encap: the header copy that puts VXLAN (I flag, VNI) + inner Ethernet (dst = peer VTEP MAC,
// src = ours, EtherType by IP version) in front of every packet of a batch, in one call.
//
// The TS side owns everything: the arena the packets of a batch sit in (the engine's read buffers
// are views of one ArrayBuffer), where each packet's 22-byte header goes (its IP packet follows),
// one header template per peer of the batch (built with the wire emitters, see src/packet/encap.ts)
// and each packet's template slot (-1 = not forwarded, left untouched). Typed arrays only, so the
// call costs the same for 1 packet or 256: no per-packet N-API call.
#include "encap.h"

#include "common.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace vxtun {
namespace {

constexpr size_t kHeaderLen = 22;    // VXLAN 8 + Ethernet 14
constexpr size_t kEtherTypeAt = 20;  // inside the header

}  // namespace

EncapRefusal EncapBatchCheck(const EncapBatchArgs& b, size_t* bad) {
  for (size_t i = 0; i < b.count; i++) {
    const int32_t slot = b.slots[i];
    if (slot < 0) continue;
    *bad = i;
    if (static_cast<size_t>(slot) >= b.ntemplates) return EncapRefusal::kSlotPastTemplates;
    if (b.starts[i] < 0 || static_cast<size_t>(b.starts[i]) + kHeaderLen >= b.arenaLen) return EncapRefusal::kStartPastArena;
  }
  return EncapRefusal::kNone;
}

uint32_t EncapBatchWrite(const EncapBatchArgs& b) {
  uint32_t written = 0;
  for (size_t i = 0; i < b.count; i++) {
    if (b.slots[i] < 0) continue;
    uint8_t* h = b.arena + b.starts[i];
    const uint8_t version = h[kHeaderLen] >> 4;
    if (version != 4 && version != 6) continue;
    std::memcpy(h, b.templates + static_cast<size_t>(b.slots[i]) * kHeaderLen, kHeaderLen);
    h[kEtherTypeAt] = version == 4 ? 0x08 : 0x86;
    h[kEtherTypeAt + 1] = version == 4 ? 0x00 : 0xdd;
    written++;
  }
  return written;
}

namespace {

// encapBatch(arena, starts, count, slots, templates): number of headers written.
// For i < count with slots[i] >= 0: arena[starts[i], + 22) = templates[slots[i] * 22, + 22), the
// EtherType set from the IP version nibble at arena[starts[i] + 22] (4: 0x0800, 6: 0x86DD). A packet
// of any other version is left untouched and not counted. Bad arguments throw before anything is written.
Napi::Value EncapBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) {
    ThrowType(env, "encapBatch(arena, starts, count, slots, templates): 5 arguments expected");
    return env.Undefined();
  }
  uint8_t* arena;
  size_t arenaLen;
  uint8_t* templates;
  size_t templatesLen;
  int32_t* starts;
  int32_t* slots;
  size_t nstarts, nslots;
  int64_t count = 0;
  if (!ArgBytes(env, info[0], "encapBatch: arena", &arena, &arenaLen) ||
      !ArgInt32s(env, info[1], "encapBatch: starts", &starts, &nstarts) || !ArgInt32s(env, info[3], "encapBatch: slots", &slots, &nslots) ||
      !ArgInt(info, 2, "encapBatch: count", 0, static_cast<int64_t>(std::min(nstarts, nslots)), &count) ||
      !ArgBytes(env, info[4], "encapBatch: templates", &templates, &templatesLen))
    return env.Undefined();
  const size_t ntemplates = templatesLen / kHeaderLen;
  const EncapBatchArgs batch{arena, arenaLen, starts, slots, static_cast<size_t>(count), templates, ntemplates};
  size_t bad = 0;
  switch (EncapBatchCheck(batch, &bad)) {
    case EncapRefusal::kNone:
      break;
    case EncapRefusal::kSlotPastTemplates:
      ThrowRange(env, "encapBatch: slots[" + std::to_string(bad) + "] = " + std::to_string(slots[bad]) + " is past the " +
                          std::to_string(ntemplates) + " templates");
      return env.Undefined();
    case EncapRefusal::kStartPastArena:
      ThrowRange(env, "encapBatch: starts[" + std::to_string(bad) + "] = " + std::to_string(starts[bad]) +
                          " leaves no packet after the header in the " + std::to_string(arenaLen) + "-byte arena");
      return env.Undefined();
  }
  const uint32_t written = EncapBatchWrite(batch);
  return Napi::Number::New(env, written);
}

}  // namespace

void InitEncap(Napi::Env env, Napi::Object exports) {
  exports.Set("encapBatch", Napi::Function::New(env, EncapBatch, "encapBatch"));
}

}  // namespace vxtun
