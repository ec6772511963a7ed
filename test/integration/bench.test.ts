/**
 * Issue 4: `vxtun bench` end to end in namespaces it builds itself — the harness runs and writes
 * well-formed results, the HTML report draws its charts in headless Chromium, and `bench compare`
 * reads two result files. Nothing here asserts a speed: figures are checked for shape and for
 * internal consistency (ratios are the medians' quotient), never against a threshold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { run } from '../../src/tools/lab/exec.js';
import { cliPath, naiveDataplanePath } from '../../src/tools/lab/cluster.js';
import { BenchResultSchema, METRIC_KEYS, type BenchResult } from '../../src/tools/bench/schema.js';
import { BENCH_CASES } from '../../src/tools/bench/cases.js';
import { repoRoot, requirePrerequisites } from '../support/integration.js';

const CHROMIUM = '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'vxtun-bench-test-'));
const jsonPath = join(dir, 'result.json');
const htmlPath = join(dir, 'report.html');
let out = { code: null as number | null, stdout: '', stderr: '' };
let result: BenchResult;

beforeAll(async () => {
  requirePrerequisites(['ip', 'ping', 'iperf3']);
  const r = await run([process.execPath, cliPath, 'bench', '--quick', '--cases', 'vxtun-ts,flannel-udp,naive', '--json', jsonPath, '--html', htmlPath], { timeoutMs: 200_000 });
  out = { code: r.code, stdout: r.stdout, stderr: r.stderr };
  if (existsSync(jsonPath)) result = BenchResultSchema.parse(JSON.parse(readFileSync(jsonPath, 'utf8')));
}, 210_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('vxtun bench --quick', () => {
  it('runs the cases in namespaces, prints the table and leaves nothing behind', async () => {
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).toContain('adding case kernel');
    expect(out.stdout).toMatch(/\[1\/4\] kernel/);
    expect(out.stdout).toMatch(/\[2\/4\] vxtun-ts/);
    expect(out.stdout).toMatch(/\[3\/4\] naive/);
    expect(out.stdout).toMatch(/\[4\/4\] flannel-udp/);
    expect(out.stdout).toMatch(/UDP 1350 B \(Mbit\/s\)\s+\S+ ×1\.00/);
    expect(out.stdout).toMatch(/versus the naive design \(case naive[^\n]*\n\s+kernel\s+vxtun-ts/);
    expect(out.stdout).toMatch(/TCP 1 stream \(Gbit\/s\)\s+\S+ ×1\.00/); // the kernel column is its own baseline
    expect(out.stdout).toContain(`wrote ${jsonPath}`);
    expect(out.stdout).toContain(`wrote ${htmlPath}`);
    const prefixes = [...out.stdout.matchAll(/namespaces (vxt-[a-z0-9]+)-\*/g)].map((m) => m[1]!);
    expect(prefixes.length).toBeGreaterThanOrEqual(2);
    const ns = await run(['ip', 'netns', 'list']);
    for (const p of prefixes) expect(ns.stdout).not.toContain(p);
    const procs = await run(['pgrep', '-f', `${cliPath} up`]);
    expect(procs.stdout.trim()).toBe('');
    const naive = await run(['pgrep', '-f', naiveDataplanePath]);
    expect(naive.stdout.trim()).toBe('');
  });

  it('writes JSON that matches the schema, with the machine, datapaths and consistent ratios', () => {
    expect(result).toBeDefined();
    expect(result.cases.map((c) => c.id)).toEqual(['kernel', 'vxtun-ts', 'naive', 'flannel-udp']);
    expect(result.machine.cores).toBeGreaterThan(0);
    expect(result.machine.kernel).toMatch(/^\d+\.\d+/);
    expect(result.machine.node).toBe(process.version);
    expect(result.settings).toMatchObject({ quick: true, runs: 1 });

    const kernel = result.cases[0]!;
    const ts = result.cases[1]!;
    const naive = result.cases[2]!;
    expect(kernel.status).toBe('measured');
    expect(ts.status).toBe('measured');
    expect(naive.status).toBe('measured');
    expect(kernel.datapaths).toEqual([]);
    expect(ts.datapaths).toEqual(['ts', 'ts']); // what each node's "vxtun up" line reported
    expect(naive.datapaths).toEqual(['naive', 'naive']);
    expect(naive.placement.map((p) => p.role)).toEqual(['naive node 1', 'naive node 2', 'iperf3 server', 'iperf3 client']);
    for (const c of [kernel, ts, naive]) {
      expect(c.runs).toHaveLength(1);
      expect(c.runs[0]!.errors).toEqual([]);
      for (const k of ['tcp1Gbps', 'tcp4Gbps', 'udp64Kpps', 'udp512Kpps', 'udp1350Kpps', 'udp1350Mbps', 'rttIdleP50Ms', 'rttLoadP99Ms'] as const) {
        expect(c.summary![k].median, `${c.id} ${k}`).toBeGreaterThan(0);
      }
      expect(c.rttSamples.idle.length).toBeGreaterThanOrEqual(40); // 50 pings asked
      expect(c.rttSamples.load.length).toBeGreaterThan(0);
    }
    // The kernel's CPU and RSS are not attributable to a process: n/a, not zero.
    expect(kernel.summary!.cpuSeconds.median).toBeNull();
    expect(kernel.summary!.peakRssMiB.median).toBeNull();
    expect(ts.summary!.cpuSeconds.median).toBeGreaterThan(0);
    expect(ts.summary!.peakRssMiB.median).toBeGreaterThan(10);
    expect(ts.placement.map((p) => p.role)).toEqual(['vxtun node 1', 'vxtun node 2', 'iperf3 server', 'iperf3 client']);
    for (const k of METRIC_KEYS) {
      const kb = kernel.summary![k];
      const v = ts.summary![k];
      if (kb.median !== null && kb.median !== 0) expect(kb.ratio).toBe(1);
      if (v.median !== null && kb.median !== null && kb.median !== 0) expect(v.ratio).toBeCloseTo(v.median / kb.median, 9);
      else expect(v.ratio).toBeNull();
      // Issue 3's "pure-TS ≥ 5 × naive" figure: the same quotient against the naive case.
      const nb = naive.summary![k];
      if (v.median !== null && nb.median !== null && nb.median !== 0) expect(v.ratioToNaive).toBeCloseTo(v.median / nb.median, 9);
      else expect(v.ratioToNaive).toBeNull();
    }
    expect(naive.summary!.tcp1Gbps.ratioToNaive).toBe(1);

    // flannel's udp format: measured when this build has it, otherwise said so — never dropped, never faked.
    const udp = result.cases[3]!;
    if (udp.status === 'unsupported') {
      expect(udp.reason).toMatch(/^not supported by this build \(vxtun up refused the udp backend: .*udp/);
      expect(udp.summary).toBeNull();
      expect(udp.runs).toEqual([]);
      expect(out.stdout).toMatch(/flannel-udp: not supported by this build/);
    } else {
      expect(udp.status).toBe('measured');
      expect(udp.summary!.tcp1Gbps.median).toBeGreaterThan(0);
    }
  });

  it('renders the HTML report offline in headless Chromium with every chart drawn', async () => {
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
      const charts = await page.evaluate(() =>
        [...document.querySelectorAll('svg[data-chart]')].map((svg) => ({
          chart: svg.getAttribute('data-chart'),
          box: (() => {
            const b = svg.getBoundingClientRect();
            return { w: b.width, h: b.height };
          })(),
          series: [...svg.querySelectorAll('g.series')].map((g) => ({
            name: g.getAttribute('data-series'),
            points: Number(g.getAttribute('data-points')),
            samples: Number(g.getAttribute('data-samples') ?? 0),
            drawn: g.querySelectorAll('.point').length,
            pathLength: (g.querySelector('path') as SVGPathElement | null)?.getTotalLength() ?? 0,
          })),
          legend: svg.textContent ?? '',
        })),
      );
      expect(requests.filter((u) => !u.startsWith('file://'))).toEqual([]);
      expect(charts.map((c) => c.chart)).toEqual(['throughput', 'packet-rate', 'tcp', 'rtt-idle', 'rtt-load', 'versus-naive']);
      const measured = result.cases.filter((c) => c.status === 'measured').map((c) => c.id);
      for (const c of charts) {
        expect(c.box.w, c.chart!).toBeGreaterThan(100);
        // The naive chart shows the userspace dataplanes against naive (the kernel's ratio is in the table).
        expect(c.series.map((s) => s.name), c.chart!).toEqual(c.chart === 'versus-naive' ? measured.filter((id) => id !== 'naive' && id !== 'kernel') : measured);
        for (const s of c.series) {
          if (c.chart === 'versus-naive') {
            expect(s.drawn, `versus-naive ${s.name}`).toBe(4); // TCP 1 and 4 streams, UDP 64 and 1350 B delivered
          } else if (c.chart === 'throughput' || c.chart === 'packet-rate') {
            expect(s.points, `${c.chart} ${s.name}`).toBe(3); // 64, 512, 1350-byte payloads
            expect(s.drawn).toBe(3);
            expect(s.pathLength).toBeGreaterThan(10);
          } else if (c.chart === 'tcp') {
            expect(s.drawn, `tcp ${s.name}`).toBe(2); // 1 and 4 streams
          } else {
            const want = result.cases.find((x) => x.id === s.name)!.rttSamples[c.chart === 'rtt-idle' ? 'idle' : 'load'].length;
            expect(s.samples, `${c.chart} ${s.name}`).toBe(want);
            expect(s.points).toBeGreaterThan(1);
            expect(s.pathLength).toBeGreaterThan(10);
          }
        }
        if (result.cases[3]!.status === 'unsupported' && c.chart !== 'versus-naive') expect(c.legend).toMatch(/flannel-udp:\s*not supported by this build/);
      }
      const table = await page.locator('table').first().innerText();
      expect(table).toContain('TCP 1 stream');
      expect(table).toContain('×1.00');
      expect(await page.locator('table.naive').innerText()).toMatch(/TCP 1 stream/);
      mkdirSync(join(repoRoot, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(repoRoot, 'test-artifacts', 'bench-report.png'), fullPage: true });
    } finally {
      await context?.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});

describe('vxtun bench compare', () => {
  const write = (name: string, r: BenchResult): string => {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify(r));
    return p;
  };

  it('shows the change between two result files of the same machine', async () => {
    const b: BenchResult = structuredClone(result);
    const ts = b.cases.find((c) => c.id === 'vxtun-ts')!;
    ts.summary!.tcp1Gbps.median = ts.summary!.tcp1Gbps.median! * 1.1;
    ts.summary!.tcp1Gbps.ratio = ts.summary!.tcp1Gbps.ratio! * 1.1;
    const r = await run([process.execPath, cliPath, 'bench', 'compare', jsonPath, write('b.json', b)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^same machine/);
    const row = r.stdout.split('\n').find((l) => l.startsWith('vxtun-ts') && l.includes('TCP 1 stream'));
    expect(row).toMatch(/\+10\.0%\s+\S+\s+\S+\s+\+10\.0%$/);
    const unchanged = r.stdout.split('\n').find((l) => l.startsWith('kernel') && l.includes('TCP 1 stream'));
    expect(unchanged).toMatch(/\+0\.0%\s+1\.00\s+1\.00\s+\+0\.0%$/);
  });

  it('refuses results from different machines unless --force, and then says so', async () => {
    const other: BenchResult = structuredClone(result);
    other.machine.cpuModel = 'Some Other CPU';
    other.machine.machineIdHash = '0000000000000000';
    const otherPath = write('other.json', other);
    const refused = await run([process.execPath, cliPath, 'bench', 'compare', jsonPath, otherPath]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^vxtun: refusing to compare results from different machines \(machineIdHash .*cpuModel .*Some Other CPU.*\); pass --force/);
    expect(refused.stdout).toBe('');
    const forced = await run([process.execPath, cliPath, 'bench', 'compare', '--force', jsonPath, otherPath]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout.split('\n')[0]).toMatch(/^WARNING: these results come from different machines/);
  });

  it('refuses a file that is not a bench result with one line naming the field', async () => {
    const bad = structuredClone(result) as unknown as { cases: { summary: unknown }[] };
    bad.cases[0]!.summary = { tcp1Gbps: 'fast' };
    const badPath = join(dir, 'bad.json');
    writeFileSync(badPath, JSON.stringify(bad));
    const r = await run([process.execPath, cliPath, 'bench', 'compare', jsonPath, badPath]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${badPath}: not a vxtun bench result: cases.0.summary.`);
  });
});

describe('vxtun bench arguments', () => {
  it('refuses an unknown case or a bad run count with one line and exit 2, before anything starts', async () => {
    for (const [args, line] of [
      [['--cases', 'kernel,warp'], `vxtun: --cases "kernel,warp": unknown case "warp" (cases: ${BENCH_CASES.map((c) => c.id).join(', ')})`],
      [['--runs', '0'], 'vxtun: --runs "0" must be an integer from 1 to 50'],
      [['--seconds', '1.5'], 'vxtun: --seconds "1.5" must be an integer from 1 to 600'],
    ] as const) {
      const r = await run([process.execPath, cliPath, 'bench', ...args]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toBe(`${line}\n`);
      expect(r.stdout).toBe(''); // no "vxtun bench: cases ..." line: nothing was built
    }
  });
});
