/**
 * `vxtun bench`'s time left stays honest: builds and runs are estimated apart, and each kind's
 * remaining work is rescaled by how long its finished units really took (fake clock; no timing).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PassThrough } from 'node:stream';
import { Progress } from '../../src/tools/bench/progress.js';

describe('bench progress', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  it('rescales the rest of each kind by its real/estimated ratio and drops skipped work', () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (b: Buffer) => lines.push(b.toString()));
    // Two builds of 5 s and four runs of 10 s estimated: 50 s.
    const p = new Progress(out, { build: 10, run: 40 });
    expect(p.secondsLeft()).toBe(50);
    p.start('[link] build 1/2 kernel', 'build', 5);
    vi.advanceTimersByTime(2_000);
    expect(p.secondsLeft()).toBe(3 + 5 + 40); // nothing finished yet: the estimates as they are
    vi.advanceTimersByTime(8_000);
    p.done(); // the build took 10 s, twice its estimate: the other build is now 10 s; runs unchanged
    expect(p.secondsLeft()).toBe(10 + 40);
    p.start('[link] build 2/2 vxtun-fast', 'build', 5);
    vi.advanceTimersByTime(10_000);
    p.done();
    p.start('[link] round 1/2 kernel', 'run', 10);
    vi.advanceTimersByTime(5_000);
    p.done(); // runs take half their estimate
    expect(p.secondsLeft()).toBe(15);
    p.skip('run', 10); // a case that could not be built: its run is not coming
    expect(p.secondsLeft()).toBe(10);
    p.start('[link] round 2/2 kernel', 'run', 10);
    vi.advanceTimersByTime(7_000);
    expect(p.secondsLeft()).toBe(5); // this run is past its rescaled 5 s (counts 0, never negative); one run of 10 × 0.5 left
    p.finish();
    expect(lines.join('')).toMatch(/^\[link\] build 1\/2 kernel · elapsed 0:00, ~0:50 left\n/);
    expect(lines.join('')).toContain('[link] round 2/2 kernel · elapsed 0:25, ~0:10 left\n');
    expect(lines.join('')).toMatch(/bench finished in 0:32\n$/);
  });
});
