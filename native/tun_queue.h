// A TUN queue as the addon reads it (tunQueueOpen): its descriptor, and what a read leaves behind for
// the next one — the scratch a raw read lands in and the state of what is kept there. JS holds only a
// handle; the offload reader (tun_offload.cc) and the express path (express.cc, which holds a
// reference to the handle) share the rest here, in C++. The descriptor itself stays the TUN device's
// (src/io/tun-linux.ts closes it, after stopping the express path).
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vxtun {

// state[1] when state[0] holds the length of a raw read (header and packet in scratch, not looked
// at yet) that the express path made and handed over to the offload reader.
constexpr int32_t kStateRawRead = -1;

struct TunQueue {
  int fd = -1;
  bool vnetHdr = false;
  // With vnetHdr: room for a virtio header, an IPv6 header and a 65535-byte payload (USO). Empty otherwise.
  std::vector<uint8_t> scratch;
  // [0] length of a super-packet (or raw read) kept in scratch, 0: none; [1] its next segment, or
  // kStateRawRead; [2] the busy hint: the last offload read returned more than one packet — traffic,
  // which the pipeline batches, so the express path leaves the next wake-up to it.
  int32_t state[3] = {0, 0, 0};
};

// The queue behind a tunQueueOpen handle; throws a TypeError naming `fn` and returns nullptr otherwise.
TunQueue* TunQueueOf(napi_env env, napi_value v, const char* fn);

}  // namespace vxtun
