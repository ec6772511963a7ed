// The pages of Node's own code that start-up touched, given back.
//
// Why (measured, docs/performance.md "Footprint of a node"): Node's code is a ~99 MB object (the
// `node` executable, or libnode.so where a distribution builds it shared), and start-up (Node's
// bootstrap, compiling the modules) faults in 34-43 MiB of it, the kernel's fault-around mapping
// 64 KiB around every fault. Most of it is never run again, yet it stays in the process's RSS.
// MADV_DONTNEED on a read-only private file mapping only removes page-table entries: the pages stay
// in the page cache (shared with every other Node process), and a page the data path does run comes
// back with a minor fault.
//
// The safety contract, each condition on its own enough to keep data that is not the file's:
//  - only inside the object's PT_LOAD segments without PF_W and outside PT_GNU_RELRO (from the
//    program headers, dl_iterate_phdr): never .data, .bss, the GOT, or memory V8 maps at run time;
//  - only where /proc/self/smaps shows a file-backed mapping that is not writable and whose record
//    was read whole with `Anonymous: 0` and `Swap: 0` (no private copy of any page, in RAM or swapped);
//  - any doubt (a read error, a record without those fields, an unparsable line) releases nothing.
// Those segments live as long as the process, so no other mapping can take the range in between.
#include "common.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <link.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace vxtun {
namespace {

struct Range {
  uintptr_t start;
  uintptr_t end;
};

// The read-only, non-RELRO PT_LOAD ranges of the loaded object that contains `anchor`.
struct FindObject {
  uintptr_t anchor;
  uintptr_t page;
  std::vector<Range> ranges;
  bool found = false;
};

int OnObject(dl_phdr_info* info, size_t, void* data) {
  FindObject* f = static_cast<FindObject*>(data);
  bool contains = false;
  Range relro{0, 0};
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && f->anchor >= start && f->anchor < start + ph.p_memsz) contains = true;
    if (ph.p_type == PT_GNU_RELRO) relro = {start & ~(f->page - 1), (start + ph.p_memsz + f->page - 1) & ~(f->page - 1)};
  }
  if (!contains) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) != 0) continue;
    // Whole pages only: round the start up and the end down.
    uintptr_t start = (info->dlpi_addr + ph.p_vaddr + f->page - 1) & ~(f->page - 1);
    uintptr_t end = (info->dlpi_addr + ph.p_vaddr + ph.p_memsz) & ~(f->page - 1);
    if (relro.end > relro.start && start < relro.end && relro.start < end) {
      if (start < relro.start) f->ranges.push_back({start, relro.start});
      if (relro.end < end) f->ranges.push_back({relro.end, end});
    } else if (start < end) {
      f->ranges.push_back({start, end});
    }
  }
  f->found = true;
  return 1;
}

bool ReadWhole(const char* path, std::string& out) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[65536];
  bool ok = true;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ok = false;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return ok;
}

// One /proc/self/smaps record: the header "start-end perms offset dev inode path", then "Key: value"
// lines, the last of them VmFlags.
struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool fileBacked = false;  // an inode and a path that is not a pseudo-name like [heap]
  bool writable = false;
  bool sawRss = false, sawAnonymous = false, sawSwap = false, complete = false;
  unsigned long long rssKb = 0, anonymousKb = 0, swapKb = 0;
};

// Every record of /proc/self/smaps; false (and nothing to act on) when it cannot be read or parsed.
bool Mappings(std::vector<Mapping>& out, std::string& error) {
  std::string smaps;
  if (!ReadWhole("/proc/self/smaps", smaps)) {
    error = std::string("reading /proc/self/smaps: ") + std::strerror(errno);
    return false;
  }
  size_t pos = 0;
  bool inRecord = false;
  while (pos < smaps.size()) {
    size_t eol = smaps.find('\n', pos);
    if (eol == std::string::npos) eol = smaps.size();
    std::string line = smaps.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) continue;
    unsigned long long start = 0, end = 0, inode = 0;
    char perms[8] = {0};
    int pathAt = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %*s %*s %llu %n", &start, &end, perms, &inode, &pathAt) == 4 && pathAt > 0) {
      Mapping m;
      m.start = static_cast<uintptr_t>(start);
      m.end = static_cast<uintptr_t>(end);
      m.writable = std::strchr(perms, 'w') != nullptr;
      m.fileBacked = inode != 0 && static_cast<size_t>(pathAt) < line.size() && line[static_cast<size_t>(pathAt)] == '/';
      out.push_back(m);
      inRecord = true;
      continue;
    }
    if (!inRecord) {
      error = "unexpected line before the first mapping in /proc/self/smaps";
      return false;
    }
    // A field line is "Key: value" with a key of letters, digits and '_'; anything else (a header
    // the scan above could not read, say) ends the parse rather than be taken for a field.
    size_t colon = line.find(':');
    bool field = colon != std::string::npos && colon > 0;
    for (size_t i = 0; field && i < colon; i++) field = std::isalnum(static_cast<unsigned char>(line[i])) != 0 || line[i] == '_';
    if (!field) {
      error = "unparsable line in /proc/self/smaps: " + line.substr(0, 80);
      return false;
    }
    Mapping& m = out.back();
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1) m.sawRss = true, m.rssKb = kb;
    else if (std::sscanf(line.c_str(), "Anonymous: %llu kB", &kb) == 1) m.sawAnonymous = true, m.anonymousKb = kb;
    else if (std::sscanf(line.c_str(), "Swap: %llu kB", &kb) == 1) m.sawSwap = true, m.swapKb = kb;
    else if (line.compare(0, 8, "VmFlags:") == 0) m.complete = true;
  }
  return true;
}

// releaseNodeCodePages(): { mappings, bytes } — how many ranges were given back, and about how many
// resident bytes they held (each mapping's smaps Rss just before, in proportion to the part released).
Napi::Value ReleaseNodeCodePages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FindObject object;
  // A function of Node's own (its N-API), so the object found is the one holding Node's code.
  object.anchor = reinterpret_cast<uintptr_t>(&napi_create_object);
  long page = ::sysconf(_SC_PAGESIZE);
  object.page = page > 0 ? static_cast<uintptr_t>(page) : 4096;
  dl_iterate_phdr(OnObject, &object);
  Napi::Object result = Napi::Object::New(env);
  result.Set("mappings", Napi::Number::New(env, 0));
  result.Set("bytes", Napi::Number::New(env, 0));
  if (!object.found) return result;
  std::vector<Mapping> mappings;
  std::string error;
  if (!Mappings(mappings, error)) {
    ThrowType(env, "releaseNodeCodePages: " + error);
    return env.Undefined();
  }
  uint32_t released = 0;
  double bytes = 0;
  for (const Mapping& m : mappings) {
    if (!m.fileBacked || m.writable || !m.complete || !m.sawRss || !m.sawAnonymous || !m.sawSwap) continue;
    if (m.anonymousKb != 0 || m.swapKb != 0 || m.rssKb == 0) continue;
    for (const Range& r : object.ranges) {
      uintptr_t start = std::max(r.start, m.start);
      uintptr_t end = std::min(r.end, m.end);
      if (start >= end) continue;
      if (::madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) != 0) continue;
      released++;
      bytes += static_cast<double>(m.rssKb) * 1024 * (static_cast<double>(end - start) / static_cast<double>(m.end - m.start));
    }
  }
  result.Set("mappings", Napi::Number::New(env, released));
  result.Set("bytes", Napi::Number::New(env, bytes));
  return result;
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("releaseNodeCodePages", Napi::Function::New(env, ReleaseNodeCodePages, "releaseNodeCodePages"));
}

}  // namespace vxtun
