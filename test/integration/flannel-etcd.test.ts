/**
 * Issue 5, done-when: vxtun nodes given only the etcd registry config join a flannel network —
 * distinct subnets, pods made by the CNI bridge plugin from subnet.env ping each other; leases
 * appear/vanish in route tables within 5 s; a restarted node keeps its subnet; a kernel VXLAN node
 * programmed from the registry as flanneld programs it exchanges traffic with vxtun both ways.
 * Against a real etcd (v3 API and the v2 keys API) and the real CNI plugins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { defaultWorkers } from '../../src/datapath/workers.js';
import { createKernelFlannelNode, addKernelPeer } from '../../src/tools/lab/kernel-flannel.js';
import { addPod } from '../../src/tools/lab/pods.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { cniDelPod, CNI_PATH, type CniPod } from '../../src/tools/lab/cni.js';
import { parseSubnetEnv } from '../../src/control/subnet-env.js';
import { FlannelLab, PREFIX, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites, ping, tcpTransfer } from '../support/integration.js';

const NETWORK = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };

function leaseKey(subnet: string): string {
  return `${PREFIX}/subnets/${subnet.replace('/', '-')}`;
}

describe.each(['v3', 'v2'] as const)('flannel over etcd %s', (api) => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];
  const pods: CniPod[] = [];
  const subnets: string[] = [];

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'etcd', 'etcdctl', 'openssl', `${CNI_PATH}/bridge`, `${CNI_PATH}/host-local`]);
    await lab.init();
    await lab.putNetworkConfig(NETWORK, api);
    // Node 3 with the native path's two scheduling switches off from the command line (they override the datapath section).
    for (let i = 1; i <= 3; i++) nodes.push(await lab.startNode(i, api, {}, i === 3 ? ['--no-express', '--no-batch-scheduling'] : []));
    await Promise.all(nodes.map((n) => n.vxtun.ready(60_000)));
    for (const n of nodes) subnets.push((await lab.info(n)).subnet);
  }, 120_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  it('three nodes take distinct subnets, with leases in flannel format and a 24 h TTL', async () => {
    expect(new Set(subnets).size).toBe(3);
    for (const s of subnets) expect(s).toMatch(/^10\.244\.\d+\.0\/24$/);
    for (const [k, n] of nodes.entries()) {
      const key = leaseKey(subnets[k]!);
      if (api === 'v3') {
        const value = (await lab.etcd.etcdctl(['get', key, '--print-value-only'])).stdout.trim();
        const lease = JSON.parse(value);
        expect(lease).toEqual({ PublicIP: n.publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) } });
        // The key rides on an etcd lease of 24 h (IDs are int64: read them as text, never through JSON numbers).
        const ids = (await lab.etcd.etcdctl(['lease', 'list'])).stdout.split('\n').map((l) => l.trim()).filter((l) => /^[0-9a-f]+$/.test(l));
        let granted = 0;
        for (const id of ids) {
          const ttl = (await lab.etcd.etcdctl(['lease', 'timetolive', '--keys', id])).stdout;
          if (ttl.includes(key)) granted = Number(/granted with TTL\((\d+)s\)/.exec(ttl)![1]);
        }
        expect(granted).toBe(86400);
      } else {
        const out = (await lab.etcd.etcdctl(['-o', 'extended', 'get', key], true, 'v2')).stdout;
        expect(out).toMatch(/TTL: 86[34]\d\d/);
        const lease = JSON.parse(out.trim().split('\n').pop()!);
        expect(lease.PublicIP).toBe(n.publicIp);
        expect(lease.BackendType).toBe('vxlan');
      }
      // subnet.env in flannel's format
      const env = parseSubnetEnv(readFileSync(n.subnetEnv, 'utf8'));
      expect(env).toEqual({ FLANNEL_NETWORK: '10.244.0.0/16', FLANNEL_SUBNET: subnets[k]!.replace('.0/24', '.1/24'), FLANNEL_MTU: '1450', FLANNEL_IPMASQ: 'false' });
    }
  });

  it('pods made by the CNI bridge plugin from subnet.env ping each other across all three nodes', async () => {
    for (const n of nodes) pods.push(await lab.addPod(n));
    for (const [k, p] of pods.entries()) expect(p.ip.startsWith(subnets[k]!.split('.').slice(0, 3).join('.') + '.')).toBe(true);
    for (let a = 0; a < 3; a++) {
      const b = (a + 1) % 3;
      const r = await ping(pods[a]!.ns, pods[b]!.ip);
      expect(r.code, r.out).toBe(0);
    }
    const t = await tcpTransfer(pods[0]!.ns, pods[2]!.ns, pods[2]!.ip, 2_000_000, 5301);
    expect(t.received).toEqual(t.sent);
    // a vxlan-backend node hashes its source ports as flannel.1 does, with one engine per core as in static mode
    const status = await nodes[0]!.ns.execOk([process.execPath, cliPath, 'status', '--control-socket', nodes[0]!.vxtun.controlSocket]);
    expect(status.stdout.split('\n')[1]).toBe(`datapath native  workers ${defaultWorkers()}  source ports flow-hashed over 32768-60999 (16 ports)  tun queue 500`);
    // vxtun up --no-express --no-batch-scheduling on node 3 (the pings above crossed it both ways)
    const features = async (n: LabNode): Promise<Record<string, unknown>> => (await lab.info(n)).features;
    expect(await features(nodes[0]!)).toMatchObject({ express: true, batchScheduling: true, inboundScheduling: true });
    expect(await features(nodes[2]!)).toMatchObject({ express: false, batchScheduling: false, inboundScheduling: false });
  });

  it('vxtun trace attaches to a node that joined through the registry and names the leased route', async () => {
    const child = spawn(process.execPath, [cliPath, 'trace', '--socket', nodes[0]!.vxtun.controlSocket, '--protocol', 'icmp', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    try {
      await waitFor(() => err.includes('attached to'), { timeoutMs: 10_000, what: `trace attached (${err})` });
      expect((await ping(pods[0]!.ns, pods[1]!.ip)).code).toBe(0);
      await waitFor(() => out.includes('"udp-send"'), { timeoutMs: 5000, what: 'a traced udp-send' });
    } finally {
      child.kill('SIGINT');
    }
    const events = out.trim().split('\n').flatMap((l) => (l.startsWith('{') ? [JSON.parse(l) as unknown] : []));
    const text = JSON.stringify(events);
    expect(text).toContain(subnets[1]); // the route came from node 2's lease
    expect(text).toContain('"udp-send"');
  });

  it('a new lease appears in every route table within 5 s; a deleted one leaves within 5 s', async () => {
    const subnet = '10.244.200.0/24';
    const value = JSON.stringify({ PublicIP: '198.18.0.9', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:58:0a:f4:c8:00' } });
    if (api === 'v3') await lab.etcd.etcdctl(['put', leaseKey(subnet), value]);
    else await lab.etcd.etcdctl(['set', leaseKey(subnet), value, '--ttl', '600'], true, 'v2');
    await Promise.all(nodes.map((n) => lab.waitRoute(n, subnet, true)));
    // a udp-backend lease is not a vxlan peer
    const udpSubnet = '10.244.201.0/24';
    const udpValue = JSON.stringify({ PublicIP: '198.18.0.8', PublicIPv6: null });
    if (api === 'v3') await lab.etcd.etcdctl(['put', leaseKey(udpSubnet), udpValue]);
    else await lab.etcd.etcdctl(['set', leaseKey(udpSubnet), udpValue], true, 'v2');
    if (api === 'v3') await lab.etcd.etcdctl(['del', leaseKey(subnet)]);
    else await lab.etcd.etcdctl(['rm', leaseKey(subnet)], true, 'v2');
    await Promise.all(nodes.map((n) => lab.waitRoute(n, subnet, false)));
    for (const n of nodes) expect((await lab.routes(n)).map((r) => r.subnet)).not.toContain(udpSubnet);
    if (api === 'v3') await lab.etcd.etcdctl(['del', leaseKey(udpSubnet)]);
    else await lab.etcd.etcdctl(['rm', leaseKey(udpSubnet)], true, 'v2');
  });

  it('a changed lease moves its route; an expiring lease leaves the route tables when its TTL runs out', async () => {
    const subnet = '10.244.210.0/24';
    const lease = (ip: string): string => JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:58:0a:f4:d2:00' } });
    if (api === 'v3') {
      const id = /lease ([0-9a-f]+) granted/.exec((await lab.etcd.etcdctl(['lease', 'grant', '3'])).stdout)![1]!;
      await lab.etcd.etcdctl(['put', `--lease=${id}`, leaseKey(subnet), lease('198.18.0.21')]);
    } else {
      await lab.etcd.etcdctl(['set', leaseKey(subnet), lease('198.18.0.21'), '--ttl', '3'], true, 'v2');
    }
    await Promise.all(nodes.map((n) => lab.waitRoute(n, subnet, true)));
    if (api === 'v3') await lab.etcd.etcdctl(['put', '--ignore-lease', leaseKey(subnet), lease('198.18.0.22')]);
    else await lab.etcd.etcdctl(['set', leaseKey(subnet), lease('198.18.0.22'), '--ttl', '3'], true, 'v2');
    await waitFor(async () => (await lab.routes(nodes[0]!)).some((r) => r.subnet === subnet && r.publicIp === '198.18.0.22'), { timeoutMs: 5000, intervalMs: 100, what: 'route moved to the new PublicIP' });
    // nobody renews it: etcd expires it after 3 s (v2 reports "expire", v3 a delete when the lease ends)
    await Promise.all(nodes.map((n) => lab.waitRoute(n, subnet, false, 10_000)));
  });

  it("a node whose own lease is deleted takes it again within 5 s (same subnet), and traffic resumes", async () => {
    const key = leaseKey(subnets[2]!);
    if (api === 'v3') await lab.etcd.etcdctl(['del', key]);
    else await lab.etcd.etcdctl(['rm', key], true, 'v2');
    await waitFor(async () => (api === 'v3' ? (await lab.etcd.etcdctl(['get', key, '--print-value-only'])).stdout.includes('198.18.0.3') : (await lab.etcd.etcdctl(['get', key], false, 'v2')).stdout.includes('198.18.0.3')), { timeoutMs: 5000, intervalMs: 100, what: 'lease taken again' });
    await Promise.all(nodes.slice(0, 2).map((n) => lab.waitRoute(n, subnets[2]!, true)));
    const r = await ping(pods[0]!.ns, pods[2]!.ip);
    expect(r.code, r.out).toBe(0);
  });

  it('SIGTERM removes device and route but leaves the lease and subnet.env (as flanneld does); the restarted node keeps its subnet', async () => {
    const n = nodes[0]!;
    const env = readFileSync(n.subnetEnv, 'utf8');
    expect(await n.vxtun.stop()).toBe(0);
    const links = (JSON.parse((await n.ns.ip(['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
    expect(links).not.toContain('vxtun0');
    expect((await n.ns.ip(['route', 'show', '10.244.0.0/16'])).stdout).toBe('');
    expect(readFileSync(n.subnetEnv, 'utf8')).toBe(env);
    const stillThere = api === 'v3' ? (await lab.etcd.etcdctl(['get', leaseKey(subnets[0]!), '--print-value-only'])).stdout : (await lab.etcd.etcdctl(['get', leaseKey(subnets[0]!)], false, 'v2')).stdout;
    expect(stillThere).toContain(n.publicIp);
    const again = await lab.startReadyNode(1, api);
    nodes[0] = again;
    expect((await lab.info(again)).subnet).toBe(subnets[0]);
    const r = await ping(pods[1]!.ns, pods[0]!.ip);
    expect(r.code, r.out).toBe(0);
  });

  async function putLease(key: string, value: string): Promise<void> {
    if (api === 'v3') await lab.etcd.etcdctl(['put', key, value]);
    else await lab.etcd.etcdctl(['set', key, value], true, 'v2');
  }

  /** Every lease as [key, value], read the way flanneld of that API reads them. */
  async function listLeases(): Promise<Array<[string, string]>> {
    if (api === 'v3') {
      const lines = (await lab.etcd.etcdctl(['get', '--prefix', `${PREFIX}/subnets/`])).stdout.trim().split('\n');
      const out: Array<[string, string]> = [];
      for (let k = 0; k + 1 < lines.length; k += 2) out.push([lines[k]!, lines[k + 1]!]);
      return out;
    }
    const keys = (await lab.etcd.etcdctl(['ls', `${PREFIX}/subnets`], true, 'v2')).stdout.trim().split('\n');
    return Promise.all(keys.map(async (k) => [k, (await lab.etcd.etcdctl(['get', k], true, 'v2')).stdout.trim()] as [string, string]));
  }

  it('a kernel VXLAN node programmed from the registry as flanneld does exchanges traffic with vxtun both ways', async () => {
    const ns = await lab.nodeNamespace(7);
    // A subnet no vxtun node leased (they pick theirs at random, as flanneld does).
    const held = new Set((await listLeases()).map(([key]) => key.split('/').pop()!.replace('-', '/')));
    const octet = [77, ...Array.from({ length: 250 }, (_, i) => i + 2)].find((o) => !held.has(`10.244.${o}.0/24`))!;
    const subnet = `10.244.${octet}.0/24`;
    const vtepMac = `0a:58:0a:f4:${octet.toString(16).padStart(2, '0')}:00`;
    await createKernelFlannelNode(ns, { publicIp: '198.18.0.7', subnet, vtepMac });
    const kpod = await addPod(ns, { name: 'kpod', gatewayCidr: `10.244.${octet}.1/24`, podIp: `10.244.${octet}.2/24` });
    // flanneld writes its lease ...
    await putLease(leaseKey(subnet), JSON.stringify({ PublicIP: '198.18.0.7', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: vtepMac } }));
    // ... and programs neighbour, FDB and route for every vxlan lease it reads
    for (const [key, text] of await listLeases()) {
      const v = JSON.parse(text);
      if (key === leaseKey(subnet) || v.BackendType !== 'vxlan') continue;
      await addKernelPeer(ns, { subnet: key.split('/').pop()!.replace('-', '/'), publicIp: v.PublicIP, vtepMac: v.BackendData.VtepMAC });
    }
    await lab.waitRoute(nodes[1]!, subnet, true);
    expect((await ping(kpod, pods[1]!.ip)).code).toBe(0);
    expect((await ping(pods[1]!.ns, `10.244.${octet}.2`)).code).toBe(0);
    const there = await tcpTransfer(pods[1]!.ns, kpod, `10.244.${octet}.2`, 2_000_000, 5302);
    expect(there.received).toEqual(there.sent);
    const back = await tcpTransfer(kpod, pods[1]!.ns, pods[1]!.ip, 2_000_000, 5303);
    expect(back.received).toEqual(back.sent);
  });

  it('CNI DEL removes the pods the plugin made', async () => {
    for (const [k, p] of pods.entries()) await cniDelPod(nodes[k]!.ns, p);
    const links = (JSON.parse((await nodes[1]!.ns.ip(['-j', 'link', 'show'])).stdout) as Array<{ ifname: string; master?: string }>).filter((l) => l.master === 'cni0');
    expect(links).toEqual([]);
  });
});
