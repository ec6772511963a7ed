/**
 * Issue 3's "pure-TS path ≥ 5 × the naive `fs.read` + `dgram.send` design": which figures are set
 * against the naive case, for which cases, and the terminal block that shows them (the HTML
 * report draws the same figures as a table and a chart).
 */
import { NAIVE_CASE, type CaseResult, type MetricDef } from './schema.js';
import { ratioText } from './format.js';

/** The figures compared with the naive design: TCP, the smallest and largest UDP payloads delivered, idle RTT. */
export function naiveMetrics(defs: readonly MetricDef[], udpSizes: readonly number[]): MetricDef[] {
  const [small, large] = [udpSizes[0], udpSizes[udpSizes.length - 1]];
  const keys = new Set(['tcp1Gbps', 'tcpNGbps', `udp${small}Kpps`, `udp${large}Kpps`, `udp${large}Mbps`, 'rttIdleP50Ms']);
  return defs.filter((d) => keys.has(d.key));
}

/** The cases with a ratio to the naive case (all measured ones but itself); empty when naive was not measured. */
export function casesVersusNaive(cases: readonly CaseResult[]): CaseResult[] {
  if (!cases.some((c) => c.id === NAIVE_CASE && c.status === 'measured')) return [];
  return cases.filter((c) => c.id !== NAIVE_CASE && c.summary);
}

/** Lines for the terminal: one column per case, one row per figure; none when naive did not run. */
export function versusNaiveLines(all: readonly CaseResult[], metrics: readonly MetricDef[]): string[] {
  const cases = casesVersusNaive(all);
  if (cases.length === 0) return [];
  const rows = metrics.map((d) => [`${d.label} (${d.unit})`, ...cases.map((c) => ratioText(c.summary![d.key]!.ratioToNaive) || 'n/a')]);
  const head = ['', ...cases.map((c) => c.id)];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)) + (i === 0 ? 0 : 2));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join('');
  return ['', `versus the naive design (case ${NAIVE_CASE}: one fs.read and one dgram.send per packet), ratio of medians in this run:`, line(head), ...rows.map(line)];
}
