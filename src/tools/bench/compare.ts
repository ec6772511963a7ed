/**
 * `vxtun bench compare A.json B.json`: the change from A to B per wire, case and metric, judged as
 * benchstat judges it: a Mann-Whitney U test on the two files' per-run samples, "better" or
 * "worse" (by whether higher is better for that metric) when p < 0.05, "~" when the difference is
 * not significant or the samples are too few to ever show one. Results from different machines
 * are refused unless allowed, and then the output says so first.
 */
import { readFileSync } from 'node:fs';
import { BenchResultSchema, RESULT_VERSION, metricDefs, type BenchResult, type CaseResult, type MetricDef } from './schema.js';
import { num } from './format.js';
import { mannWhitneyU, median, smallestP } from './stats.js';

/** Significance level of compare's verdicts, as benchstat's default. */
export const ALPHA = 0.05;

export class CompareError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function loadResult(path: string): BenchResult {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CompareError(`${path}: cannot read a bench result: ${(err as Error).message.split('\n')[0]}`, 2);
  }
  const version = (raw as { kind?: unknown; version?: unknown } | null)?.version;
  if ((raw as { kind?: unknown } | null)?.kind === 'vxtun-bench' && typeof version === 'number' && version !== RESULT_VERSION) {
    throw new CompareError(`${path}: bench result version ${version} cannot be compared: compare reads version ${RESULT_VERSION} (per-run samples per wire mode); measure again with this vxtun`, 2);
  }
  const parsed = BenchResultSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CompareError(`${path}: not a vxtun bench result: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, 2);
  }
  return parsed.data;
}

/** How the two machines differ, field by field; empty when they are the same machine kind. */
export function machineDifferences(a: BenchResult, b: BenchResult): string[] {
  const out: string[] = [];
  const fields = ['machineIdHash', 'cpuModel', 'cores', 'kernel'] as const;
  for (const f of fields) if (a.machine[f] !== b.machine[f]) out.push(`${f} ${JSON.stringify(a.machine[f])} vs ${JSON.stringify(b.machine[f])}`);
  return out;
}

export type Verdict = 'better' | 'worse' | '~';

export interface Judgement {
  verdict: Verdict;
  /** The test's two-sided p, null when there were too few samples to test. */
  p: number | null;
  /** The verdict as printed: "better (p=0.008 n=5+5)", "~ (p=0.42 n=5+5)", "~ (too few samples: n=2+2)". */
  text: string;
}

/** benchstat's judgement of one metric from A's runs to B's. */
export function judge(def: Pick<MetricDef, 'higherIsBetter'>, a: readonly number[], b: readonly number[], alpha = ALPHA): Judgement {
  const n = `n=${a.length}+${b.length}`;
  // Below the sizes whose smallest attainable p is under alpha, no difference can ever be significant.
  if (a.length === 0 || b.length === 0 || smallestP(a.length, b.length) >= alpha) return { verdict: '~', p: null, text: `~ (too few samples: ${n})` };
  const { p } = mannWhitneyU(a, b);
  const pText = `p=${p < 0.001 ? p.toExponential(1) : p.toFixed(3)} ${n}`;
  const ma = median(a)!;
  const mb = median(b)!;
  if (p >= alpha || ma === mb) return { verdict: '~', p, text: `~ (${pText})` };
  const verdict: Verdict = mb > ma === def.higherIsBetter ? 'better' : 'worse';
  return { verdict, p, text: `${verdict} (${pText})` };
}

function change(a: number | null, b: number | null): string {
  if (a === null || b === null) return 'n/a';
  if (a === 0) return b === 0 ? '0%' : 'n/a';
  const pct = ((b - a) / Math.abs(a)) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
}

function samples(c: CaseResult, key: string): number[] {
  return c.runs.map((r) => r.metrics[key] ?? null).filter((x): x is number => x !== null && Number.isFinite(x));
}

export function renderCompare(a: BenchResult, b: BenchResult, names: [string, string], allowDifferentMachines: boolean): string {
  const diffs = machineDifferences(a, b);
  if (diffs.length > 0 && !allowDifferentMachines) {
    throw new CompareError(`refusing to compare results from different machines (${diffs.join('; ')}); pass --allow-different-machines to compare anyway`, 2);
  }
  const lines: string[] = [];
  if (diffs.length > 0) {
    lines.push(`WARNING: these results come from different machines (${diffs.join('; ')}): absolute figures are not comparable; ratios to each run's kernel VXLAN are the fairer view.`);
  } else {
    lines.push(`same machine (${a.machine.hostname}, ${a.machine.cpuModel}, ${a.machine.cores} cores, Linux ${a.machine.kernel})`);
  }
  lines.push(`A = ${names[0]} (${a.date}, vxtun ${a.build.vxtunVersion} commit ${a.build.commit}, ${a.settings.runs} run(s), ${a.noise.note})`);
  lines.push(`B = ${names[1]} (${b.date}, vxtun ${b.build.vxtunVersion} commit ${b.build.commit}, ${b.settings.runs} run(s), ${b.noise.note})`);
  const settingDiffs = (['quick', 'runs', 'seconds', 'pinned', 'mtu', 'streams', 'netem'] as const)
    .filter((k) => a.settings[k] !== b.settings[k])
    .map((k) => `${k} ${a.settings[k]} vs ${b.settings[k]}`);
  if (a.settings.udpSizes.join(',') !== b.settings.udpSizes.join(',')) settingDiffs.push(`UDP sizes ${a.settings.udpSizes.join(',')} vs ${b.settings.udpSizes.join(',')}`);
  if (settingDiffs.length > 0) lines.push(`note: measured with different settings (${settingDiffs.join(', ')})`);
  lines.push(`verdicts: Mann-Whitney U on the per-run samples, better/worse when p < ${ALPHA}, ~ otherwise`);
  const bKeys = new Set(metricDefs(b.settings).map((d) => d.key));
  const defs = metricDefs(a.settings).filter((d) => bKeys.has(d.key));
  const header = ['case', 'metric', 'A median', 'B median', 'change', 'verdict', 'A ×kernel', 'B ×kernel'];
  for (const wire of [...new Set([...a.wires.map((w) => w.wire), ...b.wires.map((w) => w.wire)])]) {
    const wa = a.wires.find((w) => w.wire === wire);
    const wb = b.wires.find((w) => w.wire === wire);
    lines.push('');
    if (!wa || !wb) {
      lines.push(`== ${wire} wire: measured only in ${wa ? 'A' : 'B'}`);
      continue;
    }
    lines.push(`== ${wire} wire (MTU ${wa.mtu}${wa.mtu !== wb.mtu ? ` vs ${wb.mtu}` : ''})`);
    const rows: string[][] = [];
    for (const id of [...new Set([...wa.cases.map((c) => c.id), ...wb.cases.map((c) => c.id)])]) {
      const ca = wa.cases.find((c) => c.id === id);
      const cb = wb.cases.find((c) => c.id === id);
      if (!ca?.summary || !cb?.summary) {
        const which = !ca ? 'only in B' : !cb ? 'only in A' : !ca.summary && !cb.summary ? 'neither measured' : `measured only in ${ca.summary ? 'A' : 'B'}`;
        rows.push([id, `${which}: A ${ca?.status ?? 'absent'}, B ${cb?.status ?? 'absent'}`, '', '', '', '', '', '']);
        continue;
      }
      for (const d of defs) {
        const sa = ca.summary[d.key]!;
        const sb = cb.summary[d.key]!;
        if (sa.median === null && sb.median === null) continue;
        const j = judge(d, samples(ca, d.key), samples(cb, d.key));
        const ratioText = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(2));
        rows.push([id, `${d.label} (${d.unit})`, num(sa.median), num(sb.median), change(sa.median, sb.median), j.text, ratioText(sa.ratio), ratioText(sb.ratio)]);
      }
    }
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]): string => r.map((c, i) => (i < 2 || i === 5 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
    lines.push(fmt(header));
    for (const r of rows) lines.push(fmt(r));
  }
  return lines.join('\n') + '\n';
}
