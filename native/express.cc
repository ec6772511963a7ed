// The express path: a lone packet forwarded by the addon inside its poll callback, no JavaScript run.
//
// Why: at idle every packet wakes a cold CPU, and one pass through the JS pipeline then costs
// 20-75 µs of cache and JIT misses — four passes per ping round trip put vxtun's RTT at 4-5x the
// kernel's. Forwarding a lone packet here costs a few µs. Busy traffic comes in batches and keeps
// the JS pipeline (GSO, coalescing, grouping per peer): the express path only takes what it can
// prove the JS pipeline would have done the same way, byte for byte, and hands everything else over.
// The JS engine stays the authority: it compiles its route table into this one (expressRoutes)
// and reads the counters below from shared memory. While a trace watches (`gate`) the path keeps
// forwarding and records what it forwarded (TraceLog) for the engine's tap to report.
//
//  outbound  TUN readable -> read one packet into the TUN's scratch (where tunQueueRead reads)
//            -> virtio header without GSO (NEEDS_CSUM finished here, as that read would);
//               IPv4 with a valid header; a route (LPM over the engine's own trie); not larger than the tunnel carries
//            -> the peer's 22-byte header (built by the engine's emitters) + sendmsg on the flow's socket
//            -> read again: EAGAIN and JS never runs; another packet is left in scratch (state "raw read")
//               for tunQueueRead, and JS runs its batch from there.
//  inbound   UDP readable -> recvmmsg of a whole batch into the bind's arena (as udpRecvBatch would)
//            -> exactly one datagram, not GRO-coalesced; VXLAN flags, reserved bits, VNI;
//               inner Ethernet to our VTEP MAC, IPv4 with a valid header, not longer than the TUN's MTU;
//               a TCP/UDP checksum that is no kernel peer's unfinished one (the JS pipeline completes those)
//            -> writev(zero virtio header, inner packet) -> counted
//            -> anything else: JS runs with the batch already read (its count passed to the callback).
//  bulk out  (on the event loop only, not while a trace watches; VXTUN_NO_BULK_OUT=1 turns it off)
//            TUN readable -> up to 8 x 128 packets: each read a plain packet the lone rules send, or a
//            TSO/USO super-packet segmented by the offload reader's own code, segment 0 judged for all
//            -> the peer's header in front, batches of one peer sent by udpSendBatch's core (GSO,
//               the flow-hashed pool), counted as the engine counts
//            -> the first read it must not judge waits in scratch as a raw read for tunQueueRead,
//               after everything read before it was sent.
//  bulk in   (on the event loop only, where busy traffic is served; VXTUN_NO_BULK_IN=1 turns it off)
//            UDP readable -> recvmmsg of a batch -> every datagram of it, GRO messages split at their
//            segment size as the bind splits them, passes the same strict checks as a lone one
//            -> the inner packets in order through tunWriteOffload's writer (TCP/UDP runs coalesced
//               into super-packets, the TUN device's coalesce bits) -> counted as the engine counts
//            -> up to 8 batches per wake-up, as the bind drains; the first batch with anything else
//               goes to JS whole, already read. A busy batch while the engine thread runs SCHED_BATCH
//               also goes to JS, whose inbound scheduling turns the thread SCHED_OTHER
//               (src/datapath/inbound-scheduling.ts); busy batches written here are counted for it.
// The per-packet rules are express_rules.cc's (the twin of src/packet/policy.ts, held to it by
// test/unit/express-twin.test.ts); this file is the I/O around them.
// Counters: Float64Array, layout ExpressCounter (counters.def).
#include "common.h"
#include "datapath.h"
#include "checksum.h"
#include "codel.h"
#include "express_rules.h"
#include "tun_queue.h"

#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace vxtun {

namespace {

constexpr size_t kHeaderLen = 22;  // VXLAN 8 + inner Ethernet 14
constexpr size_t kOutSlots = 128;  // bulk outbound: a send batch, as the engine's read batch (batchSize 128)
constexpr size_t kPeerRecord = kHeaderLen + 4 + 2;  // header template, IPv4 address, port (0: not for us)

struct Peer {
  uint8_t header[kHeaderLen];
  sockaddr_in dst;
  bool ok;
};

// While a trace watches (gate set), each packet this path forwards is also recorded here, and the
// engine's tap (src/datapath/express-tap.ts) drains the records on the event loop and reports them
// as the pipeline's observations: watching does not change which code forwards. Nothing is recorded
// (and after the next drain no memory is held) while nobody watches. Records are appended to a bounded
// log the drain takes whole (two buffers swapped under `mu`); one that does not fit is counted in
// `lost`, which the next drain reports.
struct TraceRecordHead {  // followed by `length` bytes: the datagram (VXLAN + inner Ethernet + inner packet)
  uint64_t seenNs;   // CLOCK_MONOTONIC when the path took the packet
  uint64_t doneNs;   // CLOCK_MONOTONIC when the send / TUN write returned
  uint32_t length;
  uint32_t addr;     // out: the peer's underlay IPv4; in: the sender's (host order)
  uint16_t port;     // its UDP port
  uint8_t inbound;   // 0 TUN -> underlay, 1 underlay -> TUN
  uint8_t ok;        // 1 the kernel took it; 0 refused (send-failed / tun-write-failed)
  uint32_t reserved;
};
static_assert(sizeof(TraceRecordHead) == 32, "the tap reads 32-byte record heads");
constexpr size_t kTraceLogBytes = 1 << 20;

struct TraceLog {
  std::vector<uint8_t> filling;   // appended to under Express::mu
  std::vector<uint8_t> draining;  // the event loop's, between swaps
  double lost = 0;                // records that did not fit since the last drain
};

inline uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

struct Express {
  // TUN side (a queue opened with IFF_VNET_HDR, read as tunQueueRead reads it): the TunQueue's descriptor, scratch and state.
  int tunFd = -1;
  uint8_t* scratch = nullptr;
  size_t scratchLen = 0;
  int32_t* state = nullptr;
  double* tunCtr = nullptr;
  bool vnetHdr = false;
  bool outbound = false;
  // UDP side (the bind's socket, arena and result arrays, as udpRecvBatch fills them).
  int udpFd = -1;
  std::vector<int> sendFds;
  uint8_t* arena = nullptr;
  size_t slotSize = 0;
  size_t batch = 0;
  int32_t* sizes = nullptr;
  uint32_t* addrs = nullptr;
  uint16_t* ports = nullptr;
  int32_t* gsoSizes = nullptr;
  double* udpCtr = nullptr;
  double* codel = nullptr;  // the bind's CoDel state (codel.h), or none
  // Bulk inbound: the TUN writer's coalesce bits, whether it runs, the engine thread's scheduling state
  // ([0] non-zero while SCHED_BATCH, [1] the busy batch size in bytes; none: not followed), and the
  // batch's inner packets (kept between passes: no allocation per batch).
  int32_t tunCoalesce = 0;
  bool bulkIn = false;
  const double* sched = nullptr;
  std::vector<uint8_t*> inData;
  std::vector<int32_t> inSizes;
  std::vector<uint8_t> inRefused;
  // Bulk outbound: whether it runs, whether the bind sends with UDP GSO, and the batch being built:
  // slots of header template + packet (kOutSlots of kHeaderLen + readRoom), their iovecs, for one peer.
  bool bulkOut = false;
  bool gso = false;
  std::vector<uint8_t> outArena;
  iovec outIov[kOutSlots];
  size_t outCount = 0;
  const Peer* outPeer = nullptr;
  // The engine's parameters and state.
  uint32_t vni = 0;
  uint8_t mac[6] = {};
  size_t maxInner = 0;
  size_t readRoom = 0;  // what the pipeline's read buffers take (a longer read is cut there, then dropped)
  size_t tunMtu = 0;
  double* ctr = nullptr;
  const int32_t* gate = nullptr;  // non-zero while a trace watches: record (may be shared between threads)
  TraceLog trace;
  bool enabled = true;
  bool thread = false;  // serve idle wake-ups on a thread of its own (poll.cc), off the event loop
  // Held through a pass and by route swaps and stop: with the express thread, a pass and the event
  // loop's expressRoutes can run at once (the descriptors themselves have one owner at a time).
  std::mutex mu;
  std::vector<int32_t> trie;  // the engine's IPv4 trie (routes.ts): 0 none, k > 0 peer k - 1, ~c chunk c
  std::vector<Peer> peers;
  // A strong reference to every typed array a pointer above points into, released by Finalize: the
  // caller need not keep them, and the collector cannot free memory this path still reads or writes.
  std::vector<napi_ref> held;
  Guard guard;  // anti-spoofing (express_rules.h), set with the routes
};

const napi_type_tag kExpressTag = {0x76787475'6e657870ULL, 0x3b5e'91c4'27d8'0f16ULL};

inline bool Watched(const Express* x) { return __atomic_load_n(x->gate, __ATOMIC_RELAXED) != 0; }

// Appends one record (head, then a[0, aLen) and b[0, bLen)); counted as lost when the log is full.
void Record(Express* x, TraceRecordHead head, const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen) {
  std::vector<uint8_t>& log = x->trace.filling;
  size_t need = sizeof head + aLen + bLen;
  if (log.size() + need > kTraceLogBytes) {
    x->trace.lost += 1;
    return;
  }
  if (log.capacity() < kTraceLogBytes) log.reserve(kTraceLogBytes);  // once per watch: no reallocation mid-pass
  head.length = static_cast<uint32_t>(aLen + bLen);
  const uint8_t* h = reinterpret_cast<const uint8_t*>(&head);
  log.insert(log.end(), h, h + sizeof head);
  log.insert(log.end(), a, a + aLen);
  log.insert(log.end(), b, b + bLen);
}

// The peer the JS pipeline would send the plain IPv4 packet p[0, len) to unchanged, or nullptr when
// the packet is the JS pipeline's (the rules: express_rules.cc; a target without an IPv4 endpoint).
const Peer* ForwardTarget(const Express* x, const uint8_t* p, size_t len) {
  Decision d = OutboundTarget(p, len, Trie{x->trie.data(), x->trie.size(), x->peers.size()}, OutboundParams{x->maxInner, x->readRoom});
  if (d.verdict != Verdict::kForward) return nullptr;
  const Peer* peer = &x->peers[d.peer];
  return peer->ok ? peer : nullptr;
}

// Sends p[0, len) behind the peer's header on the socket its flow hashes to, counted as the engine would.
void SendOut(Express* x, const Peer* peer, const uint8_t* p, size_t len) {
  iovec iov[2] = {{const_cast<uint8_t*>(peer->header), kHeaderLen}, {const_cast<uint8_t*>(p), len}};
  int fd = x->sendFds.size() > 1 ? x->sendFds[InnerIpFlowHash(0x0800, p, len) % x->sendFds.size()] : x->sendFds[0];
  const bool watched = Watched(x);
  uint64_t seen = watched ? MonotonicNs() : 0;
  bool sent = SendDatagram(fd, iov, 2, kHeaderLen + len, peer->dst, x->udpCtr);
  if (sent) {
    x->ctr[kTxPackets] += 1;
    x->ctr[kTxBytes] += static_cast<double>(len);
  } else {
    x->ctr[kSendFailed] += 1;
  }
  if (watched) {
    TraceRecordHead head = {seen, MonotonicNs(), 0, ntohl(peer->dst.sin_addr.s_addr), ntohs(peer->dst.sin_port), 0, sent ? uint8_t{1} : uint8_t{0}, 0};
    Record(x, head, peer->header, kHeaderLen, p, len);
  }
}

// One non-blocking read from the TUN into scratch (virtio header and packet), counted as the offload
// reader counts it: the length, or 0 for none waiting (EAGAIN, end of file), -1 for another error.
ssize_t ReadTun(Express* x) {
  ssize_t r;
  do {
    r = ::read(x->tunFd, x->scratch, x->scratchLen);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  if (r > 0) x->tunCtr[kReads] += 1;
  return r;
}

// Sends the read of r bytes in scratch if the pipeline would have sent it unchanged; false if not.
bool SendRead(Express* x, ssize_t r) {
  if (static_cast<size_t>(r) <= kVnetHdrLen || static_cast<size_t>(r) > x->scratchLen) return false;
  if (!PlainVirtioHeader(x->scratch)) return false;
  virtio_net_hdr h;
  std::memcpy(&h, x->scratch, kVnetHdrLen);
  uint8_t* p = x->scratch + kVnetHdrLen;
  size_t len = static_cast<size_t>(r) - kVnetHdrLen;
  const Peer* peer = ForwardTarget(x, p, len);
  if (peer == nullptr) return false;
  if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0) {
    // As tunQueueRead: an unfinished checksum is finished (and counted) before anyone sees the
    // packet; a header pointing outside it leaves it untouched for that reader to drop and count.
    // The pipeline checks the IP header after that write: a checksum field inside the header
    // could change what it sees, so such a packet is the pipeline's.
    if (!ChecksumStartPastHeader(p, h.csum_start) || !FinishChecksum(p, len, h.csum_start, h.csum_offset)) return false;
    x->tunCtr[kCsumCompleted] += 1;
  }
  SendOut(x, peer, p, len);
  return true;
}

constexpr size_t kBulkOutBudget = 8 * kOutSlots;  // packets per wake-up: the pipeline's 8 batches

uint8_t* OutSlot(Express* x, size_t k) { return x->outArena.data() + k * (kHeaderLen + x->readRoom); }

// Sends the batch built so far (one peer) as the pipeline's sendToPeer would, and counts it. (Bulk
// passes never run while a trace watches: nothing to record.)
void FlushOut(Express* x) {
  size_t n = x->outCount;
  if (n == 0) return;
  x->outCount = 0;
  int sent = SendBatch(x->sendFds.data(), x->sendFds.size(), x->outIov, static_cast<int>(n), x->outPeer->dst, x->gso, x->udpCtr);
  // As the pipeline counts a send: the first `sent` went.
  x->ctr[kOutBatches] += 1;
  x->ctr[kOutBatchPackets] += static_cast<double>(n);
  x->ctr[kTxPackets] += sent;
  for (int k = 0; k < sent; k++) x->ctr[kTxBytes] += static_cast<double>(x->outIov[k].iov_len - kHeaderLen);
  x->ctr[kSendFailed] += static_cast<double>(n - static_cast<size_t>(sent));
}

// Room in the batch for `need` more packets to `peer`: the batch for another peer (or a full one) is sent first.
void MakeRoom(Express* x, const Peer* peer, size_t need) {
  if (x->outCount > 0 && (x->outPeer != peer || x->outCount + need > kOutSlots)) FlushOut(x);
  x->outPeer = peer;
}

// Adds the raw read of r bytes in scratch to the batch (its segments, for a super-packet) if the
// pipeline would have sent every packet of it unchanged to one peer; returns how many packets, or 0
// with nothing added and scratch as it was (the read is then the pipeline's).
size_t BatchRead(Express* x, ssize_t r) {
  if (static_cast<size_t>(r) <= kVnetHdrLen || static_cast<size_t>(r) > x->scratchLen) return 0;
  const size_t slotRoom = x->readRoom;
  if (x->outArena.empty()) x->outArena.resize(kOutSlots * (kHeaderLen + slotRoom));
  virtio_net_hdr h;
  std::memcpy(&h, x->scratch, kVnetHdrLen);
  uint8_t* p = x->scratch + kVnetHdrLen;
  size_t len = static_cast<size_t>(r) - kVnetHdrLen;
  if (PlainVirtioHeader(x->scratch)) {
    const Peer* peer = ForwardTarget(x, p, len);
    if (peer == nullptr) return 0;
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0) {
      // As SendRead (and tunQueueRead): finished, and counted, before anyone sees the packet.
      if (!ChecksumStartPastHeader(p, h.csum_start) || !FinishChecksum(p, len, h.csum_start, h.csum_offset)) return 0;
      x->tunCtr[kCsumCompleted] += 1;
    }
    MakeRoom(x, peer, 1);
    uint8_t* out = OutSlot(x, x->outCount);
    std::memcpy(out, peer->header, kHeaderLen);
    std::memcpy(out + kHeaderLen, p, len);
    x->outIov[x->outCount++] = {out, kHeaderLen + len};
    return 1;
  }
  // A super-packet: segmented as tunQueueRead segments it, every segment with the pipeline's verdict.
  Gso g;
  if (!ParseGso(p, len, h, &g) || g.segments == 0 || g.segments > kOutSlots || g.headerLen + g.mss > slotRoom) return 0;
  // Room for every segment first (a full batch goes out either way). Segment 0 is judged as the
  // pipeline judges each segment; the others get the same verdict without a second look: they differ
  // from it only in what OutboundTarget does not read (IP id, checksums, sequence, flags) and in a
  // length that is never larger and that MakeSegment writes into the IP header itself.
  if (x->outCount + g.segments > kOutSlots) FlushOut(x);
  size_t base = x->outCount;
  size_t n0 = MakeSegment(p, g, 0, OutSlot(x, base) + kHeaderLen);
  const Peer* peer = ForwardTarget(x, OutSlot(x, base) + kHeaderLen, n0);
  if (peer == nullptr) return 0;
  if (base > 0 && x->outPeer != peer) {
    // Another peer's batch: sent first, and segment 0 moves to the front.
    FlushOut(x);
    std::memmove(OutSlot(x, 0) + kHeaderLen, OutSlot(x, base) + kHeaderLen, n0);
    base = 0;
  }
  x->outPeer = peer;
  x->outIov[base] = {OutSlot(x, base), kHeaderLen + n0};
  std::memcpy(OutSlot(x, base), peer->header, kHeaderLen);
  for (uint32_t k = 1; k < g.segments; k++) {
    uint8_t* out = OutSlot(x, base + k);
    std::memcpy(out, peer->header, kHeaderLen);
    x->outIov[base + k] = {out, kHeaderLen + MakeSegment(p, g, k, out + kHeaderLen)};
  }
  x->outCount = base + g.segments;
  x->tunCtr[kGsoPackets] += 1;
  if (g.udp) x->tunCtr[kUdpGsoPackets] += 1;
  x->tunCtr[kTunGsoSegments] += g.segments;
  return g.segments;
}

// TUN readable on the event loop, with bulk outbound: the whole wake-up (up to kBulkOutBudget packets)
// read, segmented, encapsulated and sent here while every read is one the pipeline would send
// unchanged. -1: quiet (nothing, or one plain packet); -2: traffic sent; 0: JS runs (the read it must
// judge waits in scratch as a raw read, after everything read before it was sent).
int OnTunReadableBulk(Express* x) {
  size_t packets = 0;
  size_t reads = 0;
  int result = -2;
  while (packets < kBulkOutBudget) {
    ssize_t r = ReadTun(x);
    if (r < 0) {
      result = 0;  // JS's next read reports the error
      break;
    }
    if (r == 0) {
      if (reads == 0 || (reads == 1 && packets == 1)) result = -1;
      // Nothing more: the express thread may take the next lone packet (tunQueueRead's rule: a read of one clears the hint).
      if (reads == 0) x->state[2] = 0;
      break;
    }
    reads++;
    size_t n = BatchRead(x, r);
    if (n == 0) {
      FlushOut(x);
      x->state[0] = static_cast<int32_t>(r);
      x->state[1] = kStateRawRead;
      x->ctr[kOutHandedOver] += 1;
      result = 0;
      break;
    }
    packets += n;
  }
  FlushOut(x);
  // The busy hint as tunQueueRead leaves it: traffic while a wake-up carries more than one packet.
  if (packets != 0) x->state[2] = packets > 1 ? 1 : 0;
  return result;
}

// TUN readable. Returns true when JS need not run (nothing left for it), false to run the JS
// pipeline (a packet may wait in scratch as a raw read for tunQueueRead).
bool OnTunReadable(Express* x) {
  // state[2] (set by the TUN device's reads): the last batch held more than one packet — traffic,
  // which the pipeline batches (UDP GSO runs); a lone first packet sent apart would only cost.
  if (!x->enabled || !x->outbound || x->state[0] != 0 || x->state[2] != 0) return false;
  ssize_t r = ReadTun(x);
  if (r <= 0) return r == 0;  // other errors: JS's next read reports them
  // The first packet may go here; a second one means traffic, which the batch pipeline does better.
  if (SendRead(x, r)) {
    r = ReadTun(x);
    if (r <= 0) return r == 0;
  }
  // Over to tunQueueRead, which takes it from scratch before it reads anything new.
  x->state[0] = static_cast<int32_t>(r);
  x->state[1] = kStateRawRead;
  x->ctr[kOutHandedOver] += 1;
  return false;
}

// The inbound checks of Engine.handleInbound on one datagram, strict: true if it was written (or
// refused by the TUN, counted as the engine would), false if the JS pipeline must judge it.
bool ForwardIn(Express* x, uint8_t* d, size_t len) {
  Trie routes{x->trie.data(), x->trie.size(), x->peers.size()};
  Decision in = InboundCheck(d, len, InboundParams{x->vni, x->mac, x->tunMtu, x->addrs[0], &routes, &x->guard});
  if (in.verdict != Verdict::kForward) return false;
  uint8_t* ip = d + in.offset;
  size_t total = in.length;
  static const uint8_t zeroHdr[kVnetHdrLen] = {};
  iovec iov[2] = {{const_cast<uint8_t*>(zeroHdr), kVnetHdrLen}, {ip, total}};
  const bool watched = Watched(x);
  uint64_t seen = watched ? MonotonicNs() : 0;
  ssize_t r;
  do {
    r = x->vnetHdr ? ::writev(x->tunFd, iov, 2) : ::write(x->tunFd, ip, total);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    x->ctr[kTunWriteFailed] += 1;
  } else {
    if (x->vnetHdr) x->tunCtr[kWrites] += 1;
    x->ctr[kRxPackets] += 1;
    x->ctr[kRxBytes] += static_cast<double>(total);
  }
  if (watched) {
    TraceRecordHead head = {seen, MonotonicNs(), 0, x->addrs[0], x->ports[0], 1, r >= 0 ? uint8_t{1} : uint8_t{0}, 0};
    Record(x, head, d, len, nullptr, 0);
  }
  return true;
}

// The `got` messages in the arena as the engine would take them, if it would write every datagram's
// inner packet unchanged: then written (one TUN writer batch, coalesced) and counted, true. False, with
// nothing written or changed, when any datagram is the engine's to judge, or when a busy batch must
// reach the engine's inbound scheduling first.
bool ForwardInBatch(Express* x, int got) {
  // While a trace watches, batches are the pipeline's: it observes every stage of every packet, where
  // the trace log (bounded, drained every 10 ms) would lose most of a busy stream.
  if (!x->bulkIn || !x->vnetHdr || Watched(x)) return false;
  Trie routes{x->trie.data(), x->trie.size(), x->peers.size()};
  InboundParams params{x->vni, x->mac, x->tunMtu, 0, &routes, &x->guard};
  size_t n = 0;
  double bytes = 0;
  for (int m = 0; m < got; m++) {
    size_t size = static_cast<size_t>(x->sizes[m]);
    size_t gso = x->gsoSizes != nullptr && x->gsoSizes[m] > 0 ? static_cast<size_t>(x->gsoSizes[m]) : 0;
    // The bind's split (src/packet/gro.ts splitGro): gso_size pieces, the last one shorter.
    size_t step = gso == 0 || size <= gso ? (size == 0 ? 1 : size) : gso;
    uint8_t* slot = x->arena + static_cast<size_t>(m) * x->slotSize;
    params.from = x->addrs[m];
    for (size_t off = 0; off < size || (size == 0 && off == 0); off += step) {
      size_t len = std::min(step, size - off);
      Decision in = InboundCheck(slot + off, len, params);
      if (in.verdict != Verdict::kForward) return false;
      if (n == x->inData.size()) {
        x->inData.resize(n + 64);
        x->inSizes.resize(n + 64);
        x->inRefused.resize(n + 64);
      }
      x->inData[n] = slot + off + in.offset;
      x->inSizes[n] = static_cast<int32_t>(in.length);
      n++;
      bytes += static_cast<double>(len);
    }
  }
  const bool busy = x->sched != nullptr && bytes >= x->sched[1];
  if (busy && x->sched[0] != 0) return false;
  std::memset(x->inRefused.data(), 0, n);
  int err = 0;
  int64_t written = WriteTunBatch(x->tunFd, x->inData.data(), x->inSizes.data(), static_cast<int64_t>(n), x->tunCoalesce, nullptr, x->inRefused.data(), x->tunCtr, &err);
  // An error before anything went in: the engine catches it and counts the whole batch refused.
  if (written < 0) {
    written = 0;
    std::memset(x->inRefused.data(), 1, n);
  }
  x->ctr[kInBatches] += 1;
  x->ctr[kInBatchPackets] += static_cast<double>(n);
  if (busy) x->ctr[kInBusyBatches] += 1;
  x->ctr[kRxPackets] += static_cast<double>(written);
  x->ctr[kTunWriteFailed] += static_cast<double>(n - static_cast<size_t>(written));
  for (size_t k = 0; k < n; k++)
    if (x->inRefused[k] == 0) x->ctr[kRxBytes] += x->inSizes[k];
  return true;
}

constexpr int kBulkRoundsPerWake = 8;  // as the bind's drain (src/io/bind-native.ts)
static_assert(kBulkRoundsPerWake < (1 << (31 - kRoundShift)), "rounds fit above the count");
static_assert(kOutSlots <= 256, "a send batch is at most udpSendBatch's (kMaxBatch)");

// UDP readable. Returns -1 when JS need not run and the pass was quiet (nothing, or a lone datagram
// forwarded), -2 when JS need not run but batches were written (traffic: the loop keeps the
// descriptors), else the number of messages already read into the bind's arena for the JS pipeline
// (0: read nothing, JS reads as usual), with the recvmmsg rounds of this wake-up before it above
// kRoundShift. `onLoop`: called from the event loop's poll, not the thread.
int OnUdpReadable(Express* x, bool onLoop) {
  if (!x->enabled) return 0;
  for (int round = 0; round < kBulkRoundsPerWake; round++) {
    int got = RecvMessages(x->udpFd, x->arena, x->slotSize, x->batch, x->sizes, x->addrs, x->ports, x->gsoSizes, x->udpCtr, x->codel);
    if (got < 0) return 0;  // a lasting error: JS's own read reports it
    if (got == 0) return round == 0 ? -1 : -2;
    if (round == 0 && got == 1 && (x->gsoSizes == nullptr || x->gsoSizes[0] == 0) && ForwardIn(x, x->arena, static_cast<size_t>(x->sizes[0]))) return -1;
    if (!onLoop || !ForwardInBatch(x, got)) {
      x->ctr[kInHandedOver] += 1;
      // The bind's drain goes on from this round (its round budget is the same 8).
      return got | (round << kRoundShift);
    }
    if (static_cast<size_t>(got) < x->batch) return -2;
  }
  return -2;
}

void Finalize(Napi::Env env, Express* x) {
  for (napi_ref r : x->held) napi_delete_reference(env, r);
  delete x;
}

Express* Unwrap(Napi::Env env, napi_value v, const char* fn) {
  if (!ExpressTag(env, v)) {
    ThrowType(env, std::string(fn) + ": handle must come from expressOpen");
    return nullptr;
  }
  return Napi::External<Express>(env, v).Data();
}

// The typed array o[key] of type `want`: its data and length, held by x (see Express::held).
template <typename T>
bool Typed(Napi::Env env, Express* x, Napi::Object o, const char* key, napi_typedarray_type want, T** out, size_t* len, bool optional = false) {
  Napi::Value v = o.Get(key);
  if (optional && v.IsUndefined()) {
    *out = nullptr;
    *len = 0;
    return true;
  }
  napi_typedarray_type type;
  void* p = nullptr;
  napi_ref held = nullptr;
  if (TypedArrayOf(env, v, &type, &p, len) && type == want && napi_create_reference(env, v, 1, &held) == napi_ok) {
    x->held.push_back(held);
    *out = static_cast<T*>(p);
    return true;
  }
  ThrowType(env, std::string("expressOpen: ") + key + " has the wrong type");
  return false;
}

bool Int(Napi::Env env, Napi::Object o, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d))) {
    ThrowRange(env, std::string("expressOpen: ") + key + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

// expressOpen({ tunQueue, tunCounters, udpFd, sendFds: Int32Array, arena, slotSize,
//               batch, sizes, addrs, ports, gsoSizes?, udpCounters, udpCodel?, vni, vtepMac, maxInnerSize, readRoom, tunMtu,
//               counters, gate: Int32Array, thread?, bulkIn?, tunCoalesce?, inScheduling?: Float64Array }): handle
// `bulkIn` (default true): write whole batches on the event loop (see "bulk in" above), with the TUN
// writer's `tunCoalesce` bits (default 0); `bulkOut` (default true): send busy TUN wake-ups (see "bulk
// out"), with UDP GSO when `udpGso` (the bind's; default false); `inScheduling`: [0] non-zero while the engine thread runs
// SCHED_BATCH, [1] the busy batch size in bytes (src/datapath/inbound-scheduling.ts keeps them).
// `thread`: the polls fed by this path wait on a thread of their own while traffic is idle (poll.cc).
// The path holds a reference to the queue and to every typed array it points into (Express::held),
// so it never outlives them; it is only ever entered from the polls it feeds (pollStart's `express`).
Napi::Value ExpressOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ThrowType(env, "expressOpen: options must be an object");
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  auto x = std::make_unique<Express>();
  // On a refusal, the references taken so far go with x (on success x is released to the handle).
  struct DropHeld {
    napi_env env;
    std::unique_ptr<Express>& x;
    ~DropHeld() {
      if (x) for (napi_ref r : x->held) napi_delete_reference(env, r);
    }
  } dropHeld{env, x};
  int64_t v = 0;
  size_t len = 0;
  // The TUN queue (tunQueueOpen): its descriptor, and the offload reader's scratch and state, where
  // a packet not for us is handed over — held like the typed arrays below.
  Napi::Value queue = o.Get("tunQueue");
  TunQueue* q = TunQueueOf(env, queue, "expressOpen: tunQueue");
  napi_ref heldQueue = nullptr;
  if (q == nullptr || napi_create_reference(env, queue, 1, &heldQueue) != napi_ok) return env.Undefined();
  x->held.push_back(heldQueue);
  x->tunFd = q->fd;
  x->vnetHdr = q->vnetHdr;
  x->scratch = q->scratch.empty() ? nullptr : q->scratch.data();
  x->scratchLen = q->scratch.size();
  x->state = q->state;
  x->outbound = x->vnetHdr && x->scratch != nullptr && x->scratchLen >= kVnetHdrLen + 40 + 65535;
  if (!Typed(env, x.get(), o, "tunCounters", napi_float64_array, &x->tunCtr, &len)) return env.Undefined();
  if (len < kTunCounterCount) {
    ThrowRange(env, "expressOpen: tunCounters too short");
    return env.Undefined();
  }
  if (!Int(env, o, "udpFd", 0, INT_MAX, &v)) return env.Undefined();
  x->udpFd = static_cast<int>(v);
  int32_t* fds;
  size_t nfds = 0;
  if (!Typed(env, x.get(), o, "sendFds", napi_int32_array, &fds, &nfds)) return env.Undefined();
  if (nfds == 0) x->sendFds.push_back(x->udpFd);
  for (size_t i = 0; i < nfds; i++) x->sendFds.push_back(fds[i]);
  size_t arenaLen = 0;
  if (!Typed(env, x.get(), o, "arena", napi_uint8_array, &x->arena, &arenaLen)) return env.Undefined();
  if (!Int(env, o, "slotSize", 1, INT_MAX, &v)) return env.Undefined();
  x->slotSize = static_cast<size_t>(v);
  if (!Int(env, o, "batch", 1, 256, &v)) return env.Undefined();
  x->batch = static_cast<size_t>(v);
  size_t ls, la, lp, lg;
  if (!Typed(env, x.get(), o, "sizes", napi_int32_array, &x->sizes, &ls) || !Typed(env, x.get(), o, "addrs", napi_uint32_array, &x->addrs, &la) ||
      !Typed(env, x.get(), o, "ports", napi_uint16_array, &x->ports, &lp) || !Typed(env, x.get(), o, "gsoSizes", napi_int32_array, &x->gsoSizes, &lg, true))
    return env.Undefined();
  if (arenaLen < x->batch * x->slotSize || ls < x->batch || la < x->batch || lp < x->batch || (x->gsoSizes != nullptr && lg < x->batch)) {
    ThrowRange(env, "expressOpen: arena or result arrays smaller than batch slots");
    return env.Undefined();
  }
  if (!Typed(env, x.get(), o, "udpCounters", napi_float64_array, &x->udpCtr, &len)) return env.Undefined();
  if (len < kUdpCounterCount) {
    ThrowRange(env, "expressOpen: udpCounters too short");
    return env.Undefined();
  }
  if (!Typed(env, x.get(), o, "udpCodel", napi_float64_array, &x->codel, &len, true)) return env.Undefined();
  if (x->codel != nullptr && len < kCodelSlots) {
    ThrowRange(env, "expressOpen: udpCodel too short");
    return env.Undefined();
  }
  if (!Int(env, o, "vni", 0, 0xffffff, &v)) return env.Undefined();
  x->vni = static_cast<uint32_t>(v);
  uint8_t* mac;
  if (!Typed(env, x.get(), o, "vtepMac", napi_uint8_array, &mac, &len)) return env.Undefined();
  if (len != 6) {
    ThrowRange(env, "expressOpen: vtepMac must be 6 bytes");
    return env.Undefined();
  }
  std::memcpy(x->mac, mac, 6);
  if (!Int(env, o, "maxInnerSize", 0, 65535, &v)) return env.Undefined();
  x->maxInner = static_cast<size_t>(v);
  if (!Int(env, o, "readRoom", 0, INT_MAX, &v)) return env.Undefined();
  x->readRoom = static_cast<size_t>(v);
  if (!Int(env, o, "tunMtu", 68, 65535, &v)) return env.Undefined();
  x->tunMtu = static_cast<size_t>(v);
  if (!Typed(env, x.get(), o, "counters", napi_float64_array, &x->ctr, &len)) return env.Undefined();
  if (len < kExpressCounterCount) {
    ThrowRange(env, "expressOpen: counters needs " + std::to_string(kExpressCounterCount) + " entries");
    return env.Undefined();
  }
  int32_t* gate;
  if (!Typed(env, x.get(), o, "gate", napi_int32_array, &gate, &len)) return env.Undefined();
  if (len < 1) {
    ThrowRange(env, "expressOpen: gate needs 1 entry");
    return env.Undefined();
  }
  x->gate = gate;
  x->thread = o.Get("thread").ToBoolean().Value();
  Napi::Value bulk = o.Get("bulkIn");
  x->bulkIn = bulk.IsUndefined() ? true : bulk.ToBoolean().Value();
  bulk = o.Get("bulkOut");
  x->bulkOut = bulk.IsUndefined() ? true : bulk.ToBoolean().Value();
  x->gso = o.Get("udpGso").ToBoolean().Value();
  if (!o.Get("tunCoalesce").IsUndefined()) {
    if (!Int(env, o, "tunCoalesce", 0, 3, &v)) return env.Undefined();
    x->tunCoalesce = static_cast<int32_t>(v);
  }
  double* sched;
  if (!Typed(env, x.get(), o, "inScheduling", napi_float64_array, &sched, &len, true)) return env.Undefined();
  if (sched != nullptr && len < 2) {
    ThrowRange(env, "expressOpen: inScheduling needs 2 entries");
    return env.Undefined();
  }
  x->sched = sched;
  Napi::External<Express> handle = Napi::External<Express>::New(env, x.release(), Finalize);
  napi_type_tag_object(env, handle, &kExpressTag);
  return handle;
}

// expressRoutes(handle, trie: Int32Array, peers: Uint8Array, guard: Uint8Array): the engine's IPv4 trie
// (copied) and one 28-byte record per target: header template (22), IPv4 address (4, big-endian),
// port (2; 0 = a target the express path leaves to the engine); and the anti-spoofing guard (BuildGuard).
Napi::Value ExpressRoutes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) {
    ThrowType(env, "expressRoutes(handle, trie, peers, guard)");
    return env.Undefined();
  }
  Express* x = Unwrap(env, info[0], "expressRoutes");
  if (x == nullptr) return env.Undefined();
  int32_t* trie;
  size_t trieLen;
  if (!ArgInt32s(env, info[1], "expressRoutes: trie", &trie, &trieLen)) return env.Undefined();
  uint8_t* rec;
  size_t recLen;
  if (!ArgBytes(env, info[2], "expressRoutes: peers", &rec, &recLen)) return env.Undefined();
  if (recLen % kPeerRecord != 0 || trieLen % 256 != 0) {
    ThrowRange(env, "expressRoutes: trie must hold whole 256-entry chunks, peers whole 28-byte records");
    return env.Undefined();
  }
  uint8_t* g;
  size_t gLen;
  if (!ArgBytes(env, info[3], "expressRoutes: guard", &g, &gLen)) return env.Undefined();
  Guard guard;
  if (!BuildGuard(rec, recLen / kPeerRecord, g, gLen, &guard)) {
    ThrowRange(env, "expressRoutes: guard must be 8 bytes (flags, 0, 0, 0, VTEP address) and 8 per local subnet");
    return env.Undefined();
  }
  std::vector<Peer> peers(recLen / kPeerRecord);
  for (size_t i = 0; i < peers.size(); i++) {
    const uint8_t* r = rec + i * kPeerRecord;
    Peer& p = peers[i];
    std::memcpy(p.header, r, kHeaderLen);
    std::memset(&p.dst, 0, sizeof p.dst);
    p.dst.sin_family = AF_INET;
    std::memcpy(&p.dst.sin_addr.s_addr, r + kHeaderLen, 4);  // already network order
    std::memcpy(&p.dst.sin_port, r + kHeaderLen + 4, 2);
    p.ok = p.dst.sin_port != 0;
  }
  std::lock_guard<std::mutex> hold(x->mu);
  x->trie.assign(trie, trie + trieLen);
  x->peers.swap(peers);
  x->guard = std::move(guard);
  return env.Undefined();
}

// expressStop(handle): the express path hands everything to JS from now on (the engine stopped, or
// its sockets are about to close). Idempotent.
Napi::Value ExpressStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Express* x = info.Length() > 0 ? Unwrap(env, info[0], "expressStop") : nullptr;
  if (x != nullptr) {
    std::lock_guard<std::mutex> hold(x->mu);
    x->enabled = false;
  }
  return env.Undefined();
}

// expressRecords(handle): { records: Buffer, lost: number } — what the path recorded while a trace
// watched, since the last call (TraceRecordHead + bytes, repeated), and how many records did not fit.
// Called on the engine's event loop; while nobody watches it also releases the log's memory.
Napi::Value ExpressRecords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Express* x = info.Length() > 0 ? Unwrap(env, info[0], "expressRecords") : nullptr;
  if (x == nullptr) return env.Undefined();
  TraceLog& t = x->trace;
  double lost;
  bool watched;
  {
    std::lock_guard<std::mutex> hold(x->mu);
    t.filling.swap(t.draining);
    lost = t.lost;
    t.lost = 0;
    watched = Watched(x);
    if (!watched) std::vector<uint8_t>().swap(t.filling);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("records", t.draining.empty() ? Napi::Buffer<uint8_t>::New(env, 0) : Napi::Buffer<uint8_t>::Copy(env, t.draining.data(), t.draining.size()));
  out.Set("lost", Napi::Number::New(env, lost));
  t.draining.clear();
  if (!watched) std::vector<uint8_t>().swap(t.draining);
  return out;
}

}  // namespace

bool ExpressTag(napi_env env, napi_value v) {
  bool tagged = false;
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_external && napi_check_object_type_tag(env, v, &kExpressTag, &tagged) == napi_ok && tagged;
}

int ExpressOnReadable(void* express, int side, bool onLoop) {
  Express* x = static_cast<Express*>(express);
  std::lock_guard<std::mutex> hold(x->mu);
  if (side == 0) {
    // Not while a trace watches: see ForwardInBatch.
    if (onLoop && x->bulkOut && x->enabled && x->outbound && x->state[0] == 0 && !Watched(x)) return OnTunReadableBulk(x);
    return OnTunReadable(x) ? -1 : 0;
  }
  return OnUdpReadable(x, onLoop);
}

bool ExpressWantsThread(void* express) { return static_cast<Express*>(express)->thread; }

void ExpressCountThread(void* express, ExpressThreadEvent e) {
  // Each slot has one writer (passes and hand-overs: the thread; hand-backs: the event loop).
  Express* x = static_cast<Express*>(express);
  x->ctr[e == ExpressThreadEvent::kPass ? kThreadPasses : e == ExpressThreadEvent::kToLoop ? kLoopHandovers : kThreadResumes] += 1;
}

void InitExpress(Napi::Env env, Napi::Object exports) {
  exports.Set("expressOpen", Napi::Function::New(env, ExpressOpen, "expressOpen"));
  exports.Set("expressRoutes", Napi::Function::New(env, ExpressRoutes, "expressRoutes"));
  exports.Set("expressStop", Napi::Function::New(env, ExpressStop, "expressStop"));
  exports.Set("expressRecords", Napi::Function::New(env, ExpressRecords, "expressRecords"));
  InitExpressRules(env, exports);
}

}  // namespace vxtun
