/**
 * `vxtun bench compare A.json B.json`: the change from A to B per case and metric, both in
 * absolute medians and in ratio-to-kernel (the figure that survives a noisy machine). Results
 * from different machines are refused unless forced, and then the output says so first.
 */
import { readFileSync } from 'node:fs';
import { BenchResultSchema, METRICS, type BenchResult, type MetricKey } from './schema.js';
import { num } from './format.js';

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

function change(a: number | null, b: number | null): string {
  if (a === null || b === null) return 'n/a';
  if (a === 0) return b === 0 ? '0%' : 'n/a';
  const pct = ((b - a) / Math.abs(a)) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
}

export function renderCompare(a: BenchResult, b: BenchResult, names: [string, string], force: boolean): string {
  const diffs = machineDifferences(a, b);
  if (diffs.length > 0 && !force) {
    throw new CompareError(`refusing to compare results from different machines (${diffs.join('; ')}); pass --force to compare anyway`, 2);
  }
  const lines: string[] = [];
  if (diffs.length > 0) {
    lines.push(`WARNING: these results come from different machines (${diffs.join('; ')}): absolute figures are not comparable; ratios to each run's kernel VXLAN are the fairer view.`);
  } else {
    lines.push(`same machine (${a.machine.hostname}, ${a.machine.cpuModel}, ${a.machine.cores} cores, Linux ${a.machine.kernel})`);
  }
  lines.push(`A = ${names[0]} (${a.date}, vxtun ${a.machine.vxtunVersion}, ${a.settings.runs} run(s), ${a.noise.note})`);
  lines.push(`B = ${names[1]} (${b.date}, vxtun ${b.machine.vxtunVersion}, ${b.settings.runs} run(s), ${b.noise.note})`);
  const settingDiffs = (['quick', 'runs', 'seconds', 'pinned'] as const).filter((k) => a.settings[k] !== b.settings[k]).map((k) => `${k} ${a.settings[k]} vs ${b.settings[k]}`);
  if (settingDiffs.length > 0) lines.push(`note: measured with different settings (${settingDiffs.join(', ')})`);
  lines.push('');
  const header = ['case', 'metric', 'A median', 'B median', 'change', 'A ×kernel', 'B ×kernel', 'change'];
  const rows: string[][] = [];
  const ids = [...new Set([...a.cases.map((c) => c.id), ...b.cases.map((c) => c.id)])];
  for (const id of ids) {
    const ca = a.cases.find((c) => c.id === id);
    const cb = b.cases.find((c) => c.id === id);
    if (!ca?.summary || !cb?.summary) {
      const which = !ca ? 'only in B' : !cb ? 'only in A' : !ca.summary && !cb.summary ? 'neither measured' : `measured only in ${ca.summary ? 'A' : 'B'}`;
      rows.push([id, `${which}: A ${ca?.status ?? 'absent'}, B ${cb?.status ?? 'absent'}`, '', '', '', '', '', '']);
      continue;
    }
    for (const k of Object.keys(METRICS) as MetricKey[]) {
      const sa = ca.summary[k];
      const sb = cb.summary[k];
      if (sa.median === null && sb.median === null) continue;
      const unit = METRICS[k].unit;
      rows.push([id, `${METRICS[k].label} (${unit})`, num(sa.median), num(sb.median), change(sa.median, sb.median), sa.ratio === null ? 'n/a' : sa.ratio.toFixed(2), sb.ratio === null ? 'n/a' : sb.ratio.toFixed(2), change(sa.ratio, sb.ratio)]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  lines.push(fmt(header));
  for (const r of rows) lines.push(fmt(r));
  return lines.join('\n') + '\n';
}
