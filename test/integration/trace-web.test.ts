/**
 * Issue 6, done-when 3: `vxtun trace --web` driven in headless Chromium (Debian's chromium through
 * playwright-core): the topology renders with both nodes, their route/VTEP tables beside it; a
 * ping makes a live packet appear; clicking it shows the decoded layers (outer IPv4, UDP, VXLAN,
 * inner Ethernet, inner IPv4, ICMP) with their fields; a screenshot is kept in test-artifacts/.
 * Issue 19, item 5: pause holds new packets back (the list stays still) until resumed; the filter
 * box takes `vxtun trace`'s filter language (a bad one is named); a selected packet is followed
 * across both nodes, hop by hop with times on the shared clock. Screenshots of each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { Topology } from '../../src/tools/lab/netns.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { Cluster, cliPath } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites, repoRoot, toolsDir } from '../support/integration.js';
import { untranslatedWords } from '../support/untranslated.js';

const CHROMIUM = '/usr/bin/chromium';
const artifacts = join(repoRoot, 'test-artifacts');

describe('vxtun trace --web in headless Chromium', () => {
  const topology = new Topology();
  let cluster: Cluster;
  let trace: ChildProcess | undefined;
  let browser: Browser | undefined;
  let url = '';
  let stderr = '';

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping']);
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian package chromium, installed by scripts/install-deps.sh)`);
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'], logLevel: 'warn' });
    const [a, b] = [cluster.node(1), cluster.node(2)];
    trace = spawn(process.execPath, [cliPath, 'trace', '--web', '--web-port', '0', '--socket', a.vxtun!.controlSocket, '--socket', b.vxtun!.controlSocket, '--protocol', 'icmp'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    trace.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    await waitFor(() => /web view on (http:\/\/\S+)/.test(stderr) || trace!.exitCode !== null, { timeoutMs: 10_000, what: 'web view url' });
    url = /web view on (http:\/\/\S+)/.exec(stderr)?.[1] ?? '';
    if (!url) throw new Error(`trace --web did not start: ${stderr}`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    if (trace && trace.exitCode === null) {
      trace.kill('SIGINT');
      await new Promise((r) => trace!.once('exit', r));
    }
    await cluster?.destroy();
    await topology.destroy();
  });

  it('is served on 127.0.0.1 only, behind a token in the URL', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{48}$/);
    // the browser without the token gets nothing
    const page = await browser!.newPage();
    const bare = url.replace(/\?token=.*/, '');
    expect((await page.goto(bare))?.status()).toBe(403);
    expect((await page.goto(`${bare}events`))?.status()).toBe(403);
    await page.close();
  });

  it('draws the topology and tables, shows a live packet after a ping, and decodes it layer by layer on click', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
    const offsite: string[] = [];
    const origin = new URL(url).origin;
    page.on('request', (r) => {
      if (new URL(r.url()).origin !== origin) offsite.push(r.url());
    });
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });

    // topology: both nodes' columns, each with pods, TUN, engine, VTEP table, eth0; the underlay
    for (const box of ['pods', 'tun', 'engine', 'vtep', 'eth']) {
      expect(await page.locator(`#topology [data-box="${box}"]`).count()).toBe(2);
    }
    expect(await page.locator('#topology [data-box="underlay"]').count()).toBe(1);
    const svgText = await page.locator('#topology').textContent();
    expect(svgText).toContain('TUN vxtun0');
    expect(svgText).toContain(`eth0 ${a.publicIp}`);
    expect(svgText).toContain(`eth0 ${b.publicIp}`);
    expect(svgText).toContain('VTEP table (1 peers)');
    // the route/VTEP tables beside it
    const tables = await page.locator('#tables').textContent();
    expect(tables).toContain(`${b.subnet}${b.publicIp}:8472${b.vtepMac}1`);
    expect(tables).toContain(`${a.subnet}${a.publicIp}:8472${a.vtepMac}1`);

    const r = await a.pod.exec(['ping', '-c', '1', '-W', '2', b.podIp]);
    expect(r.code, r.stdout).toBe(0);
    const row = page.locator('.packet', { hasText: `ICMP echo request ${a.podIp} → ${b.podIp}` }).first();
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toContain(`node ${a.publicIp} → node ${b.publicIp} · VXLAN vni 1 · forwarded`);
    // a dot is moving along the diagram
    await page.waitForSelector('#topology circle.pkt-dot', { timeout: 5000 });

    await row.click();
    const layers = await page.locator('#detail .layer').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.layer));
    expect(layers).toEqual(['outer IPv4', 'UDP', 'VXLAN', 'inner Ethernet', 'inner IPv4', 'inner ICMP']);
    const field = async (layer: string, name: string): Promise<string> =>
      (await page.locator(`#detail .layer[data-layer="${layer}"] tr.field`, { has: page.locator(`td:text-is("${name}")`) }).first().locator('td').nth(1).textContent()) ?? '';
    expect(await field('outer IPv4', 'source')).toBe(a.publicIp);
    expect(await field('outer IPv4', 'destination')).toBe(b.publicIp);
    expect(await field('UDP', 'destination port')).toBe('8472');
    expect(await field('VXLAN', 'VNI')).toBe('1');
    expect(await field('VXLAN', 'flags')).toBe('0x08 (I: VNI valid)');
    expect(await field('inner Ethernet', 'destination MAC')).toBe(b.vtepMac);
    expect(await field('inner IPv4', 'source')).toBe(a.podIp);
    expect(await field('inner IPv4', 'destination')).toBe(b.podIp);
    expect(await field('inner ICMP', 'type')).toBe('8 (echo request)');
    // hovering a field highlights exactly its bytes: the VNI is 3 bytes, 00 00 01, at 28+4..28+6
    await page.locator('#detail .layer[data-layer="VXLAN"] tr.field', { has: page.locator('td:text-is("VNI")') }).hover();
    expect(await page.locator('#hex span.hl').allTextContents()).toEqual(['00', '00', '01']);
    expect(await page.locator('#hex span').count()).toBe(134);

    // a datagram with the wrong VNI, sent at node 1 from node 2's address: a red row naming the reason
    const bad = Buffer.concat([
      Buffer.from([0x08, 0, 0, 0, 0, 0, 7, 0]),
      Buffer.from(a.vtepMac.replace(/:/g, '') + b.vtepMac.replace(/:/g, '') + '0800', 'hex'),
      Buffer.from('4500001c00010000400100000af402090af4010208000000abcd0001', 'hex'),
    ]);
    await b.ns.execOk([process.execPath, `${toolsDir}udp-send.mjs`, a.publicIp, '8472', bad.toString('hex')]);
    const dropRow = page.locator('.packet.drop', { hasText: 'wrong-vni' }).first();
    await dropRow.waitFor({ timeout: 10_000 });
    expect(await dropRow.textContent()).toContain("dropped: wrong-vni — VNI 7 is not this node's VNI 1");
    expect(await dropRow.evaluate((e) => getComputedStyle(e).color)).toBe('rgb(248, 81, 73)');
    await row.click();

    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, 'trace-web.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    expect(offsite).toEqual([]);
    await page.close();
  });

  it('pauses and resumes the list, filters with the trace filter language, and follows a packet across nodes', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('live'), undefined, { timeout: 10_000 });
    const rows = page.locator('#packets .packet');
    mkdirSync(artifacts, { recursive: true });

    // paused: new packets wait, counted, and the list does not move
    await page.click('#pause');
    expect(await page.textContent('#pause')).toBe('resume');
    const before = await rows.count();
    expect((await a.pod.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', b.podIp])).code).toBe(0);
    await page.waitForFunction(() => /^4 new$/.test(document.getElementById('pending')?.textContent ?? ''), undefined, { timeout: 10_000 });
    expect(await rows.count()).toBe(before);
    await page.screenshot({ path: join(artifacts, 'trace-web-paused.png'), fullPage: true });
    await page.click('#pause');
    expect(await page.textContent('#pause')).toBe('pause');
    expect(await rows.count()).toBe(before + 4);
    expect(await page.textContent('#pending')).toBe('');

    // the filter box: the trace's own language, errors named, applied to what is shown and what comes
    await page.fill('#filter', 'port 99999');
    await page.click('#filter-form button');
    await page.waitForFunction(() => (document.getElementById('filter-error')?.textContent ?? '') !== '', undefined, { timeout: 5000 });
    expect(await page.textContent('#filter-error')).toBe('port: "99999" is not a port number (0-65535)');
    await page.fill('#filter', '--protocol udp');
    await page.click('#filter-form button');
    await page.waitForSelector('body[data-filter="--protocol udp"]', { timeout: 5000 });
    expect(await page.textContent('#filter-error')).toBe('');
    expect((await a.pod.exec(['ping', '-c', '1', '-W', '2', b.podIp])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await rows.count()).toBe(0); // pings are ICMP
    await page.fill('#filter', `host ${b.podIp} verdict forwarded`);
    await page.click('#filter-form button');
    await page.waitForSelector(`body[data-filter="host ${b.podIp} verdict forwarded"]`, { timeout: 5000 });
    await rows.first().waitFor({ timeout: 5000 });
    const shown = await rows.allTextContents();
    expect(shown.length).toBeGreaterThanOrEqual(6); // the pings so far, both ways, each a story
    for (const text of shown) expect(text).toContain(b.podIp);
    await page.screenshot({ path: join(artifacts, 'trace-web-filter.png'), fullPage: true });

    // follow one packet: its path across both nodes drawn, each hop with its time on the shared clock
    await rows.filter({ hasText: `ICMP echo request ${a.podIp} → ${b.podIp}` }).first().click();
    await page.waitForSelector('#topology polyline.follow', { timeout: 5000 });
    const hops = await page.locator('#hops tr.hop-row').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent ?? '')));
    expect(hops.map((h) => `${h[0]} ${h[1]}`)).toEqual([
      ...['tun-read', 'classify', 'encap', 'udp-send'].map((p) => `${a.publicIp} ${p}`),
      ...['udp-recv', 'decap', 'tun-write'].map((p) => `${b.publicIp} ${p}`),
    ].map((x) => expect.stringMatching(new RegExp(`^${x.replace(/\./g, '\\.')}( \\[express path\\])?$`))));
    const times = hops.map((h) => Number(h[3]));
    expect(times.every((t) => Number.isFinite(t) && t >= 0)).toBe(true);
    expect(times).toEqual([...times].sort((x, y) => x - y));
    await page.screenshot({ path: join(artifacts, 'trace-web-follow.png'), fullPage: true });
    await page.close();
  });

  it('speaks Chinese with ?lang=zh and switches language in place: no English sentence left, tooltips included', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(`${url}&lang=zh`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('status')?.textContent === '实时', undefined, { timeout: 10_000 });
    expect((await a.pod.exec(['ping', '-c', '1', '-W', '2', b.podIp])).code).toBe(0);
    const row = page.locator('.packet', { hasText: `ICMP 回显请求 ${a.podIp} → ${b.podIp}` }).first();
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toContain(`节点 ${a.publicIp} → 节点 ${b.publicIp} · VXLAN vni 1 · 已转发`);
    await row.click();
    const selected = page.locator(`.packet[data-id="${await row.getAttribute('data-id')}"]`);
    await page.waitForSelector('#hops', { timeout: 5000 });
    expect(await page.locator('#detail .layer[data-layer="VXLAN"] h3').textContent()).toBe('VXLAN  ·  第 28–35 字节');
    expect(await page.textContent('#pause')).toBe('暂停');

    // everything a reader sees or hovers: the page's text (the language switch aside), every tooltip, the SVG's titles
    const shown = await page.evaluate(() => {
      const parts = [document.title];
      for (const e of document.querySelectorAll('header > h1, header .status, header button, #pending')) parts.push(e.textContent ?? '');
      // the page's words as written (CSS upper-cases the headings), the hex dump of the bytes aside
      const main = document.querySelector('main')!.cloneNode(true) as HTMLElement;
      main.querySelector('#hex')?.remove();
      for (const e of main.querySelectorAll('div, tr, h2, h3, b, span, text, title')) if (e.children.length === 0) parts.push(e.textContent ?? '');
      for (const e of document.querySelectorAll('[title]')) parts.push(e.getAttribute('title') ?? '');
      for (const e of document.querySelectorAll('svg title, svg text')) parts.push(e.textContent ?? '');
      return parts.join('\n');
    });
    expect(shown).toContain('线路上 134 字节');
    const english = shown.split('\n').flatMap((l) => untranslatedWords(l).map((w) => `${w} in: ${l.trim()}`));
    expect(english).toEqual([]);
    await page.screenshot({ path: join(artifacts, 'trace-web-zh.png'), fullPage: true });

    // the switch: back to English in place, the same packet still selected
    await page.selectOption('#lang', 'en');
    expect(await page.textContent('#pause')).toBe('pause');
    expect(await page.locator('#detail .layer[data-layer="VXLAN"] h3').textContent()).toBe('VXLAN  ·  bytes 28–35');
    expect(await selected.textContent()).toContain(`node ${a.publicIp} → node ${b.publicIp} · VXLAN vni 1 · forwarded`);
    expect(new URL(page.url()).searchParams.get('lang')).toBe('en');
    await page.close();
  });
});
