/**
 * Issue 2, done-when (a), (c): a vxtun node and a node whose kernel VXLAN device is set up exactly
 * as flanneld sets up flannel.1 exchange pings both ways and 50 MB of TCP each way with identical
 * sha256, the kernel node's offloads left at their defaults; the underlay capture decodes in
 * tshark as VXLAN with the right VNI and inner MACs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology } from '../../src/tools/lab/netns.js';
import { capture } from '../support/capture.js';
import { run } from '../../src/tools/lab/exec.js';
import { Cluster } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites, tcpTransfer, ping } from '../support/integration.js';

const MB = 1024 * 1024;

describe('vxtun <-> kernel VXLAN (flannel.1 as flanneld programs it)', () => {
  const topology = new Topology();
  let cluster: Cluster;
  const tmp = mkdtempSync(join(tmpdir(), 'vxtun-interop-'));

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'tcpdump', 'tshark', 'ethtool']);
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'kernel'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('the kernel node is flannel.1 as flanneld makes it, offloads at their defaults', async () => {
    const k = cluster.node(2);
    const link = JSON.parse((await k.ns.ip(['-d', '-j', 'link', 'show', 'flannel.1'])).stdout)[0];
    expect(link.linkinfo.info_kind).toBe('vxlan');
    expect(link.linkinfo.info_data).toMatchObject({ id: 1, port: 8472, learning: false, local: '198.18.0.2' });
    expect(link.mtu).toBe(1450);
    expect(link.address).toBe(k.vtepMac);
    const fdb = (await k.ns.bridge(['fdb', 'show', 'dev', 'flannel.1'])).stdout;
    expect(fdb).toContain(`${cluster.node(1).vtepMac} dst 198.18.0.1 self permanent`);
    const routes = (await k.ns.ip(['route', 'show', 'dev', 'flannel.1'])).stdout;
    expect(routes).toContain('10.244.1.0/24 via 10.244.1.0 onlink');
    // Defaults untouched: the kernel checksums nothing it can leave to "hardware".
    const features = (await k.ns.execOk(['ethtool', '-k', 'eth0'])).stdout;
    expect(features).toMatch(/tx-checksumming: on/);
  });

  it('pods ping each other both ways', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const there = await ping(v.pod, k.podIp);
    expect(there.code, there.out).toBe(0);
    const back = await ping(k.pod, v.podIp);
    expect(back.code, back.out).toBe(0);
    // and node to node, VTEP address to VTEP address
    const vtep = await ping(k.ns, v.vtepIp);
    expect(vtep.code, vtep.out).toBe(0);
  });

  it('50 MB of TCP each way arrives with an identical sha256', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const before = await v.vxtun!.counters();
    const out = await tcpTransfer(v.pod, k.pod, k.podIp, 50 * MB, 5201);
    expect(out.received).toEqual(out.sent);
    expect(out.sent.bytes).toBe(50 * MB);
    const back = await tcpTransfer(k.pod, v.pod, v.podIp, 50 * MB, 5202);
    expect(back.received).toEqual(back.sent);
    const after = await v.vxtun!.counters();
    expect(after.tx.bytes - before.tx.bytes).toBeGreaterThan(50 * MB);
    expect(after.rx.bytes - before.rx.bytes).toBeGreaterThan(50 * MB);
    // The kernel over veth leaves inner TCP checksums unfinished and sends GSO super-packets
    // whole: vxtun completed the one and passed the other on (offloads left at their defaults):
    // whole behind a virtio_net_hdr where its TUN has one, else segmented.
    // How the kernel splits the two depends on how fast we drain the socket (a faster receiver gets
    // fewer, larger super-packets), so the floor is on their sum: every datagram needed one of them.
    const completed = after.fixed['checksum-completed']! - before.fixed['checksum-completed']!;
    const supers =
      after.fixed['gso-segmented']! - before.fixed['gso-segmented']! + (after.fixed['gso-passed-whole']! - before.fixed['gso-passed-whole']!);
    expect(completed).toBeGreaterThan(10);
    expect(supers).toBeGreaterThan(10);
    expect(completed + supers).toBeGreaterThan(500);
  });

  it('the underlay carries VXLAN that tshark decodes: VNI 1, inner MACs of both VTEPs', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const file = join(tmp, 'underlay.pcap');
    // Two echo requests and two replies: tcpdump exits by itself once it has written all four.
    const cap = await capture(k.ns, 'eth0', 'udp port 8472 and greater 120', { file, count: 4 });
    expect((await ping(v.pod, k.podIp)).code).toBe(0);
    await Promise.race([cap.done, new Promise((r) => setTimeout(r, 5000))]);
    await cap.stop();
    const r = await run(['tshark', '-r', file, '-d', 'udp.port==8472,vxlan', '-T', 'fields', '-E', 'separator=|',
      '-e', 'ip.src', '-e', 'udp.dstport', '-e', 'vxlan.flags', '-e', 'vxlan.vni', '-e', 'eth.src', '-e', 'eth.dst', '-e', 'icmp.type']);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('|'));
    expect(rows.length).toBeGreaterThanOrEqual(4);
    const fromVxtun = rows.filter((row) => row[0]!.startsWith('198.18.0.1,'));
    const fromKernel = rows.filter((row) => row[0]!.startsWith('198.18.0.2,'));
    expect(fromVxtun.length).toBeGreaterThanOrEqual(2);
    expect(fromKernel.length).toBeGreaterThanOrEqual(2);
    for (const row of [...fromVxtun, ...fromKernel]) {
      expect(row[1]).toBe('8472');
      expect(row[3]).toBe('1');
    }
    // eth.src / eth.dst list the outer frame first, then the inner one.
    for (const row of fromVxtun) {
      expect(row[4]!.split(',')[1]).toBe(v.vtepMac);
      expect(row[5]!.split(',')[1]).toBe(k.vtepMac);
      expect(row[6]).toBe('8');
    }
    for (const row of fromKernel) {
      expect(row[4]!.split(',')[1]).toBe(k.vtepMac);
      expect(row[5]!.split(',')[1]).toBe(v.vtepMac);
      expect(row[6]).toBe('0');
    }
  });

  it('answers the kernel peer ARP for its VTEP address when the neighbour needs revalidating', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const before = await v.vxtun!.counters();
    // flanneld's neighbour entry is permanent; a stale one makes the kernel probe it with a
    // unicast ARP request sent over VXLAN to the FDB's destination: vxtun must answer.
    await k.ns.sysctl('net/ipv4/neigh/flannel.1/delay_first_probe_time', 1);
    await k.ns.ip(['neigh', 'replace', v.vtepIp, 'lladdr', v.vtepMac, 'dev', 'flannel.1', 'nud', 'stale']);
    const r = await k.pod.exec(['ping', '-c', '6', '-i', '0.5', '-W', '2', v.podIp]);
    expect(r.code, r.stdout).toBe(0);
    const after = await v.vxtun!.counters();
    expect(after.answered['arp-reply']! - before.answered['arp-reply']!).toBeGreaterThanOrEqual(1);
    const neigh = (await k.ns.ip(['neigh', 'show', v.vtepIp, 'dev', 'flannel.1'])).stdout;
    expect(neigh).toMatch(new RegExp(`lladdr ${v.vtepMac} REACHABLE`));
    await k.ns.ip(['neigh', 'replace', v.vtepIp, 'lladdr', v.vtepMac, 'dev', 'flannel.1', 'nud', 'permanent']);
  });
});
