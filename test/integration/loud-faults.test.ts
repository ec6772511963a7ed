/**
 * Issue 16, loud faults: no fault leaves a node silently blackholing.
 *   - a SIGHUP reload that changes the VNI is refused as a whole while traffic keeps flowing;
 *   - datagrams the kernel drops because the socket's receive buffer is full are counted (SO_RXQ_OVFL);
 *   - a non-peer's flood is dropped by the socket's peer filter in the kernel, and counted alike;
 *   - the TUN set down and up: the kernel drops the pod-network route, the node puts it back;
 *   - the TUN deleted: the node stops, removes what it made, exits 1 (docs/operations.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Topology, type Netns } from '../../src/tools/lab/netns.js';
import { waitFor, sleep } from '../../src/tools/lab/exec.js';
import { Cluster, cliPath, type ClusterNode } from '../../src/tools/lab/cluster.js';
import { flood } from '../../src/tools/lab/udp-flood.js';
import { controlRequest } from '../../src/control/socket.js';
import type { InfoReply } from '../../src/node/control-api.js';
import { requirePrerequisites, tcpTransfer, ping } from '../support/integration.js';

const MB = 1024 * 1024;

describe('loud faults', () => {
  const topology = new Topology();
  let cluster: Cluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let flooder: Netns;
  const info = async (n: ClusterNode): Promise<InfoReply> => (await controlRequest(n.vxtun!.controlSocket, { cmd: 'info' })) as InfoReply;
  const podRoute = async (n: ClusterNode): Promise<unknown[]> => JSON.parse((await n.ns.ip(['-j', 'route', 'show', '10.244.0.0/16'])).stdout) as unknown[];
  const alive = (n: ClusterNode): boolean => n.vxtun!.child.exitCode === null && n.vxtun!.child.signalCode === null;
  const log = (n: ClusterNode): string => n.vxtun!.output.join('');

  beforeAll(async () => {
    requirePrerequisites(['ip', 'ping', 'gcc']);
    // One engine: every datagram lands on the one socket whose overflows the test reads.
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { workers: 1 } } });
    [a, b] = [cluster.node(1), cluster.node(2)];
    flooder = await topology.netns('flood');
    await cluster.underlay.attach(flooder, '198.18.0.99');
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('a reload that changes the VNI is refused as a whole while a transfer flows', async () => {
    const original = readFileSync(a.vxtun!.configPath, 'utf8');
    const cfg = JSON.parse(original) as { backend: Record<string, unknown>; peers: Array<Record<string, unknown>> };
    const routesBefore = await controlRequest(a.vxtun!.controlSocket, { cmd: 'routes' });
    try {
      // A new VNI, and a peer list that would be applied with it if the file were taken.
      writeFileSync(a.vxtun!.configPath, JSON.stringify({ ...cfg, backend: { ...cfg.backend, vni: 2 }, peers: [] }));
      const transfer = tcpTransfer(a.pod, b.pod, b.podIp, 30 * MB, 5701);
      await sleep(200);
      a.vxtun!.child.kill('SIGHUP');
      await waitFor(() => log(a).includes('reload refused'), { timeoutMs: 5000, what: 'reload refused' });
      const t = await transfer;
      expect(t.received).toEqual(t.sent);
      const refusals = log(a).split('\n').filter((l) => l.includes('reload refused'));
      expect(refusals).toHaveLength(1);
      expect(refusals[0]).toContain('reload refused: backend.vni changed');
      expect(log(a)).not.toContain('peers replaced');
      expect(await controlRequest(a.vxtun!.controlSocket, { cmd: 'routes' })).toEqual(routesBefore);
      expect((await info(a)).vni).toBe(1);
      const r = await ping(a.pod, b.podIp);
      expect(r.code, r.out).toBe(0);
      expect(alive(a)).toBe(true);
    } finally {
      writeFileSync(a.vxtun!.configPath, original);
    }
  });

  it('datagrams the kernel drops on a full receive buffer are counted and shown by vxtun status', async () => {
    const before = (await info(a)).datapathCounters.udp.RecvOverflows!;
    expect(before).toBe(0);
    // The node stopped, its socket buffer fills and the kernel drops the rest of the flood (from the
    // peer's address: the peer filter lets it in).
    process.kill(-a.vxtun!.child.pid!, 'SIGSTOP');
    let sent: number;
    try {
      sent = (await flood(b.ns, { dst: a.publicIp, seconds: 2, count: 200_000 })).sent;
    } finally {
      process.kill(-a.vxtun!.child.pid!, 'SIGCONT');
    }
    expect(sent).toBeGreaterThan(50_000);
    // The kernel's drop count rides on the datagrams that arrive after the drops: a peer's ping.
    await waitFor(async () => (await ping(b.pod, a.podIp)).code === 0, { timeoutMs: 10_000, what: 'ping after the flood' });
    const udp = (await info(a)).datapathCounters.udp;
    expect(udp.RecvOverflows).toBeGreaterThan(0);
    expect(udp.RecvOverflows).toBeLessThanOrEqual(sent);
    const status = await a.ns.execOk([process.execPath, cliPath, 'status', '--control-socket', a.vxtun!.controlSocket]);
    const dropped = status.stdout.split('\n').find((l) => l.startsWith('dropped'));
    expect(dropped).toMatch(/udp-socket-full-or-not-peer=(\d+)/);
    expect(Number(/udp-socket-full-or-not-peer=(\d+)/.exec(dropped!)![1])).toBeGreaterThanOrEqual(udp.RecvOverflows!);
  }, 60_000);

  it('a flood from a host that is no peer is dropped by the kernel before the engine sees it, and counted', async () => {
    const before = (await info(a)).datapathCounters.udp;
    expect((await info(a)).features.peerFilter).toBe(true);
    const { sent } = await flood(flooder, { dst: a.publicIp, seconds: 2, count: 20_000 });
    expect(sent).toBe(20_000);
    // A peer's datagram after the flood carries the socket's drop count.
    const r = await ping(b.pod, a.podIp);
    expect(r.code, r.out).toBe(0);
    const after = (await info(a)).datapathCounters.udp;
    // Only the ping's few datagrams reached the engine; the flood is in the socket's drops (minus any the veth backlog lost).
    expect(after.RecvPackets! - before.RecvPackets!).toBeLessThan(10);
    expect(after.RecvOverflows! - before.RecvOverflows!).toBeGreaterThan(sent * 0.5);
    expect(after.RecvOverflows! - before.RecvOverflows!).toBeLessThanOrEqual(sent);
  }, 60_000);

  it('the TUN set down and up: the pod-network route comes back and pings pass within a few seconds', async () => {
    expect(await podRoute(a)).toHaveLength(1);
    await a.ns.ip(['link', 'set', 'vxtun0', 'down']);
    // The kernel removes the route with the link.
    expect(await podRoute(a)).toEqual([]);
    await sleep(1000);
    expect(log(a)).toContain('TUN device is down');
    await a.ns.ip(['link', 'set', 'vxtun0', 'up']);
    const since = Date.now();
    await waitFor(async () => (await podRoute(a)).length === 1, { timeoutMs: 3000, what: 'the pod-network route back' });
    expect(Date.now() - since).toBeLessThan(1500);
    // Restored once: while the route is there the probe changes nothing.
    await sleep(1200);
    expect(log(a).split('\n').filter((l) => l.includes('pod-network route was gone'))).toHaveLength(1);
    const r = await ping(a.pod, b.podIp);
    expect(r.code, r.out).toBe(0);
    const back = await ping(b.pod, a.podIp);
    expect(back.code, back.out).toBe(0);
    expect(alive(a)).toBe(true);
  });

  it('the TUN deleted: the node stops within a few seconds, exits 1 and removes what it made', async () => {
    const exited = new Promise<number | null>((resolve) => a.vxtun!.child.once('exit', (code) => resolve(code)));
    const since = Date.now();
    await a.ns.ip(['link', 'del', 'vxtun0']);
    const code = await Promise.race([exited, sleep(5000).then(() => 'still running' as const)]);
    expect(code, log(a).split('\n').slice(-5).join('\n')).toBe(1);
    expect(Date.now() - since).toBeLessThan(3000);
    expect(log(a)).toContain('TUN device deleted under the node');
    expect(log(a)).toContain('vxtun down');
    expect(existsSync(a.vxtun!.controlSocket)).toBe(false);
    expect(await podRoute(a)).toEqual([]);
    expect((await a.ns.ip(['-j', 'link', 'show'])).stdout).not.toContain('vxtun0');
  });
});

describe('the peer filter follows the unknown-peer check', () => {
  const topology = new Topology();
  let cluster: Cluster;

  beforeAll(async () => {
    requirePrerequisites(['ip', 'ping', 'gcc']);
    // Peers behind NAT: the operator turns unknown-peer off, so the kernel filter must not drop them either.
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { workers: 1 }, security: { antiSpoofing: { unknownPeer: false } } } });
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('with security.antiSpoofing.unknownPeer off, a non-peer reaches the engine instead of the socket filter', async () => {
    const a = cluster.node(1);
    const stranger = await topology.netns('nat');
    await cluster.underlay.attach(stranger, '198.18.0.98');
    const info = async (): Promise<InfoReply> => (await controlRequest(a.vxtun!.controlSocket, { cmd: 'info' })) as InfoReply;
    expect((await info()).features.peerFilter).toBe(false);
    const before = (await info()).datapathCounters.udp;
    const { sent } = await flood(stranger, { dst: a.publicIp, seconds: 2, count: 2_000 });
    expect(sent).toBe(2_000);
    const r = await ping(cluster.node(2).pod, a.podIp);
    expect(r.code, r.out).toBe(0);
    const after = (await info()).datapathCounters.udp;
    // The stranger's datagrams were read by vxtun (and judged by the engine), not dropped by a filter.
    expect(after.RecvPackets! - before.RecvPackets!).toBeGreaterThan(sent * 0.5);
  }, 60_000);
});
