/**
 * `vxtun bench soak`: does vxtun's memory stay flat under full load? One case (vxtun ↔ vxtun by
 * default) carries a single iperf3 TCP stream for the whole run while every dataplane process's
 * VmRSS and CPU time are sampled at a fixed interval; the kernel's VXLAN carries the same stream
 * for a few seconds first, so the throughput is also a ratio to the kernel in the same run.
 *
 * Verdict per process, over the steady part (after the warm-up, which holds JIT and pool growth):
 * peak RSS against the limit, and growth = least-squares slope × steady duration, "flat" when it
 * is at most max(8 MiB, 5 % of the mean) — a shrinking RSS is flat too.
 */
import { loadavg } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { BENCH_CASES, type BuiltCase } from './cases.js';
import { describeMachine, type MachineDescription } from './machine.js';
import { startIperfServer, iperfTcp, cpuSeconds, statusMiB, IPERF_PORT } from './measure.js';
import { summarize } from './stats.js';
import { DEFAULT_CASE_ENV } from './built-case.js';
import { escapeHtml } from './format.js';

export const SOAK_RSS_LIMIT_MIB = 150;

export interface SoakSettings {
  caseId: string;
  seconds: number;
  intervalSeconds: number;
  warmupSeconds: number;
  command: string;
}

export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  /** VmRSS per dataplane process (MiB), in `processes` order; null when it was gone. */
  rssMiB: (number | null)[];
  /** utime+stime per process since the previous sample, as a share of one core. */
  cpuShare: (number | null)[];
  /** Receiver goodput over the interval iperf3 reported last (Gbit/s), null before its first report. */
  gbps: number | null;
}

export interface SoakProcessVerdict {
  role: string;
  steadyStartMiB: number | null;
  endMiB: number | null;
  minMiB: number | null;
  maxMiB: number | null;
  growthMiB: number | null;
  flat: boolean;
  underLimit: boolean;
}

export interface SoakResult {
  kind: 'vxtun-soak';
  version: 1;
  date: string;
  command: string;
  settings: Omit<SoakSettings, 'command'>;
  machine: MachineDescription;
  loadAverage: { before: number[]; after: number[] };
  kernelTcpGbps: number | null;
  case: { id: string; title: string; datapaths: string[] };
  processes: string[];
  samples: SoakSample[];
  throughput: { median: number | null; min: number | null; max: number | null; ratioToKernel: number | null };
  verdicts: SoakProcessVerdict[];
  rssLimitMiB: number;
}

/** VmRSS in MiB, or null when the process is gone. */
export function rssMiB(pid: number): number | null {
  return statusMiB(pid, 'VmRSS');
}

/** Least-squares slope of y over x (per unit of x); null with fewer than two points. */
export function slope(xs: number[], ys: number[]): number | null {
  const n = xs.length;
  if (n < 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** The verdict for one process's samples (t in seconds, RSS in MiB) after `warmup` seconds. */
export function verdictFor(role: string, t: number[], rss: (number | null)[], warmup: number, limit = SOAK_RSS_LIMIT_MIB): SoakProcessVerdict {
  const xs: number[] = [];
  const ys: number[] = [];
  rss.forEach((v, i) => {
    if (v !== null && t[i]! >= warmup) {
      xs.push(t[i]!);
      ys.push(v);
    }
  });
  const all = rss.filter((v): v is number => v !== null);
  if (ys.length < 2) return { role, steadyStartMiB: ys[0] ?? null, endMiB: ys.at(-1) ?? null, minMiB: null, maxMiB: all.length ? Math.max(...all) : null, growthMiB: null, flat: false, underLimit: all.length > 0 && Math.max(...all) <= limit };
  const s = slope(xs, ys)!;
  const growth = s * (xs.at(-1)! - xs[0]!);
  const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
  const max = Math.max(...all);
  return {
    role,
    steadyStartMiB: ys[0]!,
    endMiB: ys.at(-1)!,
    minMiB: Math.min(...ys),
    maxMiB: max,
    growthMiB: growth,
    // Shrinking (pools and socket memory given back after the warm-up) is not a leak.
    flat: growth <= Math.max(8, 0.05 * mean),
    underLimit: max <= limit,
  };
}

/** iperf3's text interval lines: "[  5]   3.00-4.00   sec   592 MBytes  4.97 Gbits/sec ..." (receiver side on the client's summary is skipped). */
export function parseIperfInterval(line: string): number | null {
  const m = /\[\s*\d+\]\s+[\d.]+-[\d.]+\s+sec\s+[\d.]+\s+\w?Bytes\s+([\d.]+)\s+(\w?)bits\/sec/.exec(line);
  if (m === null || /sender|receiver/.test(line)) return null;
  const scale: Record<string, number> = { '': 1e-9, K: 1e-6, M: 1e-3, G: 1 };
  return Number(m[1]) * (scale[m[2]!] ?? NaN);
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function mmss(s: number): string {
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
}

export async function runSoak(s: SoakSettings, out: NodeJS.WritableStream = process.stdout): Promise<SoakResult> {
  const started = Date.now();
  const before = loadavg().map((x) => Math.round(x * 100) / 100);
  const machine = await describeMachine();
  const bc = BENCH_CASES.find((c) => c.id === s.caseId);
  if (bc === undefined) throw new Error(`case ${s.caseId}: no such case`);
  const say = (l: string): void => void out.write(l + '\n');

  // The kernel first, briefly, for the ratio (same topology shape, same machine, same run).
  say(`kernel: 5 s of single-stream TCP for the baseline`);
  let kernelTcpGbps: number | null = null;
  const kernel = await BENCH_CASES.find((c) => c.id === 'kernel')!.build(() => {}, DEFAULT_CASE_ENV);
  say(`kernel: namespaces ${kernel.namespacePrefix}-*`);
  try {
    await startIperfServer(kernel.server, kernel.serverIp);
    const k = await iperfTcp(kernel.client, kernel.serverIp, 1, 5);
    kernelTcpGbps = k.ok ? k.value.gbps : null;
    say(k.ok ? `kernel: ${k.value.gbps.toFixed(2)} Gbit/s` : `kernel: ${k.error}`);
  } finally {
    await kernel.destroy();
  }

  say(`${bc.id}: building ${bc.title}`);
  const built: BuiltCase = await bc.build(() => {}, DEFAULT_CASE_ENV);
  say(`${bc.id}: namespaces ${built.namespacePrefix}-*`);
  const samples: SoakSample[] = [];
  const processes = built.dataplane.map((d) => d.role);
  try {
    if (built.dataplane.length === 0) throw new Error(`case ${bc.id} has no dataplane process to watch`);
    await startIperfServer(built.server, built.serverIp);
    const client: ChildProcess = built.client.spawn(['iperf3', '-c', built.serverIp, '-p', String(IPERF_PORT), '-t', String(s.seconds), '-i', String(s.intervalSeconds), '--forceflush']);
    let lastGbps: number | null = null;
    let iperfOut = '';
    client.stdout?.on('data', (d: Buffer) => {
      iperfOut += d.toString();
      const lines = iperfOut.split('\n');
      iperfOut = lines.pop() ?? '';
      for (const l of lines) {
        const g = parseIperfInterval(l);
        if (g !== null) lastGbps = g;
      }
    });
    const exited = new Promise<number | null>((resolve) => client.once('exit', (code) => resolve(code)));
    const t0 = Date.now();
    let prevCpu = built.dataplane.map((d) => cpuSeconds(d.pid));
    let prevT = 0;
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      await Promise.race([wait(s.intervalSeconds * 1000), exited]);
      const t = (Date.now() - t0) / 1000;
      if (done && t < s.seconds - 1) break; // iperf3 gave up early: reported below
      const cpu = built.dataplane.map((d) => cpuSeconds(d.pid));
      const dt = Math.max(t - prevT, 1e-3);
      const sample: SoakSample = {
        t: Math.round(t * 10) / 10,
        rssMiB: built.dataplane.map((d) => rssMiB(d.pid)),
        cpuShare: cpu.map((c, i) => (c === null || prevCpu[i] == null ? null : Math.round(((c - prevCpu[i]!) / dt) * 1000) / 1000)),
        gbps: lastGbps,
      };
      samples.push(sample);
      prevCpu = cpu;
      prevT = t;
      const rss = sample.rssMiB.map((v, i) => `${processes[i]} ${v === null ? 'gone' : v.toFixed(0) + ' MiB'}`).join(', ');
      say(`soak ${bc.id} ${mmss(t)}/${mmss(s.seconds)} · RSS ${rss} · ${sample.gbps === null ? '…' : sample.gbps.toFixed(2) + ' Gbit/s'}`);
    }
    const code = await exited;
    if (code !== 0) throw new Error(`iperf3 under soak exited with ${code} after ${samples.at(-1)?.t ?? 0} s`);
  } finally {
    await built.destroy();
  }

  const t = samples.map((x) => x.t);
  const verdicts = processes.map((role, i) => verdictFor(role, t, samples.map((x) => x.rssMiB[i] ?? null), s.warmupSeconds));
  const g = summarize(samples.filter((x) => x.t >= s.warmupSeconds).map((x) => x.gbps));
  return {
    kind: 'vxtun-soak',
    version: 1,
    date: new Date(started).toISOString(),
    command: s.command,
    settings: { caseId: s.caseId, seconds: s.seconds, intervalSeconds: s.intervalSeconds, warmupSeconds: s.warmupSeconds },
    machine,
    loadAverage: { before, after: loadavg().map((x) => Math.round(x * 100) / 100) },
    kernelTcpGbps,
    case: { id: bc.id, title: bc.title, datapaths: built.datapaths },
    processes,
    samples,
    throughput: { median: g.median, min: g.min, max: g.max, ratioToKernel: g.median !== null && kernelTcpGbps ? g.median / kernelTcpGbps : null },
    verdicts,
    rssLimitMiB: SOAK_RSS_LIMIT_MIB,
  };
}

export function renderSoakText(r: SoakResult): string {
  const f = (v: number | null, d = 1): string => (v === null ? 'n/a' : v.toFixed(d));
  const lines = [
    `vxtun bench soak: ${r.case.title}, ${r.settings.seconds} s under single-stream TCP, RSS every ${r.settings.intervalSeconds} s (steady after ${r.settings.warmupSeconds} s)`,
    `throughput (steady): ${f(r.throughput.median, 2)} Gbit/s (${f(r.throughput.min, 2)}–${f(r.throughput.max, 2)}), ×${f(r.throughput.ratioToKernel, 2)} of the kernel's ${f(r.kernelTcpGbps, 2)} Gbit/s in this run`,
  ];
  for (const v of r.verdicts) {
    lines.push(
      `${v.role}: RSS ${f(v.steadyStartMiB)} → ${f(v.endMiB)} MiB (steady min ${f(v.minMiB)}, peak ${f(v.maxMiB)}), growth ${f(v.growthMiB)} MiB: ` +
        `${v.flat ? 'flat' : 'NOT flat'}, ${v.underLimit ? `within ${r.rssLimitMiB} MiB` : `ABOVE ${r.rssLimitMiB} MiB`}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** A self-contained page: RSS of each process and the throughput over time (inline SVG, no scripts). */
export function renderSoakHtml(r: SoakResult): string {
  const W = 760;
  const H = 300;
  const L = 60;
  const R = 60;
  const T = 20;
  const B = 40;
  const tMax = Math.max(r.settings.seconds, ...r.samples.map((s) => s.t), 1);
  const rssMax = Math.max(r.rssLimitMiB, ...r.samples.flatMap((s) => s.rssMiB.filter((v): v is number => v !== null))) * 1.1;
  const gMax = Math.max(r.kernelTcpGbps ?? 0, ...r.samples.map((s) => s.gbps ?? 0), 0.1) * 1.1;
  const x = (t: number): number => L + ((W - L - R) * t) / tMax;
  const yR = (v: number): number => T + (H - T - B) * (1 - v / rssMax);
  const yG = (v: number): number => T + (H - T - B) * (1 - v / gMax);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const esc = escapeHtml;
  const rssLines = r.processes
    .map((role, i) => {
      const pts = r.samples.filter((s) => s.rssMiB[i] != null).map((s) => `${x(s.t).toFixed(1)},${yR(s.rssMiB[i]!).toFixed(1)}`);
      return `<polyline class="rss" data-role="${esc(role)}" fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${pts.join(' ')}"/>`;
    })
    .join('\n');
  const gPts = r.samples.filter((s) => s.gbps !== null).map((s) => `${x(s.t).toFixed(1)},${yG(s.gbps!).toFixed(1)}`);
  const limitY = yR(r.rssLimitMiB).toFixed(1);
  const warmX = x(r.settings.warmupSeconds).toFixed(1);
  const legend = r.processes.map((role, i) => `<span style="color:${colors[i % colors.length]}">■ RSS ${esc(role)}</span>`).join(' ');
  const rows = r.verdicts
    .map((v) => `<tr><td>${esc(v.role)}</td><td>${v.steadyStartMiB?.toFixed(1) ?? 'n/a'}</td><td>${v.endMiB?.toFixed(1) ?? 'n/a'}</td><td>${v.maxMiB?.toFixed(1) ?? 'n/a'}</td><td>${v.growthMiB?.toFixed(1) ?? 'n/a'}</td><td>${v.flat ? 'flat' : 'NOT flat'}</td><td>${v.underLimit ? 'yes' : 'NO'}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vxtun bench soak — ${esc(r.case.title)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}</style></head>
<body>
<h1>vxtun bench soak</h1>
<p>${esc(r.case.title)} (datapath ${esc(r.case.datapaths.join(', ') || 'n/a')}), ${r.settings.seconds} s of single-stream TCP; ${esc(r.machine.cpuModel)}, ${r.machine.cores} cores, Linux ${esc(r.machine.kernel)}, Node ${esc(r.machine.node)}; ${esc(r.date)}.</p>
<p>Throughput after the warm-up: ${r.throughput.median?.toFixed(2) ?? 'n/a'} Gbit/s (${r.throughput.min?.toFixed(2) ?? 'n/a'}–${r.throughput.max?.toFixed(2) ?? 'n/a'}), ×${r.throughput.ratioToKernel?.toFixed(2) ?? 'n/a'} of the kernel's VXLAN (${r.kernelTcpGbps?.toFixed(2) ?? 'n/a'} Gbit/s) in this run.</p>
<p>${legend} <span style="color:#888">■ throughput (right axis)</span> — dashed: the ${r.rssLimitMiB} MiB limit; dotted: end of warm-up</p>
<svg id="soak" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="RSS and throughput over time">
<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>
<line x1="${L}" x2="${W - R}" y1="${limitY}" y2="${limitY}" stroke="#d62728" stroke-dasharray="6 4"/>
<line x1="${warmX}" x2="${warmX}" y1="${T}" y2="${H - B}" stroke="#999" stroke-dasharray="2 3"/>
<text x="${L - 6}" y="${T + 4}" text-anchor="end" font-size="11">${rssMax.toFixed(0)} MiB</text>
<text x="${L - 6}" y="${H - B}" text-anchor="end" font-size="11">0</text>
<text x="${W - R + 6}" y="${T + 4}" font-size="11">${gMax.toFixed(1)} Gbit/s</text>
<text x="${L}" y="${H - B + 16}" font-size="11">0 s</text>
<text x="${W - R}" y="${H - B + 16}" text-anchor="end" font-size="11">${tMax.toFixed(0)} s</text>
<polyline class="gbps" fill="none" stroke="#888" stroke-width="1.5" points="${gPts.join(' ')}"/>
${rssLines}
</svg>
<table><tr><th>process</th><th>RSS at steady start (MiB)</th><th>at end</th><th>peak</th><th>growth</th><th>flat</th><th>≤ ${r.rssLimitMiB} MiB</th></tr>
${rows}
</table>
<p>Command: <code>${esc(r.command)}</code></p>
</body></html>
`;
}
