/** Number and cell formatting shared by the terminal table, the HTML report and compare. */
import { PROCESS_METRICS, type CaseResult, type MetricKey, type Stat } from './schema.js';

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

/** The median's confidence interval, e.g. "CI 1.20–1.31"; empty when there is none (one run). */
export function ciText(s: Stat): string {
  return s.ci ? `CI ${num(s.ci.lo)}–${num(s.ci.hi)}` : '';
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
  if (PROCESS_METRICS.includes(key) && c.dataplaneProcesses.length === 0) return 'n/a (kernel)';
  return 'n/a';
}

/**
 * vxtun's fast path against the C udp proxy (case udp-proxy-c, flannel's udp-backend design, one
 * packet per syscall), on TCP: the quotient of the medians, and in brackets the widest it could be
 * from the two cases' min–max. Undefined unless both cases were measured in this run.
 */
export function versusUdpProxyC(cases: readonly CaseResult[], streams: number): string | undefined {
  const ours = cases.find((c) => c.id === 'vxtun-fast')?.summary;
  const theirs = cases.find((c) => c.id === 'udp-proxy-c')?.summary;
  if (!ours || !theirs) return undefined;
  const parts = (['tcp1Gbps', 'tcpNGbps'] as const).flatMap((k) => {
    const [a, b] = [ours[k]!, theirs[k]!];
    if (a.median === null || b.median === null || b.median === 0) return [];
    const range = a.min !== null && a.max !== null && b.min && b.max && (a.n > 1 || b.n > 1) ? ` (${num(a.min / b.max)}–${num(a.max / b.min)})` : '';
    return [`${k === 'tcp1Gbps' ? '1 stream' : `${streams} streams`} ×${num(a.median / b.median)}${range}`];
  });
  return parts.length ? `vxtun-fast × C udp proxy (udp-proxy-c), TCP: ${parts.join(', ')}` : undefined;
}

/** Text made safe inside HTML/SVG element content and double-quoted attributes. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
