/**
 * Issue 17 (d): "DirectRouting": true as flanneld does it. A vxtun node and a kernel flannel node on
 * one underlay subnet, strict reverse-path filtering (rp_filter=1) in every node: each routes the
 * other's subnet `via <PublicIP> dev eth0`, so pod traffic goes both ways unencapsulated and passes
 * the filter. A vxtun node that answered through its tunnel fails here: the kernel node receives
 * the answer on flannel.1 while its route back to that pod is via eth0, and drops it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelFlannelNode, addKernelDirectPeer, strictReversePath, enableIpv4Forwarding } from '../../src/tools/lab/kernel-flannel.js';
import { addPod } from '../../src/tools/lab/pods.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { CNI_PATH, type CniPod } from '../../src/tools/lab/cni.js';
import type { Netns } from '../../src/tools/lab/netns.js';
import { FlannelLab, PREFIX, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites, ping, tcpTransfer } from '../support/integration.js';

const KERNEL_SUBNET = '10.244.77.0/24';
const KERNEL_IP = '198.18.0.7';
const KERNEL_MAC = '0a:58:0a:f4:4d:00';
const leaseKey = (subnet: string): string => `${PREFIX}/subnets/${subnet.replace('/', '-')}`;

describe('flannel DirectRouting with rp_filter=1 on every node', () => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];
  let vxtunPod: CniPod;
  let kernelNs: Netns;
  let kernelPod: Netns;
  let vxtunSubnet = '';

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'etcd', 'etcdctl', 'openssl', `${CNI_PATH}/bridge`, `${CNI_PATH}/host-local`]);
    await lab.init();
    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } });
    const vxtunNs = await lab.nodeNamespace(1);
    kernelNs = await lab.nodeNamespace(7);
    for (const ns of [vxtunNs, kernelNs]) {
      await strictReversePath(ns);
      await enableIpv4Forwarding(ns);
    }
    nodes.push(await lab.startReadyNode(1, 'v3'));
    vxtunSubnet = (await lab.info(nodes[0]!)).subnet;
    vxtunPod = await lab.addPod(nodes[0]!);
    // flanneld on the kernel node: flannel.1 as always, its lease, and a direct route to vxtun's subnet (same underlay /24).
    await createKernelFlannelNode(kernelNs, { publicIp: KERNEL_IP, subnet: KERNEL_SUBNET, vtepMac: KERNEL_MAC });
    kernelPod = await addPod(kernelNs, { name: 'kpod', gatewayCidr: '10.244.77.1/24', podIp: '10.244.77.2/24' });
    await lab.etcd.etcdctl(['put', leaseKey(KERNEL_SUBNET), JSON.stringify({ PublicIP: KERNEL_IP, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: KERNEL_MAC } })]);
    await addKernelDirectPeer(kernelNs, { subnet: vxtunSubnet, publicIp: nodes[0]!.publicIp });
  }, 120_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  it('vxtun routes the peer on its underlay subnet through the kernel, not its tunnel', async () => {
    for (const ns of [nodes[0]!.ns, kernelNs]) expect((await ns.execOk(['sysctl', '-n', 'net.ipv4.conf.all.rp_filter'])).stdout.trim()).toBe('1');
    await lab.waitRoute(nodes[0]!, KERNEL_SUBNET, true);
    await waitFor(async () => (await nodes[0]!.ns.ip(['route', 'show', KERNEL_SUBNET])).stdout.includes(`via ${KERNEL_IP} dev eth0`), { timeoutMs: 5000, intervalMs: 100, what: 'the direct route on the vxtun node' });
    const route = (await lab.routes(nodes[0]!)).find((r) => r.subnet === KERNEL_SUBNET) as { direct?: boolean } | undefined;
    expect(route?.direct).toBe(true);
  });

  it('pods ping and move 2 MB over TCP (sha256 checked) both ways', async () => {
    const before = (await lab.info(nodes[0]!)) as unknown as { engines: Array<{ txPackets: number }> };
    const r1 = await ping(vxtunPod.ns, '10.244.77.2');
    expect(r1.code, r1.out).toBe(0);
    const r2 = await ping(kernelPod, vxtunPod.ip);
    expect(r2.code, r2.out).toBe(0);
    const there = await tcpTransfer(vxtunPod.ns, kernelPod, '10.244.77.2', 2_000_000, 5401);
    expect(there.received).toEqual(there.sent);
    const back = await tcpTransfer(kernelPod, vxtunPod.ns, vxtunPod.ip, 2_000_000, 5402);
    expect(back.received).toEqual(back.sent);
    // Nothing of it went through vxtun's tunnel.
    const after = (await lab.info(nodes[0]!)) as unknown as { engines: Array<{ txPackets: number }> };
    const sent = (i: { engines: Array<{ txPackets: number }> }): number => i.engines.reduce((a, e) => a + e.txPackets, 0);
    expect(sent(after) - sent(before)).toBe(0);
  });

  it('a lease that goes takes its direct route with it, and SIGTERM removes the rest', async () => {
    const gone = '10.244.78.0/24';
    await lab.etcd.etcdctl(['put', leaseKey(gone), JSON.stringify({ PublicIP: '198.18.0.8', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:58:0a:f4:4e:00' } })]);
    await waitFor(async () => (await nodes[0]!.ns.ip(['route', 'show', gone])).stdout.includes('via 198.18.0.8 dev eth0'), { timeoutMs: 5000, intervalMs: 100, what: `direct route to ${gone}` });
    await lab.etcd.etcdctl(['del', leaseKey(gone)]);
    await waitFor(async () => (await nodes[0]!.ns.ip(['route', 'show', gone])).stdout === '', { timeoutMs: 5000, intervalMs: 100, what: `direct route to ${gone} removed` });
    expect(await nodes[0]!.vxtun.stop()).toBe(0);
    expect((await nodes[0]!.ns.ip(['route', 'show', KERNEL_SUBNET])).stdout).toBe('');
  });
});
