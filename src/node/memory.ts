/**
 * A node's memory: V8's young generation held at its initial size, and what `vxtun status` reports.
 *
 * V8 doubles a young generation that survives allocation bursts (module loading at start, a trace,
 * a registry resync) up to 16 MiB per semi-space, and the pages it touched stay resident: measured,
 * 5–8 MiB of a node's peak RSS per isolate (main thread and every worker). The data path allocates
 * next to nothing per packet (test/tools/engine-alloc.mjs), so it gains nothing from a large one.
 * `--semi-space-growth-factor=1` stops the growth; V8 reads it whenever it would grow the new space,
 * for every isolate of the process, so it holds for the worker threads started after it too.
 * VXTUN_NO_YOUNG_GEN_CAP=1 leaves V8's default.
 */
import v8 from 'node:v8';

/** Caps the young generation of every isolate of this process unless `env` says not to. Whether it did. */
export function capYoungGeneration(env: Record<string, string | undefined> = process.env): boolean {
  if (env.VXTUN_NO_YOUNG_GEN_CAP === '1') return false;
  if (!capped) v8.setFlagsFromString('--semi-space-growth-factor=1');
  capped = true;
  return true;
}

let capped = false;

/** Whether capYoungGeneration() capped it (the node reports it as `features.youngGenerationCap`). */
export function youngGenerationCapped(): boolean {
  return capped;
}

export interface MemoryReport {
  /** Resident set of the whole process (every thread's isolate, the addon, the binary's pages). */
  rssBytes: number;
  /** The main thread's V8 heap: in use, and reserved for its young generation (new space). */
  heapUsedBytes: number;
  newSpaceBytes: number;
}

export function memoryReport(): MemoryReport {
  const { rss, heapUsed } = process.memoryUsage();
  const newSpace = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return { rssBytes: rss, heapUsedBytes: heapUsed, newSpaceBytes: newSpace?.space_size ?? 0 };
}
