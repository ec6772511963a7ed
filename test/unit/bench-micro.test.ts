/**
 * Issue 4: the micro benchmarks run and produce well-formed results — every `*.bench.ts` file in
 * bench/micro/ is picked up, every case reports ns/packet and packets/s. No speed is asserted.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMicro } from '../../bench/micro/run.js';
import { MicroRunSchema } from '../../bench/micro/schema.js';
import { renderMicroSvg } from '../../bench/micro/chart.js';
import { loadNative } from '../../src/io/addon.js';

const microDir = fileURLToPath(new URL('../../bench/micro/', import.meta.url));

describe('bench:micro', () => {
  it('runs every micro benchmark file and reports ns/packet and packets/s per case', async () => {
    const result = MicroRunSchema.parse(await runMicro({ quick: true, maxTimeSeconds: 0.05 }));
    const files = readdirSync(microDir).filter((f) => f.endsWith('.bench.ts'));
    expect(new Set(result.results.map((x) => x.benchmark)).size).toBe(files.length);
    const names = result.results.map((x) => `${x.benchmark}/${x.case}`);
    for (const size of [64, 512, 1400, 9000]) {
      expect(names).toContain(`encap-decap/encap ts ${size}B`);
      expect(names).toContain(`encap-decap/decap ts ${size}B`);
      expect(names).toContain(`checksum/ts ${size}B`);
      if (loadNative()) expect(names).toContain(`checksum/native ${size}B`);
    }
    expect(loadNative(), 'the native addon (built by npm ci)').toBeDefined();
    for (const n of [1, 100, 10000]) for (const fam of ['ipv4', 'ipv6']) expect(names).toContain(`route-lookup/${fam} ${n} routes`);
    expect(names).toContain('route-lookup/ipv4 10000 routes mixed lengths');
    for (const size of [64, 1400, 9000]) for (const v of ['native', 'ts twin', 'ts emit']) expect(names).toContain(`encap-batch/${v} ${size}B`);
    for (const size of [64, 512, 1400, 9000]) expect(names).toContain(`encap-decap/encap native ${size}B`);
    for (const x of result.results) expect(x.nsPerPacket * x.packetsPerSecond).toBeCloseTo(1e9, -3);
    // the chart draws one bar per case, its width growing with ns/packet
    const svg = renderMicroSvg(result);
    const bars = [...svg.matchAll(/<rect class="bar" data-case="([^"]+)" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)].map((m) => ({ name: m[1]!.replace(/&amp;/g, '&'), width: Number(m[2]) }));
    expect(bars.map((b) => b.name)).toEqual(names);
    const byName = new Map(bars.map((b) => [b.name, b.width]));
    const sorted = [...result.results].sort((a, b) => a.nsPerPacket - b.nsPerPacket);
    expect(byName.get(`${sorted[0]!.benchmark}/${sorted[0]!.case}`)!).toBeLessThan(byName.get(`${sorted.at(-1)!.benchmark}/${sorted.at(-1)!.case}`)!);
  }, 120_000);
});
