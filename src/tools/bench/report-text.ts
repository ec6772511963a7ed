/** The terminal table of a bench result: one column per case, one row per metric. */
import { versusNaiveLines } from './versus-naive.js';
import { METRICS, type BenchResult, type MetricKey } from './schema.js';
import { num, ratioText, rangeText, missingText, versusUdpProxyC } from './format.js';

const TABLE_METRICS: MetricKey[] = [
  'tcp1Gbps', 'tcp4Gbps',
  'udp64Kpps', 'udp64LossPct', 'udp512Kpps', 'udp512LossPct', 'udp1350Kpps', 'udp1350Mbps', 'udp1350LossPct',
  'rttIdleP50Ms', 'rttIdleP99Ms', 'rttLoadP50Ms', 'rttLoadP99Ms',
  'cpuSeconds', 'peakRssMiB',
];

export function machineLine(r: BenchResult): string {
  const m = r.machine;
  return `${m.hostname}: Linux ${m.kernel}, ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, vxtun ${m.vxtunVersion}, native addon ${m.features.nativeAddon ? 'on' : 'off'}, ${m.iperf3}`;
}

export function renderTable(r: BenchResult): string {
  const lines: string[] = [];
  lines.push(`vxtun bench, ${r.date}: ${r.settings.runs} run(s) × ${r.settings.seconds} s per measurement${r.settings.quick ? ' (--quick)' : ''}, ${r.wallSeconds} s in all`);
  lines.push(machineLine(r));
  lines.push(`noise: ${r.noise.note}; CPU placement: ${r.settings.pinned ? 'iperf3 pinned' : `not pinned (allowed CPUs ${r.machine.cpusAllowed})`}`);
  lines.push('cells: median ×ratio to kernel VXLAN in this run, min–max below');
  lines.push('');
  const cols = r.cases.map((c) => ({ c, head: c.id, sub: c.status === 'measured' ? (c.datapaths.length ? `datapath ${[...new Set(c.datapaths)].join('/')}` : c.dataplane) : c.status }));
  const labelWidth = Math.max(...TABLE_METRICS.map((k) => `${METRICS[k].label} (${METRICS[k].unit})`.length));
  const cells = TABLE_METRICS.map((k) =>
    cols.map(({ c }) => {
      const s = c.summary?.[k];
      if (!s || s.median === null) return [missingText(c, k), ''];
      return [`${num(s.median)} ${ratioText(s.ratio)}`.trim(), rangeText(s)];
    }),
  );
  const widths = cols.map((col, i) => Math.max(col.head.length, col.sub.length, ...cells.map((row) => Math.max(row[i]![0]!.length, row[i]![1]!.length))) + 2);
  const pad = (s: string, w: number): string => s.padStart(w);
  lines.push(''.padEnd(labelWidth) + cols.map((col, i) => pad(col.head, widths[i]!)).join(''));
  lines.push(''.padEnd(labelWidth) + cols.map((col, i) => pad(col.sub, widths[i]!)).join(''));
  TABLE_METRICS.forEach((k, row) => {
    lines.push(`${METRICS[k].label} (${METRICS[k].unit})`.padEnd(labelWidth) + cells[row]!.map((cell, i) => pad(cell[0]!, widths[i]!)).join(''));
    if (cells[row]!.some((cell) => cell[1])) lines.push(''.padEnd(labelWidth) + cells[row]!.map((cell, i) => pad(cell[1]!, widths[i]!)).join(''));
  });
  const versusUdpProxy = versusUdpProxyC(r.cases);
  if (versusUdpProxy) lines.push('', versusUdpProxy);
  const notes = r.cases.filter((c) => c.status !== 'measured' || c.runs.some((x) => x.errors.length > 0));
  if (notes.length) {
    lines.push('');
    for (const c of notes) {
      if (c.reason) lines.push(`${c.id}: ${c.reason}`);
      for (const run of c.runs) for (const e of run.errors) lines.push(`${c.id} run ${run.run}: ${e}`);
    }
  }
  lines.push(...versusNaiveLines(r));
  return lines.join('\n') + '\n';
}
