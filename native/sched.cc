// Scheduling policy of the process's threads: SCHED_BATCH for the data path.
//
// Why: at idle a packet crosses three processes (sender, vxtun, vxtun on the peer node) by wake-ups.
// A normal (SCHED_OTHER) thread that is woken preempts its waker, so the waker (the pod's sender,
// still runnable) keeps its CPU busy and the scheduler puts the next wake-up on another, idle CPU:
// on a VM that means an IPI and a halted vCPU to wake, 50-100 µs each. A SCHED_BATCH thread never
// preempts on wake-up: the waker runs on until it sleeps, and a sync wake-up (sockets, TUN) then
// keeps the wakee on the same, now idle CPU — the whole round trip stays on one CPU, as the kernel's
// own VXLAN does in softirq. Under load the policy changes nothing but wake-up preemption (same
// weight, same fair share). Threads created afterwards (worker threads) inherit it.
#include "common.h"

#include <cerrno>
#include <dirent.h>
#include <sched.h>
#include <cstdlib>

namespace vxtun {
namespace {

// setThreadsPolicy(batch: boolean): number of threads set. Every thread of the process (all of
// /proc/self/task), SCHED_BATCH or back to SCHED_OTHER, priority 0 (no privilege needed for either).
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

}  // namespace

void InitSched(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadsPolicy", Napi::Function::New(env, SetThreadsPolicy, "setThreadsPolicy"));
}

}  // namespace vxtun
