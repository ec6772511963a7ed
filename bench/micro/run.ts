/**
 * Runs every micro benchmark file next to this one (`*.bench.js`) with benny and writes one JSON
 * file: ns/packet and packets/s per case, with the machine it ran on.
 *
 *   npm run bench:micro -- [--quick] [--json FILE] [--only NAME,...]
 */
import { readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import b from 'benny';
import { describeMachine } from '../../src/bench/machine.js';
import type { MicroBenchmark, MicroResult } from './harness.js';

interface Args {
  quick: boolean;
  json: string;
  only?: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, json: 'bench-results/micro.json' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--json') args.json = argv[++i] ?? '';
    else if (a === '--only') args.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else {
      process.stderr.write(`bench:micro: unknown argument ${JSON.stringify(a)} (use --quick, --json FILE, --only NAME,...)\n`);
      process.exit(2);
    }
  }
  if (!args.json) {
    process.stderr.write('bench:micro: --json needs a file name\n');
    process.exit(2);
  }
  return args;
}

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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const options = args.quick ? { minSamples: 5, maxTime: 0.3 } : { minSamples: 10, maxTime: 1.5 };
  const results: MicroResult[] = [];
  for (const bm of await loadBenchmarks()) {
    if (args.only && !args.only.includes(bm.name)) continue;
    const cases = bm.cases();
    const summary = await b.suite(
      bm.name,
      ...cases.map((c) => b.add(c.name, c.fn, options)),
      b.cycle((r) => `  ${r.name.padEnd(24)} ${(1e9 / (r.ops * cases.find((c) => c.name === r.name)!.packetsPerOp)).toFixed(1).padStart(10)} ns/packet`),
    );
    for (const r of summary.results) {
      const c = cases.find((x) => x.name === r.name)!;
      const pps = r.ops * c.packetsPerOp;
      results.push({ benchmark: bm.name, case: c.name, params: c.params, nsPerPacket: 1e9 / pps, packetsPerSecond: pps, marginPercent: r.margin, samples: r.samples });
    }
  }
  const out = { kind: 'vxtun-micro-bench', version: 1, date: new Date().toISOString(), quick: args.quick, machine: await describeMachine(), results };
  const path = resolve(args.json);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(`\nwrote ${path} (${results.length} cases; the machine is shared and noisy: compare ratios within one file)\n`);
}

await main();
