/** Number and cell formatting shared by the terminal table, the HTML report and compare. */
import type { CaseResult, MetricKey, Stat } from './schema.js';

/** Three significant digits, no exponent for the ranges we meet. */
export function num(x: number | null): string {
  if (x === null) return 'n/a';
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a >= 0.01) return x.toFixed(3);
  return x.toPrecision(2);
}

export function ratioText(r: number | null): string {
  return r === null ? '' : `×${r >= 10 ? r.toFixed(0) : r.toFixed(2)}`;
}

export function rangeText(s: Stat): string {
  if (s.min === null || s.max === null) return '';
  // One run has no spread to show; the header says how many runs there were.
  return s.n > 1 ? `${num(s.min)}–${num(s.max)}` : '';
}

/** Why a cell has no number: the case did not run, or the metric does not apply. */
export function missingText(c: CaseResult, key: MetricKey): string {
  if (c.status === 'unsupported') return 'not supported';
  if (c.status === 'failed') return 'failed';
  if ((key === 'cpuSeconds' || key === 'peakRssMiB') && c.dataplaneProcesses.length === 0) return 'n/a (kernel)';
  return 'n/a';
}
