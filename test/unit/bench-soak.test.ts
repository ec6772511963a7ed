import { describe, expect, it } from 'vitest';
import { parseIperfInterval, slope, verdictFor, renderSoakHtml, renderSoakText, type SoakResult } from '../../src/tools/bench/soak.js';

describe('soak analysis', () => {
  it('slope is the least-squares fit', () => {
    expect(slope([0, 1, 2, 3], [10, 12, 14, 16])).toBeCloseTo(2);
    expect(slope([0, 1, 2], [5, 5, 5])).toBe(0);
    expect(slope([1], [1])).toBeNull();
  });

  it('flat: steady RSS after the warm-up, shrinking allowed, growth beyond max(8 MiB, 5 %) is not', () => {
    const t = [10, 20, 30, 40, 50, 60, 70];
    // Warm-up growth (before 30 s) does not count.
    expect(verdictFor('a', t, [40, 70, 76, 76, 77, 76, 76], 30)).toMatchObject({ flat: true, underLimit: true, steadyStartMiB: 76, endMiB: 76, maxMiB: 77 });
    expect(verdictFor('b', t, [90, 90, 90, 80, 78, 78, 78], 30).flat).toBe(true);
    const leak = verdictFor('c', t, [70, 75, 80, 85, 90, 95, 100], 30);
    expect(leak.flat).toBe(false);
    expect(leak.growthMiB).toBeCloseTo(20);
    expect(verdictFor('d', t, [140, 150, 151, 151, 151, 151, 151], 30).underLimit).toBe(false);
    // A process gone before the steady part is not called flat.
    expect(verdictFor('e', t, [80, 80, null, null, null, null, null], 30).flat).toBe(false);
  });

  it('reads iperf3 interval lines, not its summary lines', () => {
    expect(parseIperfInterval('[  5]   3.00-4.00   sec   592 MBytes  4.97 Gbits/sec    0   3.01 MBytes')).toBeCloseTo(4.97);
    expect(parseIperfInterval('[  5]   0.00-1.00   sec  62.5 MBytes   524 Mbits/sec   12    300 KBytes')).toBeCloseTo(0.524);
    expect(parseIperfInterval('[  5]   0.00-10.00  sec  5.80 GBytes  4.98 Gbits/sec  112             sender')).toBeNull();
    expect(parseIperfInterval('Connecting to host 10.244.2.2, port 5201')).toBeNull();
  });

  it('renders the verdicts as text and a chart with one line per process', () => {
    const r: SoakResult = {
      kind: 'vxtun-soak',
      version: 1,
      date: '2026-11-22T00:00:00.000Z',
      command: 'vxtun bench soak --duration 30',
      settings: { caseId: 'vxtun-fast', seconds: 30, intervalSeconds: 10, warmupSeconds: 10 },
      machine: { hostname: 'h', machineIdHash: 'x', fingerprint: 'f', kernel: '6.1', cpuModel: 'cpu <x>', cores: 2, memoryMiB: 1024, node: 'v20', vxtunVersion: '0', iperf3: '3', netperf: '2.7', features: { nativeAddon: true, nativeChecksum: true }, cpusAllowed: '0-1', loadAverage: [0, 0, 0] },
      loadAverage: { before: [0, 0, 0], after: [0, 0, 0] },
      kernelTcpGbps: 10,
      case: { id: 'vxtun-fast', title: 'vxtun ↔ vxtun', datapaths: ['native', 'native'] },
      processes: ['vxtun node 1', 'vxtun node 2'],
      samples: [
        { t: 10, rssMiB: [70, 72], cpuShare: [0.5, 0.5], gbps: 5 },
        { t: 20, rssMiB: [71, 72], cpuShare: [0.5, 0.5], gbps: 5.2 },
        { t: 30, rssMiB: [71, 73], cpuShare: [0.5, 0.5], gbps: 4.8 },
      ],
      throughput: { median: 5, min: 4.8, max: 5.2, ratioToKernel: 0.5 },
      verdicts: [verdictFor('vxtun node 1', [10, 20, 30], [70, 71, 71], 10), verdictFor('vxtun node 2', [10, 20, 30], [72, 72, 73], 10)],
      rssLimitMiB: 150,
    };
    const text = renderSoakText(r);
    expect(text).toContain('×0.50 of the kernel');
    expect(text).toMatch(/vxtun node 1: RSS 70\.0 → 71\.0 MiB .*flat, within 150 MiB/);
    const html = renderSoakHtml(r);
    expect(html.match(/<polyline class="rss"/g)).toHaveLength(2);
    expect(html).toContain('cpu &lt;x&gt;');
    expect(html).toMatch(/<polyline class="gbps"[^>]*points="[\d., ]+"/);
  });
});
