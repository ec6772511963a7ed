/**
 * Issue 3, the bench's naive baseline (`fs.read` + `dgram.send`, src/tools/bench/naive-dataplane.ts) is
 * a real dataplane: TCP through naive ↔ naive and naive ↔ kernel VXLAN (same wire format,
 * flannel.1 as flanneld programs it) arrives with the sha256 it left with; what arrives off the
 * wire malformed is dropped under its reason and traffic goes on; SIGTERM leaves no device behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, type Netns } from '../../src/tools/lab/netns.js';
import { Cluster, type ClusterNode } from '../../src/tools/lab/cluster.js';
import type { NaiveCounters } from '../../src/tools/bench/naive-dataplane.js';
import { controlRequest } from '../../src/control/socket.js';
import { requirePrerequisites, tcpTransfer, ping } from '../support/integration.js';

const MB = 1024 * 1024;

function counters(n: ClusterNode): Promise<NaiveCounters> {
  return controlRequest(n.vxtun!.controlSocket, { cmd: 'counters' }) as Promise<NaiveCounters>;
}

/** Sends raw UDP datagrams (hex) to ip:port from inside `ns`, as a misbehaving peer would. */
async function sendRaw(ns: Netns, ip: string, port: number, hexes: string[]): Promise<void> {
  const script = `const s=require('dgram').createSocket('udp4');const m=${JSON.stringify(hexes)};let n=0;for(const h of m)s.send(Buffer.from(h,'hex'),${port},'${ip}',()=>{if(++n===m.length)s.close()});`;
  await ns.execOk([process.execPath, '-e', script]);
}

describe('naive dataplane ↔ naive dataplane', () => {
  const topology = new Topology();
  let cluster: Cluster;

  beforeAll(async () => {
    requirePrerequisites(['ip', 'ping']);
    cluster = await Cluster.build(topology, { kinds: ['naive', 'naive'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('reports itself as the naive datapath', async () => {
    const info = (await controlRequest(cluster.node(1).vxtun!.controlSocket, { cmd: 'info' })) as Record<string, unknown>;
    expect(info).toMatchObject({ datapath: 'naive', device: 'vxtun0', mtu: 1450, port: 8472, vni: 1, peers: 1 });
  });

  it('pods ping each other and 20 MB of TCP each way arrives with an identical sha256', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const there = await ping(a.pod, b.podIp);
    expect(there.code, there.out).toBe(0);
    const before = await counters(a);
    const out = await tcpTransfer(a.pod, b.pod, b.podIp, 20 * MB, 5201);
    expect(out.sent.bytes).toBe(20 * MB);
    expect(out.received).toEqual(out.sent);
    const back = await tcpTransfer(b.pod, a.pod, a.podIp, 20 * MB, 5202);
    expect(back.received).toEqual(back.sent);
    const after = await counters(a);
    // At most 1450 bytes per packet: 20 MB each way is at least 14 500 packets read and written, one call each.
    expect(after.tunReads - before.tunReads).toBeGreaterThan(14_000);
    expect(after.sent - before.sent).toBeGreaterThan(14_000);
    expect(after.tunWrites - before.tunWrites).toBeGreaterThan(14_000);
    expect(after.drops.noRoute).toBe(0);
    expect(after.drops.wrongMac + after.drops.wrongVni + after.drops.badFlags).toBe(0);
  });

  it('drops malformed VXLAN off the wire under its reason and keeps forwarding', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const before = await counters(b);
    const inner = '0a58' + '0af40200' + '0a58' + '0af40100' + '0800' + '45000014000000004001000000000000' + '00000000'; // eth + a 20-byte IPv4 header
    await sendRaw(a.ns, b.publicIp, 8472, [
      '0800', // shorter than a VXLAN header
      '0c000000' + '00000100' + inner, // a flag besides I
      '08000000' + '00000700' + inner, // VNI 7, not ours
      '08000000' + '00000100' + 'ffffffffffff' + '0a58' + '0af40100' + '0806' + '00'.repeat(28), // broadcast ARP, not our MAC
    ]);
    await expect.poll(async () => (await counters(b)).received - before.received, { timeout: 5000 }).toBe(4);
    const after = await counters(b);
    expect(after.drops.truncated - before.drops.truncated).toBe(1);
    expect(after.drops.badFlags - before.drops.badFlags).toBe(1);
    expect(after.drops.wrongVni - before.drops.wrongVni).toBe(1);
    expect(after.drops.wrongMac - before.drops.wrongMac).toBe(1);
    expect(after.tunWrites).toBe(before.tunWrites);
    const still = await ping(a.pod, b.podIp);
    expect(still.code, still.out).toBe(0);
  });

  it('SIGTERM exits 0 and takes the TUN device and its route with it', async () => {
    const a = cluster.node(1);
    expect(await a.vxtun!.stop()).toBe(0);
    const links = await a.ns.ip(['-j', 'link', 'show']);
    expect((JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname)).not.toContain('vxtun0');
    expect((await a.ns.ip(['route', 'show'])).stdout).not.toContain('10.244.0.0/16');
  });
});

describe('naive dataplane ↔ kernel VXLAN (flannel.1 as flanneld programs it)', () => {
  const topology = new Topology();
  let cluster: Cluster;

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping']);
    cluster = await Cluster.build(topology, { kinds: ['naive', 'kernel'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('pods ping both ways and 20 MB of TCP each way arrives with an identical sha256', async () => {
    const [n, k] = [cluster.node(1), cluster.node(2)];
    const there = await ping(n.pod, k.podIp);
    expect(there.code, there.out).toBe(0);
    const back = await ping(k.pod, n.podIp);
    expect(back.code, back.out).toBe(0);
    const out = await tcpTransfer(n.pod, k.pod, k.podIp, 20 * MB, 5201);
    expect(out.received).toEqual(out.sent);
    const ret = await tcpTransfer(k.pod, n.pod, n.podIp, 20 * MB, 5202);
    expect(ret.received).toEqual(ret.sent);
    expect(ret.sent.bytes).toBe(20 * MB);
    // The kernel over veth leaves inner TCP checksums unfinished: the naive node completed them.
    expect((await counters(n)).checksumsCompleted).toBeGreaterThan(1000);
  });
});
