// vxtun native addon: entry point and shared helpers.
// Parts: tun.cc (TUN open, link and route ioctls), io.cc (batched read/write, close),
// poll.cc (uv_poll readiness), checksum.cc (RFC 1071 / RFC 1624), udp.cc (recvmmsg/sendmmsg, UDP GSO),
// tun_offload.cc (IFF_VNET_HDR: TSO super-packets segmented, checksums finished), express.cc (a lone
// packet forwarded from the poll callback without JS), sched.cc (SCHED_BATCH for the process's threads),
// memory.cc (the executable's pages start-up touched, given back);
// datapath.h is what the data-path parts share.
#include "common.h"
#include "counters.def"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <net/if.h>

namespace vxtun {

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  if (name != nullptr) return name;
  return "E" + std::to_string(err);
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& subject, const char* hint) {
  std::string code = ErrnoName(err);
  std::string msg = std::string(syscall);
  if (!subject.empty()) msg += " " + subject;
  msg += ": " + code + " (" + strerror(err) + ")";
  if (hint != nullptr && hint[0] != '\0') msg += "; " + std::string(hint);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

void ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
}

void ThrowRange(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
}

bool TypedArrayOf(Napi::Env env, napi_value v, napi_typedarray_type* type, void** data, size_t* len) {
  bool ok = false;
  return napi_is_typedarray(env, v, &ok) == napi_ok && ok &&
         napi_get_typedarray_info(env, v, type, len, data, nullptr, nullptr) == napi_ok;
}

bool ArgCounters(Napi::Env env, napi_value v, size_t minLength, double** out) {
  napi_typedarray_type type;
  size_t length = 0;
  void* p = nullptr;
  if (TypedArrayOf(env, v, &type, &p, &length) && type == napi_float64_array && length >= minLength) {
    *out = static_cast<double*>(p);
    return true;
  }
  ThrowType(env, "counters must be a Float64Array of at least " + std::to_string(minLength) + " entries");
  return false;
}

bool ArgInt32s(Napi::Env env, napi_value v, const char* name, int32_t** out, size_t* len) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (TypedArrayOf(env, v, &type, &p, len) && type == napi_int32_array) {
    *out = static_cast<int32_t*>(p);
    return true;
  }
  ThrowType(env, std::string(name) + " must be an Int32Array");
  return false;
}

bool ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi, int64_t* out) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) {
    ThrowType(env, std::string(name) + " must be a number");
    return false;
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    ThrowRange(env, std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "], got " + info[i].ToString().Utf8Value());
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool ArgString(const Napi::CallbackInfo& info, size_t i, const char* name, std::string* out) {
  if (i >= info.Length() || !info[i].IsString()) {
    ThrowType(info.Env(), std::string(name) + " must be a string");
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

bool ArgBytes(Napi::Env env, napi_value v, const char* name, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (TypedArrayOf(env, v, &type, &p, len) &&
      (type == napi_uint8_array || type == napi_int8_array || type == napi_uint8_clamped_array)) {
    *data = static_cast<uint8_t*>(p);
    return true;
  }
  ThrowType(env, std::string(name) + " must be a Buffer or Uint8Array");
  return false;
}

bool ArgRefused(const Napi::CallbackInfo& info, size_t i, int64_t count, const char* name, uint8_t** out) {
  *out = nullptr;
  if (info.Length() <= i || info[i].IsUndefined()) return true;
  size_t len = 0;
  if (!ArgBytes(info.Env(), info[i], name, out, &len)) return false;
  if (len < static_cast<size_t>(count)) {
    ThrowRange(info.Env(), std::string(name) + " has " + std::to_string(len) + " bytes for " + std::to_string(count) + " packets");
    return false;
  }
  return true;
}

bool ArgIfName(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (!ArgString(info, i, "interface name", out)) return false;
  if (out->size() >= IFNAMSIZ) {
    ThrowRange(info.Env(), "interface name \"" + *out + "\" is longer than " + std::to_string(IFNAMSIZ - 1) + " bytes");
    return false;
  }
  if (out->find('\0') != std::string::npos) {
    ThrowType(info.Env(), "interface name contains a NUL byte");
    return false;
  }
  return true;
}

namespace {

// counterNames: { tun, udp, express }, each the names of a counter block in index order (counters.def).
Napi::Object CounterNames(Napi::Env env) {
  auto list = [env](std::initializer_list<const char*> names) {
    Napi::Array a = Napi::Array::New(env, names.size());
    uint32_t i = 0;
    for (const char* n : names) a.Set(i++, Napi::String::New(env, n));
    a.Freeze();
    return a;
  };
#define VXTUN_COUNTER_NAME(id, name, doc) #name,
  Napi::Object o = Napi::Object::New(env);
  o.Set("tun", list({VXTUN_TUN_COUNTERS(VXTUN_COUNTER_NAME)}));
  o.Set("udp", list({VXTUN_UDP_COUNTERS(VXTUN_COUNTER_NAME)}));
  o.Set("express", list({VXTUN_EXPRESS_COUNTERS(VXTUN_COUNTER_NAME)}));
#undef VXTUN_COUNTER_NAME
  o.Freeze();
  return o;
}

}  // namespace

}  // namespace vxtun

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vxtun::InitTun(env, exports);
  vxtun::InitIo(env, exports);
  vxtun::InitPoll(env, exports);
  vxtun::InitChecksum(env, exports);
  vxtun::InitEncap(env, exports);
  vxtun::InitUdp(env, exports);
  vxtun::InitTunOffload(env, exports);
  vxtun::InitExpress(env, exports);
  vxtun::InitSched(env, exports);
  vxtun::InitMemory(env, exports);
  exports.Set("counterNames", vxtun::CounterNames(env));
  return exports;
}

NODE_API_MODULE(vxtun_native, Init)
