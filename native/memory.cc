// The process's resident pages of its own executable, given back after start-up.
//
// Why (measured, docs/performance.md "Footprint of a node"): the node binary is a 99 MB file, and
// start-up (Node's bootstrap, compiling the modules) faults in about 39 MiB of its code and read-only
// data, with the kernel's fault-around mapping 64 KiB around every fault. Most of it is never touched
// again, yet it stays in the process's RSS. MADV_DONTNEED on a read-only private file mapping only
// removes the page-table entries: the pages stay in the page cache (shared with every other Node
// process), and a page the data path does use comes back with a minor fault. The contract: only
// mappings of /proc/self/exe, only read-only ones (no 'w'), only those holding no private copy of a
// page (smaps `Anonymous: 0`; RELRO, written by the loader, holds some and is left alone). Such a
// mapping lives as long as the process, so no other mapping can take its range in between.
#include "common.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace vxtun {
namespace {

struct ExeMapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool readOnly = false;
  uint64_t rssKb = 0;
  uint64_t anonymousKb = 0;
};

bool ReadWhole(const char* path, std::string& out) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

// The executable's mappings from /proc/self/smaps (header "start-end perms offset dev inode path",
// then "Key: value kB" lines).
std::vector<ExeMapping> ExeMappings(const std::string& exe, std::string& error) {
  std::vector<ExeMapping> out;
  std::string smaps;
  if (!ReadWhole("/proc/self/smaps", smaps)) {
    error = std::string("open /proc/self/smaps: ") + std::strerror(errno);
    return out;
  }
  ExeMapping* current = nullptr;
  size_t pos = 0;
  while (pos < smaps.size()) {
    size_t eol = smaps.find('\n', pos);
    if (eol == std::string::npos) eol = smaps.size();
    std::string line = smaps.substr(pos, eol - pos);
    pos = eol + 1;
    unsigned long long start = 0, end = 0;
    char perms[8] = {0};
    int pathAt = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %*s %*s %*s %n", &start, &end, perms, &pathAt) == 3 && pathAt > 0) {
      current = nullptr;
      if (line.compare(static_cast<size_t>(pathAt), std::string::npos, exe) == 0) {
        out.push_back(ExeMapping{static_cast<uintptr_t>(start), static_cast<uintptr_t>(end), perms[1] != 'w', 0, 0});
        current = &out.back();
      }
      continue;
    }
    if (current == nullptr) continue;
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1) current->rssKb = kb;
    else if (std::sscanf(line.c_str(), "Anonymous: %llu kB", &kb) == 1) current->anonymousKb = kb;
  }
  return out;
}

// releaseExecutablePages(): { mappings, bytes } — how many of the executable's mappings were given
// back and how many resident bytes they held (smaps Rss just before).
Napi::Value ReleaseExecutablePages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    ThrowErrno(env, errno, "readlink", "/proc/self/exe");
    return env.Undefined();
  }
  exe[n] = '\0';
  std::string error;
  std::vector<ExeMapping> mappings = ExeMappings(exe, error);
  if (!error.empty()) {
    ThrowType(env, ("releaseExecutablePages: " + error).c_str());
    return env.Undefined();
  }
  uint32_t released = 0;
  double bytes = 0;
  for (const ExeMapping& m : mappings) {
    if (!m.readOnly || m.anonymousKb != 0 || m.rssKb == 0) continue;
    if (::madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) != 0) continue;
    released++;
    bytes += static_cast<double>(m.rssKb) * 1024;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("mappings", Napi::Number::New(env, released));
  result.Set("bytes", Napi::Number::New(env, bytes));
  return result;
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("releaseExecutablePages", Napi::Function::New(env, ReleaseExecutablePages, "releaseExecutablePages"));
}

}  // namespace vxtun
