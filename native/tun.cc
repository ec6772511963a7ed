// TUN device creation and the IPv4 link / route ioctls (the same ones `ifconfig` and `route` use).
#include "common.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vxtun {
namespace {

// Closes a descriptor on scope exit, preserving errno.
struct FdGuard {
  int fd;
  explicit FdGuard(int f) : fd(f) {}
  ~FdGuard() {
    if (fd >= 0) {
      int saved = errno;
      ::close(fd);
      errno = saved;
    }
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

// <linux/if_tun.h> of Linux 6.2; the build host's headers may be older than the kernel we run on.
constexpr unsigned int kTunUso4 = 0x20;
constexpr unsigned int kTunUso6 = 0x40;

int ControlSocket() { return ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

bool ParseIPv4(Napi::Env env, const std::string& s, const char* name, in_addr* out) {
  if (inet_pton(AF_INET, s.c_str(), out) != 1) {
    ThrowType(env, std::string(name) + " is not an IPv4 address: \"" + s + "\"");
    return false;
  }
  return true;
}

in_addr MaskOf(int prefixLen) {
  in_addr m;
  m.s_addr = prefixLen == 0 ? 0 : htonl(0xffffffffu << (32 - prefixLen));
  return m;
}

void SetSockaddr(sockaddr* sa, in_addr addr) {
  sockaddr_in sin;
  std::memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr = addr;
  std::memcpy(sa, &sin, sizeof sin);
}

void CopyName(ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof *ifr);
  std::memcpy(ifr->ifr_name, name.data(), name.size());  // size < IFNAMSIZ checked by ArgIfName
}

// tunOpen(name: string, { offload?: boolean, uso?: boolean, multiQueue?: boolean }?):
//   { fd: number, name: string, vnetHdr: boolean, offload: boolean, uso: boolean }
// With offload, the device carries a virtio_net_hdr on every packet (IFF_VNET_HDR) and takes
// TUNSETOFFLOAD(CSUM|TSO4|TSO6): the kernel may then hand us TCP super-packets and unfinished
// checksums (tun_offload.cc finishes both). A kernel refusing TUNSETOFFLOAD leaves offload false.
// With uso too, USO4|USO6 are asked for first (Linux >= 6.2; older kernels refuse unknown flags with
// EINVAL, and we ask again without): the kernel may then hand us UDP super-packets as well, and takes
// ours (tun_offload.cc coalesces runs of UDP datagrams). The offload flags belong to the device, so
// every queue of a multi-queue device must ask for the same ones.
Napi::Value TunOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ArgIfName(info, 0, &name)) return env.Undefined();
  bool wantOffload = false, wantUso = false, multiQueue = false;
  if (info.Length() > 1 && info[1].IsObject()) {
    wantOffload = info[1].As<Napi::Object>().Get("offload").ToBoolean().Value();
    wantUso = wantOffload && info[1].As<Napi::Object>().Get("uso").ToBoolean().Value();
    // IFF_MULTI_QUEUE: every open of the same name attaches one more queue (one per worker thread).
    multiQueue = info[1].As<Napi::Object>().Get("multiQueue").ToBoolean().Value();
  }

  FdGuard fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (fd.fd < 0) {
    int err = errno;
    const char* hint = nullptr;
    if (err == ENOENT || err == ENODEV || err == ENXIO)
      hint = "the TUN driver is unavailable (modprobe tun; in a container, pass --device /dev/net/tun)";
    else if (err == EACCES || err == EPERM)
      hint = "needs root or CAP_NET_ADMIN";
    ThrowErrno(env, err, "open", "/dev/net/tun", hint);
    return env.Undefined();
  }

  ifreq ifr;
  CopyName(&ifr, name);
  ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (wantOffload ? IFF_VNET_HDR : 0) | (multiQueue ? IFF_MULTI_QUEUE : 0));
  if (::ioctl(fd.fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    const char* hint = nullptr;
    if (err == EPERM || err == EACCES) hint = "needs root or CAP_NET_ADMIN in the network namespace";
    else if (err == EBUSY) hint = "the device exists and is attached to another process";
    else if (err == EINVAL) hint = "invalid name, or a non-TUN device of that name exists";
    ThrowErrno(env, err, "TUNSETIFF", name.empty() ? std::string("(auto)") : name, hint);
    return env.Undefined();
  }

  // A later queue of a multi-queue device keeps the device's flags whatever it asked for: a queue
  // that disagrees about the virtio header would misread every packet, so it is refused here.
  ifreq got;
  std::memset(&got, 0, sizeof got);
  if (::ioctl(fd.fd, TUNGETIFF, &got) == 0 && ((got.ifr_flags & IFF_VNET_HDR) != 0) != wantOffload) {
    ThrowErrno(env, EINVAL, "TUNSETIFF", std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ)),
               "the device's virtio header setting differs from this queue's (open every queue with the same offload)");
    return env.Undefined();
  }

  bool offload = false, uso = false;
  if (wantOffload) {
    unsigned int features = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    uso = wantUso && ::ioctl(fd.fd, TUNSETOFFLOAD, features | kTunUso4 | kTunUso6) == 0;
    offload = uso || ::ioctl(fd.fd, TUNSETOFFLOAD, features) == 0;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd.release()));
  out.Set("name", Napi::String::New(env, std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ))));
  out.Set("vnetHdr", Napi::Boolean::New(env, wantOffload));
  out.Set("offload", Napi::Boolean::New(env, offload));
  out.Set("uso", Napi::Boolean::New(env, uso));
  return out;
}

constexpr int kMaxTxQueueLen = 100000;

// linkConfigure(name, { mtu?, txQueueLen?, ipv4?, prefixLen?, up? }): undefined
Napi::Value LinkConfigure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ArgIfName(info, 0, &name)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsObject()) {
    ThrowType(env, "linkConfigure options must be an object");
    return env.Undefined();
  }
  Napi::Object opts = info[1].As<Napi::Object>();

  // Validate everything before the first ioctl.
  bool hasMtu = false, hasAddr = false, hasQlen = false, up = false;
  int mtu = 0, prefixLen = 32, qlen = 0;
  in_addr addr{};
  Napi::Value v = opts.Get("mtu");
  if (!v.IsUndefined()) {
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 68 && d <= 65535) || d != static_cast<int>(d)) {
      ThrowRange(env, "mtu must be an integer in [68, 65535]");
      return env.Undefined();
    }
    hasMtu = true;
    mtu = static_cast<int>(d);
  }
  v = opts.Get("txQueueLen");
  if (!v.IsUndefined()) {
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 1 && d <= kMaxTxQueueLen) || d != static_cast<int>(d)) {
      ThrowRange(env, "txQueueLen must be an integer in [1, " + std::to_string(kMaxTxQueueLen) + "]");
      return env.Undefined();
    }
    hasQlen = true;
    qlen = static_cast<int>(d);
  }
  v = opts.Get("ipv4");
  if (!v.IsUndefined()) {
    if (!v.IsString()) {
      ThrowType(env, "ipv4 must be a string");
      return env.Undefined();
    }
    if (!ParseIPv4(env, v.As<Napi::String>().Utf8Value(), "ipv4", &addr)) return env.Undefined();
    hasAddr = true;
  }
  v = opts.Get("prefixLen");
  if (!v.IsUndefined()) {
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 32) || d != static_cast<int>(d)) {
      ThrowRange(env, "prefixLen must be an integer in [0, 32]");
      return env.Undefined();
    }
    if (!hasAddr) {
      ThrowType(env, "prefixLen needs ipv4");
      return env.Undefined();
    }
    prefixLen = static_cast<int>(d);
  }
  v = opts.Get("up");
  if (!v.IsUndefined()) up = v.ToBoolean().Value();

  FdGuard sock(ControlSocket());
  if (sock.fd < 0) {
    ThrowErrno(env, errno, "socket", "AF_INET");
    return env.Undefined();
  }
  ifreq ifr;
  if (hasMtu) {
    CopyName(&ifr, name);
    ifr.ifr_mtu = mtu;
    if (::ioctl(sock.fd, SIOCSIFMTU, &ifr) < 0) {
      ThrowErrno(env, errno, "SIOCSIFMTU", name);
      return env.Undefined();
    }
  }
  // A TUN's transmit queue is the ring its reader drains (txqueuelen packets, each up to a 64 KB
  // super-packet with offloads): the queue a pod's TCP fills when the reader is the bottleneck.
  if (hasQlen) {
    CopyName(&ifr, name);
    ifr.ifr_qlen = qlen;
    if (::ioctl(sock.fd, SIOCSIFTXQLEN, &ifr) < 0) {
      ThrowErrno(env, errno, "SIOCSIFTXQLEN", name);
      return env.Undefined();
    }
  }
  // Address and mask go in before the link comes up, so the classful mask that SIOCSIFADDR
  // implies never installs a transient prefix route.
  if (hasAddr) {
    CopyName(&ifr, name);
    SetSockaddr(&ifr.ifr_addr, addr);
    if (::ioctl(sock.fd, SIOCSIFADDR, &ifr) < 0) {
      ThrowErrno(env, errno, "SIOCSIFADDR", name);
      return env.Undefined();
    }
    CopyName(&ifr, name);
    SetSockaddr(&ifr.ifr_netmask, MaskOf(prefixLen));
    if (::ioctl(sock.fd, SIOCSIFNETMASK, &ifr) < 0) {
      ThrowErrno(env, errno, "SIOCSIFNETMASK", name);
      return env.Undefined();
    }
  }
  if (up) {
    CopyName(&ifr, name);
    if (::ioctl(sock.fd, SIOCGIFFLAGS, &ifr) < 0) {
      ThrowErrno(env, errno, "SIOCGIFFLAGS", name);
      return env.Undefined();
    }
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(sock.fd, SIOCSIFFLAGS, &ifr) < 0) {
      ThrowErrno(env, errno, "SIOCSIFFLAGS", name);
      return env.Undefined();
    }
  }
  return env.Undefined();
}

// routeAdd / routeDel(dst: string, prefixLen: number, dev: string): undefined
Napi::Value Route(const Napi::CallbackInfo& info, unsigned long request, const char* reqName) {
  Napi::Env env = info.Env();
  std::string dst, dev;
  int64_t prefixLen = 0;
  if (!ArgString(info, 0, "dst", &dst)) return env.Undefined();
  if (!ArgInt(info, 1, "prefixLen", 0, 32, &prefixLen)) return env.Undefined();
  if (!ArgIfName(info, 2, &dev)) return env.Undefined();
  in_addr addr;
  if (!ParseIPv4(env, dst, "dst", &addr)) return env.Undefined();

  rtentry rt;
  std::memset(&rt, 0, sizeof rt);
  SetSockaddr(&rt.rt_dst, addr);
  SetSockaddr(&rt.rt_genmask, MaskOf(static_cast<int>(prefixLen)));
  rt.rt_flags = RTF_UP | (prefixLen == 32 ? RTF_HOST : 0);
  char devName[IFNAMSIZ];
  std::memset(devName, 0, sizeof devName);
  std::memcpy(devName, dev.data(), dev.size());
  rt.rt_dev = devName;

  std::string subject = dst + "/" + std::to_string(prefixLen) + " dev " + dev;
  FdGuard sock(ControlSocket());
  if (sock.fd < 0) {
    ThrowErrno(env, errno, "socket", "AF_INET");
    return env.Undefined();
  }
  if (::ioctl(sock.fd, request, &rt) < 0) {
    int err = errno;
    const char* hint = nullptr;
    if (err == EEXIST) hint = "the route exists";
    else if (err == ESRCH) hint = "no such route";
    else if (err == EINVAL) hint = "host bits set in dst, or bad prefix";
    else if (err == ENODEV) hint = "no such device";
    ThrowErrno(env, err, reqName, subject, hint);
  }
  return env.Undefined();
}

Napi::Value RouteAdd(const Napi::CallbackInfo& info) { return Route(info, SIOCADDRT, "SIOCADDRT"); }
Napi::Value RouteDel(const Napi::CallbackInfo& info) { return Route(info, SIOCDELRT, "SIOCDELRT"); }

}  // namespace

void InitTun(Napi::Env env, Napi::Object exports) {
  exports.Set("tunOpen", Napi::Function::New(env, TunOpen, "tunOpen"));
  exports.Set("linkConfigure", Napi::Function::New(env, LinkConfigure, "linkConfigure"));
  exports.Set("routeAdd", Napi::Function::New(env, RouteAdd, "routeAdd"));
  exports.Set("routeDel", Napi::Function::New(env, RouteDel, "routeDel"));
}

}  // namespace vxtun
