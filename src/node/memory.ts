/**
 * A node's memory: V8's young generation held at its initial size, the binary's start-up pages given
 * back, and what `vxtun status` reports.
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
import { loadNative, type NativeAddon } from '../io/addon.js';

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

/**
 * Gives back the pages of Node's code that start-up touched (native/memory.cc): about 18 MiB of a
 * node's RSS under load (the binary's share 39-40 -> 21-22 MiB, measured). `vxtun up` calls it after
 * Node's bootstrap, after loading its modules and once the node is up; not with
 * VXTUN_KEEP_STARTUP_PAGES=1 or without the addon. Never throws (the first failure is kept for
 * startupPagesError). Bytes given back by all calls so far (a page run again and given back twice
 * counts twice).
 */
export function releaseStartupPages(
  env: Record<string, string | undefined> = process.env,
  native: () => Pick<NativeAddon, 'releaseNodeCodePages'> | undefined = loadNative,
): number {
  if (env.VXTUN_KEEP_STARTUP_PAGES === '1') return released;
  try {
    const addon = native();
    if (addon) released += addon.releaseNodeCodePages().bytes;
  } catch (err) {
    releaseError ??= (err as Error).message;
  }
  return released;
}

/** Why giving back the start-up pages failed, if it did (the node logs it once it has a logger). */
export function startupPagesError(): string | undefined {
  return releaseError;
}

let released = 0;
let releaseError: string | undefined;

export interface MemoryReport {
  /** Resident set of the whole process (every thread's isolate, the addon, the binary's pages). */
  rssBytes: number;
  /** The main thread's V8 heap: in use, and reserved for its young generation (new space). */
  heapUsedBytes: number;
  newSpaceBytes: number;
  /** Resident bytes of Node's code given back during start-up, summed over its calls (releaseStartupPages). */
  releasedStartupBytes: number;
}

export function memoryReport(): MemoryReport {
  const { rss, heapUsed } = process.memoryUsage();
  const newSpace = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return { rssBytes: rss, heapUsedBytes: heapUsed, newSpaceBytes: newSpace?.space_size ?? 0, releasedStartupBytes: released };
}
