/**
 * Issue 6, done-when 1 and 2: `vxtun trace` attached to two running vxtun nodes follows a ping
 * across them (route, peer, VNI and ports named), shows a wrong-VNI datagram sent at a node with
 * its reason in red, speaks Chinese on request; `--pcap` writes a pcapng that tshark decodes
 * (VNI and inner addresses read from tshark's own output).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology } from '../../src/tools/lab/netns.js';
import { run, waitFor } from '../../src/tools/lab/exec.js';
import { Cluster, cliPath } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites, startTrace, toolsDir, type TraceProc } from '../support/integration.js';
import type { Journey } from '../../src/trace/journey.js';


async function attached(t: TraceProc): Promise<void> {
  await waitFor(() => t.err().includes('attached to') || t.child.exitCode !== null, { timeoutMs: 10_000, what: 'trace attached' });
  if (t.child.exitCode !== null) throw new Error(`trace exited ${t.child.exitCode}: ${t.err()}`);
}

async function stop(t: TraceProc): Promise<number | null> {
  if (t.child.exitCode === null) t.child.kill('SIGINT');
  return t.exited;
}

/** VXLAN (I flag, `vni`) + inner Ethernet to `dstMac` + an IPv4 ICMP echo request 10.244.2.9 -> 10.244.1.2. */
function vxlanEcho(vni: number, dstMac: string, srcMac: string): string {
  const vx = Buffer.from([0x08, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0]);
  const eth = Buffer.concat([Buffer.from(dstMac.replace(/:/g, ''), 'hex'), Buffer.from(srcMac.replace(/:/g, ''), 'hex'), Buffer.from([0x08, 0x00])]);
  const ip = Buffer.from('4500001c00010000400100000af402090af4010208000000abcd0001', 'hex');
  return Buffer.concat([vx, eth, ip]).toString('hex');
}

describe('vxtun trace across two nodes', () => {
  const topology = new Topology();
  let cluster: Cluster;
  const tmp = mkdtempSync(join(tmpdir(), 'vxtun-trace-'));
  const traces: TraceProc[] = [];

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'tshark']);
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'], logLevel: 'warn' });
  });
  afterAll(async () => {
    for (const t of traces) await stop(t);
    await cluster?.destroy();
    await topology.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('follows one ping across both nodes: route, peer, VNI and ports named, as one story', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const t = startTrace(['--socket', a.vxtun!.controlSocket, '--socket', b.vxtun!.controlSocket, '--protocol', 'icmp', '--color', 'never']);
    traces.push(t);
    await attached(t);
    const r = await a.pod.exec(['ping', '-c', '1', '-W', '2', b.podIp]);
    expect(r.code, r.stdout).toBe(0);
    // the echo request (node 1 -> node 2) and the reply (node 2 -> node 1): two stories
    await waitFor(() => (t.out().match(/━━ /g) ?? []).length >= 2, { timeoutMs: 5000, what: `two stories in:\n${t.out()}` });
    expect(await stop(t)).toBe(0);
    const out = t.out();
    const request = out.split('\n\n').find((blk) => blk.includes(`ICMP echo request ${a.podIp} → ${b.podIp}`) && blk.startsWith('━━'));
    expect(request, out).toBeDefined();
    const lines = request!.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^━━ ICMP echo request ${a.podIp} → ${b.podIp} id \\d+ seq 1 · node ${a.publicIp} → node ${b.publicIp} · VXLAN vni 1 · forwarded$`));
    // sender: route lookup names the route and the peer VTEP; encap the VNI; udp-send the ports
    expect(request).toMatch(new RegExp(`classify +route ${b.subnet} → node ${b.publicIp}:8472 \\(vtep ${b.vtepMac}, vni 1\\) · ok`));
    expect(request).toMatch(new RegExp(`encap +VXLAN vni 1 · inner Ethernet ${a.vtepMac} → ${b.vtepMac} · \\+22 B = 106 B · ok`));
    // the source port is the flow-hashed one the datagram left from (the default): the sender names
    // it from its own hash, the receiver from the datagram's header, and they must agree
    const sport = Number(new RegExp(`udp-send +UDP ${a.publicIp}:(\\d+) → ${b.publicIp}:8472 · 134 B on the wire · sent`).exec(request!)?.[1]);
    expect(sport >= 32768 && sport <= 60999, request).toBe(true);
    expect(request).toMatch(new RegExp(`underlay +UDP ${a.publicIp}:${sport} → ${b.publicIp}:8472 · 134 B · wire [0-9a-f]{16}`));
    // receiver: the same datagram, checked, unwrapped and written to its TUN
    expect(request).toMatch(new RegExp(`udp-recv +UDP ${a.publicIp}:${sport} → ${b.publicIp}:8472 · 134 B on the wire · VXLAN flags 0x08 vni 1 · ok`));
    expect(request).toMatch(/decap +checks passed/);
    expect(request).toMatch(new RegExp(`tun-write +ICMP echo request ${a.podIp} → ${b.podIp} .* → vxtun0 · 84 B · forwarded`));
    expect(lines.filter((l) => /^ {2}\d\d:\d\d:\d\d\.\d{6} node /.test(l)).map((l) => l.replace(/^.*node /, ''))).toEqual([
      `${a.publicIp} (vxtun0, out)`,
      `${b.publicIp} (vxtun0, in)`,
    ]);
    const reply = out.split('\n\n').find((blk) => blk.startsWith(`━━ ICMP echo reply ${b.podIp} → ${a.podIp}`));
    expect(reply, out).toMatch(new RegExp(`route ${a.subnet} → node ${a.publicIp}:8472`));
  });

  it('shows a wrong-VNI datagram sent at the node, dropped with its reason, in red; --json and --lang zh too', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const human = startTrace(['--socket', a.vxtun!.controlSocket, '--verdict', 'drop', '--color', 'always']);
    const json = startTrace(['--socket', a.vxtun!.controlSocket, '--verdict', 'wrong-vni', '--json']);
    const zh = startTrace(['--socket', a.vxtun!.controlSocket, '--verdict', 'drop', '--lang', 'zh', '--color', 'never']);
    traces.push(human, json, zh);
    for (const t of [human, json, zh]) await attached(t);
    const before = await a.vxtun!.counters();
    // node 2's underlay address plays a misconfigured peer: VNI 7 instead of 1
    await b.ns.execOk([process.execPath, `${toolsDir}udp-send.mjs`, a.publicIp, '8472', vxlanEcho(7, a.vtepMac, b.vtepMac)]);
    await waitFor(() => human.out().includes('wrong-vni') && json.out().includes('wrong-vni') && zh.out().includes('wrong-vni'), { timeoutMs: 5000, what: 'wrong-vni in all three traces' });
    for (const t of [human, json, zh]) expect(await stop(t)).toBe(0);
    const after = await a.vxtun!.counters();
    expect(after.dropped['wrong-vni']! - before.dropped['wrong-vni']!).toBe(1);

    const RED = '\x1b[31m';
    const block = human.out();
    expect(block).toContain(`${RED}ICMP echo request 10.244.2.9 → 10.244.1.2 id 43981 seq 1 · UDP ${b.publicIp}:`);
    expect(block).toMatch(/decap +dropped: wrong-vni — VNI 7 is not this node's VNI 1/);
    expect(block).toContain(`${RED}decap      dropped: wrong-vni — VNI 7 is not this node's VNI 1`);
    expect(block).toMatch(/udp-recv +UDP 198\.18\.0\.2:\d+ → 198\.18\.0\.1:8472 · 78 B on the wire · VXLAN flags 0x08 vni 7/);

    const j = JSON.parse(json.out().trim().split('\n')[0]!);
    expect(j.kind).toBe('journey');
    expect(j.journey).toMatchObject({ direction: 'in', verdict: 'wrong-vni', dropped: true, inner: { src: '10.244.2.9', dst: '10.244.1.2', protocol: 'icmp' } });
    expect(j.journey.events.map((e: { point: string }) => e.point)).toEqual(['udp-recv', 'decap']);
    expect(j.journey.events[0].vx.vni).toBe(7);

    expect(zh.out()).toMatch(/解封装 +已丢弃: wrong-vni — VNI 7 不是本节点的 VNI 1/);
    expect(zh.out()).toContain('UDP接收');
  });

  it('stays exact with one worker per core: 24 UDP flows, each one story of whole journeys, ports and times agreeing', async () => {
    // 24 flows land on both TUN queues of node 1 (the kernel picks one per flow; all on one: p = 2^-23)
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const t = startTrace(['--socket', a.vxtun!.controlSocket, '--socket', b.vxtun!.controlSocket, '--protocol', 'udp', '--port', '9', '--json']);
    traces.push(t);
    await attached(t);
    await a.pod.execOk([process.execPath, `${toolsDir}udp-flows.mjs`, b.podIp, '9', '24', '1']);
    const items = (): Array<{ kind: string; sender?: Journey; receiver?: Journey }> => t.out().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    await waitFor(() => items().length >= 24, { timeoutMs: 5000, what: `24 stories in:\n${t.out()}` });
    expect(await stop(t)).toBe(0);
    const stories = items();
    expect(stories.map((x) => x.kind)).toEqual(Array(24).fill('story'));
    const flows = new Set<number>();
    for (const { sender, receiver } of stories) {
      expect(sender!.events.map((e) => e.point)).toEqual(['tun-read', 'classify', 'encap', 'udp-send']);
      expect(receiver!.events.map((e) => e.point)).toEqual(['udp-recv', 'decap', 'tun-write']);
      const send = sender!.events[3]!;
      const recv = receiver!.events[0]!;
      expect(send.local!.port).toBe(recv.remote!.port); // the port named by the sender is the one it arrived from
      // stamped when made (not when the main thread got them), on one clock: in order on each node,
      // and the packet was read on node 1 before node 2 received it (udp-send is stamped after the
      // send returns, so it may come after the receiver's udp-recv)
      for (const j of [sender!, receiver!]) expect(j.events.map((e) => e.t)).toEqual(j.events.map((e) => e.t).sort((x, y) => x - y));
      expect(sender!.events[0]!.t).toBeLessThan(receiver!.events[0]!.t);
      flows.add(sender!.inner!.sport!);
    }
    expect(flows.size).toBe(24);
  });

  it('one clock: 200 pings traced across two nodes have no negative or out-of-order transit, in the JSON and the pcapng', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const file = join(tmp, 'clock.pcapng');
    const t = startTrace(['--socket', a.vxtun!.controlSocket, '--socket', b.vxtun!.controlSocket, '--protocol', 'icmp', '--json', '--pcap', file]);
    traces.push(t);
    await attached(t);
    const r = await a.pod.exec(['ping', '-c', '200', '-i', '0.01', '-W', '2', '-q', b.podIp]);
    expect(r.code, r.stdout).toBe(0);
    const items = (): Array<{ kind: string; sender?: Journey; receiver?: Journey; journey?: Journey }> => t.out().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    await waitFor(() => items().length >= 400, { timeoutMs: 10_000, what: `400 stories, have ${items().length}` });
    expect(await stop(t)).toBe(0);
    const stories = items();
    expect(stories.filter((x) => x.kind === 'story')).toHaveLength(400);
    // both nodes say they share one host's clock
    expect(stories[0]!.sender!.node.bootId).toMatch(/^[0-9a-f-]{36}$/);
    const transits: number[] = [];
    for (const { sender, receiver } of stories) {
      expect(receiver!.node.bootId).toBe(sender!.node.bootId);
      for (const j of [sender!, receiver!]) {
        const times = j.events.map((e) => e.t);
        expect(times).toEqual([...times].sort((x, y) => x - y));
      }
      const send = sender!.events.find((e) => e.point === 'udp-send')!;
      const recv = receiver!.events.find((e) => e.point === 'udp-recv')!;
      transits.push(recv.t - send.t);
    }
    expect(transits.filter((x) => x < 0), transits.join(' ')).toEqual([]);
    // the pcapng is in time order: every packet's timestamp at or after the one before
    const d = await run(['tshark', '-r', file, '-T', 'fields', '-e', 'frame.time_epoch']);
    expect(d.code, d.stderr).toBe(0);
    const stamps = d.stdout.trim().split('\n').map(Number);
    expect(stamps.length).toBe(400 * 4); // per story: tun-read, encap+udp-send, udp-recv+decap, tun-write
    const backwards = stamps.flatMap((x, i) => (i > 0 && x < stamps[i - 1]! ? [i] : []));
    expect(backwards).toEqual([]);
  });

  it('refuses a bad filter with one line naming the flag and value (exit 2), and a missing node with exit 1', async () => {
    const r = await run([process.execPath, cliPath, 'trace', '--socket', cluster.node(1).vxtun!.controlSocket, '--subnet', '10.244.1.5/24']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('vxtun: --subnet: "10.244.1.5/24": host bits set (network is 10.244.1.0/24)');
    const gone = await run([process.execPath, cliPath, 'trace', '--socket', join(tmp, 'no-such.sock')]);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim().split('\n')).toEqual([
      `vxtun: control socket ${join(tmp, 'no-such.sock')}: ENOENT`,
      'hint: no node answers on that control socket: is `vxtun up` running? Name another with --socket PATH or --device NAME',
    ]);
    const goneZh = await run([process.execPath, cliPath, 'trace', '--lang', 'zh', '--socket', join(tmp, 'no-such.sock')]);
    expect(goneZh.stderr).toContain('提示：该控制套接字上没有节点应答');
  });

  it('--pcap writes a pcapng that tshark decodes: VXLAN VNI, inner addresses, point and verdict comments', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const file = join(tmp, 'trace.pcapng');
    const t = startTrace(['--socket', a.vxtun!.controlSocket, '--protocol', 'icmp', '--pcap', file, '--json']);
    traces.push(t);
    await attached(t);
    expect(statSync(file).size).toBeGreaterThan(0);
    const r = await a.pod.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', b.podIp]);
    expect(r.code, r.stdout).toBe(0);
    await waitFor(() => t.out().trim().split('\n').length >= 4, { timeoutMs: 5000, what: 'four journeys' });
    expect(await stop(t)).toBe(0);

    const fields = ['frame.interface_id', 'vxlan.vni', 'ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'icmp.type', 'eth.src', 'eth.dst', 'frame.comment'];
    const d = await run(['tshark', '-r', file, '-d', 'udp.port==8472,vxlan', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])]);
    expect(d.code, d.stderr).toBe(0);
    const rows = d.stdout.trim().split('\n').map((l) => Object.fromEntries(l.split('|').map((v, i) => [fields[i]!, v])));
    // Per ping: request tun-read (inner), request udp-send (outer), reply udp-recv (outer), reply tun-write (inner).
    expect(rows.length).toBe(8);
    const outerOut = rows.filter((x) => x['frame.interface_id'] === '1' && x['frame.comment']!.includes('point=encap+udp-send'));
    expect(outerOut).toHaveLength(2);
    for (const x of outerOut) {
      expect(x['vxlan.vni']).toBe('1');
      expect(x['udp.dstport']).toBe('8472');
      expect(Number(x['udp.srcport']) >= 32768 && Number(x['udp.srcport']) <= 60999, x['udp.srcport']).toBe(true); // the flow-hashed port it left from
      expect(x['ip.src']).toBe(`${a.publicIp},${a.podIp}`); // outer, then inner
      expect(x['ip.dst']).toBe(`${b.publicIp},${b.podIp}`);
      expect(x['eth.src']).toBe(a.vtepMac);
      expect(x['eth.dst']).toBe(b.vtepMac);
      expect(x['icmp.type']).toBe('8');
      expect(x['frame.comment']).toContain('verdict=sent');
      expect(x['frame.comment']).toContain(`route=${b.subnet} peer=${b.publicIp}`);
    }
    const outerIn = rows.filter((x) => x['frame.interface_id'] === '1' && x['frame.comment']!.includes('point=udp-recv+decap'));
    expect(outerIn).toHaveLength(2);
    for (const x of outerIn) {
      expect(x['vxlan.vni']).toBe('1');
      expect(x['ip.src']).toBe(`${b.publicIp},${b.podIp}`);
      expect(x['icmp.type']).toBe('0');
    }
    const inner = rows.filter((x) => x['frame.interface_id'] === '0');
    expect(inner).toHaveLength(4);
    expect(inner.filter((x) => x['ip.src'] === a.podIp && x['ip.dst'] === b.podIp && x['frame.comment']!.includes('point=tun-read+classify verdict=ok'))).toHaveLength(2);
    expect(inner.filter((x) => x['ip.src'] === b.podIp && x['ip.dst'] === a.podIp && x['frame.comment']!.includes('point=tun-write verdict=forwarded'))).toHaveLength(2);
    for (const x of inner) expect(x['vxlan.vni']).toBe('');

    // the section comment documents the port-8472 decode
    const info = await run(['capinfos', file]);
    expect(info.stdout).toContain('-d udp.port==8472,vxlan');
    expect(info.stdout).toMatch(/Number of interfaces in file: 2/);
  });
});
