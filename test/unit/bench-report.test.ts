/**
 * The pieces of `vxtun bench` that need no namespaces — statistics (bootstrap intervals, the
 * Mann-Whitney U test against scipy's p-values), ratios, the terminal table and the HTML report
 * for cases that could not be measured, compare's verdicts and its machine check, the result
 * schema — on hand-built results (the end-to-end run is test/integration/bench.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { quantile, median, summarize, ratio, mannWhitneyU, bootstrapMedianCi, bootstrapRatioCi, smallestP, seededRandom } from '../../src/tools/bench/stats.js';
import { addSummaries as addSummariesWith, BOOTSTRAP, benchEstimate, defaultSettings, QUICK_CASES } from '../../src/tools/bench/runner.js';
import { renderTable } from '../../src/tools/bench/report-text.js';
import { renderHtml } from '../../src/tools/bench/report-html.js';
import { renderCompare, machineDifferences, CompareError, judge, loadResult } from '../../src/tools/bench/compare.js';
import { BenchResultSchema, metricDefs, RESULT_VERSION, type BenchResult, type CaseResult, type Stat } from '../../src/tools/bench/schema.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const UDP_SIZES = [64, 512, 1350];
const defs = metricDefs({ streams: 4, udpSizes: UDP_SIZES });
const addSummaries = (cases: CaseResult[]): void => addSummariesWith(cases, defs, BOOTSTRAP);
const stat = (c: CaseResult | undefined, key: string): Stat => c!.summary![key]!;

function metrics(over: Record<string, number | null>): Record<string, number | null> {
  return { ...Object.fromEntries(defs.map((d) => [d.key, null])), ...over };
}

function measured(id: string, runs: Record<string, number | null>[], processes: string[]): CaseResult {
  return {
    id,
    title: id,
    description: `${id} case`,
    dataplane: processes.length ? 'vxtun' : 'kernel VXLAN',
    status: 'measured',
    datapaths: processes.map(() => 'ts'),
    dataplaneProcesses: processes,
    placement: [],
    underlay: [{ namespace: 'vxt-x-ul', ifname: 'p1', side: 'bridge', offloads: { 'tcp-segmentation-offload': 'off', 'generic-receive-offload': 'on' } }],
    runs: runs.map((m, i) => ({ round: i + 1, metrics: metrics(m), errors: [] })),
    summary: null,
    rttSamples: { idle: [0.1, 0.2, 0.3], load: [1, 2, 3, 4] },
  };
}

function cases(): CaseResult[] {
  const list: CaseResult[] = [
    measured('kernel', [{ tcp1Gbps: 10, udp64LossPct: 2, rttIdleP50Ms: 0.1 }, { tcp1Gbps: 12, udp64LossPct: 2, rttIdleP50Ms: 0.2 }, { tcp1Gbps: 20, udp64LossPct: 2, rttIdleP50Ms: 0.1 }], []),
    measured('vxtun-ts', [{ tcp1Gbps: 1, udp64LossPct: 50, cpuSecondsPerGB: 3 }, { tcp1Gbps: 3, udp64LossPct: 40, cpuSecondsPerGB: 4 }, { tcp1Gbps: 2, udp64LossPct: 60, cpuSecondsPerGB: 5 }], ['vxtun node 1', 'vxtun node 2']),
    {
      ...measured('flannel-udp', [], ['x']),
      status: 'unsupported',
      reason: 'not supported by this build (vxtun up refused the udp backend: vxtun: config: backend.type: "udp" ...)',
      datapaths: [],
      dataplaneProcesses: [],
      underlay: [],
      rttSamples: { idle: [], load: [] },
    },
    measured('naive', [{ tcp1Gbps: 0.5, udp1350Kpps: 40, rttIdleP50Ms: 0.4 }, { tcp1Gbps: 0.4, udp1350Kpps: 30, rttIdleP50Ms: 0.5 }, { tcp1Gbps: 0.6, udp1350Kpps: 50, rttIdleP50Ms: 0.6 }], ['naive node 1', 'naive node 2']),
  ];
  addSummaries(list);
  return list;
}

function result(): BenchResult {
  const veth = cases();
  return {
    kind: 'vxtun-bench',
    version: RESULT_VERSION,
    date: '2026-01-01T00:00:00.000Z',
    wallSeconds: 60,
    command: 'vxtun bench',
    build: { vxtunVersion: '0.1.0', commit: '0123456789ab' },
    settings: { quick: false, runs: 3, warmupSeconds: 1, seconds: 1, pingCount: 3, pingIntervalMs: 10, cases: veth.map((c) => c.id), pinned: false, wires: ['veth', 'link'], mtu: 1500, streams: 4, udpSizes: UDP_SIZES, netem: null, ...BOOTSTRAP },
    machine: {
      hostname: 'h',
      machineIdHash: 'aaaa',
      fingerprint: 'ffff',
      kernel: '6.1.0',
      cpuModel: 'CPU',
      cores: 2,
      memoryMiB: 4096,
      node: 'v20.0.0',
      vxtunVersion: '0.1.0',
      iperf3: 'iperf 3.12',
      netperf: 'Netperf version 2.7.0',
      features: { nativeAddon: true, nativeChecksum: true },
      cpusAllowed: '0-1',
      loadAverage: [0, 0, 0],
    },
    noise: { loadAverageBefore: [0, 0, 0], loadAverageAfter: [0, 0, 0], note: 'quiet' },
    baseline: 'kernel',
    wires: [
      { wire: 'veth', mtu: 1500, cases: veth },
      { wire: 'link', mtu: 1500, cases: cases() },
    ],
  };
}

describe('bench statistics', () => {
  it('median, nearest-rank quantiles, min–max and ratios', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(quantile([5, 1, 4, 2, 3], 0.5)).toBe(3);
    expect(quantile(Array.from({ length: 50 }, (_, i) => i + 1), 0.99)).toBe(50);
    expect(quantile(Array.from({ length: 200 }, (_, i) => i + 1), 0.99)).toBe(198);
    expect(quantile([], 0.5)).toBeNull();
    expect(summarize([2, null, 1, 3])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(summarize([null])).toEqual({ median: null, min: null, max: null, n: 0 });
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(null, 2)).toBeNull();
  });

  it('Mann-Whitney U gives the p-values scipy.stats.mannwhitneyu gives on the same samples', () => {
    // scipy 1.17: mannwhitneyu(x, y, alternative='two-sided', method='exact' | 'asymptotic' with ties)
    const disjoint = mannWhitneyU([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
    expect(disjoint).toMatchObject({ u: 0, exact: true });
    expect(disjoint.p).toBeCloseTo(0.007936507936507936, 12); // 2 / C(10, 5)
    const mixed = mannWhitneyU([1.1, 2.3, 3.2, 4.0, 5.5], [1.5, 2.1, 3.9, 6.2, 7.0]);
    expect(mixed.u).toBe(10);
    expect(mixed.p).toBeCloseTo(0.6904761904761905, 12);
    const six = mannWhitneyU([9.1, 9.4, 9.2, 9.6, 9.3, 9.5], [8.0, 8.4, 8.1, 8.3, 8.2, 8.5]);
    expect(six.u).toBe(36);
    expect(six.p).toBeCloseTo(0.0021645021645021645, 12);
    // Ties: the normal approximation with tie and continuity corrections.
    const ties = mannWhitneyU([1, 2, 2, 3, 4], [3, 5, 6, 7, 7]);
    expect(ties).toMatchObject({ u: 1.5, exact: false });
    expect(ties.p).toBeCloseTo(0.026856695507524397, 6);
    // The smallest p a test of these sizes can reach: 2 / C(n1 + n2, n1).
    expect(smallestP(2, 2)).toBeCloseTo(1 / 3, 12);
    expect(smallestP(3, 3)).toBeCloseTo(0.1, 12);
    expect(smallestP(5, 5)).toBeCloseTo(2 / 252, 12);
  });

  it('bootstrap intervals are seeded, hold the median, narrow with agreement, and need two values', () => {
    const o = { confidence: 0.95, resamples: 2000, seed: 7 };
    const spread = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    const ci = bootstrapMedianCi(spread, o)!;
    expect(bootstrapMedianCi(spread, o)).toEqual(ci); // same seed, same interval
    // Every resampled median of nine values is one of them: the interval ends are sample values.
    expect(spread).toContain(ci.lo);
    expect(spread).toContain(ci.hi);
    // A resampled median of 1 needs five of nine draws to be 1 (p ≈ 0.0015 < 2.5 %); of 2 or less, p ≈ 0.031.
    expect([2, 3]).toContain(ci.lo);
    expect([7, 8]).toContain(ci.hi);
    expect(bootstrapMedianCi([5, 5, 5, 5], o)).toEqual({ lo: 5, hi: 5 });
    expect(bootstrapMedianCi([5], o)).toBeNull();
    const r = bootstrapRatioCi([2, 2.1, 1.9, 2, 2.05], [1, 1.05, 0.95, 1, 1.02], o)!;
    expect(r.lo).toBeGreaterThan(1.7);
    expect(r.hi).toBeLessThan(2.3);
    expect(r.lo).toBeLessThanOrEqual(2 / 1);
    expect(bootstrapRatioCi([1, 2], [0, 0], o)).toBeNull();
    // The generator is deterministic and in [0, 1).
    const g = seededRandom(1);
    const xs = Array.from({ length: 1000 }, () => g());
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(seededRandom(1)()).toBe(xs[0]);
  });

  it('summarizes each case against the kernel runs of the same wire, loss never as a ratio', () => {
    const [kernel, ts, , naive] = cases();
    expect(stat(kernel, 'tcp1Gbps')).toMatchObject({ median: 12, min: 10, max: 20, n: 3, ratio: 1, ratioToNaive: 24 });
    expect(stat(ts, 'tcp1Gbps')).toMatchObject({ median: 2, min: 1, max: 3, n: 3, ratio: 2 / 12, ratioToNaive: 4 });
    expect(stat(ts, 'tcp1Gbps').ci).toEqual({ lo: 1, hi: 3 });
    const rci = stat(ts, 'tcp1Gbps').ratioCi!;
    expect(rci.lo).toBeGreaterThanOrEqual(1 / 20);
    expect(rci.hi).toBeLessThanOrEqual(3 / 10);
    expect(stat(naive, 'tcp1Gbps')).toMatchObject({ median: 0.5, ratio: 0.5 / 12, ratioToNaive: 1 });
    expect(stat(ts, 'rttIdleP50Ms').ratioToNaive).toBeNull(); // the vxtun-ts runs measured no RTT
    expect(stat(ts, 'udp64LossPct')).toMatchObject({ median: 50, ratio: null, ratioCi: null, ratioToNaive: null });
    expect(stat(kernel, 'cpuSecondsPerGB').median).toBeNull();
    expect(stat(ts, 'cpuSecondsPerGB')).toMatchObject({ median: 4, min: 3, max: 5, ratio: null });
  });
});

describe('bench result schema', () => {
  it('accepts a well-formed result and names what is wrong with a malformed one', () => {
    expect(BenchResultSchema.parse(result())).toBeDefined();
    const missing = result();
    delete missing.wires[1]!.cases[0]!.runs[0]!.metrics.tcpCrrP99Us;
    const issue = BenchResultSchema.safeParse(missing).error!.issues[0]!;
    expect(issue.path.join('.')).toBe('wires.1.cases.0.runs.0.metrics');
    const old = { ...result(), version: 1 };
    expect(BenchResultSchema.safeParse(old).success).toBe(false);
  });
});

describe('bench settings', () => {
  it('full mode measures both wires in 5 rounds; quick one wire and the quick case list', () => {
    expect(defaultSettings(false)).toMatchObject({ runs: 5, wires: ['veth', 'link'] });
    expect(defaultSettings(true)).toMatchObject({ runs: 1, wires: ['link'] });
    expect(QUICK_CASES).toEqual(['kernel', 'vxtun-fast', 'ovs-userspace']);
    const full = { ...defaultSettings(false), udpSizes: UDP_SIZES };
    const e = benchEstimate(full, 14);
    // The 25-minute budget of docs/performance.md: 14 cases, both wires, 5 rounds (an estimate, not a timing).
    expect((e.build + e.run) / 60).toBeLessThan(25);
  });
});

describe('bench reports', () => {
  it('the table shows a block per wire: medians with ratios and CIs, and says why a cell is empty', () => {
    const t = renderTable(result());
    expect(t).toContain('== veth wire');
    expect(t).toContain('== link wire: segmentation offloads off, GRO on');
    expect(t).toMatch(/TCP 1 stream \(Gbit\/s\)\s+12\.0 ×1\.00\s+2\.00 ×0\.17\s+not supported/);
    expect(t).toMatch(/\n\s+CI 10\.0–20\.0\s+CI 1\.00–3\.00\s+CI 0\.400–0\.600\s*\n/);
    expect(t).toMatch(/dataplane CPU per GB \(CPU·s\/GB\)\s+n\/a \(kernel\)\s+4\.00\s+not supported/);
    expect(t).toMatch(/UDP 64 B loss \(%\)\s+2\.00\s+50\.0\s+not supported/); // a percentage, no ×ratio
    expect(t).toContain('flannel-udp: not supported by this build (vxtun up refused the udp backend');
    expect(t).toMatch(/UDP 1350 B \(kpps\)\s+n\/a\s+n\/a\s+not supported\s+40\.0\n/);
    expect(t).toContain('commit 0123456789ab');
    // The pods' congestion control, which the RTT under load depends on, when the result records it.
    expect(t).not.toContain('TCP congestion control');
    const withCc = result();
    withCc.machine.tcpCongestionControl = 'bbr';
    expect(renderTable(BenchResultSchema.parse(withCc))).toContain('Netperf version 2.7.0, TCP congestion control bbr');
  });

  it('the table divides every case by the naive design when it ran, and says nothing of it when it did not', () => {
    const r = result();
    const t = renderTable(r);
    const block = t.slice(t.indexOf('versus the naive design'));
    expect(block).toMatch(/^versus the naive design \(case naive: one fs\.read and one dgram\.send per packet\), ratio of medians in this run:\n\s+kernel\s+vxtun-ts\n/);
    expect(block).toMatch(/\nTCP 1 stream \(Gbit\/s\)\s+×24\s+×4\.00\n/);
    for (const w of r.wires) {
      w.cases = w.cases.filter((c) => c.id !== 'naive');
      addSummaries(w.cases);
    }
    expect(stat(r.wires[0]!.cases[1], 'tcp1Gbps').ratioToNaive).toBeNull();
    expect(renderTable(r)).not.toContain('naive');
    expect(renderHtml(r)).not.toContain('versus-naive');
  });

  it('the HTML is self-contained: build identity, both wire tables, the headline chart with whiskers, unmeasured cases in every legend', () => {
    const html = renderHtml(result());
    expect(html).not.toMatch(/<script|<link|src=|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).toContain('commit <code class="commit">0123456789ab</code>');
    expect([...html.matchAll(/<table class="results" data-wire="([a-z]+)"/g)].map((m) => m[1])).toEqual(['veth', 'link']);
    const charts = [...html.matchAll(/<svg data-chart="([^"]+)"/g)].map((m) => m[1]);
    expect(charts).toEqual(['headline', ...['veth', 'link'].flatMap((w) => ['throughput', 'packet-rate', 'tcp', 'transactions', 'cpu-per-gb', 'rtt-idle', 'rtt-load', 'versus-naive'].map((c) => `${c}-${w}`))]);
    const headline = /<svg data-chart="headline"[\s\S]*?<\/svg>/.exec(html)![0];
    // One bar per wire for each measured case (kernel 1.00, vxtun-ts, naive), whiskers at the ratio's CI.
    expect([...headline.matchAll(/data-series="([^"]+)" data-points="(\d+)"/g)].map((m) => [m[1], m[2]])).toEqual([['veth wire', '3'], ['link wire', '3']]);
    expect(headline.match(/<line x1="[\d.]+" x2="[\d.]+" y1="[\d.]+" y2="[\d.]+" stroke="#000"\/>/g)).toHaveLength(6);
    expect(html.match(/<g class="missing" data-series="flannel-udp"/g)).toHaveLength(16); // 7 charts per wire, and once per wire in the headline
    // CPU per GB: only the dataplanes that are processes (the kernel's work has no process to charge).
    const cpuChart = /<svg data-chart="cpu-per-gb-veth"[\s\S]*?<\/svg>/.exec(html)![0];
    expect([...cpuChart.matchAll(/<g class="series" data-series="([^"]+)"/g)].map((m) => m[1])).not.toContain('kernel');
    expect([...cpuChart.matchAll(/<g class="series" data-series="([^"]+)"/g)].length).toBeGreaterThan(0);
    const naiveChart = /<svg data-chart="versus-naive-veth"[\s\S]*?<\/svg>/.exec(html)![0];
    expect([...naiveChart.matchAll(/data-series="([^"]+)" data-points="(\d+)"/g)].map((m) => [m[1], m[2]])).toEqual([['vxtun-ts', '1']]);
    expect(html).toMatch(/<table class="naive" data-wire="veth"><tr><th><\/th><th>kernel<\/th><th>vxtun-ts<\/th><\/tr>\n<tr><th>TCP 1 stream <small>\(Gbit\/s\)<\/small><\/th><td>×24<\/td><td>×4\.00<\/td><\/tr>/);
    expect(html).toContain('<g class="series" data-series="vxtun-ts" data-points="4" data-samples="4">'); // the loaded RTT CDF
    expect(html).toMatch(/<table class="offloads">[\s\S]*<td>veth<\/td><td>bridge p1<\/td><td>off<\/td>/);
  });
});

/** A result with the given per-run samples of TCP 1 stream for vxtun-ts on the link wire (other wires and cases unchanged). */
function withTcp1(samples: number[]): BenchResult {
  const r = result();
  const c = r.wires[1]!.cases[1]!;
  c.runs = samples.map((v, i) => ({ round: i + 1, metrics: metrics({ tcp1Gbps: v, rttIdleP50Ms: 1 / v }), errors: [] }));
  addSummaries(r.wires[1]!.cases);
  return r;
}

describe('bench compare', () => {
  it('judges a significant change better or worse by the metric\'s direction, and noise "~"', () => {
    const up = { higherIsBetter: true };
    const down = { higherIsBetter: false };
    const a = [2.0, 2.1, 1.9, 2.05, 1.95];
    const faster = [2.5, 2.6, 2.4, 2.55, 2.45];
    expect(judge(up, a, faster)).toMatchObject({ verdict: 'better', text: 'better (p=0.008 n=5+5)' });
    expect(judge(down, a, faster)).toMatchObject({ verdict: 'worse' });
    expect(judge(up, faster, a)).toMatchObject({ verdict: 'worse' });
    const noise = [2.02, 1.98, 2.08, 1.92, 2.0];
    expect(judge(up, a, noise).verdict).toBe('~');
    expect(judge(up, a, noise).p).toBeGreaterThan(0.05);
    expect(judge(up, a, noise).text).toMatch(/^~ \(p=\d\.\d{3} n=5\+5\)$/);
    // Two runs each can never reach p < 0.05: "~", said why.
    expect(judge(up, [1, 1.1], [5, 5.1])).toEqual({ verdict: '~', p: null, text: '~ (too few samples: n=2+2)' });
  });

  it('marks each metric in the compare table', () => {
    const out = renderCompare(withTcp1([2.0, 2.1, 1.9, 2.05, 1.95]), withTcp1([2.5, 2.6, 2.4, 2.55, 2.45]), ['a.json', 'b.json'], false);
    const link = out.slice(out.indexOf('== link wire'));
    expect(link.split('\n').find((l) => l.startsWith('vxtun-ts') && l.includes('TCP 1 stream'))).toMatch(/2\.00\s+2\.50\s+\+25\.0%\s+better \(p=0\.008 n=5\+5\)/);
    expect(link.split('\n').find((l) => l.startsWith('vxtun-ts') && l.includes('RTT idle p50'))).toMatch(/-20\.0%\s+better \(p=0\.008/); // lower is better
    expect(link.split('\n').find((l) => l.startsWith('kernel') && l.includes('TCP 1 stream'))).toMatch(/\+0\.0%\s+~ \(too few samples: n=3\+3\)\s+1\.00\s+1\.00$/);
    const noisy = renderCompare(withTcp1([2.0, 2.1, 1.9, 2.05, 1.95]), withTcp1([2.02, 1.98, 2.08, 1.92, 2.0]), ['a.json', 'b.json'], false);
    expect(noisy.slice(noisy.indexOf('== link wire')).split('\n').find((l) => l.startsWith('vxtun-ts') && l.includes('TCP 1 stream'))).toMatch(/~ \(p=/);
  });

  it('refuses different machines unless allowed, naming what differs', () => {
    const a = result();
    const b = result();
    b.machine.kernel = '6.12.0';
    expect(machineDifferences(a, b)).toEqual(['kernel "6.1.0" vs "6.12.0"']);
    expect(() => renderCompare(a, b, ['a.json', 'b.json'], false)).toThrow(new CompareError('refusing to compare results from different machines (kernel "6.1.0" vs "6.12.0"); pass --allow-different-machines to compare anyway', 2));
    expect(renderCompare(a, b, ['a.json', 'b.json'], true).split('\n')[0]).toMatch(/^WARNING: these results come from different machines \(kernel "6\.1\.0" vs "6\.12\.0"\)/);
  });

  it('reports a case measured in only one file instead of dropping it', () => {
    const a = result();
    const b = result();
    b.wires[0]!.cases = b.wires[0]!.cases.filter((c) => c.id !== 'vxtun-ts');
    const out = renderCompare(a, b, ['a.json', 'b.json'], false);
    expect(out).toMatch(/vxtun-ts\s+only in A: A measured, B absent/);
    expect(out).toMatch(/flannel-udp\s+neither measured: A unsupported, B unsupported/);
  });

  it('says in one line that it cannot compare a version 1 result', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxtun-compare-'));
    try {
      const p = join(dir, 'old.json');
      writeFileSync(p, JSON.stringify({ kind: 'vxtun-bench', version: 1, cases: [] }));
      expect(() => loadResult(p)).toThrow(`${p}: bench result version 1 cannot be compared: compare reads version 2 (per-run samples per wire mode); measure again with this vxtun`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
