// CoDel (RFC 8289) on the VXLAN socket's receive queue: the twin of src/packet/codel.ts, held to it
// by test/unit/codel.test.ts.
//
// Why: when the engine is the bottleneck, a pod's TCP fills the socket's receive buffer (megabytes)
// and every packet behind it, a ping included, waits milliseconds. The kernel stamps each datagram
// when it arrives (SO_TIMESTAMPNS); as the engine takes it off the queue, its sojourn time says how
// long the queue has stood. Once it stays above `target` for an `interval`, a datagram is dropped,
// then more often (interval / sqrt(count)) until the queue drains below the target: the senders'
// TCP backs off and the queue stays short without losing throughput.
//
// The state lives in a Float64Array the bind owns (the JS pipeline and the express path read the same
// socket, one at a time, so they share it); CodelSlot names its entries. All times in nanoseconds.
#pragma once

#include <cmath>
#include <cstdint>

namespace vxtun {

enum CodelSlot {
  kCodelTarget,      // ns; 0: CoDel off
  kCodelInterval,    // ns
  kCodelDropping,    // 1 while in the dropping state
  kCodelFirstAbove,  // when the sojourn time will have stood above target for an interval (0: it is below)
  kCodelDropNext,    // when the next drop is due while dropping
  kCodelCount,       // drops in this dropping state
  kCodelLastCount,   // count when the last dropping state ended
  kCodelSlots
};

// RFC 8289 control_law: the next drop, interval / sqrt(count) after t.
inline double CodelControlLaw(double t, double interval, double count) { return t + interval / std::sqrt(count); }

// One datagram taken off the queue at `now` after waiting `sojourn`; `emptied`: nothing waits behind
// it (the RFC's "queue holds less than a packet"). Returns true when it is to be dropped.
inline bool CodelDequeue(double* s, double sojourn, double now, bool emptied) {
  const double target = s[kCodelTarget];
  const double interval = s[kCodelInterval];
  if (target <= 0) return false;
  // dodequeue: ok_to_drop once the sojourn time has stood above target for an interval.
  bool okToDrop = false;
  if (sojourn < target || emptied) {
    s[kCodelFirstAbove] = 0;
  } else if (s[kCodelFirstAbove] == 0) {
    s[kCodelFirstAbove] = now + interval;
  } else if (now >= s[kCodelFirstAbove]) {
    okToDrop = true;
  }
  if (s[kCodelDropping] != 0) {
    if (!okToDrop) {
      s[kCodelDropping] = 0;
      return false;
    }
    if (now < s[kCodelDropNext]) return false;
    s[kCodelCount] += 1;
    s[kCodelDropNext] = CodelControlLaw(s[kCodelDropNext], interval, s[kCodelCount]);
    return true;
  }
  if (!okToDrop) return false;
  // Enter the dropping state; start from the last state's rate if it ended recently.
  s[kCodelDropping] = 1;
  const double delta = s[kCodelCount] - s[kCodelLastCount];
  s[kCodelCount] = delta > 1 && now - s[kCodelDropNext] < 16 * interval ? delta : 1;
  s[kCodelDropNext] = CodelControlLaw(now, interval, s[kCodelCount]);
  s[kCodelLastCount] = s[kCodelCount];
  return true;
}

}  // namespace vxtun
