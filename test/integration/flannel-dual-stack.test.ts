/**
 * Issue 17 (c): a dual-stack flannel network (EnableIPv6) over etcd. flanneld's dual-stack leases
 * (`10.244.1.0-24&fd00:10:244:1::-64`) are in etcd before vxtun starts and hold half of the subnets:
 * two vxtun nodes take the other half (never one twice) with dual-stack keys of their own, write
 * FLANNEL_IPV6_NETWORK/FLANNEL_IPV6_SUBNET, and carry IPv4 pods in VXLAN over the IPv4 underlay
 * and IPv6 pods in VXLAN over the IPv6 underlay (2001:db8::/32), both ways, with each other and with
 * a kernel node programmed as flanneld programs flannel.1 and flannel-v6.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createKernelFlannelNode, addKernelPeer, createKernelFlannelV6Device, addKernelPeerV6Lease, enableIpv6Forwarding } from '../../src/tools/lab/kernel-flannel.js';
import { addPod } from '../../src/tools/lab/pods.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import type { Netns } from '../../src/tools/lab/netns.js';
import { parseSubnetEnv } from '../../src/control/subnet-env.js';
import { FlannelLab, PREFIX, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites, ping, tcpTransfer } from '../support/integration.js';

const NETWORK = {
  Network: '10.244.0.0/16',
  SubnetMin: '10.244.1.0',
  SubnetMax: '10.244.4.0',
  EnableIPv6: true,
  IPv6Network: 'fd00:10:244::/56',
  IPv6SubnetMin: 'fd00:10:244:1::',
  IPv6SubnetMax: 'fd00:10:244:4::',
  Backend: { Type: 'vxlan' },
};
/** The kernel node (flanneld) and a second flanneld lease whose node is not running. */
const KERNEL = { ns: 7, publicIp: '198.18.0.7', publicIpv6: '2001:db8::7', subnet: '10.244.1.0/24', subnet6: 'fd00:10:244:1::/64', vtepMac: '0a:58:0a:f4:01:00', vtepMac6: '0a:58:0a:f4:01:06' };
const ABSENT = { publicIp: '198.18.0.8', publicIpv6: '2001:db8::8', subnet: '10.244.3.0/24', subnet6: 'fd00:10:244:3::/64', vtepMac: '0a:58:0a:f4:03:00', vtepMac6: '0a:58:0a:f4:03:06' };
const key = (subnet: string, subnet6: string): string => `${subnet.replace('/', '-')}&${subnet6.replace('/', '-')}`;
const flanneldValue = (n: typeof KERNEL | typeof ABSENT): string =>
  JSON.stringify({ PublicIP: n.publicIp, PublicIPv6: n.publicIpv6, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: n.vtepMac }, BackendV6Data: { VNI: 1, VtepMAC: n.vtepMac6 } });

interface Pod {
  ns: Netns;
  ip: string;
  ip6: string;
}

describe('a dual-stack flannel network', () => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];
  const pods: Pod[] = [];
  let kernel: Pod;
  let leases: Array<[string, Record<string, unknown>]> = [];

  const underlay6 = async (ns: Netns, i: number): Promise<void> => {
    await ns.sysctl('net.ipv6.conf.eth0.disable_ipv6', 0);
    await ns.ip(['-6', 'addr', 'add', `2001:db8::${i}/64`, 'dev', 'eth0', 'nodad']);
  };

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'etcd', 'etcdctl', 'openssl']);
    await lab.init();
    await lab.putNetworkConfig(NETWORK);
    for (const n of [KERNEL, ABSENT]) await lab.etcd.etcdctl(['put', `${PREFIX}/subnets/${key(n.subnet, n.subnet6)}`, flanneldValue(n)]);
    for (const i of [1, 2]) await underlay6(await lab.nodeNamespace(i), i);
    for (const i of [1, 2]) nodes.push(await lab.startNode(i, 'v3'));
    await Promise.all(nodes.map((n) => n.vxtun.ready(60_000)));
    const list = (await lab.etcd.etcdctl(['get', '--prefix', `${PREFIX}/subnets/`])).stdout.trim().split('\n');
    for (let k = 0; k + 1 < list.length; k += 2) leases.push([list[k]!.slice(`${PREFIX}/subnets/`.length), JSON.parse(list[k + 1]!) as Record<string, unknown>]);
    // Pods as the CNI plugins make them from each vxtun node's subnet.env (both families).
    for (const n of nodes) {
      const env = parseSubnetEnv(readFileSync(n.subnetEnv, 'utf8'));
      const host = (cidr: string): string => cidr.replace(/\.1\//, '.2/').replace(/::1\//, '::2/');
      const ns = await addPod(n.ns, { name: `p${n.index}`, gatewayCidr: env.FLANNEL_SUBNET!, podIp: host(env.FLANNEL_SUBNET!), gatewayCidr6: env.FLANNEL_IPV6_SUBNET!, podIp6: host(env.FLANNEL_IPV6_SUBNET!), network6: env.FLANNEL_IPV6_NETWORK!, mtu: Number(env.FLANNEL_MTU) });
      pods.push({ ns, ip: host(env.FLANNEL_SUBNET!).split('/')[0]!, ip6: host(env.FLANNEL_IPV6_SUBNET!).split('/')[0]! });
    }
    // The kernel node: flannel.1 and flannel-v6.1 as flanneld makes them, every other lease programmed on both.
    const kns = await lab.nodeNamespace(KERNEL.ns);
    await underlay6(kns, KERNEL.ns);
    await enableIpv6Forwarding(kns);
    await createKernelFlannelNode(kns, { publicIp: KERNEL.publicIp, subnet: KERNEL.subnet, vtepMac: KERNEL.vtepMac });
    await createKernelFlannelV6Device(kns, { publicIpv6: KERNEL.publicIpv6, subnet6: KERNEL.subnet6, vtepMac6: KERNEL.vtepMac6 });
    for (const [k, v] of leases) {
      if (k === key(KERNEL.subnet, KERNEL.subnet6)) continue;
      const [v4, v6] = k.split('&').map((s) => s.replace(/-(\d+)$/, '/$1')) as [string, string];
      const data = v.BackendData as { VtepMAC: string };
      const data6 = v.BackendV6Data as { VtepMAC: string };
      await addKernelPeer(kns, { subnet: v4, publicIp: v.PublicIP as string, vtepMac: data.VtepMAC });
      await addKernelPeerV6Lease(kns, { subnet6: v6, publicIpv6: v.PublicIPv6 as string, vtepMac6: data6.VtepMAC });
    }
    const kpod = await addPod(kns, { name: 'kpod', gatewayCidr: '10.244.1.1/24', podIp: '10.244.1.2/24', gatewayCidr6: 'fd00:10:244:1::1/64', podIp6: 'fd00:10:244:1::2/64', network6: 'fd00:10:244::/56' });
    kernel = { ns: kpod, ip: '10.244.1.2', ip6: 'fd00:10:244:1::2' };
  }, 120_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  it("vxtun takes only the subnets flanneld's dual-stack leases left free, with dual-stack leases of its own", async () => {
    const keys = leases.map(([k]) => k);
    expect(keys).toHaveLength(4);
    expect(keys).toContain(key(KERNEL.subnet, KERNEL.subnet6));
    expect(keys).toContain(key(ABSENT.subnet, ABSENT.subnet6));
    for (const n of nodes) expect(leases.find(([, v]) => v.PublicIP === n.publicIp)![0]).toMatch(/^10\.244\.[24]\.0-24&fd00:10:244:[24]::-64$/);
    const v4 = leases.map(([k]) => k.split('&')[0]);
    const v6 = leases.map(([k]) => k.split('&')[1]);
    expect(new Set(v4).size).toBe(4);
    expect(new Set(v6).size).toBe(4);
    for (const n of nodes) {
      const [, value] = leases.find(([, v]) => v.PublicIP === n.publicIp)!;
      expect(value).toEqual({
        PublicIP: n.publicIp,
        PublicIPv6: `2001:db8::${n.index}`,
        BackendType: 'vxlan',
        BackendData: { VNI: 1, VtepMAC: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) },
        BackendV6Data: { VNI: 1, VtepMAC: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) },
      });
      const info = (await lab.info(n)) as unknown as { subnet: string; ipv6: { subnet: string; mtu: number } };
      const env = parseSubnetEnv(readFileSync(n.subnetEnv, 'utf8'));
      expect(env).toEqual({
        FLANNEL_NETWORK: '10.244.0.0/16',
        FLANNEL_SUBNET: info.subnet.replace('.0/24', '.1/24'),
        FLANNEL_IPV6_NETWORK: 'fd00:10:244::/56',
        FLANNEL_IPV6_SUBNET: info.ipv6.subnet.replace('::/64', '::1/64'),
        FLANNEL_MTU: '1450',
        FLANNEL_IPMASQ: 'false',
      });
      expect(info.ipv6.mtu).toBe(1430);
      // every other lease is a route in both families (the absent node's too)
      await waitFor(async () => (await lab.routes(n)).length === 6, { timeoutMs: 5000, intervalMs: 100, what: `node ${n.index}: 3 IPv4 + 3 IPv6 routes` });
      const routes = await lab.routes(n);
      expect(routes.filter((r) => r.subnet.includes(':')).map((r) => r.publicIp).sort()).toEqual(['2001:db8::7', '2001:db8::8', `2001:db8::${3 - n.index}`].sort());
    }
  });

  it('IPv4 and IPv6 pods reach each other both ways between the vxtun nodes and the kernel node', async () => {
    for (const [a, b] of [[pods[0]!, pods[1]!], [pods[1]!, pods[0]!], [pods[0]!, kernel], [kernel, pods[0]!], [pods[1]!, kernel], [kernel, pods[1]!]] as const) {
      const r4 = await ping(a.ns, b.ip);
      expect(r4.code, `${a.ip} -> ${b.ip}: ${r4.out}`).toBe(0);
      const r6 = await ping(a.ns, b.ip6);
      expect(r6.code, `${a.ip6} -> ${b.ip6}: ${r6.out}`).toBe(0);
    }
  });

  it('TCP over IPv6 (sha256 checked) both ways between a vxtun pod and the kernel pod, in VXLAN over the IPv6 underlay', async () => {
    const before = ((await lab.info(nodes[0]!)) as unknown as { ipv6: { txPackets: number; rxPackets: number } }).ipv6;
    const there = await tcpTransfer(pods[0]!.ns, kernel.ns, kernel.ip6, 1_000_000, 5501);
    expect(there.received).toEqual(there.sent);
    const back = await tcpTransfer(kernel.ns, pods[0]!.ns, pods[0]!.ip6, 1_000_000, 5502);
    expect(back.received).toEqual(back.sent);
    const after = ((await lab.info(nodes[0]!)) as unknown as { ipv6: { txPackets: number; rxPackets: number } }).ipv6;
    expect(after.txPackets - before.txPackets).toBeGreaterThan(500);
    expect(after.rxPackets - before.rxPackets).toBeGreaterThan(500);
  });
});
