/**
 * Issue 3's "pure-TS path ≥ 5 × the naive `fs.read` + `dgram.send` design": which figures are set
 * against the naive case, for which cases, and the terminal block that shows them (the HTML
 * report draws the same figures as a table and a chart).
 */
import { METRICS, NAIVE_CASE, type BenchResult, type CaseResult, type MetricKey } from './schema.js';
import { ratioText } from './format.js';

/** The figures compared with the naive design. */
export const NAIVE_METRICS: MetricKey[] = ['tcp1Gbps', 'tcp4Gbps', 'udp64Kpps', 'udp1350Kpps', 'udp1350Mbps', 'rttIdleP50Ms'];

/** The cases with a ratio to the naive case (all measured ones but itself); empty when naive was not measured. */
export function casesVersusNaive(r: BenchResult): CaseResult[] {
  if (!r.cases.some((c) => c.id === NAIVE_CASE && c.status === 'measured')) return [];
  return r.cases.filter((c) => c.id !== NAIVE_CASE && c.summary);
}

/** Lines for the terminal: one column per case, one row per figure; none when naive did not run. */
export function versusNaiveLines(r: BenchResult): string[] {
  const cases = casesVersusNaive(r);
  if (cases.length === 0) return [];
  const rows = NAIVE_METRICS.map((k) => [`${METRICS[k].label} (${METRICS[k].unit})`, ...cases.map((c) => ratioText(c.summary![k].ratioToNaive) || 'n/a')]);
  const head = ['', ...cases.map((c) => c.id)];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)) + (i === 0 ? 0 : 2));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join('');
  return ['', `versus the naive design (case ${NAIVE_CASE}: one fs.read and one dgram.send per packet), ratio of medians in this run:`, line(head), ...rows.map(line)];
}
