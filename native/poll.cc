// Readiness of a descriptor on the Node event loop: a uv_poll_t watching UV_READABLE.
// The callback runs on the main thread through napi_make_callback (so microtasks run after it and
// an exception it throws reaches 'uncaughtException'). epoll is level-triggered here: a callback that
// leaves packets unread is called again on the next loop turn, one that drains them is not.
#include "common.h"

#include <climits>
#include <uv.h>

namespace vxtun {
namespace {

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
};

// Tags the JS handle so pollStop can tell it from any other External.
const napi_type_tag kPollTag = {0x76787475'6e706f6cULL, 0x9d1c'4b2e'0a51'3f07ULL};

void MaybeFree(Poll* p) {
  if (!p->jsAlive && p->uvClosed) delete p;
}

void OnClose(uv_handle_t* h) {
  Poll* p = static_cast<Poll*>(h->data);
  p->uvClosed = true;
  // Only now may the environment (and, in a worker, this very library) go away.
  if (p->cleanup != nullptr) {
    napi_remove_async_cleanup_hook(p->cleanup);
    p->cleanup = nullptr;
  }
  MaybeFree(p);
}

// Stops callbacks at once and closes the uv handle; memory goes when both sides are done with it.
void Stop(Poll* p) {
  if (!p->active) return;
  p->active = false;
  uv_poll_stop(&p->handle);
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
    // A lone packet forwarded without JS (or nothing there after all): JS need not run.
    pre = ExpressOnReadable(p->express, p->side);
    if (pre < 0) return;
  }
  Napi::Env env(p->env);
  Napi::HandleScope scope(env);
  napi_value argv[2];
  size_t argc = 0;
  if (pre > 0) {
    // Messages the express path read for the JS pipeline: (err = undefined, count).
    argv[0] = env.Undefined();
    argv[1] = Napi::Number::New(env, pre);
    argc = 2;
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
// hands over: cb(undefined, count) when it already read `count` messages for the JS pipeline.
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
  r = uv_poll_start(&p->handle, UV_READABLE, OnPoll);
  if (r < 0) {
    p->jsAlive = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnClose);
    ThrowErrno(env, -r, "uv_poll_start", subject);
    return env.Undefined();
  }
  p->cb = Napi::Persistent(info[1].As<Napi::Function>());
  if (withExpress) {
    napi_create_reference(env, info[2], 1, &p->expressRef);
    napi_get_value_external(env, info[2], &p->express);
    p->side = static_cast<int>(side);
  }
  napi_async_init(env, Napi::Object::New(env), Napi::String::New(env, "vxtun.poll"), &p->actx);
  p->active = true;
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
