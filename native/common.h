// Shared helpers of the vxtun native addon (node-addon-api, C++ exceptions disabled).
//
// Conventions (in the style of udx-native): JS owns the buffers of a call, native code only fills or
// reads them during it; a native object that keeps a pointer past the call holds a reference to
// what it points into (expressOpen) or owns that memory itself (tunQueueOpen); one call per batch; a failed system call becomes a JS Error whose message reads
// "<what> <subject>: <ERRNO> (<strerror>)" with the Node-style fields code / errno (negative) / syscall.
#pragma once

// A worker being terminated cannot take a thrown exception: swallow it instead of aborting the process.
// (Defined here rather than in binding.gyp so that every part of the addon agrees.)
#ifndef NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#define NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#endif
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace vxtun {

// Throws (as a pending JS exception) an Error for errno value `err`.
// `syscall` names the call ("read", "TUNSETIFF"), `subject` what it was applied to ("vxtun0", "fd 12").
// `hint`, when not empty, is appended after "; ".
void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& subject,
                const char* hint = nullptr);

// The symbolic name of an errno value ("EAGAIN"), "E<number>" when unknown.
std::string ErrnoName(int err);

void ThrowType(Napi::Env env, const std::string& msg);
void ThrowRange(Napi::Env env, const std::string& msg);

// Argument helpers: on failure they throw and return false.
bool ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi, int64_t* out);
bool ArgString(const Napi::CallbackInfo& info, size_t i, const char* name, std::string* out);
bool ArgBytes(Napi::Env env, napi_value v, const char* name, uint8_t** data, size_t* len);
bool ArgIfName(const Napi::CallbackInfo& info, size_t i, std::string* out);
// An optional `refused` Uint8Array argument of a batched write (info[i], absent or undefined: none):
// one byte per packet, which the write sets to 1 for each packet that did not go in. At least
// `count` bytes; *out stays nullptr without one.
bool ArgRefused(const Napi::CallbackInfo& info, size_t i, int64_t count, const char* name, uint8_t** out);
// A counters block shared with JS: a Float64Array of at least `minLength` entries.
bool ArgCounters(Napi::Env env, napi_value v, size_t minLength, double** out);
// An Int32Array argument ("<name> must be an Int32Array" otherwise).
bool ArgInt32s(Napi::Env env, napi_value v, const char* name, int32_t** out, size_t* len);
// Whether v is a typed array, and if so its element type, data and length. Never throws.
bool TypedArrayOf(Napi::Env env, napi_value v, napi_typedarray_type* type, void** data, size_t* len);

// Registration of the parts of the addon.
void InitTun(Napi::Env env, Napi::Object exports);
void InitIo(Napi::Env env, Napi::Object exports);
void InitPoll(Napi::Env env, Napi::Object exports);
void InitChecksum(Napi::Env env, Napi::Object exports);
void InitEncap(Napi::Env env, Napi::Object exports);  // encap.cc: batch VXLAN + Ethernet header copy
void InitUdp(Napi::Env env, Napi::Object exports);
void InitTunOffload(Napi::Env env, Napi::Object exports);
void InitExpress(Napi::Env env, Napi::Object exports);  // with InitExpressRules (express_rules.cc: its rules' test entry points)
void InitExpressRules(Napi::Env env, Napi::Object exports);
void InitSched(Napi::Env env, Napi::Object exports);  // sched.cc: SCHED_BATCH for the data path
void InitMemory(Napi::Env env, Napi::Object exports);  // memory.cc: the executable's start-up pages given back

// The express path (express.cc), as poll.cc drives it: whether v is an expressOpen handle, and one
// readiness of `side` (0: TUN, 1: UDP) — -1 when JS need not run (a quiet pass), -2 when JS need not
// run but traffic was written (the loop keeps the descriptors), else what to tell it (see there).
// `onLoop`: on the event loop's poll, not the express thread (which serves only lone packets).
bool ExpressTag(napi_env env, napi_value v);
int ExpressOnReadable(void* express, int side, bool onLoop);
// A hand-over's value: the messages read for JS in the low bits, and above them the recvmmsg rounds
// the express path already made in this wake-up (so the bind's drain keeps its budget per wake-up).
constexpr int kRoundShift = 16;
// Whether its polls should use the express thread (expressOpen's `thread`), and that thread's counters.
bool ExpressWantsThread(void* express);
enum class ExpressThreadEvent { kPass, kToLoop, kBack };
void ExpressCountThread(void* express, ExpressThreadEvent e);

}  // namespace vxtun
