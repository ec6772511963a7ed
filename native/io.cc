// Batched, non-blocking packet I/O on a descriptor (a TUN fd: one read() = one packet).
#include "common.h"

#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace vxtun {
namespace {

// The `sizes` argument: an Int32Array (written in place) or a plain JS array of numbers.
struct Sizes {
  Napi::Env env;
  napi_value array = nullptr;
  int32_t* typed = nullptr;
  size_t typedLen = 0;
  bool isTyped = false;

  explicit Sizes(Napi::Env e) : env(e) {}

  bool Init(napi_value v, const char* fn) {
    bool ok = false;
    if (napi_is_typedarray(env, v, &ok) == napi_ok && ok) {
      napi_typedarray_type type;
      void* p = nullptr;
      if (napi_get_typedarray_info(env, v, &type, &typedLen, &p, nullptr, nullptr) == napi_ok &&
          type == napi_int32_array) {
        typed = static_cast<int32_t*>(p);
        isTyped = true;
        return true;
      }
    } else if (napi_is_array(env, v, &ok) == napi_ok && ok) {
      array = v;
      return true;
    }
    ThrowType(env, std::string(fn) + ": sizes must be an Int32Array or an array of numbers");
    return false;
  }

  bool Check(size_t n, const char* fn) {
    if (isTyped && typedLen < n) {
      ThrowRange(env, std::string(fn) + ": sizes has " + std::to_string(typedLen) + " entries, need " +
                          std::to_string(n));
      return false;
    }
    return true;
  }

  void Set(size_t i, int32_t value) {
    if (isTyped) {
      typed[i] = value;
    } else {
      napi_value n;
      napi_create_int32(env, value, &n);
      napi_set_element(env, array, static_cast<uint32_t>(i), n);
    }
  }

  bool Get(size_t i, int64_t* out, const char* fn) {
    if (isTyped) {
      *out = typed[i];
      return true;
    }
    napi_value n;
    double d = -1;
    if (napi_get_element(env, array, static_cast<uint32_t>(i), &n) != napi_ok ||
        napi_get_value_double(env, n, &d) != napi_ok || !(d >= 0 && d <= INT32_MAX) ||
        d != static_cast<double>(static_cast<int64_t>(d))) {
      ThrowRange(env, std::string(fn) + ": sizes[" + std::to_string(i) + "] must be a non-negative integer");
      return false;
    }
    *out = static_cast<int64_t>(d);
    return true;
  }
};

bool GetArray(const Napi::CallbackInfo& info, size_t i, const char* what, napi_value* out, uint32_t* len) {
  bool ok = false;
  if (i >= info.Length() || napi_is_array(info.Env(), info[i], &ok) != napi_ok || !ok) {
    ThrowType(info.Env(), std::string(what) + " must be an array of Buffers");
    return false;
  }
  *out = info[i];
  napi_get_array_length(info.Env(), *out, len);
  return true;
}

bool GetBuf(Napi::Env env, napi_value bufs, uint32_t i, const char* fn, uint8_t** data, size_t* len) {
  napi_value b;
  if (napi_get_element(env, bufs, i, &b) != napi_ok) return false;
  std::string name = std::string(fn) + ": bufs[" + std::to_string(i) + "]";
  return ArgBytes(env, b, name.c_str(), data, len);
}

std::string FdSubject(int fd) { return "fd " + std::to_string(fd); }

// readBatch(fd, bufs, offset, sizes): number
// Reads one packet per buffer at bufs[i] + offset until EAGAIN or the batch is full.
Napi::Value ReadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0, offset = 0;
  napi_value bufs;
  uint32_t n = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  if (!GetArray(info, 1, "readBatch: bufs", &bufs, &n)) return env.Undefined();
  if (!ArgInt(info, 2, "offset", 0, INT_MAX, &offset)) return env.Undefined();
  Sizes sizes(env);
  if (info.Length() < 4 || !sizes.Init(info[3], "readBatch") || !sizes.Check(n, "readBatch"))
    return env.Undefined();

  uint32_t count = 0;
  while (count < n) {
    uint8_t* data;
    size_t len;
    if (!GetBuf(env, bufs, count, "readBatch", &data, &len)) return env.Undefined();
    if (static_cast<size_t>(offset) >= len) {
      ThrowRange(env, "readBatch: offset " + std::to_string(offset) + " leaves no room in bufs[" +
                          std::to_string(count) + "] (" + std::to_string(len) + " bytes)");
      return env.Undefined();
    }
    ssize_t r;
    do {
      r = ::read(static_cast<int>(fd), data + offset, len - static_cast<size_t>(offset));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      // Packets already read are handed over; a lasting error shows up on the next call.
      if (count > 0) break;
      ThrowErrno(env, err, "read", FdSubject(static_cast<int>(fd)));
      return env.Undefined();
    }
    if (r == 0) break;  // end of file (not a TUN fd): nothing more to read
    sizes.Set(count, static_cast<int32_t>(r));
    count++;
  }
  return Napi::Number::New(env, count);
}

// writeBatch(fd, bufs, sizes, offset, count, refused?: Uint8Array): number of packets accepted.
// EAGAIN/ENOBUFS stop the batch; EINVAL/EIO/EMSGSIZE (a packet the kernel refuses) skip that packet.
// refused[i] is set to 1 for each packet that did not go in (skipped or not tried); others untouched.
Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0, offset = 0, count = 0;
  napi_value bufs;
  uint32_t n = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  if (!GetArray(info, 1, "writeBatch: bufs", &bufs, &n)) return env.Undefined();
  Sizes sizes(env);
  if (info.Length() < 3 || !sizes.Init(info[2], "writeBatch")) return env.Undefined();
  if (!ArgInt(info, 3, "offset", 0, INT_MAX, &offset)) return env.Undefined();
  if (!ArgInt(info, 4, "count", 0, n, &count)) return env.Undefined();
  if (!sizes.Check(static_cast<size_t>(count), "writeBatch")) return env.Undefined();
  uint8_t* refused;
  if (!ArgRefused(info, 5, count, "writeBatch: refused", &refused)) return env.Undefined();

  uint32_t written = 0;
  uint32_t i = 0;
  for (; i < count; i++) {
    uint8_t* data;
    size_t len;
    int64_t size;
    if (!GetBuf(env, bufs, i, "writeBatch", &data, &len)) return env.Undefined();
    if (!sizes.Get(i, &size, "writeBatch")) return env.Undefined();
    if (static_cast<size_t>(offset) + static_cast<size_t>(size) > len) {
      ThrowRange(env, "writeBatch: offset " + std::to_string(offset) + " + sizes[" + std::to_string(i) + "] " +
                          std::to_string(size) + " exceeds bufs[" + std::to_string(i) + "] (" + std::to_string(len) +
                          " bytes)");
      return env.Undefined();
    }
    ssize_t r;
    do {
      r = ::write(static_cast<int>(fd), data + offset, static_cast<size_t>(size));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) break;
      if (err == EINVAL || err == EIO || err == EMSGSIZE) {  // refused packet: skip it
        if (refused != nullptr) refused[i] = 1;
        continue;
      }
      if (i > 0) break;  // report what went; a lasting error shows up on the next call
      ThrowErrno(env, err, "write", FdSubject(static_cast<int>(fd)));
      return env.Undefined();
    }
    written++;
  }
  if (refused != nullptr && i < count) std::memset(refused + i, 1, count - i);  // not tried
  return Napi::Number::New(env, written);
}

// close(fd): undefined
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  // Linux releases the descriptor even when close() reports EINTR: never retry.
  if (::close(static_cast<int>(fd)) < 0 && errno != EINTR) {
    ThrowErrno(env, errno, "close", FdSubject(static_cast<int>(fd)));
  }
  return env.Undefined();
}

// setBlocking(fd, blocking): undefined. Clears or sets O_NONBLOCK on the open file (shared by its
// duplicates). Only for designs that read with one blocking read per packet (the bench's naive
// reference dataplane); vxtun itself reads non-blocking.
Napi::Value SetBlocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0;
  if (!ArgInt(info, 0, "fd", 0, INT_MAX, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsBoolean()) {
    ThrowType(env, "setBlocking: blocking must be a boolean");
    return env.Undefined();
  }
  bool blocking = info[1].As<Napi::Boolean>().Value();
  int flags = ::fcntl(static_cast<int>(fd), F_GETFL);
  if (flags < 0 || ::fcntl(static_cast<int>(fd), F_SETFL, blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK)) < 0) {
    ThrowErrno(env, errno, "fcntl", FdSubject(static_cast<int>(fd)));
  }
  return env.Undefined();
}

}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("readBatch", Napi::Function::New(env, ReadBatch, "readBatch"));
  exports.Set("writeBatch", Napi::Function::New(env, WriteBatch, "writeBatch"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("setBlocking", Napi::Function::New(env, SetBlocking, "setBlocking"));
}

}  // namespace vxtun
