// Readiness of a descriptor on the Node event loop: a uv_poll_t watching UV_READABLE.
// The callback runs on the main thread through napi_make_callback (so microtasks run after it and
// an exception it throws reaches 'uncaughtException'). epoll is level-triggered here: a callback that
// leaves packets unread is called again on the next loop turn, one that drains them is not.
//
// The express thread (an express path opened with `thread`): one thread per express path waits on
// both its descriptors, the TUN and the UDP socket, while traffic is idle, so a lone packet is
// forwarded without waking the event loop at all. Why: after every poll callback the loop runs a
// turn of its own (check and timer phases, a second epoll_pwait for its idle-time metric), 10-27 µs
// per wake-up on this VM, and a ping round trip wakes vxtun three or four times.
// Ownership: the thread owns both descriptors or neither. A wake-up the express path does not serve
// (a batch, anything it hands over) hands both to the loop: the thread stops waiting on them and
// wakes the poll whose side woke (uv_async), which starts both uv polls, as without the thread, and
// runs the JS callback with what the express path read. The loop hands them back once its last pass
// on each side was quiet (a lone packet forwarded, or nothing there). So the thread and the JS
// pipeline never use one descriptor, buffer or counter block at once; a route swap, which can,
// takes the express path's lock.
#include "common.h"

#include <atomic>
#include <cerrno>
#include <climits>
#include <map>
#include <mutex>
#include <csignal>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

namespace vxtun {
namespace {

struct Poll;

struct ExpressThread {
  void* express = nullptr;
  int epfd = -1;
  int stopfd = -1;  // eventfd: stop waiting and return
  pthread_t th;
  std::mutex mu;  // the fields below; held by the thread through a pass
  Poll* polls[2] = {nullptr, nullptr};  // by side: 0 TUN, 1 UDP
  bool owned = true;                    // the thread waits on both; false: the loop's uv polls do
  bool quiet[2] = {false, false};       // the loop's last pass on that side needed no JS
};

constexpr uint32_t kStopKey = 2;  // epoll data for stopfd (0 and 1 are the sides)

// One per express path, found by the polls of both sides (process-wide: worker threads have their own paths).
std::mutex gThreadsMu;
std::map<void*, ExpressThread*> gThreads;

struct Poll {
  uv_poll_t handle;  // handle.data points back to this Poll
  napi_env env = nullptr;
  Napi::FunctionReference cb;
  napi_async_context actx = nullptr;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  int fd = -1;
  bool active = false;    // started and not yet stopped
  bool jsAlive = true;    // the JS handle object has not been collected
  bool uvClosed = false;  // uv_close's callback has run
  // The express path (express.cc) this descriptor feeds, or none; `side` 0: TUN, 1: UDP.
  void* express = nullptr;
  napi_ref expressRef = nullptr;  // keeps it alive while this poll may call it
  int side = 0;
  // With the express thread: it, the loop's wake-up from it, and whether this uv poll is started.
  ExpressThread* xt = nullptr;
  uv_async_t async;
  std::atomic<int> handed{INT_MIN};  // what the thread's pass read for JS, until OnAsync takes it
  bool polling = false;
  int openHandles = 1;  // uv handles to close before the memory may go (the poll, and async if any)
};

// Tags the JS handle so pollStop can tell it from any other External.
const napi_type_tag kPollTag = {0x76787475'6e706f6cULL, 0x9d1c'4b2e'0a51'3f07ULL};

void LeaveThread(Poll* p);

void MaybeFree(Poll* p) {
  if (!p->jsAlive && p->uvClosed) delete p;
}

void OnClose(uv_handle_t* h) {
  Poll* p = static_cast<Poll*>(h->data);
  if (--p->openHandles > 0) return;
  p->uvClosed = true;
  // Only now may the environment (and, in a worker, this very library) go away.
  if (p->cleanup != nullptr) {
    napi_remove_async_cleanup_hook(p->cleanup);
    p->cleanup = nullptr;
  }
  MaybeFree(p);
}

void OnPoll(uv_poll_t* h, int status, int events);
void CallJs(Poll* p, int status, int pre);

// epoll interest in side's descriptor for the thread: one readiness (then it is off until armed again), or none.
void Interest(ExpressThread* xt, int side, bool armed, int op = EPOLL_CTL_MOD) {
  epoll_event ev{};
  ev.events = armed ? (EPOLLIN | EPOLLONESHOT) : EPOLLONESHOT;  // no event bits: disabled
  ev.data.u32 = static_cast<uint32_t>(side);
  epoll_ctl(xt->epfd, op, xt->polls[side]->fd, &ev);
}

void StartUvPoll(Poll* q) {
  if (q->polling) return;
  q->polling = true;
  uv_poll_start(&q->handle, UV_READABLE, OnPoll);
}

void StopUvPoll(Poll* q) {
  if (!q->polling) return;
  q->polling = false;
  uv_poll_stop(&q->handle);
}

// The thread: wait, serve a wake-up, or hand both descriptors to the loop.
void* ThreadMain(void* arg) {
  ExpressThread* xt = static_cast<ExpressThread*>(arg);
  pthread_setname_np(pthread_self(), "vxtun-express");
  epoll_event ev[3];
  for (;;) {
    int n = epoll_wait(xt->epfd, ev, 3, -1);
    if (n < 0 && errno != EINTR) return nullptr;
    for (int i = 0; i < n; i++) {
      uint32_t side = ev[i].data.u32;
      if (side == kStopKey) return nullptr;
      std::lock_guard<std::mutex> hold(xt->mu);
      Poll* p = xt->polls[side];
      if (!xt->owned || p == nullptr) continue;
      int pre = ExpressOnReadable(xt->express, static_cast<int>(side), false);
      if (pre < 0) {
        ExpressCountThread(xt->express, ExpressThreadEvent::kPass);
        Interest(xt, static_cast<int>(side), true);
        continue;
      }
      xt->owned = false;
      if (xt->polls[1 - side] != nullptr) Interest(xt, static_cast<int>(1 - side), false);
      p->handed.store(pre);
      ExpressCountThread(xt->express, ExpressThreadEvent::kToLoop);
      uv_async_send(&p->async);
    }
  }
}

// On the loop: the thread handed both descriptors over through p. Start both uv polls, run JS.
void OnAsync(uv_async_t* a) {
  Poll* p = static_cast<Poll*>(a->data);
  int pre = p->handed.exchange(INT_MIN);
  if (!p->active || pre == INT_MIN) return;
  {
    std::lock_guard<std::mutex> hold(p->xt->mu);
    for (Poll* q : p->xt->polls) {
      if (q == nullptr) continue;
      StartUvPoll(q);
      p->xt->quiet[q->side] = false;
    }
  }
  CallJs(p, 0, pre);
}

// On the loop: a pass on p's side needed JS (quiet = false) or not; hand both back when both are quiet.
void NoteLoopPass(Poll* p, bool quiet) {
  ExpressThread* xt = p->xt;
  std::lock_guard<std::mutex> hold(xt->mu);
  xt->quiet[p->side] = quiet;
  if (xt->owned || !xt->quiet[0] || !xt->quiet[1] || xt->polls[0] == nullptr || xt->polls[1] == nullptr) return;
  for (Poll* q : xt->polls) {
    StopUvPoll(q);
    Interest(xt, q->side, true);
  }
  xt->owned = true;
  ExpressCountThread(xt->express, ExpressThreadEvent::kBack);
}

// On the loop, at pollStart: join (or start) the express path's thread. False when it cannot be had
// (no descriptors left for its epoll, no thread): the poll then runs on the loop, as without it.
bool JoinThread(Poll* p, uv_loop_t* loop) {
  ExpressThread* xt = nullptr;
  {
    std::lock_guard<std::mutex> g(gThreadsMu);
    auto it = gThreads.find(p->express);
    if (it != gThreads.end()) {
      xt = it->second;
    } else {
      xt = new ExpressThread();
      xt->express = p->express;
      xt->epfd = epoll_create1(EPOLL_CLOEXEC);
      xt->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = kStopKey;
      bool ok = xt->epfd >= 0 && xt->stopfd >= 0 && epoll_ctl(xt->epfd, EPOLL_CTL_ADD, xt->stopfd, &ev) == 0;
      if (ok) {
        // Signals stay with Node's threads (SIGTERM, SIGHUP reach the handlers of the loop they belong to).
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        ok = pthread_create(&xt->th, nullptr, ThreadMain, xt) == 0;
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
      }
      if (!ok) {
        if (xt->epfd >= 0) ::close(xt->epfd);
        if (xt->stopfd >= 0) ::close(xt->stopfd);
        delete xt;
        return false;
      }
      gThreads[p->express] = xt;
    }
  }
  uv_async_init(loop, &p->async, OnAsync);
  p->async.data = p;
  p->openHandles = 2;
  p->xt = xt;
  std::lock_guard<std::mutex> hold(xt->mu);
  xt->polls[p->side] = p;
  Interest(xt, p->side, xt->owned, EPOLL_CTL_ADD);
  if (!xt->owned) StartUvPoll(p);
  return true;
}

// On the loop, at Stop: leave the thread. The other side (if still there) stays with the loop for
// good; the last one out stops the thread.
void LeaveThread(Poll* p) {
  ExpressThread* xt = p->xt;
  bool last;
  {
    std::lock_guard<std::mutex> hold(xt->mu);
    epoll_ctl(xt->epfd, EPOLL_CTL_DEL, p->fd, nullptr);
    xt->polls[p->side] = nullptr;
    Poll* q = xt->polls[1 - p->side];
    if (q != nullptr) {
      xt->owned = false;
      Interest(xt, q->side, false);
      StartUvPoll(q);
    }
    last = q == nullptr;
  }
  p->xt = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&p->async), OnClose);
  if (!last) return;
  {
    std::lock_guard<std::mutex> g(gThreadsMu);
    gThreads.erase(xt->express);
  }
  uint64_t one = 1;
  (void)!::write(xt->stopfd, &one, sizeof one);
  pthread_join(xt->th, nullptr);
  ::close(xt->epfd);
  ::close(xt->stopfd);
  delete xt;
}

// Stops callbacks at once and closes the uv handle; memory goes when both sides are done with it.
void Stop(Poll* p) {
  if (!p->active) return;
  p->active = false;
  uv_poll_stop(&p->handle);
  if (p->xt != nullptr) LeaveThread(p);
  p->cb.Reset();
  p->express = nullptr;
  if (p->expressRef != nullptr) {
    napi_delete_reference(p->env, p->expressRef);
    p->expressRef = nullptr;
  }
  if (p->actx != nullptr) {
    napi_async_destroy(p->env, p->actx);
    p->actx = nullptr;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnClose);
}

// The environment is going away (worker exit, process teardown) with the poll still running: close
// it, and let Node wait for OnClose (which removes the hook) before it unloads the addon.
void AsyncCleanup(napi_async_cleanup_hook_handle /*handle*/, void* arg) { Stop(static_cast<Poll*>(arg)); }

void OnPoll(uv_poll_t* h, int status, int /*events*/) {
  Poll* p = static_cast<Poll*>(h->data);
  if (!p->active) return;
  int pre = 0;
  if (p->express != nullptr && status >= 0) {
    // A lone packet forwarded without JS (or nothing there after all): JS need not run, and the pass
    // was quiet; batches written without JS (-2): JS need not run, but the loop keeps the traffic.
    pre = ExpressOnReadable(p->express, p->side, true);
    if (p->xt != nullptr) NoteLoopPass(p, pre == -1);
    if (pre < 0) return;
  }
  CallJs(p, status, pre);
}

void CallJs(Poll* p, int status, int pre) {
  Napi::Env env(p->env);
  Napi::HandleScope scope(env);
  napi_value argv[3];
  size_t argc = 0;
  if (pre > 0) {
    // Messages the express path read for the JS pipeline, and the rounds it made before: (err = undefined, count, rounds).
    argv[0] = env.Undefined();
    argv[1] = Napi::Number::New(env, pre & ((1 << kRoundShift) - 1));
    argv[2] = Napi::Number::New(env, pre >> kRoundShift);
    argc = 3;
  }
  if (status < 0) {
    // libuv has stopped the handle (POLLERR); tell the reader, whose next read shows the cause.
    Napi::Error e = Napi::Error::New(env, std::string("poll fd ") + std::to_string(p->fd) + ": " +
                                              uv_err_name(status) + " (" + uv_strerror(status) + ")");
    e.Set("code", Napi::String::New(env, uv_err_name(status)));
    e.Set("errno", Napi::Number::New(env, status));
    e.Set("syscall", Napi::String::New(env, "poll"));
    argv[0] = e.Value();
    argc = 1;
  }
  napi_value fn = p->cb.Value();
  napi_value result;
  napi_status s = napi_make_callback(p->env, p->actx, env.Global(), fn, argc, argv, &result);
  if (s != napi_ok && env.IsExceptionPending()) {
    Napi::Error err = env.GetAndClearPendingException();
    napi_fatal_exception(p->env, err.Value());
  }
  // `p` is still valid here even if the callback called pollStop: memory is freed in OnClose.
}

void Finalize(Napi::Env /*env*/, Poll* p) {
  p->jsAlive = false;
  MaybeFree(p);  // a poll still running stays alive until pollStop / the cleanup hook closes it
}

// pollStart(fd, cb, express?, side?): handle. With `express` (expressOpen's handle), each readiness
// goes to the express path first (`side` 0: the TUN, 1: the UDP socket), and cb runs only when it
// hands over: cb(undefined, count, rounds) when it already read `count` messages for the JS pipeline,
// after `rounds` recvmmsg rounds of its own in this wake-up (bulk inbound).
Napi::Value PollStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsFunction()) {
    ThrowType(env, "pollStart: cb must be a function");
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowType(env, "pollStart: no uv event loop");
    return env.Undefined();
  }
  bool withExpress = info.Length() > 2 && !info[2].IsUndefined();
  if (withExpress && !ExpressTag(env, info[2])) {
    ThrowType(env, "pollStart: express must come from expressOpen");
    return env.Undefined();
  }
  int64_t side = 0;
  if (withExpress && !ArgInt(info, 3, "side", 0, 1, &side)) return env.Undefined();
  Poll* p = new Poll();
  p->env = env;
  p->fd = static_cast<int>(fd);
  std::string subject = "fd " + std::to_string(fd);
  int r = uv_poll_init(loop, &p->handle, p->fd);
  p->handle.data = p;
  if (r < 0) {
    delete p;  // never registered with the loop
    ThrowErrno(env, -r, "uv_poll_init", subject);
    return env.Undefined();
  }
  void* expressPath = nullptr;
  if (withExpress) napi_get_value_external(env, info[2], &expressPath);
  bool threaded = expressPath != nullptr && ExpressWantsThread(expressPath);
  r = threaded ? 0 : uv_poll_start(&p->handle, UV_READABLE, OnPoll);
  p->polling = !threaded;
  if (r < 0) {
    p->jsAlive = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnClose);
    ThrowErrno(env, -r, "uv_poll_start", subject);
    return env.Undefined();
  }
  p->cb = Napi::Persistent(info[1].As<Napi::Function>());
  if (withExpress) {
    napi_create_reference(env, info[2], 1, &p->expressRef);
    p->express = expressPath;
    p->side = static_cast<int>(side);
  }
  napi_async_init(env, Napi::Object::New(env), Napi::String::New(env, "vxtun.poll"), &p->actx);
  p->active = true;
  if (threaded && !JoinThread(p, loop)) StartUvPoll(p);
  napi_add_async_cleanup_hook(env, AsyncCleanup, p, &p->cleanup);
  Napi::External<Poll> handle = Napi::External<Poll>::New(env, p, Finalize);
  napi_type_tag_object(env, handle, &kPollTag);
  return handle;
}

// pollStop(handle): undefined. Idempotent.
Napi::Value PollStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool tagged = false;
  if (info.Length() < 1 || !info[0].IsExternal() ||
      napi_check_object_type_tag(env, info[0], &kPollTag, &tagged) != napi_ok || !tagged) {
    ThrowType(env, "pollStop: handle must come from pollStart");
    return env.Undefined();
  }
  Stop(info[0].As<Napi::External<Poll>>().Data());
  return env.Undefined();
}

}  // namespace

void InitPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("pollStart", Napi::Function::New(env, PollStart, "pollStart"));
  exports.Set("pollStop", Napi::Function::New(env, PollStop, "pollStop"));
}

}  // namespace vxtun
