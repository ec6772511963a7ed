/**
 * `vxtun bench soak` end to end: a short soak in namespaces it builds itself samples every vxtun
 * process's RSS while TCP flows, writes JSON and the chart, and leaves nothing behind. Memory
 * figures are checked for shape (sampled, plausible, per process), never against a speed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/tools/lab/exec.js';
import { cliPath } from '../../src/tools/lab/cluster.js';
import type { SoakResult } from '../../src/tools/bench/soak.js';
import { requirePrerequisites } from '../support/integration.js';

const dir = mkdtempSync(join(tmpdir(), 'vxtun-soak-test-'));
const jsonPath = join(dir, 'soak.json');
const htmlPath = join(dir, 'soak.html');
let out = { code: null as number | null, stdout: '', stderr: '' };

beforeAll(async () => {
  requirePrerequisites(['ip', 'ping', 'iperf3']);
  const r = await run([process.execPath, cliPath, 'bench', 'soak', '--duration', '12', '--interval', '2', '--json', jsonPath, '--html', htmlPath], { timeoutMs: 120_000 });
  out = { code: r.code, stdout: r.stdout, stderr: r.stderr };
}, 130_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('vxtun bench soak', () => {
  it('samples RSS of both vxtun nodes under load, judges them and writes JSON and a chart', async () => {
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).toMatch(/soak vxtun-fast 0:0\d\/0:12 · RSS vxtun node 1 \d+ MiB, vxtun node 2 \d+ MiB/);
    expect(out.stdout).toMatch(/vxtun node 2: RSS [\d.]+ → [\d.]+ MiB .* flat, within 150 MiB/);
    expect(existsSync(jsonPath) && existsSync(htmlPath)).toBe(true);
    const r = JSON.parse(readFileSync(jsonPath, 'utf8')) as SoakResult;
    expect(r.kind).toBe('vxtun-soak');
    expect(r.case.datapaths).toEqual(['native', 'native']);
    expect(r.processes).toEqual(['vxtun node 1', 'vxtun node 2']);
    expect(r.samples.length).toBeGreaterThanOrEqual(5);
    for (const s of r.samples) for (const v of s.rssMiB) expect(v).toBeGreaterThan(20);
    expect(r.samples.filter((s) => (s.gbps ?? 0) > 0).length).toBeGreaterThanOrEqual(3);
    expect(r.kernelTcpGbps).toBeGreaterThan(0);
    expect(r.throughput.ratioToKernel).toBeCloseTo(r.throughput.median! / r.kernelTcpGbps!, 6);
    expect(r.verdicts.map((v) => v.flat && v.underLimit)).toEqual([true, true]);
    expect(readFileSync(htmlPath, 'utf8').match(/<polyline class="rss"/g)).toHaveLength(2);
  });

  it('leaves no namespace and no vxtun process behind', async () => {
    const prefixes = [...out.stdout.matchAll(/namespaces (vxt-[a-z0-9]+)-\*/g)].map((m) => m[1]!);
    expect(prefixes).toHaveLength(2);
    const ns = await run(['ip', 'netns', 'list']);
    for (const p of prefixes) expect(ns.stdout).not.toContain(p);
    const procs = await run(['pgrep', '-f', `${cliPath} up`]);
    expect(procs.stdout.trim()).toBe('');
  });

  it('refuses a bad duration in one line', async () => {
    const r = await run([process.execPath, cliPath, 'bench', 'soak', '--duration', 'ten']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('vxtun: --duration "ten" must be an integer from 1 to 86400');
  });
});
