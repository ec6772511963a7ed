/**
 * Issue 5, done-when: two nodes started at the same instant never share a subnet (v3 and v2); a
 * lease with a short TTL is renewed before it runs out; etcd stopped for 30 s — pod traffic between
 * existing nodes keeps flowing, and once etcd is back the nodes resync and a node that started
 * meanwhile becomes reachable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/tools/lab/exec.js';
import { CNI_PATH, type CniPod } from '../../src/tools/lab/cni.js';
import { FlannelLab, PREFIX, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites, ping } from '../support/integration.js';

describe('flannel registry: races, renewal, etcd outage', () => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];

  beforeAll(async () => {
    requirePrerequisites(['ip', 'ping', 'etcd', 'etcdctl', `${CNI_PATH}/bridge`]);
    await lab.init();
    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
  }, 60_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  it('two nodes started at the same instant never take one subnet (two free subnets, several rounds, v3 and v2)', async () => {
    for (let round = 0; round < 6; round++) {
      const api = round % 2 === 0 ? 'v3' : 'v2';
      const prefix = `/race${round}/network`;
      await lab.putNetworkConfig({ Network: '10.244.0.0/16', SubnetMin: '10.244.5.0', SubnetMax: '10.244.6.0', Backend: { Type: 'vxlan' } }, api, prefix);
      const extra = { registry: lab.registryConfig(api, { prefix }) };
      const pair = await Promise.all([lab.startNode(4, api, extra), lab.startNode(5, api, extra)]);
      try {
        await Promise.all(pair.map((n) => n.vxtun.ready(30_000)));
        const subnets = await Promise.all(pair.map(async (n) => (await lab.info(n)).subnet));
        expect(new Set(subnets).size, `round ${round} (${api}): ${subnets.join(' ')}`).toBe(2);
        for (const s of subnets) expect(['10.244.5.0/24', '10.244.6.0/24']).toContain(s);
      } finally {
        await Promise.all(pair.map((n) => n.vxtun.stop()));
      }
    }
  }, 120_000);

  it('a lease is renewed before its TTL runs out', async () => {
    const prefix = '/renew/network';
    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }, 'v3', prefix);
    const n = await lab.startReadyNode(6, 'v3', { registry: lab.registryConfig('v3', { prefix, leaseTtlSeconds: 5, renewMarginSeconds: 3 }) });
    try {
      const key = `${prefix}/subnets/${(await lab.info(n)).subnet.replace('/', '-')}`;
      const leaseCount = async (): Promise<number> => (await lab.etcd.etcdctl(['lease', 'list'])).stdout.split('\n').filter((l) => /^[0-9a-f]+$/.test(l.trim())).length;
      const before = await leaseCount();
      await sleep(8000); // well past the first TTL: three renewals
      expect((await lab.etcd.etcdctl(['get', key, '--print-value-only'])).stdout).toContain('198.18.0.6');
      // each renewal moved the key onto a fresh etcd lease and revoked the old one
      expect(await leaseCount()).toBe(before);
    } finally {
      await n.vxtun.stop();
    }
  }, 30_000);

  it('etcd stopped for 30 s: traffic keeps flowing; on return the nodes resync and a node started meanwhile is reachable', async () => {
    nodes.push(await lab.startReadyNode(1, 'v3'), await lab.startReadyNode(2, 'v3'));
    const pods: CniPod[] = [await lab.addPod(nodes[0]!), await lab.addPod(nodes[1]!)];
    expect((await ping(pods[0]!.ns, pods[1]!.ip)).code).toBe(0);
    await lab.etcd.stop();
    const down = Date.now();
    const late = await lab.startNode(3, 'v3');
    nodes.push(late);
    while (Date.now() - down < 30_000) {
      const r = await ping(pods[0]!.ns, pods[1]!.ip, ['-c', '1']);
      expect(r.code, `during the outage: ${r.out}`).toBe(0);
      await sleep(5000);
    }
    await lab.etcd.start();
    await late.vxtun.ready(30_000);
    const lateSubnet = (await lab.info(late)).subnet;
    await Promise.all(nodes.slice(0, 2).map((n) => lab.waitRoute(n, lateSubnet, true, 15_000)));
    const latePod = await lab.addPod(late);
    expect((await ping(pods[0]!.ns, latePod.ip)).code).toBe(0);
    expect((await ping(latePod.ns, pods[1]!.ip)).code).toBe(0);
    // and the watch is live again after the outage
    await lab.etcd.etcdctl(['put', `${PREFIX}/subnets/10.244.222.0-24`, JSON.stringify({ PublicIP: '198.18.0.9', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:58:0a:f4:de:00' } })]);
    await Promise.all(nodes.map((n) => lab.waitRoute(n, '10.244.222.0/24', true)));
  }, 120_000);

  it('etcd v2: a short outage — forwarding continues, the v2 watch comes back and sees new leases', async () => {
    const prefix = '/v2outage/network';
    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }, 'v2', prefix);
    const extra = { registry: lab.registryConfig('v2', { prefix }) };
    const a = await lab.startReadyNode(7, 'v2', extra);
    const b = await lab.startReadyNode(8, 'v2', extra);
    nodes.push(a, b);
    const pa = await lab.addPod(a);
    const pb = await lab.addPod(b);
    expect((await ping(pa.ns, pb.ip)).code).toBe(0);
    await lab.etcd.stop();
    await sleep(4000);
    expect((await ping(pa.ns, pb.ip, ['-c', '1'])).code).toBe(0);
    await lab.etcd.start();
    const value = JSON.stringify({ PublicIP: '198.18.0.9', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:58:0a:f4:df:00' } });
    await lab.etcd.etcdctl(['set', `${prefix}/subnets/10.244.223.0-24`, value], true, 'v2');
    await Promise.all([a, b].map((n) => lab.waitRoute(n, '10.244.223.0/24', true, 15_000)));
  }, 60_000);
});
