/**
 * One clock for observations: CLOCK_MONOTONIC (process.hrtime), which every process and thread on a
 * host reads alike and the addon's records carry too. `performance.timeOrigin + performance.now()`
 * is not that: each process fixes its own origin from the wall clock when it starts, so two nodes in
 * one lab disagreed by milliseconds (negative transits). Wall-clock time is for display only.
 */
import { readFileSync } from 'node:fs';

/** CLOCK_MONOTONIC in milliseconds (nanosecond resolution while uptime < 104 days). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A CLOCK_MONOTONIC reading in nanoseconds (the addon's) as monotonicMs. */
export function monotonicNsToMs(ns: bigint): number {
  return Number(ns) / 1e6;
}

/** Add to a monotonicMs reading for epoch milliseconds (as of now: the wall clock may be stepped later). */
export function epochOffsetMs(): number {
  const wall = performance.timeOrigin + performance.now();
  return wall - monotonicMs();
}

let cachedBootId: string | undefined;

/**
 * This boot of this host: two readings of CLOCK_MONOTONIC compare only under the same boot id.
 * '' where the kernel does not say (not Linux): then no two nodes are known to share a clock.
 */
export function bootId(): string {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = '';
    }
  }
  return cachedBootId;
}
