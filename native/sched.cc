// Scheduling policy of the process's threads: SCHED_BATCH for the data path.
//
// Why (measured, see README "Scheduling"): at idle a packet crosses three processes (the pod's
// sender, vxtun, the peer's vxtun) by wake-ups. A ftrace of one ping showed a woken SCHED_OTHER
// vxtun thread preempting its still-runnable waker (ping), and the next hop's thread then woken on
// the other, halted vCPU: an IPI, 50-100 µs. With SCHED_BATCH (no wake-up preemption) the same
// trace had every hop of the round trip on one CPU, and idle RTT p50 fell ~15 %. The cost: when
// every CPU is busy, a woken vxtun thread waits for the running task's slice to end instead of
// preempting it. Only threads still at SCHED_OTHER are changed (an operator's chrt stays); threads
// created afterwards (worker threads) inherit the policy.
#include "common.h"

#include <cerrno>
#include <dirent.h>
#include <sched.h>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vxtun {
namespace {

// setThreadsPolicy(batch: boolean): number of threads set. Every thread of the process (all of
// /proc/self/task) that runs SCHED_OTHER or SCHED_BATCH, to SCHED_BATCH or back to SCHED_OTHER,
// priority 0 (no privilege needed for either).
Napi::Value SetThreadsPolicy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    ThrowType(env, "setThreadsPolicy: batch must be a boolean");
    return env.Undefined();
  }
  int policy = info[0].As<Napi::Boolean>().Value() ? SCHED_BATCH : SCHED_OTHER;
  sched_param param{};
  param.sched_priority = 0;
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) {
    ThrowErrno(env, errno, "opendir", "/proc/self/task");
    return env.Undefined();
  }
  int set = 0;
  int firstErr = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
    // Leave a policy someone chose (chrt -f, -i) alone; undo only our own.
    int current = ::sched_getscheduler(tid);
    if (current != SCHED_OTHER && current != SCHED_BATCH) continue;
    if (::sched_setscheduler(tid, policy, &param) == 0) {
      set++;
    } else if (errno != ESRCH && firstErr == 0) {
      firstErr = errno;  // a thread that exited meanwhile is no error
    }
  }
  ::closedir(d);
  if (set == 0 && firstErr != 0) {
    ThrowErrno(env, firstErr, "sched_setscheduler", policy == SCHED_BATCH ? "SCHED_BATCH" : "SCHED_OTHER");
    return env.Undefined();
  }
  return Napi::Number::New(env, set);
}

// setThreadPolicy(batch: boolean): boolean. The calling thread only (an engine switching itself as
// its load changes, see src/datapath/inbound-scheduling.ts): SCHED_BATCH or SCHED_OTHER, priority 0.
// False, and nothing changed, when the thread runs a policy someone else chose (chrt); errno names
// in the error otherwise.
Napi::Value SetThreadPolicy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    ThrowType(env, "setThreadPolicy: batch must be a boolean");
    return env.Undefined();
  }
  bool batch = info[0].As<Napi::Boolean>().Value();
  int current = ::sched_getscheduler(0);
  if (current != SCHED_OTHER && current != SCHED_BATCH) return Napi::Boolean::New(env, false);
  sched_param param{};
  param.sched_priority = 0;
  if (::sched_setscheduler(0, batch ? SCHED_BATCH : SCHED_OTHER, &param) != 0) {
    ThrowErrno(env, errno, "sched_setscheduler", batch ? "SCHED_BATCH" : "SCHED_OTHER");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// sdNotify(socketPath, message): one datagram to systemd's NOTIFY_SOCKET (sd_notify(3)): a path,
// or an abstract address written with a leading '@'. Node has no unix datagram sockets; this is
// the whole of the protocol. Lives here with the other process-level calls.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    ThrowType(env, "sdNotify: socketPath and message must be strings");
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string message = info[1].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    ThrowType(env, "sdNotify: socketPath must be 1-107 bytes");
    return env.Undefined();
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket", path);
    return env.Undefined();
  }
  ssize_t n = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  int err = errno;
  ::close(fd);
  if (n < 0) {
    ThrowErrno(env, err, "sendto", path);
    return env.Undefined();
  }
  return env.Undefined();
}

}  // namespace

void InitSched(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadsPolicy", Napi::Function::New(env, SetThreadsPolicy, "setThreadsPolicy"));
  exports.Set("setThreadPolicy", Napi::Function::New(env, SetThreadPolicy, "setThreadPolicy"));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
}

}  // namespace vxtun
