/**
 * Runs every micro benchmark file next to this one (`*.bench.ts`, compiled `*.bench.js`) with
 * benny: ns/packet and packets/s per case, with the machine it ran on. main.ts is the command.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import b from 'benny';
import { describeMachine } from '../../src/tools/bench/machine.js';
import type { MicroBenchmark, MicroResult } from './harness.js';
import type { MicroRun } from './schema.js';

export async function loadBenchmarks(dir = dirname(fileURLToPath(import.meta.url))): Promise<MicroBenchmark[]> {
  const files = readdirSync(dir).filter((f) => f.endsWith('.bench.js') || (f.endsWith('.bench.ts') && !f.endsWith('.d.ts'))).sort();
  const seen = new Set<string>();
  const out: MicroBenchmark[] = [];
  for (const f of files) {
    const base = f.replace(/\.(js|ts)$/, '');
    if (seen.has(base)) continue;
    seen.add(base);
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { default: MicroBenchmark };
    out.push(mod.default);
  }
  return out;
}

export interface MicroOptions {
  quick: boolean;
  only?: string[];
  /** Seconds benny may spend per case (default 0.3 quick, 1.5 otherwise). */
  maxTimeSeconds?: number;
  /** Called with one line per finished case. */
  progress?: (line: string) => void;
}

export async function runMicro(opts: MicroOptions): Promise<MicroRun> {
  const options = opts.quick ? { minSamples: 5, maxTime: opts.maxTimeSeconds ?? 0.3 } : { minSamples: 10, maxTime: opts.maxTimeSeconds ?? 1.5 };
  const say = opts.progress ?? (() => {});
  const results: MicroResult[] = [];
  for (const bm of await loadBenchmarks()) {
    if (opts.only && !opts.only.includes(bm.name)) continue;
    const cases = bm.cases();
    say(`${bm.name}: ${bm.description}`);
    const summary = await b.suite(
      bm.name,
      ...cases.map((c) => b.add(c.name, c.fn, options)),
      b.cycle((r) => void say(`  ${r.name.padEnd(24)} ${(1e9 / (r.ops * cases.find((c) => c.name === r.name)!.packetsPerOp)).toFixed(1).padStart(10)} ns/packet`)),
    );
    for (const r of summary.results) {
      const c = cases.find((x) => x.name === r.name)!;
      const pps = r.ops * c.packetsPerOp;
      results.push({ benchmark: bm.name, case: c.name, params: c.params, nsPerPacket: 1e9 / pps, packetsPerSecond: pps, marginPercent: r.margin, samples: r.samples });
    }
  }
  return { kind: 'vxtun-micro-bench', version: 1, date: new Date().toISOString(), quick: opts.quick, machine: await describeMachine(), results };
}
