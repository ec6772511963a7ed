/**
 * The report's "vxtun-fast × C udp proxy" line (the C proxy in flannel's udp-backend design, case
 * udp-proxy-c): the quotient of the TCP medians of the two cases of one run, bounded by their
 * min–max, and absent unless both were measured.
 */
import { describe, expect, it } from 'vitest';
import { addSummaries as addSummariesWith, BOOTSTRAP } from '../../src/tools/bench/runner.js';
import { versusUdpProxyC as versusWith } from '../../src/tools/bench/format.js';
import { metricDefs, type CaseResult } from '../../src/tools/bench/schema.js';

const defs = metricDefs({ streams: 4, udpSizes: [64, 512, 1350] });
const addSummaries = (cases: CaseResult[]): void => addSummariesWith(cases, defs, BOOTSTRAP);
const versusUdpProxyC = (cases: CaseResult[]): string | undefined => versusWith(cases, 4);

function measured(id: string, tcp: Array<[number, number]>): CaseResult {
  const metrics = (t1: number, t4: number) => ({ ...Object.fromEntries(defs.map((d) => [d.key, null])), tcp1Gbps: t1, tcpNGbps: t4 });
  return {
    id,
    title: id,
    description: id,
    dataplane: id,
    status: 'measured',
    datapaths: [],
    dataplaneProcesses: [],
    placement: [],
    underlay: [],
    runs: tcp.map(([t1, t4], i) => ({ round: i + 1, metrics: metrics(t1, t4), errors: [] })),
    summary: null,
    rttSamples: { idle: [], load: [] },
  };
}

describe('versusUdpProxyC', () => {
  it('divides the medians and bounds the quotient by the min–max of both cases', () => {
    const cases = [measured('vxtun-fast', [[6, 8], [5, 9], [7, 10]]), measured('udp-proxy-c', [[1, 2], [1.2, 2], [1, 2.5]])];
    addSummaries(cases);
    // 1 stream: 6 / 1 = 6, bounds 5/1.2 – 7/1; 4 streams: 9 / 2 = 4.5, bounds 8/2.5 – 10/2
    expect(versusUdpProxyC(cases)).toBe("vxtun-fast × C udp proxy (udp-proxy-c), TCP: 1 stream ×6.00 (4.17–7.00), 4 streams ×4.50 (3.20–5.00)");
  });

  it('is absent when either case was not measured', () => {
    const fast = measured('vxtun-fast', [[6, 8]]);
    const failed = { ...measured('udp-proxy-c', []), status: 'failed' as const, reason: 'gcc not found' };
    addSummaries([fast, failed]);
    expect(versusUdpProxyC([fast, failed])).toBeUndefined();
    expect(versusUdpProxyC([fast])).toBeUndefined();
  });

  it('leaves the bounds out for a single run (no spread to show)', () => {
    const cases = [measured('vxtun-fast', [[6, 8]]), measured('udp-proxy-c', [[2, 2]])];
    addSummaries(cases);
    expect(versusUdpProxyC(cases)).toBe("vxtun-fast × C udp proxy (udp-proxy-c), TCP: 1 stream ×3.00, 4 streams ×4.00");
  });
});
