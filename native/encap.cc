// Batch encap: the header copy that puts VXLAN (I flag, VNI) + inner Ethernet (dst = peer VTEP MAC,
// src = ours, EtherType by IP version) in front of every packet of a batch, in one call.
//
// The TS side owns everything: the packets (each in its own buffer, the IP packet at offset + 22),
// one 22-byte header template per peer of the batch (built with the wire emitters, see
// src/engine/encap.ts), and the peer slot of each packet (-1 = not forwarded, left untouched).
#include "common.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace vxtun {
namespace {

constexpr size_t kHeaderLen = 22;     // VXLAN 8 + Ethernet 14
constexpr size_t kEtherTypeAt = 20;   // inside the header
constexpr size_t kChunk = 256;        // packets checked before any of them is written

// encapBatch(bufs, offset, count, slots, templates): number of headers written.
// For i < count with slots[i] >= 0: bufs[i][offset, offset + 22) = templates[slots[i] * 22, + 22),
// its EtherType set from the IP version nibble at bufs[i][offset + 22] (4: 0x0800, 6: 0x86DD).
// A packet of any other version is left untouched and not counted. Bad arguments throw before
// anything of their chunk of 256 packets is written.
Napi::Value EncapBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool isArray = false;
  if (info.Length() < 5 || napi_is_array(env, info[0], &isArray) != napi_ok || !isArray) {
    ThrowType(env, "encapBatch: bufs must be an array of Buffers");
    return env.Undefined();
  }
  napi_value bufs = info[0];
  uint32_t nbufs = 0;
  napi_get_array_length(env, bufs, &nbufs);
  int64_t offset = 0, count = 0;
  if (!ArgInt(info, 1, "encapBatch: offset", 0, INT32_MAX, &offset)) return env.Undefined();
  bool ok = false;
  napi_typedarray_type type;
  size_t nslots = 0;
  void* p = nullptr;
  if (napi_is_typedarray(env, info[3], &ok) != napi_ok || !ok ||
      napi_get_typedarray_info(env, info[3], &type, &nslots, &p, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array) {
    ThrowType(env, "encapBatch: slots must be an Int32Array");
    return env.Undefined();
  }
  const int32_t* slots = static_cast<const int32_t*>(p);
  if (!ArgInt(info, 2, "encapBatch: count", 0, std::min<int64_t>(nbufs, static_cast<int64_t>(nslots)), &count))
    return env.Undefined();
  uint8_t* templates;
  size_t templatesLen;
  if (!ArgBytes(env, info[4], "encapBatch: templates", &templates, &templatesLen)) return env.Undefined();
  const size_t ntemplates = templatesLen / kHeaderLen;

  uint32_t written = 0;
  uint8_t* dst[kChunk];
  for (int64_t base = 0; base < count; base += kChunk) {
    const int64_t end = std::min<int64_t>(count, base + static_cast<int64_t>(kChunk));
    for (int64_t i = base; i < end; i++) {
      dst[i - base] = nullptr;
      const int32_t slot = slots[i];
      if (slot < 0) continue;
      if (static_cast<size_t>(slot) >= ntemplates) {
        ThrowRange(env, "encapBatch: slots[" + std::to_string(i) + "] = " + std::to_string(slot) +
                            " is past the " + std::to_string(ntemplates) + " templates");
        return env.Undefined();
      }
      napi_value b;
      uint8_t* data;
      size_t len;
      if (napi_get_element(env, bufs, static_cast<uint32_t>(i), &b) != napi_ok ||
          !ArgBytes(env, b, "encapBatch: bufs[i]", &data, &len))
        return env.Undefined();
      if (static_cast<size_t>(offset) + kHeaderLen >= len) {
        ThrowRange(env, "encapBatch: bufs[" + std::to_string(i) + "] (" + std::to_string(len) +
                            " bytes) has no packet after offset " + std::to_string(offset) + " + 22");
        return env.Undefined();
      }
      dst[i - base] = data + offset;
    }
    for (int64_t i = base; i < end; i++) {
      uint8_t* h = dst[i - base];
      if (h == nullptr) continue;
      const uint8_t version = h[kHeaderLen] >> 4;
      if (version != 4 && version != 6) continue;
      std::memcpy(h, templates + static_cast<size_t>(slots[i]) * kHeaderLen, kHeaderLen);
      h[kEtherTypeAt] = version == 4 ? 0x08 : 0x86;
      h[kEtherTypeAt + 1] = version == 4 ? 0x00 : 0xdd;
      written++;
    }
  }
  return Napi::Number::New(env, written);
}

}  // namespace

void InitEncap(Napi::Env env, Napi::Object exports) {
  exports.Set("encapBatch", Napi::Function::New(env, EncapBatch, "encapBatch"));
}

}  // namespace vxtun
