/**
 * Issue 4: the pieces of `vxtun bench` that need no namespaces — statistics, ratios, the terminal
 * table and the HTML report for cases that could not be measured, and compare's machine check —
 * on a hand-built result (the end-to-end run is test/integration/bench.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { quantile, median, summarize, ratio } from '../../src/tools/bench/stats.js';
import { addSummaries } from '../../src/tools/bench/runner.js';
import { renderTable } from '../../src/tools/bench/report-text.js';
import { renderHtml } from '../../src/tools/bench/report-html.js';
import { renderCompare, machineDifferences, CompareError } from '../../src/tools/bench/compare.js';
import { BenchResultSchema, METRIC_KEYS, type BenchResult, type CaseResult, type MetricKey } from '../../src/tools/bench/schema.js';

function metrics(over: Partial<Record<MetricKey, number | null>>): Record<MetricKey, number | null> {
  return { ...(Object.fromEntries(METRIC_KEYS.map((k) => [k, null])) as Record<MetricKey, number | null>), ...over };
}

function measured(id: string, runs: Partial<Record<MetricKey, number | null>>[], processes: string[]): CaseResult {
  return {
    id,
    title: id,
    description: `${id} case`,
    dataplane: processes.length ? 'vxtun' : 'kernel VXLAN',
    status: 'measured',
    datapaths: processes.map(() => 'ts'),
    dataplaneProcesses: processes,
    placement: [],
    runs: runs.map((m, i) => ({ run: i + 1, metrics: metrics(m), errors: [] })),
    summary: null,
    rttSamples: { idle: [0.1, 0.2, 0.3], load: [1, 2, 3, 4] },
  };
}

function result(): BenchResult {
  const cases: CaseResult[] = [
    measured('kernel', [{ tcp1Gbps: 10, udp64LossPct: 0, rttIdleP50Ms: 0.1 }, { tcp1Gbps: 12, udp64LossPct: 0, rttIdleP50Ms: 0.2 }, { tcp1Gbps: 20, udp64LossPct: 0, rttIdleP50Ms: 0.1 }], []),
    measured('vxtun-ts', [{ tcp1Gbps: 1, udp64LossPct: 50, cpuSeconds: 3 }, { tcp1Gbps: 3, udp64LossPct: 40, cpuSeconds: 4 }, { tcp1Gbps: 2, udp64LossPct: 60, cpuSeconds: 5 }], ['vxtun node 1', 'vxtun node 2']),
    {
      ...measured('flannel-udp', [], ['x']),
      status: 'unsupported',
      reason: 'not supported by this build (vxtun up refused the udp backend: vxtun: config: backend.type: "udp" ...)',
      datapaths: [],
      dataplaneProcesses: [],
      rttSamples: { idle: [], load: [] },
    },
    measured('naive', [{ tcp1Gbps: 0.5, udp1350Kpps: 40, rttIdleP50Ms: 0.4 }, { tcp1Gbps: 0.4, udp1350Kpps: 30, rttIdleP50Ms: 0.5 }, { tcp1Gbps: 0.6, udp1350Kpps: 50, rttIdleP50Ms: 0.6 }], ['naive node 1', 'naive node 2']),
  ];
  addSummaries(cases);
  return {
    kind: 'vxtun-bench',
    version: 1,
    date: '2026-01-01T00:00:00.000Z',
    wallSeconds: 60,
    command: 'vxtun bench --quick',
    settings: { quick: false, runs: 3, warmupSeconds: 2, seconds: 5, pingCount: 3, pingIntervalMs: 10, cases: cases.map((c) => c.id), pinned: false },
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
      features: { nativeAddon: true, nativeChecksum: true },
      cpusAllowed: '0-1',
      loadAverage: [0, 0, 0],
    },
    noise: { loadAverageBefore: [0, 0, 0], loadAverageAfter: [0, 0, 0], note: 'quiet' },
    baseline: 'kernel',
    cases,
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

  it('summarizes each case against the kernel medians of the same result', () => {
    const r = result();
    const [kernel, ts] = r.cases;
    expect(kernel!.summary!.tcp1Gbps).toEqual({ median: 12, min: 10, max: 20, n: 3, ratio: 1, ratioToNaive: 24 });
    expect(ts!.summary!.tcp1Gbps).toEqual({ median: 2, min: 1, max: 3, n: 3, ratio: 2 / 12, ratioToNaive: 4 });
    expect(r.cases[3]!.summary!.tcp1Gbps).toMatchObject({ median: 0.5, ratio: 0.5 / 12, ratioToNaive: 1 });
    expect(ts!.summary!.rttIdleP50Ms.ratioToNaive).toBeNull(); // the vxtun-ts runs measured no RTT
    // The kernel lost nothing: a ratio to zero is undefined, not infinite.
    expect(ts!.summary!.udp64LossPct.ratio).toBeNull();
    expect(kernel!.summary!.cpuSeconds.median).toBeNull();
    expect(ts!.summary!.cpuSeconds).toMatchObject({ median: 4, min: 3, max: 5, ratio: null });
    expect(BenchResultSchema.parse(r)).toBeDefined();
  });
});

describe('bench reports', () => {
  it('the table shows medians with ratios and min–max, and says why a cell is empty', () => {
    const t = renderTable(result());
    expect(t).toMatch(/TCP 1 stream \(Gbit\/s\)\s+12\.0 ×1\.00\s+2\.00 ×0\.17\s+not supported/);
    expect(t).toMatch(/\n\s+10\.0–20\.0\s+1\.00–3\.00\s+0\.400–0\.600\s*\n/);
    expect(t).toMatch(/dataplane CPU \(s\)\s+n\/a \(kernel\)\s+4\.00\s+not supported/);
    expect(t).toContain('flannel-udp: not supported by this build (vxtun up refused the udp backend');
    // Issue 3's UDP figure: delivered packets/s and Mbit/s at 1350 B, each with its ratio to kernel.
    expect(t).toMatch(/UDP 1350 B \(kpps\)\s+n\/a\s+n\/a\s+not supported\s+40\.0\n/);
    expect(t).toMatch(/UDP 1350 B \(Mbit\/s\)/);
  });

  it('the table divides every case by the naive design when it ran, and says nothing of it when it did not', () => {
    const r = result();
    const t = renderTable(r);
    const block = t.slice(t.indexOf('versus the naive design'));
    expect(block).toMatch(/^versus the naive design \(case naive: one fs\.read and one dgram\.send per packet\), ratio of medians in this run:\n\s+kernel\s+vxtun-ts\n/);
    expect(block).toMatch(/\nTCP 1 stream \(Gbit\/s\)\s+×24\s+×4\.00\n/);
    expect(block).toMatch(/\nUDP 1350 B \(kpps\)\s+n\/a\s+n\/a\n/);
    r.cases = r.cases.filter((c) => c.id !== 'naive');
    addSummaries(r.cases);
    expect(r.cases[1]!.summary!.tcp1Gbps.ratioToNaive).toBeNull();
    expect(renderTable(r)).not.toContain('naive');
    expect(renderHtml(r)).not.toContain('versus-naive');
  });

  it('the HTML is self-contained and keeps unmeasured cases in every legend', () => {
    const html = renderHtml(result());
    expect(html).not.toMatch(/<script|<link|src=|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const charts = [...html.matchAll(/<svg data-chart="([^"]+)"/g)].map((m) => m[1]);
    expect(charts).toEqual(['throughput', 'packet-rate', 'tcp', 'rtt-idle', 'rtt-load', 'versus-naive']);
    expect(html.match(/<g class="missing" data-series="flannel-udp"/g)).toHaveLength(5);
    // TCP 1 and 4 streams, UDP 64 and 1350 B of the userspace cases (the kernel's is in the table): vxtun-ts measured only TCP 1 here.
    const naiveChart = /<svg data-chart="versus-naive"[\s\S]*?<\/svg>/.exec(html)![0];
    expect([...naiveChart.matchAll(/data-series="([^"]+)" data-points="(\d+)"/g)].map((m) => [m[1], m[2]])).toEqual([['vxtun-ts', '1']]);
    expect(html).toMatch(/<table class="naive"><tr><th><\/th><th>kernel<\/th><th>vxtun-ts<\/th><\/tr>\n<tr><th>TCP 1 stream <small>\(Gbit\/s\)<\/small><\/th><td>×24<\/td><td>×4\.00<\/td><\/tr>/);
    expect(html).toContain('<g class="series" data-series="vxtun-ts" data-points="4" data-samples="4">'); // the loaded RTT CDF
  });
});

describe('bench compare', () => {
  it('refuses different machines unless forced, naming what differs', () => {
    const a = result();
    const b = result();
    b.machine.kernel = '6.12.0';
    expect(machineDifferences(a, b)).toEqual(['kernel "6.1.0" vs "6.12.0"']);
    expect(() => renderCompare(a, b, ['a.json', 'b.json'], false)).toThrow(CompareError);
    expect(renderCompare(a, b, ['a.json', 'b.json'], true).split('\n')[0]).toMatch(/^WARNING: these results come from different machines \(kernel "6\.1\.0" vs "6\.12\.0"\)/);
  });

  it('reports a case measured in only one file instead of dropping it', () => {
    const a = result();
    const b = result();
    b.cases = b.cases.filter((c) => c.id !== 'vxtun-ts');
    const out = renderCompare(a, b, ['a.json', 'b.json'], false);
    expect(out).toMatch(/vxtun-ts\s+only in A: A measured, B absent/);
    expect(out).toMatch(/flannel-udp\s+neither measured: A unsupported, B unsupported/);
  });
});
