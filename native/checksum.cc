// checksum / csumIncremental bindings over checksum.h.
#include "checksum.h"

#include "common.h"

namespace vxtun {
namespace {

// checksum(buf, offset, length, initial?): number in [0, 0xffff]
Napi::Value Checksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* data;
  size_t len;
  int64_t offset = 0, length = 0, initial = 0;
  if (info.Length() < 1 || !ArgBytes(env, info[0], "checksum: buf", &data, &len)) return env.Undefined();
  if (!ArgInt(info, 1, "offset", 0, static_cast<int64_t>(len), &offset)) return env.Undefined();
  if (!ArgInt(info, 2, "length", 0, static_cast<int64_t>(len) - offset, &length)) return env.Undefined();
  if (info.Length() > 3 && !info[3].IsUndefined() && !ArgInt(info, 3, "initial", 0, 0xffffffffLL, &initial))
    return env.Undefined();
  uint32_t r = Csum16(data + offset, static_cast<size_t>(length), static_cast<uint32_t>(initial));
  return Napi::Number::New(env, r);
}

// csumIncremental(oldCsum, oldWord, newWord): number in [0, 0xffff]
Napi::Value CsumIncr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t hc = 0, m = 0, m2 = 0;
  if (!ArgInt(info, 0, "oldCsum", 0, 0xffff, &hc) || !ArgInt(info, 1, "oldWord", 0, 0xffff, &m) ||
      !ArgInt(info, 2, "newWord", 0, 0xffff, &m2))
    return env.Undefined();
  return Napi::Number::New(env, CsumIncremental(static_cast<uint32_t>(hc), static_cast<uint32_t>(m),
                                                static_cast<uint32_t>(m2)));
}

}  // namespace

void InitChecksum(Napi::Env env, Napi::Object exports) {
  exports.Set("checksum", Napi::Function::New(env, Checksum, "checksum"));
  exports.Set("csumIncremental", Napi::Function::New(env, CsumIncr, "csumIncremental"));
}

}  // namespace vxtun
