/**
 * Trace times for display. Events carry CLOCK_MONOTONIC milliseconds of their node's host; those
 * compare only between nodes with the same boot id (one host, one boot). Wall-clock time is derived
 * for display with one offset per host, so the events of one host keep their order when shown.
 */
import type { NodeInfo } from './journey.js';

/** Whether two nodes' event times are known to be readings of one clock. */
export function sameClock(a: NodeInfo, b: NodeInfo): boolean {
  return a.bootId !== undefined && a.bootId !== '' && a.bootId === b.bootId;
}

/** Milliseconds from `sent` (on `a`) to `received` (on `b`), or undefined when their clocks are not known to agree. */
export function transitMs(a: NodeInfo, sent: number, b: NodeInfo, received: number): number | undefined {
  return sameClock(a, b) ? received - sent : undefined;
}

/** Converts event times to epoch milliseconds with the first offset seen for each host. */
export class WallClock {
  private readonly offsets = new Map<string, number>();

  epochMs(node: NodeInfo, t: number): number {
    const offset = node.epochOffsetMs ?? 0;
    if (!node.bootId) return t + offset;
    let shared = this.offsets.get(node.bootId);
    if (shared === undefined) this.offsets.set(node.bootId, (shared = offset));
    return t + shared;
  }
}
