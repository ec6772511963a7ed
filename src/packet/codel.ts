/**
 * CoDel (RFC 8289) on the VXLAN socket's receive queue: the readable reference of native/codel.h,
 * which the native path runs as it takes datagrams off the socket (test/unit/codel.test.ts holds
 * the two equal). When the engine is the bottleneck, pods' TCP fills the socket's receive buffer
 * (megabytes) and every packet behind it waits milliseconds. Each datagram's sojourn time (now minus
 * the kernel's arrival stamp) says how long the queue has stood; once it stays above `target` for an
 * `interval`, one datagram is dropped, then more often (interval / sqrt(count)) until the queue falls
 * below the target, so the senders' TCP backs off and the queue stays short.
 *
 * The state is a Float64Array (CodelSlot names its entries) that the bind owns and the addon writes:
 * the JS pipeline and the express path take turns on one socket and share it. Times in nanoseconds.
 */

export const CodelSlot = {
  /** ns; 0: CoDel off. */
  Target: 0,
  Interval: 1,
  /** 1 while in the dropping state. */
  Dropping: 2,
  /** When the sojourn time will have stood above target for an interval (0: it is below). */
  FirstAbove: 3,
  /** When the next drop is due while dropping. */
  DropNext: 4,
  /** Drops in this dropping state. */
  Count: 5,
  /** Count when the last dropping state ended. */
  LastCount: 6,
} as const;
export const CODEL_SLOTS = 7;

/** `datapath.codel: true`: a pod network's round trips are tenths of a millisecond, not the internet's 100 ms. */
export const CODEL_DEFAULTS = Object.freeze({ targetUs: 250, intervalUs: 2500 });

/** A fresh state for target and interval in microseconds. */
export function newCodelState(targetUs: number, intervalUs: number): Float64Array {
  const s = new Float64Array(CODEL_SLOTS);
  s[CodelSlot.Target] = targetUs * 1000;
  s[CodelSlot.Interval] = intervalUs * 1000;
  return s;
}

/** RFC 8289 control_law: the next drop, interval / sqrt(count) after t. */
function controlLaw(t: number, interval: number, count: number): number {
  return t + interval / Math.sqrt(count);
}

/**
 * One datagram taken off the queue at `now` after waiting `sojourn`; `emptied`: nothing waits behind
 * it (the RFC's "queue holds less than a packet"). True when it is to be dropped.
 */
export function codelDequeue(s: Float64Array, sojourn: number, now: number, emptied: boolean): boolean {
  const target = s[CodelSlot.Target]!;
  const interval = s[CodelSlot.Interval]!;
  if (target <= 0) return false;
  // dodequeue: ok to drop once the sojourn time has stood above target for an interval.
  let okToDrop = false;
  if (sojourn < target || emptied) s[CodelSlot.FirstAbove] = 0;
  else if (s[CodelSlot.FirstAbove] === 0) s[CodelSlot.FirstAbove] = now + interval;
  else if (now >= s[CodelSlot.FirstAbove]!) okToDrop = true;

  if (s[CodelSlot.Dropping] !== 0) {
    if (!okToDrop) {
      s[CodelSlot.Dropping] = 0;
      return false;
    }
    if (now < s[CodelSlot.DropNext]!) return false;
    s[CodelSlot.Count] = s[CodelSlot.Count]! + 1;
    s[CodelSlot.DropNext] = controlLaw(s[CodelSlot.DropNext]!, interval, s[CodelSlot.Count]!);
    return true;
  }
  if (!okToDrop) return false;
  // Enter the dropping state, starting from the last one's rate if it ended recently.
  s[CodelSlot.Dropping] = 1;
  const delta = s[CodelSlot.Count]! - s[CodelSlot.LastCount]!;
  s[CodelSlot.Count] = delta > 1 && now - s[CodelSlot.DropNext]! < 16 * interval ? delta : 1;
  s[CodelSlot.DropNext] = controlLaw(now, interval, s[CodelSlot.Count]!);
  s[CodelSlot.LastCount] = s[CodelSlot.Count]!;
  return true;
}
