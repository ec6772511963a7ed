/**
 * `vxtun bench [--quick] [--cases ...] [--runs N] [--seconds N] [--json FILE] [--html FILE] [--pin]`
 * and `vxtun bench compare A.json B.json [--force]`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { BENCH_CASES } from '../tools/bench/cases.js';
import { runBench, defaultSettings } from '../tools/bench/runner.js';
import { renderTable } from '../tools/bench/report-text.js';
import { renderHtml } from '../tools/bench/report-html.js';
import { loadResult, renderCompare, CompareError } from '../tools/bench/compare.js';
import { BenchResultSchema } from '../tools/bench/schema.js';
import { runSoak, renderSoakText, renderSoakHtml } from '../tools/bench/soak.js';
import { usageError } from './usage-error.js';

export interface BenchOptions {
  quick?: boolean;
  cases?: string;
  runs?: string;
  seconds?: string;
  json?: string;
  html?: string;
  pin?: boolean;
}


function positiveInt(name: string, value: string | undefined, max: number): number | string | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) return `${name} ${JSON.stringify(value)} must be an integer from 1 to ${max}`;
  return n;
}

export async function runBenchCommand(o: BenchOptions, argv: string[]): Promise<number> {
  const known = BENCH_CASES.map((c) => c.id);
  let cases = known;
  if (o.cases !== undefined) {
    cases = o.cases.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = cases.find((c) => !known.includes(c));
    if (bad !== undefined || cases.length === 0) return usageError(`--cases ${JSON.stringify(o.cases)}: unknown case ${JSON.stringify(bad ?? '')} (cases: ${known.join(', ')})`);
  }
  const runs = positiveInt('--runs', o.runs, 50);
  const seconds = positiveInt('--seconds', o.seconds, 600);
  if (typeof runs === 'string') return usageError(runs);
  if (typeof seconds === 'string') return usageError(seconds);
  if (process.getuid?.() !== 0) {
    process.stderr.write('vxtun: vxtun bench must run as root (it creates network namespaces)\n');
    return 1;
  }
  try {
    execFileSync('sh', ['-c', 'command -v iperf3 && command -v ping'], { stdio: 'ignore' });
  } catch {
    process.stderr.write('vxtun: vxtun bench needs iperf3 and ping (bash scripts/install-deps.sh)\n');
    return 1;
  }
  // The kernel's VXLAN is the baseline of every ratio: always measured in the same run.
  if (!cases.includes('kernel')) {
    cases = ['kernel', ...cases];
    process.stdout.write('adding case kernel: every figure is reported as a ratio to the kernel VXLAN measured in the same run\n');
  }
  cases = known.filter((k) => cases.includes(k));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const jsonPath = resolve(o.json ?? `bench-results/vxtun-bench-${stamp}.json`);
  const htmlPath = resolve(o.html ?? jsonPath.replace(/\.json$/, '') + '.html');
  const base = defaultSettings(o.quick === true);
  const settings = {
    ...base,
    runs: runs ?? base.runs,
    seconds: seconds ?? base.seconds,
    cases,
    pin: o.pin === true,
    command: ['vxtun', 'bench', ...argv].join(' '),
  };
  process.stdout.write(`vxtun bench: cases ${cases.join(', ')}; ${settings.runs} run(s) × ${settings.seconds} s per measurement after a ${settings.warmupSeconds} s warm-up\n`);
  const result = await runBench(settings);
  // What we write must read back: a malformed file is a bug here, not in compare.
  BenchResultSchema.parse(result);
  process.stdout.write('\n' + renderTable(result));
  writeOutputs(jsonPath, result, htmlPath, renderHtml(result));
  return result.cases.some((c) => c.status === 'failed') ? 1 : 0;
}

/** Writes the result file and its HTML report (directories made as needed) and says where. */
function writeOutputs(jsonPath: string, result: unknown, htmlPath: string, html: string): void {
  for (const [path, text] of [
    [jsonPath, JSON.stringify(result, null, 2) + '\n'],
    [htmlPath, html],
  ] as const) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
  process.stdout.write(`\nwrote ${jsonPath}\nwrote ${htmlPath}\n`);
}

export function runBenchCompare(a: string, b: string, o: { force?: boolean }): number {
  try {
    process.stdout.write(renderCompare(loadResult(a), loadResult(b), [a, b], o.force === true));
    return 0;
  } catch (err) {
    if (err instanceof CompareError) {
      process.stderr.write(`vxtun: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

export interface SoakOptions {
  minutes?: string;
  duration?: string;
  interval?: string;
  case?: string;
  json?: string;
  html?: string;
}

/** `vxtun bench soak`: exit 0 when every vxtun process stayed flat and within the RSS limit, 1 when not. */
export async function runBenchSoak(o: SoakOptions, argv: string[]): Promise<number> {
  const minutes = positiveInt('--minutes', o.minutes, 24 * 60);
  const secondsOpt = positiveInt('--duration', o.duration, 24 * 3600);
  const interval = positiveInt('--interval', o.interval, 600);
  for (const v of [minutes, secondsOpt, interval]) if (typeof v === 'string') return usageError(v);
  const caseIds = BENCH_CASES.filter((c) => c.id !== 'kernel' && c.id !== 'veth').map((c) => c.id);
  const caseId = o.case ?? 'vxtun-fast';
  if (!caseIds.includes(caseId)) return usageError(`--case ${JSON.stringify(caseId)}: not a case with a vxtun process (cases: ${caseIds.join(', ')})`);
  const seconds = (secondsOpt as number | undefined) ?? ((minutes as number | undefined) ?? 10) * 60;
  const intervalSeconds = (interval as number | undefined) ?? Math.min(10, Math.max(1, Math.floor(seconds / 10)));
  if (intervalSeconds >= seconds) return usageError(`--interval ${intervalSeconds} must be shorter than the run (${seconds} s)`);
  if (process.getuid?.() !== 0) {
    process.stderr.write('vxtun: vxtun bench soak must run as root (it creates network namespaces)\n');
    return 1;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const jsonPath = resolve(o.json ?? `bench-results/vxtun-soak-${stamp}.json`);
  const htmlPath = resolve(o.html ?? jsonPath.replace(/\.json$/, '') + '.html');
  // The first 10 % (at most a minute) is warm-up: the JIT, buffer pools and socket memory settle.
  const warmupSeconds = Math.min(60, Math.max(intervalSeconds, Math.round(seconds / 10)));
  const result = await runSoak({ caseId, seconds, intervalSeconds, warmupSeconds, command: ['vxtun', 'bench', ...argv].join(' ') });
  process.stdout.write('\n' + renderSoakText(result));
  writeOutputs(jsonPath, result, htmlPath, renderSoakHtml(result));
  return result.verdicts.every((v) => v.flat && v.underLimit) ? 0 : 1;
}
