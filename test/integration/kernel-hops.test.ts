/**
 * The whole path, observed: `vxtun trace --lab` merges the kernel's hops — the pod's eth0, the node's
 * veth end, cni0, the TUN vxtun0, flannel.1 and the underlay eth0, each seen by a packet socket in the
 * lab's namespaces (src/tools/lab/hop_capture.c) — with vxtun's own observation points into one
 * journey on one clock (CLOCK_MONOTONIC). A ping between two vxtun nodes and one between a vxtun node
 * and a kernel-VXLAN node, in a real teaching lab; then the web view draws those hops apart from
 * vxtun's in headless Chromium (English and Chinese), screenshots in test-artifacts/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { run, waitFor } from '../../src/tools/lab/exec.js';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { labDown, type LabState } from '../../src/tools/lab/teaching.js';
import type { TraceItem } from '../../src/trace/printer.js';
import type { Hop } from '../../src/trace/hops.js';
import { requirePrerequisites, repoRoot } from '../support/integration.js';
import { untranslatedWords } from '../support/untranslated.js';

const CHROMIUM = '/usr/bin/chromium';
const artifacts = join(repoRoot, 'test-artifacts');
const vxtun = (args: string[], timeoutMs = 60_000) => run([process.execPath, cliPath, ...args], { timeoutMs });

/** "vxtun 1 tun-read", "kernel 2 pod eth0 in", "kernel 1 veth out": a hop by who saw it, which node, where. */
function hopId(h: Hop, state: LabState): string {
  const node = state.nodes.find((n) => n.publicIp === h.node)?.index ?? h.node;
  if (h.by === 'vxtun') return `vxtun ${node} ${h.point}`;
  return `kernel ${node} ${h.place === 'pod' ? 'pod ' : ''}${h.point.startsWith('veth') ? 'veth' : h.point} ${h.direction}`;
}

/** The hops a packet meets from pod `from` to pod `to`, in path order; `kinds` says which dataplane each node runs. */
function expectedPath(from: LabState['nodes'][number], to: LabState['nodes'][number]): string[] {
  const a = from.index;
  const b = to.index;
  const out = [`kernel ${a} pod eth0 out`, `kernel ${a} veth in`, `kernel ${a} cni0 in`];
  out.push(...(from.kind === 'vxtun' ? [`kernel ${a} vxtun0 out`, ...['tun-read', 'classify', 'encap', 'udp-send'].map((p) => `vxtun ${a} ${p}`)] : [`kernel ${a} flannel.1 out`]));
  out.push(`kernel ${a} eth0 out`, `kernel ${b} eth0 in`);
  out.push(...(to.kind === 'vxtun' ? [`vxtun ${b} udp-recv`, `vxtun ${b} decap`, `kernel ${b} vxtun0 in`] : [`kernel ${b} flannel.1 in`]));
  out.push(`kernel ${b} cni0 out`, `kernel ${b} veth out`, `kernel ${b} pod eth0 in`);
  return out;
}

describe('the whole path observed: kernel hops and vxtun stages in one journey', () => {
  const parent = mkdtempSync(join(tmpdir(), 'vxtun-hops-'));
  const dir = join(parent, 'lab');
  let state: LabState;
  let browser: Browser | undefined;
  const traces: ChildProcess[] = [];

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'gcc', '/usr/lib/cni/bridge', '/usr/lib/cni/host-local']);
    const r = await vxtun(['lab', 'up', '--nodes', '3', '--kernel', '3', '--state-dir', dir]);
    if (r.code !== 0) throw new Error(`lab up failed: ${r.stdout}${r.stderr}`);
    state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LabState;
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    for (const t of traces) if (t.exitCode === null && t.signalCode === null) t.kill('SIGINT');
    await labDown(dir).catch(() => {});
    rmSync(parent, { recursive: true, force: true });
  });

  const ping = async (from: number, to: number): Promise<void> => {
    const r = await run(['ip', 'netns', 'exec', state.nodes[from - 1]!.pod, 'ping', '-c', '1', '-W', '2', state.nodes[to - 1]!.podIp]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  };
  const startTrace = async (args: string[]): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string }> => {
    const child = spawn(process.execPath, [cliPath, 'trace', '--lab', '--state-dir', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    traces.push(child);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    await waitFor(() => err.includes('attached to') || child.exitCode !== null, { timeoutMs: 15_000, what: 'vxtun trace --lab attached' });
    if (child.exitCode !== null) throw new Error(`vxtun trace --lab exited: ${err}`);
    return { child, stdout: () => out, stderr: () => err };
  };

  it('vxtun↔vxtun and vxtun↔kernel: veth, cni0, TUN, flannel.1 and eth0 on both nodes, with vxtun\'s stages, in one time order', async () => {
    const trace = await startTrace(['--protocol', 'icmp', '--json', '--count', '4']);
    await ping(1, 2);
    await ping(1, 3);
    await waitFor(() => trace.child.exitCode !== null, { timeoutMs: 10_000, what: 'four traced items' });
    expect(trace.child.exitCode, trace.stderr()).toBe(0);
    const items = trace.stdout().trim().split('\n').map((l) => JSON.parse(l) as TraceItem);
    expect(items).toHaveLength(4);
    const [n1, n2, n3] = state.nodes as [LabState['nodes'][number], LabState['nodes'][number], LabState['nodes'][number]];
    const cases: Array<[string, LabState['nodes'][number], LabState['nodes'][number]]> = [
      [`echo request ${n1.podIp} → ${n2.podIp}`, n1, n2],
      [`echo reply ${n2.podIp} → ${n1.podIp}`, n2, n1],
      [`echo request ${n1.podIp} → ${n3.podIp}`, n1, n3],
      [`echo reply ${n3.podIp} → ${n1.podIp}`, n3, n1],
    ];
    for (const [what, from, to] of cases) {
      const item = items.find((i) => {
        const j = i.kind === 'journey' ? i.journey : i.sender;
        return j.inner?.src === from.podIp && j.inner?.dst === to.podIp;
      });
      expect(item, what).toBeDefined();
      const hops = item!.hops ?? [];
      const times = hops.map((h) => h.t);
      // one clock: every hop, kernel or vxtun, in non-decreasing time order
      expect(times, what).toEqual([...times].sort((x, y) => x - y));
      // and that time order is the packet's path; tun-write is stamped when the write returned, by when
      // the kernel may already have carried the packet on to the pod, so only its place after decap is fixed
      const ids = hops.map((h) => hopId(h, state));
      expect(ids.filter((id) => !/^vxtun \d tun-write$/.test(id)), what).toEqual(expectedPath(from, to));
      if (to.kind === 'vxtun') expect(ids.indexOf(`vxtun ${to.index} tun-write`), what).toBeGreaterThan(ids.indexOf(`vxtun ${to.index} decap`));
      for (const h of hops) expect(h.by === 'kernel' ? h.role : 'vxtun', `${what}: ${hopId(h, state)}`).toMatch(/^(pod|veth|bridge|tun|vxlan|underlay|vxtun)$/);
      // the outer datagram on the underlay: 134 bytes (IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14 + the 84-byte ping)
      expect(hops.filter((h) => h.role === 'underlay').map((h) => h.length), what).toEqual([134, 134]);
    }
  }, 60_000);

  it('not only pings: a UDP datagram between pods is matched by its IP id and ports', async () => {
    const [n1, n2] = state.nodes as [LabState['nodes'][number], LabState['nodes'][number]];
    const trace = await startTrace(['--protocol', 'udp', '--port', '9999', '--json', '--count', '1']);
    const sent = await run(['ip', 'netns', 'exec', n1.pod, process.execPath, join(repoRoot, 'test/tools/udp-send.mjs'), n2.podIp, '9999', 'cafe'.repeat(16)]);
    expect(sent.code, sent.stderr).toBe(0);
    await waitFor(() => trace.child.exitCode !== null, { timeoutMs: 10_000, what: 'the traced datagram' });
    const item = JSON.parse(trace.stdout().trim()) as TraceItem;
    const ids = (item.hops ?? []).map((h) => hopId(h, state));
    expect(ids.filter((id) => !/^vxtun \d tun-write$/.test(id)), trace.stdout()).toEqual(expectedPath(n1, n2));
  }, 40_000);

  it('the web view draws the kernel hops on the path, apart from vxtun\'s, in English and Chinese', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian package chromium, installed by scripts/install-deps.sh)`);
    const trace = await startTrace(['--protocol', 'icmp', '--web', '--web-port', '0']);
    const url = /web view on (http:\/\/\S+)/.exec(trace.stderr())?.[1];
    expect(url, trace.stderr()).toBeDefined();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    await page.goto(url!);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('live'), undefined, { timeout: 10_000 });
    const [n1, , n3] = state.nodes;
    await ping(1, 3);
    const row = page.locator('.packet', { hasText: `ICMP echo request ${n1!.podIp} → ${n3!.podIp}` }).first();
    await row.waitFor({ timeout: 10_000 });
    await row.click();
    await page.waitForSelector('#hops tr.hop-row.kernel', { timeout: 5000 });
    const rows = await page.locator('#hops tr.hop-row').evaluateAll((trs) => trs.map((tr) => ({ by: (tr as HTMLElement).dataset.by, cells: [...tr.children].map((td) => td.textContent ?? ''), color: getComputedStyle(tr.children[0]!).color })));
    const kernelRows = rows.filter((r) => r.by === 'kernel');
    expect(kernelRows.map((r) => `${r.cells[0]} ${r.cells[1]}`)).toEqual([
      `${n1!.publicIp} pod eth0 sent`,
      expect.stringMatching(new RegExp(`^${n1!.publicIp.replace(/\./g, '\\.')} veth\\S+ received$`)),
      `${n1!.publicIp} cni0 received`,
      `${n1!.publicIp} vxtun0 sent`,
      `${n1!.publicIp} eth0 sent`,
      `${n3!.publicIp} eth0 received`,
      `${n3!.publicIp} flannel.1 received`,
      `${n3!.publicIp} cni0 sent`,
      expect.stringMatching(new RegExp(`^${n3!.publicIp.replace(/\./g, '\\.')} veth\\S+ sent$`)),
      `${n3!.publicIp} pod eth0 received`,
    ]);
    expect(kernelRows.every((r) => r.cells[4] === 'kernel')).toBe(true);
    const vxtunRows = rows.filter((r) => r.by === 'vxtun');
    expect(vxtunRows.map((r) => (r.cells[1] ?? '').replace(/ \[express path\]$/, ''))).toEqual(['tun-read', 'classify', 'encap', 'udp-send']);
    expect(kernelRows[0]!.color).not.toBe(vxtunRows[0]!.color); // told apart at a glance
    const times = rows.map((r) => Number(r.cells[3]));
    expect(times).toEqual([...times].sort((x, y) => x - y));
    // on the diagram: one diamond per kernel hop on the followed line, vxtun's points as circles
    expect(await page.locator('#topology g.hop.kernel').count()).toBe(kernelRows.length);
    expect(await page.locator('#topology circle.hop.vxtun').count()).toBe(vxtunRows.length);
    expect(await page.locator(`#topology g.hop.kernel[data-node="${n3!.publicIp}"][data-device="flannel.1"]`).count()).toBe(1);
    expect(await page.textContent('#hop-legend')).toContain('kernel hop: seen by a packet socket on the device');
    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, 'trace-web-kernel-hops.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);

    // in Chinese: the same hops, every word translated (device names and addresses stay)
    await page.selectOption('#lang', 'zh');
    await page.waitForSelector('#hops tr.hop-row.kernel', { timeout: 5000 });
    const zh = await page.evaluate(() => {
      const parts = [...document.querySelectorAll('#hops tr, #hop-legend')].map((e) => e.textContent ?? '');
      for (const e of document.querySelectorAll('#hops [title], #topology g.hop title, #topology .hop-label')) parts.push(e.getAttribute('title') ?? e.textContent ?? '');
      return parts;
    });
    expect(zh.join('\n')).toContain(`${n3!.publicIp}flannel.1 收到`);
    expect(zh.join('\n')).toContain('内核一跳：由设备上的包套接字观测');
    expect(zh.flatMap((l) => untranslatedWords(l).map((w) => `${w} in: ${l.trim()}`))).toEqual([]);
    await page.screenshot({ path: join(artifacts, 'trace-web-kernel-hops-zh.png'), fullPage: true });
    await page.close();
  }, 60_000);
});
