/** The terminal table of a bench result: per wire mode, one column per case, one row per metric. */
import { versusNaiveLines, naiveMetrics } from './versus-naive.js';
import { metricDefs, type BenchResult, type MetricDef, type WireResult } from './schema.js';
import { num, ratioText, ciText, missingText, versusUdpProxyC } from './format.js';

/** Rows of the tables: every metric but the Mbit/s of UDP payloads below the largest (their kpps says it). */
export function tableMetrics(r: BenchResult): MetricDef[] {
  const largest = r.settings.udpSizes[r.settings.udpSizes.length - 1];
  return metricDefs(r.settings).filter((d) => !/^udp\d+Mbps$/.test(d.key) || d.key === `udp${largest}Mbps`);
}

export function machineLine(r: BenchResult): string {
  const m = r.machine;
  return `${m.hostname}: Linux ${m.kernel}, ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, vxtun ${r.build.vxtunVersion} (commit ${r.build.commit}), native addon ${m.features.nativeAddon ? 'on' : 'off'}, ${m.iperf3}, ${m.netperf}${m.tcpCongestionControl ? `, TCP congestion control ${m.tcpCongestionControl}` : ''}`;
}

/** What one wire block was measured on, for headings. */
export function wireHeading(r: BenchResult, w: WireResult): string {
  const what = w.wire === 'link' ? 'link wire: segmentation offloads off, GRO on, as a NIC' : 'veth wire: offloads as veth gives them (super-packets cross whole)';
  return `${what}; MTU ${w.mtu}${r.settings.netem ? `; netem ${r.settings.netem}` : ''}`;
}

function wireTable(r: BenchResult, w: WireResult): string[] {
  const metrics = tableMetrics(r);
  const cols = w.cases.map((c) => ({ c, head: c.id, sub: c.status === 'measured' ? (c.datapaths.length ? `datapath ${[...new Set(c.datapaths)].join('/')}` : c.dataplane) : c.status }));
  const labelWidth = Math.max(...metrics.map((d) => `${d.label} (${d.unit})`.length));
  const cells = metrics.map((d) =>
    cols.map(({ c }) => {
      const s = c.summary?.[d.key];
      if (!s || s.median === null) return [missingText(c, d.key), ''];
      return [`${num(s.median)} ${ratioText(s.ratio)}`.trim(), ciText(s)];
    }),
  );
  const widths = cols.map((col, i) => Math.max(col.head.length, col.sub.length, ...cells.map((row) => Math.max(row[i]![0]!.length, row[i]![1]!.length))) + 2);
  const pad = (s: string, width: number): string => s.padStart(width);
  const lines = [`== ${wireHeading(r, w)}`, ''.padEnd(labelWidth) + cols.map((col, i) => pad(col.head, widths[i]!)).join(''), ''.padEnd(labelWidth) + cols.map((col, i) => pad(col.sub, widths[i]!)).join('')];
  metrics.forEach((d, row) => {
    lines.push(`${d.label} (${d.unit})`.padEnd(labelWidth) + cells[row]!.map((cell, i) => pad(cell[0]!, widths[i]!)).join(''));
    if (cells[row]!.some((cell) => cell[1])) lines.push(''.padEnd(labelWidth) + cells[row]!.map((cell, i) => pad(cell[1]!, widths[i]!)).join(''));
  });
  const versusUdpProxy = versusUdpProxyC(w.cases, r.settings.streams);
  if (versusUdpProxy) lines.push('', versusUdpProxy);
  const notes = w.cases.filter((c) => c.status !== 'measured' || c.runs.some((x) => x.errors.length > 0));
  if (notes.length) {
    lines.push('');
    for (const c of notes) {
      if (c.reason) lines.push(`${c.id}: ${c.reason}`);
      for (const run of c.runs) for (const e of run.errors) lines.push(`${c.id} round ${run.round}: ${e}`);
    }
  }
  lines.push(...versusNaiveLines(w.cases, naiveMetrics(metricDefs(r.settings), r.settings.udpSizes)));
  return lines;
}

export function renderTable(r: BenchResult): string {
  const lines: string[] = [];
  lines.push(`vxtun bench, ${r.date}: ${r.settings.runs} run(s) per case in interleaved rounds × ${r.settings.seconds} s per measurement${r.settings.quick ? ' (--quick)' : ''}, ${r.wallSeconds} s in all`);
  lines.push(machineLine(r));
  lines.push(`noise: ${r.noise.note}; CPU placement: ${r.settings.pinned ? 'traffic tools pinned' : `not pinned (allowed CPUs ${r.machine.cpusAllowed})`}`);
  lines.push(`cells: median ×ratio to kernel VXLAN on the same wire, ${Math.round(r.settings.confidence * 100)} % bootstrap CI of the median below (from 2 runs up)`);
  for (const w of r.wires) lines.push('', ...wireTable(r, w));
  return lines.join('\n') + '\n';
}
