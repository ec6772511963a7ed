/**
 * The HTML report: one self-contained file (inline CSS and SVG, no script, no fetch) that opens in
 * any browser offline. First the build identity and the wire modes' tables side by side, then the
 * headline chart (each case's TCP 1 stream as a ratio to the kernel, one bar per wire, with the
 * ratio's bootstrap interval as whiskers); per wire: UDP throughput by packet size per dataplane
 * (Mbit/s and packets/s, median with its interval), TCP by stream count, the RTT distribution (CDF)
 * idle and loaded, and, when the naive case ran, each case's figures divided by the naive design's.
 * Every series is a <g data-series="<id>" data-points="<n>"> so a test can check what drew.
 */
import { metricDefs, type BenchResult, type CaseResult, type MetricDef, type WireResult } from './schema.js';
import { num, ratioText, ciText, missingText, versusUdpProxyC, escapeHtml } from './format.js';
import { machineLine, tableMetrics, wireHeading } from './report-text.js';
import { casesVersusNaive, naiveMetrics } from './versus-naive.js';
import { OFFLOAD_FEATURES } from './underlay-ports.js';

const PALETTE: Record<string, string> = {
  kernel: '#1f77b4',
  veth: '#7f7f7f',
  'vxtun-fast': '#d62728',
  'vxtun-ts': '#ff7f0e',
  mixed: '#2ca02c',
  'flannel-udp': '#9467bd',
  naive: '#8c564b',
};
const EXTRA = ['#e377c2', '#bcbd22', '#17becf', '#aec7e8'];
const WIRE_COLORS: Record<string, string> = { veth: '#9ecae1', link: '#08519c' };

function color(id: string, i: number): string {
  return PALETTE[id] ?? EXTRA[i % EXTRA.length]!;
}

const esc = escapeHtml;

const W = 640;
const H = 340;
const M = { left: 64, right: 180, top: 30, bottom: 48 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

interface Series {
  id: string;
  color: string;
  points: { x: number; y: number; lo?: number; hi?: number }[];
}

function legend(series: Series[], missing: { id: string; why: string }[]): string {
  const items = series.map(
    (s, i) => `<g transform="translate(${W - M.right + 12},${M.top + 4 + i * 18})"><rect width="12" height="12" fill="${s.color}"/><text x="18" y="10">${esc(s.id)}</text></g>`,
  );
  const off = series.length;
  // Cases with no figures stay in the legend, saying why (two lines: the reason is long).
  const gone = missing.map(
    (m, i) =>
      `<g class="missing" data-series="${esc(m.id)}" transform="translate(${W - M.right + 12},${M.top + 4 + off * 18 + i * 32})"><rect width="12" height="12" fill="none" stroke="#999" stroke-dasharray="2,2"/><text x="18" y="10" fill="#777">${esc(m.id)}:<tspan x="18" dy="13">${esc(m.why)}</tspan></text></g>`,
  );
  return items.join('') + gone.join('');
}

function frame(title: string, yLabel: string, xLabel: string, yTicks: { v: number; y: number }[], xTicks: { label: string; x: number }[]): string {
  const grid = yTicks.map((t) => `<line x1="${M.left}" x2="${M.left + PW}" y1="${t.y}" y2="${t.y}" stroke="#e5e5e5"/><text x="${M.left - 6}" y="${t.y + 4}" text-anchor="end">${num(t.v)}</text>`).join('');
  const xt = xTicks.map((t) => `<text x="${t.x}" y="${M.top + PH + 18}" text-anchor="middle">${esc(t.label)}</text>`).join('');
  return (
    `<text class="title" x="${M.left}" y="18">${esc(title)}</text>${grid}${xt}` +
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + PH}" stroke="#333"/><line x1="${M.left}" x2="${M.left + PW}" y1="${M.top + PH}" y2="${M.top + PH}" stroke="#333"/>` +
    `<text x="${M.left + PW / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>` +
    `<text transform="translate(14,${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`
  );
}

/** Lines over categorical x (packet sizes), whiskers for min–max. */
function lineChart(chartId: string, title: string, yLabel: string, categories: string[], series: Series[], missing: { id: string; why: string }[]): string {
  const ymax = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.hi ?? p.y))));
  const xs = categories.map((_, i) => M.left + (categories.length === 1 ? PW / 2 : (i * PW) / (categories.length - 1)) * 0.9 + PW * 0.05);
  const y = (v: number): number => M.top + PH - (v / ymax) * PH;
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => ({ v: f * ymax, y: y(f * ymax) }));
  const body = series
    .map((s) => {
      const pts = s.points.map((p) => ({ ...p, px: xs[p.x]!, py: y(p.y) }));
      const path = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.px.toFixed(1)},${p.py.toFixed(1)}`).join('');
      const whiskers = pts.map((p) => (p.lo !== undefined && p.hi !== undefined ? `<line x1="${p.px}" x2="${p.px}" y1="${y(p.lo).toFixed(1)}" y2="${y(p.hi).toFixed(1)}" stroke="${s.color}"/>` : '')).join('');
      const dots = pts.map((p) => `<circle class="point" cx="${p.px.toFixed(1)}" cy="${p.py.toFixed(1)}" r="4" fill="${s.color}"><title>${esc(s.id)} ${esc(categories[p.x]!)}: ${num(p.y)}</title></circle>`).join('');
      return `<g class="series" data-series="${esc(s.id)}" data-points="${pts.length}"><path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"/>${whiskers}${dots}</g>`;
    })
    .join('');
  return svg(chartId, frame(title, yLabel, 'UDP payload (bytes)', yTicks, categories.map((c, i) => ({ label: c, x: xs[i]! }))) + body + legend(series, missing));
}

/** Grouped bars: one group per category, one bar per series. */
function barChart(chartId: string, title: string, yLabel: string, categories: string[], series: Series[], missing: { id: string; why: string }[]): string {
  const ymax = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.hi ?? p.y))));
  const y = (v: number): number => M.top + PH - (v / ymax) * PH;
  const groupW = PW / categories.length;
  const barW = Math.max(4, (groupW * 0.8) / Math.max(1, series.length));
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => ({ v: f * ymax, y: y(f * ymax) }));
  const body = series
    .map((s, si) => {
      const bars = s.points
        .map((p) => {
          const x = M.left + p.x * groupW + groupW * 0.1 + si * barW;
          const whisker = p.lo !== undefined && p.hi !== undefined ? `<line x1="${x + barW / 2}" x2="${x + barW / 2}" y1="${y(p.lo).toFixed(1)}" y2="${y(p.hi).toFixed(1)}" stroke="#000"/>` : '';
          return `<rect class="point" x="${x.toFixed(1)}" y="${y(p.y).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(M.top + PH - y(p.y)).toFixed(1)}" fill="${s.color}"><title>${esc(s.id)} ${esc(categories[p.x]!)}: ${num(p.y)}</title></rect>${whisker}`;
        })
        .join('');
      return `<g class="series" data-series="${esc(s.id)}" data-points="${s.points.length}">${bars}</g>`;
    })
    .join('');
  return svg(chartId, frame(title, yLabel, '', yTicks, categories.map((c, i) => ({ label: c, x: M.left + (i + 0.5) * groupW }))) + body + legend(series, missing));
}

/** Empirical CDF of RTT samples, log-scaled x. */
function cdfChart(chartId: string, title: string, series: { id: string; color: string; samples: number[] }[], missing: { id: string; why: string }[]): string {
  const all = series.flatMap((s) => s.samples).filter((v) => v > 0);
  const lo = all.length ? Math.min(...all) : 0.01;
  const hi = all.length ? Math.max(...all) : 1;
  const lmin = Math.floor(Math.log10(lo));
  const lmax = Math.max(lmin + 1, Math.ceil(Math.log10(hi)));
  const x = (v: number): number => M.left + ((Math.log10(Math.max(v, 10 ** lmin)) - lmin) / (lmax - lmin)) * PW;
  const y = (f: number): number => M.top + PH - f * PH;
  const xTicks: { label: string; x: number }[] = [];
  for (let e = lmin; e <= lmax; e++) xTicks.push({ label: `${num(10 ** e)}`, x: x(10 ** e) });
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => ({ v: f, y: y(f) }));
  const body = series
    .map((s) => {
      const sorted = [...s.samples].sort((a, b) => a - b);
      // At most 200 points per series: every k-th sample plus the last, so the tail (p99) is kept.
      const step = Math.max(1, Math.ceil(sorted.length / 200));
      const idx: number[] = [];
      for (let i = 0; i < sorted.length; i += step) idx.push(i);
      if (idx[idx.length - 1] !== sorted.length - 1) idx.push(sorted.length - 1);
      const pts = idx.map((i) => ({ px: x(sorted[i]!), py: y((i + 1) / sorted.length) }));
      const path = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.px.toFixed(1)},${p.py.toFixed(1)}`).join('');
      return `<g class="series" data-series="${esc(s.id)}" data-points="${pts.length}" data-samples="${sorted.length}"><path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"/></g>`;
    })
    .join('');
  return svg(chartId, frame(title, 'fraction of pings', 'RTT (ms, log scale)', yTicks, xTicks) + body + legend(series.map((s) => ({ id: s.id, color: s.color, points: [] })), missing));
}

function svg(chartId: string, inner: string): string {
  return `<svg data-chart="${chartId}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${inner}</svg>`;
}

function statSeries(cases: { c: CaseResult; color: string }[], keys: string[]): Series[] {
  return cases.map(({ c, color }) => ({
    id: c.id,
    color,
    points: keys.flatMap((k, i) => {
      const s = c.summary![k]!;
      return s.median === null ? [] : [{ x: i, y: s.median, lo: s.ci?.lo, hi: s.ci?.hi }];
    }),
  }));
}

/**
 * Ratios to the naive case: a table of them all, and a bar chart of the throughput figures of the
 * userspace dataplanes (the kernel's, tens of times the naive one's, would flatten the rest: it is
 * in the table). Empty when naive did not run.
 */
function naiveSection(r: BenchResult, w: WireResult): { chart?: string; table: string } {
  const cases = casesVersusNaive(w.cases);
  if (cases.length === 0) return { table: '' };
  const metrics = naiveMetrics(metricDefs(r.settings), r.settings.udpSizes);
  const largest = r.settings.udpSizes[r.settings.udpSizes.length - 1];
  // Mbit/s at one payload size has the same ratio as packets/s: one bar for both.
  const throughput = metrics.filter((d) => d.higherIsBetter && d.key !== `udp${largest}Mbps`);
  const series = cases.filter((c) => c.dataplaneProcesses.length > 0).map((c) => ({
    id: c.id,
    color: color(c.id, w.cases.indexOf(c)),
    points: throughput.flatMap((d, i) => {
      const q = c.summary![d.key]!.ratioToNaive;
      return q === null ? [] : [{ x: i, y: q }];
    }),
  }));
  const chart = barChart(`versus-naive-${w.wire}`, `Throughput as a multiple of the naive fs.read + dgram.send design (${w.wire} wire)`, '× naive (ratio of medians; UDP: delivered)', throughput.map((d) => d.label), series, []);
  const head = cases.map((c) => `<th>${esc(c.id)}</th>`).join('');
  const rows = metrics.map((d) => `<tr><th>${esc(d.label)} <small>(${esc(d.unit)})</small></th>${cases.map((c) => `<td>${ratioText(c.summary![d.key]!.ratioToNaive) || 'n/a'}</td>`).join('')}</tr>`).join('\n');
  return { chart, table: `<h3>Versus the naive design (${esc(w.wire)} wire)</h3>\n<p>Each case's median divided by the naive case's (one <code>fs.read</code> and one <code>dgram.send</code> per packet) on this wire.</p>\n<table class="naive" data-wire="${esc(w.wire)}"><tr><th></th>${head}</tr>\n${rows}\n</table>` };
}

/**
 * The headline: each case's TCP 1 stream median over the kernel's on the same wire, one horizontal
 * bar per wire and case (a row per case, so every case has room for its name), whiskers at the
 * ratio's bootstrap interval, a dashed line at the kernel's 1.00.
 */
function headlineChart(r: BenchResult): string {
  const ids = [...new Set(r.wires.flatMap((w) => w.cases.filter((c) => c.summary?.tcp1Gbps?.ratio != null).map((c) => c.id)))];
  const width = 760;
  const m = { left: 120, right: 190, top: 30, bottom: 44 };
  const barH = 12;
  const rowH = r.wires.length * (barH + 2) + 10;
  const plotW = width - m.left - m.right;
  const plotH = Math.max(1, ids.length) * rowH;
  const height = m.top + plotH + m.bottom;
  const stats = r.wires.map((w) => ids.map((id) => w.cases.find((c) => c.id === id)?.summary?.tcp1Gbps));
  const xmax = niceMax(Math.max(1, ...stats.flat().flatMap((s) => [s?.ratio ?? 0, s?.ratioCi?.hi ?? 0])));
  const x = (v: number): number => m.left + (v / xmax) * plotW;
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => `<line x1="${x(f * xmax).toFixed(1)}" x2="${x(f * xmax).toFixed(1)}" y1="${m.top}" y2="${m.top + plotH}" stroke="#e5e5e5"/><text x="${x(f * xmax).toFixed(1)}" y="${m.top + plotH + 16}" text-anchor="middle">${num(f * xmax)}</text>`)
    .join('');
  const labels = ids.map((id, i) => `<text x="${m.left - 8}" y="${(m.top + i * rowH + rowH / 2 + 4).toFixed(1)}" text-anchor="end">${esc(id)}</text>`).join('');
  const series = r.wires
    .map((w, wi) => {
      const color = WIRE_COLORS[w.wire] ?? '#777';
      const bars = ids.flatMap((id, i) => {
        const s = stats[wi]![i];
        if (s?.ratio == null) return [];
        const y = m.top + i * rowH + 5 + wi * (barH + 2);
        const whisker = s.ratioCi ? `<line x1="${x(s.ratioCi.lo).toFixed(1)}" x2="${x(s.ratioCi.hi).toFixed(1)}" y1="${(y + barH / 2).toFixed(1)}" y2="${(y + barH / 2).toFixed(1)}" stroke="#000"/>` : '';
        return [`<rect class="point" x="${m.left}" y="${y}" width="${(x(s.ratio) - m.left).toFixed(1)}" height="${barH}" fill="${color}"><title>${esc(w.wire)} wire ${esc(id)}: ×${num(s.ratio)}${s.ratioCi ? ` (CI ${num(s.ratioCi.lo)}–${num(s.ratioCi.hi)})` : ''}</title></rect>${whisker}`];
      });
      return `<g class="series" data-series="${esc(w.wire)} wire" data-points="${bars.length}">${bars.join('')}</g>`;
    })
    .join('');
  const legendX = width - m.right + 14;
  const legend = r.wires.map((w, wi) => `<g transform="translate(${legendX},${m.top + 4 + wi * 18})"><rect width="12" height="12" fill="${WIRE_COLORS[w.wire] ?? '#777'}"/><text x="18" y="10">${esc(w.wire)} wire</text></g>`).join('');
  const missing = r.wires
    .flatMap((w) => w.cases.filter((c) => c.status !== 'measured').map((c) => ({ id: c.id, why: `${w.wire} wire: ${c.status === 'unsupported' ? 'not supported' : 'failed'}` })))
    .map((mi, i) => `<g class="missing" data-series="${esc(mi.id)}" transform="translate(${legendX},${m.top + 4 + r.wires.length * 18 + i * 32})"><rect width="12" height="12" fill="none" stroke="#999" stroke-dasharray="2,2"/><text x="18" y="10" fill="#777">${esc(mi.id)}:<tspan x="18" dy="13">${esc(mi.why)}</tspan></text></g>`)
    .join('');
  const one = `<line x1="${x(1).toFixed(1)}" x2="${x(1).toFixed(1)}" y1="${m.top}" y2="${m.top + plotH}" stroke="#555" stroke-dasharray="4,3"/>`;
  const title = `<text class="title" x="${m.left}" y="18">${esc('TCP 1 stream as a multiple of the kernel VXLAN on the same wire')}</text>`;
  const axis = `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}" stroke="#333"/><text x="${m.left + plotW / 2}" y="${height - 8}" text-anchor="middle">${esc(`× kernel (ratio of medians; whiskers: ${Math.round(r.settings.confidence * 100)} % CI)`)}</text>`;
  return `<svg data-chart="headline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img">${title}${grid}${labels}${series}${one}${axis}${legend}${missing}</svg>`;
}

function wireTable(r: BenchResult, w: WireResult, metrics: MetricDef[]): string {
  const head = w.cases.map((c) => `<th>${esc(c.id)}<br><small>${esc(c.status === 'measured' ? (c.datapaths.length ? `datapath ${[...new Set(c.datapaths)].join('/')}` : c.dataplane) : c.status)}</small></th>`).join('');
  const rows = metrics
    .map((d) => {
      const tds = w.cases
        .map((c) => {
          const s = c.summary?.[d.key];
          if (!s || s.median === null) return `<td class="na">${esc(missingText(c, d.key))}</td>`;
          return `<td>${num(s.median)} <b>${ratioText(s.ratio)}</b><br><small>${esc(ciText(s))}</small></td>`;
        })
        .join('');
      return `<tr><th>${esc(d.label)} <small>(${esc(d.unit)})</small></th>${tds}</tr>`;
    })
    .join('\n');
  return `<div class="wire"><h3>${esc(wireHeading(r, w))}</h3>\n<table class="results" data-wire="${esc(w.wire)}"><tr><th></th>${head}</tr>\n${rows}\n</table></div>`;
}

/** The underlay's offloads per wire, as `ethtool -k` reported them on the first measured case's ports. */
function offloadTable(r: BenchResult): string {
  const rows = r.wires.flatMap((w) => {
    const c = w.cases.find((x) => x.underlay.length > 0);
    return (c?.underlay ?? []).map((u) => `<tr><td>${esc(w.wire)}</td><td>${esc(u.side)} ${esc(u.ifname)}</td>${OFFLOAD_FEATURES.map((f) => `<td>${esc(u.offloads[f] ?? '–')}</td>`).join('')}</tr>`);
  });
  if (rows.length === 0) return '';
  return `<h2>Underlay offloads</h2>\n<table class="offloads"><tr><th>wire</th><th>port</th>${OFFLOAD_FEATURES.map((f) => `<th>${esc(f)}</th>`).join('')}</tr>\n${rows.join('\n')}\n</table>`;
}

function wireCharts(r: BenchResult, w: WireResult): string[] {
  const measured = w.cases.map((c, i) => ({ c, color: color(c.id, i) })).filter(({ c }) => c.status === 'measured' && c.summary);
  const missing = w.cases.filter((c) => c.status !== 'measured').map((c) => ({ id: c.id, why: c.status === 'unsupported' ? 'not supported by this build' : 'failed' }));
  const sizes = r.settings.udpSizes.map((s) => `${s}`);
  const suffix = ` (${w.wire} wire)`;
  const charts = [
    lineChart(`throughput-${w.wire}`, `UDP throughput delivered by packet size${suffix}`, 'Mbit/s (median, CI)', sizes, statSeries(measured, r.settings.udpSizes.map((s) => `udp${s}Mbps`)), missing),
    lineChart(`packet-rate-${w.wire}`, `UDP packets delivered per second${suffix}`, 'thousand packets/s', sizes, statSeries(measured, r.settings.udpSizes.map((s) => `udp${s}Kpps`)), missing),
    barChart(`tcp-${w.wire}`, `TCP throughput${suffix}`, 'Gbit/s (median, CI)', ['1 stream', `${r.settings.streams} streams`], statSeries(measured, ['tcp1Gbps', 'tcpNGbps']), missing),
    barChart(`transactions-${w.wire}`, `netperf transactions per second${suffix}`, 'transactions/s (median, CI)', ['TCP_RR', 'TCP_CRR'], statSeries(measured, ['tcpRrTps', 'tcpCrrTps']), missing),
    // Only dataplanes that are processes have CPU of their own: the kernel's work is softirq time, in the host figure.
    barChart(`cpu-per-gb-${w.wire}`, `Dataplane CPU per GB delivered${suffix}`, 'CPU seconds per GB (median, CI)', ['dataplane CPU per GB'], statSeries(measured.filter(({ c }) => c.summary!.cpuSecondsPerGB?.median != null), ['cpuSecondsPerGB']), missing),
    cdfChart(`rtt-idle-${w.wire}`, `RTT distribution, idle${suffix}`, measured.map(({ c, color }) => ({ id: c.id, color, samples: c.rttSamples.idle })), missing),
    cdfChart(`rtt-load-${w.wire}`, `RTT during TCP ${r.settings.streams} streams${suffix}`, measured.map(({ c, color }) => ({ id: c.id, color, samples: c.rttSamples.load })), missing),
  ];
  const naive = naiveSection(r, w);
  if (naive.chart) charts.push(naive.chart);
  return [`<h3>${esc(wireHeading(r, w))}</h3>\n<div class="charts">\n${charts.join('\n')}\n</div>`, naive.table];
}

export function renderHtml(r: BenchResult): string {
  const metrics = tableMetrics(r);
  const cases = r.wires[0]!.cases;
  const caseList = cases
    .map((c) => `<li><b>${esc(c.id)}</b> — ${esc(c.title)}: ${esc(c.description)}${r.wires.map((w) => w.cases.find((x) => x.id === c.id)).filter((x) => x?.reason).map((x) => ` <span class="reason">[${esc(x!.status)}: ${esc(x!.reason!)}]</span>`).join('')}${c.placement.length ? `<br><small>placement: ${c.placement.map((p) => `${esc(p.role)}${p.pid ? ` (pid ${p.pid})` : ''} on CPUs ${esc(p.cpusAllowed)}`).join('; ')}</small>` : ''}</li>`)
    .join('\n');
  const errors = r.wires.flatMap((w) => w.cases.flatMap((c) => c.runs.flatMap((run) => run.errors.map((e) => `<li>${esc(w.wire)} ${esc(c.id)} round ${run.round}: ${esc(e)}</li>`))));
  const versus = r.wires.map((w) => versusUdpProxyC(w.cases, r.settings.streams)).map((v, i) => (v ? `<p class="versus">${esc(r.wires[i]!.wire)} wire: ${esc(v)}</p>` : '')).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vxtun bench ${esc(r.date)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1800px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}h3{font-size:14px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f6f6f6}td.na{color:#888}small{color:#666}.reason{color:#a33}.build{font-size:16px}
.wires{display:flex;gap:24px;align-items:flex-start;overflow-x:auto}
.charts{display:flex;flex-wrap:wrap;gap:16px}svg{background:#fff;border:1px solid #eee}svg text{font-size:11px;fill:#333}svg text.title{font-size:13px;font-weight:600}
</style></head><body>
<h1>vxtun bench — ${esc(r.date)}</h1>
<p class="build">build: vxtun ${esc(r.build.vxtunVersion)}, commit <code class="commit">${esc(r.build.commit)}</code></p>
<p>${esc(machineLine(r))}<br>${r.settings.runs} run(s) per case in interleaved rounds × ${r.settings.seconds} s per measurement, ${r.settings.warmupSeconds} s warm-up${r.settings.quick ? ' (--quick)' : ''}; UDP payloads ${r.settings.udpSizes.join(', ')} B; ${esc(r.noise.note)}.<br>
Reproduce: <code>${esc(r.command)}</code></p>
<h2>Results</h2>
<p>Median <b>×ratio</b> to the kernel's VXLAN on the same wire; below, the median's ${Math.round(r.settings.confidence * 100)} % bootstrap confidence interval (${r.settings.resamples} resamples, from 2 runs up). UDP loss is the percentage of datagrams sent that never arrived.</p>
<div class="wires">
${r.wires.map((w) => wireTable(r, w, metrics)).join('\n')}
</div>
${versus}
<h2>Headline</h2>
<div class="charts">${headlineChart(r)}</div>
<h2>Charts</h2>
${r.wires.flatMap((w) => wireCharts(r, w)).join('\n')}
${offloadTable(r)}
<h2>Cases</h2>
<ul>${caseList}</ul>
${errors.length ? `<h2>Measurement errors</h2><ul>${errors.join('')}</ul>` : ''}
</body></html>
`;
}
