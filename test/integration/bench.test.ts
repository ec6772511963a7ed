/**
 * `vxtun bench` end to end in namespaces it builds itself: a tiny run (kernel and vxtun-fast, two
 * interleaved rounds on the link wire) writes well-formed results with every
 * metric — netperf's TCP_RR and TCP_CRR included — and the underlay's offloads as the link wire
 * sets them; the HTML report draws its headline chart in headless Chromium; `bench compare` reads
 * two result files. Nothing here asserts a speed: figures are checked for shape and for internal
 * consistency (ratios are the medians' quotient), never against a threshold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { run } from '../../src/tools/lab/exec.js';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { BenchResultSchema, metricDefs, PROCESS_METRICS, type BenchResult } from '../../src/tools/bench/schema.js';
import { BENCH_CASES } from '../../src/tools/bench/cases.js';
import { repoRoot, requirePrerequisites } from '../support/integration.js';

const CHROMIUM = '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'vxtun-bench-test-'));
const jsonPath = join(dir, 'result.json');
const htmlPath = join(dir, 'report.html');
let out = { code: null as number | null, stdout: '', stderr: '' };
let result: BenchResult;

beforeAll(async () => {
  requirePrerequisites(['ip', 'ping', 'iperf3', 'netperf', 'netserver', 'ethtool', 'tc']);
  const args = ['bench', '--cases', 'kernel,vxtun-fast', '--runs', '2', '--seconds', '1', '--wire', 'link', '--json', jsonPath, '--html', htmlPath];
  const r = await run([process.execPath, cliPath, ...args], { timeoutMs: 110_000 });
  out = { code: r.code, stdout: r.stdout, stderr: r.stderr };
  if (existsSync(jsonPath)) result = BenchResultSchema.parse(JSON.parse(readFileSync(jsonPath, 'utf8')));
}, 115_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('vxtun bench, a tiny run on the link wire', () => {
  it('builds both cases once, measures them round by round, prints the table and leaves nothing behind', async () => {
    expect(out.code, out.stdout + out.stderr).toBe(0);
    const order = [...out.stdout.matchAll(/^\[link\] (build \d\/2|round \d\/2) (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(order).toEqual(['build 1/2 kernel', 'build 2/2 vxtun-fast', 'round 1/2 kernel', 'round 1/2 vxtun-fast', 'round 2/2 kernel', 'round 2/2 vxtun-fast']);
    expect(out.stdout).toContain('wire link, MTU 1500;');
    expect(out.stdout).toContain('== link wire: segmentation offloads off, GRO on');
    expect(out.stdout).toMatch(/TCP 1 stream \(Gbit\/s\)\s+\S+ ×1\.00/); // the kernel column is its own baseline
    expect(out.stdout).toMatch(/TCP_CRR p99 \(µs\)\s+\S+ ×1\.00/);
    expect(out.stdout).toMatch(/UDP 64 B loss \(%\)\s+[\d.]+\s+[\d.]+\n/); // a percentage, never ×kernel
    expect(out.stdout).toContain(`wrote ${jsonPath}`);
    expect(out.stdout).toContain(`wrote ${htmlPath}`);
    const prefixes = [...out.stdout.matchAll(/namespaces (vxt-[a-z0-9]+)-\*/g)].map((m) => m[1]!);
    expect(prefixes).toHaveLength(2);
    const ns = await run(['ip', 'netns', 'list']);
    for (const p of prefixes) expect(ns.stdout).not.toContain(p);
    const procs = await run(['pgrep', '-f', `${cliPath} up`]);
    expect(procs.stdout.trim()).toBe('');
  });

  it('writes JSON that matches the schema: build identity, raw runs, every metric, CIs, offloads', () => {
    expect(result).toBeDefined();
    expect(result.version).toBe(2);
    expect(result.build.commit).toMatch(/^[0-9a-f]{12}( \(modified\))?$/); // this checkout's HEAD
    expect(result.machine.netperf).toMatch(/^Netperf version \d/);
    expect(result.settings).toMatchObject({ runs: 2, wires: ['link'], mtu: 1500, streams: 4, udpSizes: [64, 512, 1350], netem: null, confidence: 0.95 });
    expect(result.wires.map((w) => w.wire)).toEqual(['link']);
    const [kernel, fast] = result.wires[0]!.cases;
    expect([kernel!.id, fast!.id]).toEqual(['kernel', 'vxtun-fast']);
    const defs = metricDefs(result.settings);
    for (const c of [kernel!, fast!]) {
      expect(c.status, c.reason).toBe('measured');
      expect(c.runs.map((r) => r.round)).toEqual([1, 2]);
      for (const run of c.runs) {
        expect(run.errors).toEqual([]);
        for (const d of defs) {
          const v = run.metrics[d.key];
          if (c.id === 'kernel' && PROCESS_METRICS.includes(d.key)) expect(v, `${c.id} ${d.key}`).toBeNull(); // no process to charge
          else expect(v, `${c.id} round ${run.round} ${d.key}`).toEqual(expect.any(Number));
        }
        for (const k of ['tcp1Gbps', 'tcpNGbps', 'udp64Kpps', 'udp1350Mbps', 'tcpRrTps', 'tcpRrP50Us', 'tcpRrP99Us', 'tcpCrrTps', 'tcpCrrP90Us', 'hostCpuSecondsPerGbit']) expect(run.metrics[k], `${c.id} ${k}`).toBeGreaterThan(0);
        expect(run.metrics.tcpRrP50Us!).toBeLessThanOrEqual(run.metrics.tcpRrP90Us!);
        expect(run.metrics.tcpRrP90Us!).toBeLessThanOrEqual(run.metrics.tcpRrP99Us!);
        for (const size of result.settings.udpSizes) {
          expect(run.metrics[`udp${size}LossPct`]).toBeGreaterThanOrEqual(0);
          expect(run.metrics[`udp${size}LossPct`]).toBeLessThanOrEqual(100);
        }
      }
      // Both runs' values: the median is their mean and the bootstrap interval spans them.
      const t = c.runs.map((r) => r.metrics.tcp1Gbps!);
      expect(c.summary!.tcp1Gbps!.median).toBeCloseTo((t[0]! + t[1]!) / 2, 9);
      expect(c.summary!.tcp1Gbps!.ci).toEqual({ lo: Math.min(...t), hi: Math.max(...t) });
      // The link wire's offloads, on both ends of each node's underlay link.
      expect(c.underlay.map((u) => u.side).sort()).toEqual(['bridge', 'bridge', 'node', 'node']);
      for (const u of c.underlay) {
        expect(u.offloads['tcp-segmentation-offload'], `${u.namespace} ${u.ifname}`).toBe('off');
        expect(u.offloads['generic-segmentation-offload']).toBe('off');
        expect(u.offloads['generic-receive-offload']).toBe('on');
        expect(u.offloads['tx-udp-segmentation']).toMatch(/^off/);
      }
    }
    expect(fast!.datapaths).toEqual(['native', 'native']);
    expect(fast!.summary!.cpuSecondsPerGB!.median).toBeGreaterThan(0);
    expect(fast!.summary!.peakRssMiB!.median).toBeGreaterThan(10);
    for (const d of defs) {
      const kb = kernel!.summary![d.key]!;
      const v = fast!.summary![d.key]!;
      if (!d.asRatio) {
        expect(v.ratio, d.key).toBeNull();
        continue;
      }
      if (kb.median !== null && kb.median !== 0) expect(kb.ratio).toBe(1);
      if (v.median !== null && kb.median !== null && kb.median !== 0) {
        expect(v.ratio).toBeCloseTo(v.median / kb.median, 9);
        expect(v.ratioCi, d.key).not.toBeNull();
      } else expect(v.ratio).toBeNull();
    }
  });

  it('renders the HTML report offline in headless Chromium with the headline chart drawn', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} (Debian chromium, installed by scripts/install-deps.sh)`).toBe(true);
    const profile = mkdtempSync(join(tmpdir(), 'vxtun-chromium-'));
    let context: BrowserContext | undefined;
    try {
      // A fresh profile each time; offline, so a report that fetched anything would fail to draw.
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        viewport: { width: 1400, height: 1000 },
        offline: true,
      });
      const page = await context.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(`file://${htmlPath}`);
      expect(requests.filter((u) => !u.startsWith('file://'))).toEqual([]);
      expect(await page.locator('code.commit').innerText()).toBe(result.build.commit);
      expect(await page.locator('table.results').evaluateAll((ts) => ts.map((t) => t.getAttribute('data-wire')))).toEqual(['link']);
      const headline = await page.evaluate(() => {
        const svg = document.querySelector('svg[data-chart="headline"]')!;
        return {
          ticks: [...svg.querySelectorAll('text')].map((t) => t.textContent),
          series: [...svg.querySelectorAll('g.series')].map((g) => ({
            name: g.getAttribute('data-series'),
            bars: [...g.querySelectorAll('rect.point')].map((r) => {
              const b = r.getBoundingClientRect();
              return { w: b.width, h: b.height, title: r.querySelector('title')?.textContent ?? '' };
            }),
            whiskers: [...g.querySelectorAll('line')].map((l) => {
              const b = l.getBoundingClientRect();
              return b.height;
            }),
          })),
        };
      });
      expect(headline.ticks).toEqual(expect.arrayContaining(['kernel', 'vxtun-fast']));
      expect(headline.series.map((s) => s.name)).toEqual(['link wire']);
      const [link] = headline.series;
      expect(link!.bars.map((b) => b.title.split(' ')[2])).toEqual(['kernel:', 'vxtun-fast:']);
      for (const b of link!.bars) {
        expect(b.w, b.title).toBeGreaterThan(0);
        expect(b.h, b.title).toBeGreaterThan(0);
      }
      expect(link!.whiskers).toHaveLength(2); // each bar's ratio CI (two runs each)
      // Per wire, a CPU-per-GB chart of the userspace dataplanes (the kernel has no process to charge).
      const cpu = await page.evaluate(() =>
        [...document.querySelectorAll('svg[data-chart="cpu-per-gb-link"] g.series')].map((g) => ({
          name: g.getAttribute('data-series'),
          h: [...g.querySelectorAll('rect.point')].map((r) => r.getBoundingClientRect().height),
        })),
      );
      expect(cpu.map((s) => s.name)).toEqual(['vxtun-fast']);
      expect(cpu[0]!.h[0]).toBeGreaterThan(0);
      const rr = await page.evaluate(() => [...document.querySelectorAll('svg[data-chart="transactions-link"] rect.point')].map((r) => r.getBoundingClientRect().height));
      expect(rr).toHaveLength(4); // TCP_RR and TCP_CRR for kernel and vxtun-fast
      for (const h of rr) expect(h).toBeGreaterThan(0);
      const charts = await page.evaluate(() => [...document.querySelectorAll('svg[data-chart]')].map((s) => s.getAttribute('data-chart')));
      expect(charts).toEqual(['headline', 'throughput-link', 'packet-rate-link', 'tcp-link', 'transactions-link', 'cpu-per-gb-link', 'rtt-idle-link', 'rtt-load-link']);
      expect(await page.locator('table.offloads').innerText()).toMatch(/link\s+bridge p1\s+off/);
      mkdirSync(join(repoRoot, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(repoRoot, 'test-artifacts', 'bench-report.png'), fullPage: true });
    } finally {
      await context?.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});

describe('vxtun bench --netem', () => {
  it('delays every underlay crossing, or stops with one line when the kernel has no sch_netem', async () => {
    const path = join(dir, 'netem.json');
    const r = await run([process.execPath, cliPath, 'bench', '--cases', 'kernel', '--runs', '1', '--wire', 'link', '--netem', 'delay 1ms', '--json', path, '--html', join(dir, 'netem.html')], { timeoutMs: 60_000 });
    if (r.code === 0) {
      // Each direction leaves the bridge through one port: 1 ms each way, 2 ms per round trip at least.
      const netem = BenchResultSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
      expect(netem.settings.netem).toBe('delay 1ms');
      const m = netem.wires[0]!.cases[0]!.runs[0]!.metrics;
      expect(m.rttIdleP50Ms).toBeGreaterThanOrEqual(2);
      expect(m.tcpRrP50Us).toBeGreaterThanOrEqual(2000);
    } else {
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^vxtun: --netem "delay 1ms": tc refused it on the underlay: .*\(this kernel has no sch_netem\)\n$/);
      expect(existsSync(path)).toBe(false);
    }
    const prefixes = [...r.stdout.matchAll(/namespaces (vxt-[a-z0-9]+)-\*/g)].map((m) => m[1]!);
    expect(prefixes).toHaveLength(1);
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(prefixes[0]!);
  });
});

describe('vxtun bench compare', () => {
  const write = (name: string, r: BenchResult): string => {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify(r));
    return p;
  };

  it('marks each metric of two result files of the same machine, "~" with two runs each', async () => {
    const r = await run([process.execPath, cliPath, 'bench', 'compare', jsonPath, write('b.json', structuredClone(result))]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^same machine/);
    expect(r.stdout).toContain('== link wire (MTU 1500)');
    const row = r.stdout.split('\n').find((l) => l.startsWith('vxtun-fast') && l.includes('TCP 1 stream'));
    expect(row).toMatch(/\+0\.0%\s+~ \(too few samples: n=2\+2\)/);
  });

  it('refuses results from different machines unless --allow-different-machines, and then says so', async () => {
    const other: BenchResult = structuredClone(result);
    other.machine.cpuModel = 'Some Other CPU';
    other.machine.machineIdHash = '0000000000000000';
    const otherPath = write('other.json', other);
    const refused = await run([process.execPath, cliPath, 'bench', 'compare', jsonPath, otherPath]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^vxtun: refusing to compare results from different machines \(machineIdHash .*cpuModel .*Some Other CPU.*\); pass --allow-different-machines to compare anyway\n$/);
    expect(refused.stdout).toBe('');
    const allowed = await run([process.execPath, cliPath, 'bench', 'compare', '--allow-different-machines', jsonPath, otherPath]);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout.split('\n')[0]).toMatch(/^WARNING: these results come from different machines/);
  });

  it('refuses a file that is not a bench result with one line naming the field', async () => {
    const bad = structuredClone(result) as unknown as { wires: { cases: { summary: unknown }[] }[] };
    bad.wires[0]!.cases[0]!.summary = { tcp1Gbps: 'fast' };
    const badPath = join(dir, 'bad.json');
    writeFileSync(badPath, JSON.stringify(bad));
    const r = await run([process.execPath, cliPath, 'bench', 'compare', jsonPath, badPath]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${badPath}: not a vxtun bench result: wires.0.cases.0.summary.`);
  });
});

describe('vxtun bench arguments', () => {
  it('refuses a bad flag value with one line naming the flag and the value, exit 2, before anything starts', async () => {
    for (const [args, line] of [
      [['--cases', 'kernel,warp'], `vxtun: --cases "kernel,warp": unknown case "warp" (cases: ${BENCH_CASES.map((c) => c.id).join(', ')})`],
      [['--runs', '0'], 'vxtun: --runs "0" must be an integer from 1 to 50'],
      [['--seconds', '1.5'], 'vxtun: --seconds "1.5" must be an integer from 1 to 600'],
      [['--wire', 'fiber'], 'vxtun: --wire "fiber" must be veth, link or both'],
      [['--mtu', '1400'], 'vxtun: --mtu "1400" must be 1500 or 9000'],
      [['--streams', '1'], 'vxtun: --streams "1" must be an integer from 2 to 128 (TCP 1 stream is always measured)'],
      [['--udp-sizes', '64,2000'], 'vxtun: --udp-sizes "64,2000": each size must be a distinct integer from 16 to 1422 bytes (MTU 1500 less VXLAN and IPv4/UDP headers), not "2000"'],
      [['--netem', 'delay 1ms; reboot'], 'vxtun: --netem "delay 1ms; reboot" must be tc netem parameters, e.g. "delay 1ms loss 0.1%"'],
    ] as const) {
      const r = await run([process.execPath, cliPath, 'bench', ...args]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toBe(`${line}\n`);
      expect(r.stdout).toBe(''); // no "vxtun bench: cases ..." line: nothing was built
    }
  });
});
