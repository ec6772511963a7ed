/**
 * Issue 16, lease validation against a real etcd (v3 API and the v2 keys API): leases written with
 * etcdctl that lie outside the network, have another subnet length (a /25 inside a peer's /24),
 * or carry this node's PublicIP or VtepMAC never become routes; each is logged once and counted by
 * its reason while pod traffic to a legitimate peer keeps flowing; a node whose own lease is
 * rewritten with another PublicIP treats it as lost (stops, exit 1, after removing what it made; subnet.env stays).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { waitFor } from '../../src/tools/lab/exec.js';
import { CNI_PATH, type CniPod } from '../../src/tools/lab/cni.js';
import { FlannelLab, PREFIX, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites, ping, tcpTransfer } from '../support/integration.js';

const NETWORK = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };

function leaseKey(subnetKey: string): string {
  return `${PREFIX}/subnets/${subnetKey}`;
}

function lease(publicIp: string, vtepMac: string): string {
  return JSON.stringify({ PublicIP: publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: vtepMac } });
}

interface LeaseStats {
  ignoredLeases: number;
  ignoredByReason: Record<string, number>;
}

describe.each(['v3', 'v2'] as const)('lease validation over etcd %s', (api) => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];
  const pods: CniPod[] = [];
  const subnets: string[] = [];
  let node1Mac = '';

  async function putLease(subnetKey: string, value: string): Promise<void> {
    if (api === 'v3') await lab.etcd.etcdctl(['put', leaseKey(subnetKey), value]);
    else await lab.etcd.etcdctl(['set', leaseKey(subnetKey), value], true, 'v2');
  }

  async function leaseStats(n: LabNode): Promise<LeaseStats> {
    return ((await lab.info(n)) as unknown as { lease: LeaseStats }).lease;
  }

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'etcd', 'etcdctl', 'openssl', `${CNI_PATH}/bridge`, `${CNI_PATH}/host-local`]);
    await lab.init();
    await lab.putNetworkConfig(NETWORK, api);
    for (let i = 1; i <= 2; i++) nodes.push(await lab.startNode(i, api));
    await Promise.all(nodes.map((n) => n.vxtun.ready(60_000)));
    for (const n of nodes) subnets.push((await lab.info(n)).subnet);
    for (const n of nodes) pods.push(await lab.addPod(n));
    const own = api === 'v3' ? (await lab.etcd.etcdctl(['get', leaseKey(subnets[0]!.replace('/', '-')), '--print-value-only'])).stdout : (await lab.etcd.etcdctl(['get', leaseKey(subnets[0]!.replace('/', '-'))], true, 'v2')).stdout;
    node1Mac = (JSON.parse(own.trim().split('\n').pop()!) as { BackendData: { VtepMAC: string } }).BackendData.VtepMAC;
  }, 120_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  it('bad leases written while pods talk are no routes, each logged once and counted by reason; traffic never stops', async () => {
    const peerSubnet = subnets[1]!;
    const [a, b, c] = peerSubnet.split('.');
    const bad: Array<[subnetKey: string, value: string, reason: string]> = [
      ['0.0.0.0-0', lease('198.18.0.31', '0a:58:0a:00:00:31'), 'outside-network'],
      ['10.245.3.0-24', lease('198.18.0.32', '0a:58:0a:00:00:32'), 'outside-network'],
      // the hijack: more specific than node 2's /24, it would take half its pods
      [`${a}.${b}.${c}.0-25`, lease('198.18.0.33', '0a:58:0a:00:00:33'), 'wrong-subnet-length'],
      // our PublicIP and VtepMAC: a forwarding loop back into ourselves
      ['10.244.250.0-24', lease('198.18.0.1', node1Mac), 'own-public-ip'],
      ['10.244.251.0-24', lease('198.18.0.35', node1Mac), 'own-vtep-mac'],
    ];
    const flowing = ping(pods[0]!.ns, pods[1]!.ip, ['-c', '80', '-i', '0.1']);
    for (const [key, value] of bad) await putLease(key, value);
    const expected = { 'outside-network': 2, 'wrong-subnet-length': 1, 'own-public-ip': 1, 'own-vtep-mac': 1 };
    await waitFor(async () => (await leaseStats(nodes[0]!)).ignoredLeases === bad.length, { timeoutMs: 5000, intervalMs: 100, what: `node 1 ignoring ${bad.length} leases` });
    // written again (as a careless script would): neither logged nor counted twice
    for (const [key, value] of bad) await putLease(key, value);
    const sent = await flowing;
    expect(sent.code, sent.out).toBe(0);
    expect(sent.out).toMatch(/80 packets transmitted, 80 received, 0% packet loss/);
    const stats = await leaseStats(nodes[0]!);
    expect(stats.ignoredByReason).toMatchObject(expected);
    expect(stats.ignoredLeases).toBe(bad.length);
    expect((await lab.routes(nodes[0]!)).map((r) => r.subnet)).toEqual([peerSubnet]);
    const logged = nodes[0]!.vxtun.output
      .join('')
      .split('\n')
      .filter((l) => l.includes('lease ignored'));
    for (const [key, , reason] of bad) expect(logged.filter((l) => l.includes(`"lease":"${key}"`) && l.includes(`"reason":"${reason}"`)), key).toHaveLength(1);
    expect(logged).toHaveLength(bad.length);
    const t = await tcpTransfer(pods[0]!.ns, pods[1]!.ns, pods[1]!.ip, 2_000_000, 5311);
    expect(t.received).toEqual(t.sent);
  });

  it('a node whose own lease is rewritten with another PublicIP treats it as lost: it stops with exit 1 after its teardown', async () => {
    const n = nodes[1]!;
    await putLease(subnets[1]!.replace('/', '-'), lease('198.18.0.77', '0a:58:0a:00:00:77'));
    await waitFor(() => n.vxtun.child.exitCode !== null, { timeoutMs: 10_000, intervalMs: 100, what: 'node 2 exits' });
    expect(n.vxtun.child.exitCode).toBe(1);
    const log = n.vxtun.output.join('');
    expect(log).toContain('lease overwritten by PublicIP 198.18.0.77');
    expect(log).toContain('lease lost for good; stopping');
    const links = (JSON.parse((await n.ns.ip(['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
    expect(links).not.toContain('vxtun0');
    // subnet.env stays, as flanneld leaves it; the next start rewrites it.
    expect(existsSync(n.subnetEnv)).toBe(true);
    // the other node follows the registry: that subnet is now reached at the new PublicIP
    await waitFor(async () => (await lab.routes(nodes[0]!)).some((r) => r.subnet === subnets[1] && r.publicIp === '198.18.0.77'), { timeoutMs: 5000, intervalMs: 100, what: 'node 1 routes to the new holder' });
  });
});
