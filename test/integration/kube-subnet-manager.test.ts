/**
 * Issue 17 (b): `vxtun up` with flanneld's own kube arguments only (--kube-subnet-mgr,
 * --kube-api-url, --net-config-path, --iface, --subnet-file; NODE_NAME in the environment), against
 * the stand-in API server: it keeps the VtepMAC a previous run left in backend-data, publishes
 * flannel's annotations and NetworkUnavailable=False on its node, learns a kernel VXLAN node from
 * that node's annotations, and the kernel node is programmed from vxtun's annotations exactly as
 * flanneld would program it; pods exchange pings and TCP both ways. The kernel node's Node object
 * deleted, vxtun drops the route; added back, traffic flows again. A namespace has its own loopback:
 * a small relay in the node's namespace carries its 127.0.0.1 to the API server's unix socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Topology, type Netns } from '../../src/tools/lab/netns.js';
import { Underlay } from '../../src/tools/lab/underlay.js';
import { addPod } from '../../src/tools/lab/pods.js';
import { createKernelFlannelNode, addKernelPeer } from '../../src/tools/lab/kernel-flannel.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { parseSubnetEnv } from '../../src/control/subnet-env.js';
import { FakeKubeApiServer, type KubeNode } from '../support/kube-apiserver.js';
import { requirePrerequisites, tcpTransfer, ping } from '../support/integration.js';

const PREFIX = 'flannel.alpha.coreos.com/';
const RELAY_PORT = 6443;
/** 127.0.0.1:<port> in the namespace it runs in -> the unix socket in argv[1]. */
const RELAY = `const net = require('node:net');
net.createServer((c) => { const a = net.connect(process.argv[1]); c.pipe(a).pipe(c); c.on('error', () => a.destroy()); a.on('error', () => c.destroy()); })
  .listen(${RELAY_PORT}, '127.0.0.1', () => process.stdout.write('relay up\\n'));`;
const KERNEL_MAC = '0a:58:0a:f4:02:00';
const VXTUN_MAC = '0a:58:0a:f4:01:00';

/** The kernel node's Node object as flanneld on it would have annotated it. */
function kernelNodeObject(): KubeNode {
  return {
    metadata: {
      name: 'k-2',
      annotations: {
        [`${PREFIX}backend-data`]: `{"VNI":1,"VtepMAC":"${KERNEL_MAC}"}`,
        [`${PREFIX}backend-type`]: 'vxlan',
        [`${PREFIX}kube-subnet-manager`]: 'true',
        [`${PREFIX}public-ip`]: '198.18.0.2',
      },
    },
    spec: { podCIDR: '10.244.2.0/24', podCIDRs: ['10.244.2.0/24'] },
  };
}

/** The peers of the last "routes updated" log line, as JSON. */
function lastRoutes(lines: readonly string[]): string | undefined {
  const last = lines.filter((l) => l.includes('"msg":"routes updated"')).at(-1);
  return last ? JSON.stringify((JSON.parse(last) as { peers: string[] }).peers) : undefined;
}

describe('kube subnet manager: vxtun and a kernel flannel node programmed from node annotations', () => {
  const topology = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-kube-'));
  let api: FakeKubeApiServer;
  let n2: Netns;
  let pod1: Netns;
  let pod2: Netns;
  let node: ChildProcess;
  const lines: string[] = [];

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping']);
    api = await new FakeKubeApiServer().start(join(dir, 'api.sock'));
    writeFileSync(join(dir, 'net-conf.json'), '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    const underlay = await Underlay.create(topology);
    const n1 = await topology.netns('n1');
    n2 = await topology.netns('n2');
    await underlay.attach(n1, '198.18.0.1');
    await underlay.attach(n2, '198.18.0.2');
    pod1 = await addPod(n1, { name: 'n1pod', gatewayCidr: '10.244.1.1/24', podIp: '10.244.1.2/24' });
    pod2 = await addPod(n2, { name: 'n2pod', gatewayCidr: '10.244.2.1/24', podIp: '10.244.2.2/24' });
    await createKernelFlannelNode(n2, { publicIp: '198.18.0.2', subnet: '10.244.2.0/24', vtepMac: KERNEL_MAC });
    // A previous run's VtepMAC in backend-data: kept, so peers' FDB entries stay right.
    api.addNode({ metadata: { name: 'vx-1', annotations: { [`${PREFIX}backend-data`]: `{"VNI":1,"VtepMAC":"${VXTUN_MAC}"}` } }, spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] }, status: { conditions: [] } });
    api.addNode(kernelNodeObject());

    const relay = n1.spawn([process.execPath, '-e', RELAY, join(dir, 'api.sock')]);
    await new Promise<void>((resolve, reject) => {
      relay.stdout!.once('data', () => resolve());
      relay.once('exit', (code) => reject(new Error(`relay exited ${code}`)));
    });
    node = n1.spawn(
      [process.execPath, cliPath, 'up', '--kube-subnet-mgr', `--kube-api-url=http://127.0.0.1:${RELAY_PORT}`, '--net-config-path', join(dir, 'net-conf.json'), '--iface=eth0', `--subnet-file=${join(dir, 'subnet.env')}`, '--datapath', 'ts'],
      { env: { ...process.env, NODE_NAME: 'vx-1' } },
    );
    let stderr = '';
    node.stdout!.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
    node.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    await waitFor(() => lines.some((l) => l.includes('"msg":"vxtun up"')), { timeoutMs: 20_000, what: 'vxtun up --kube-subnet-mgr ready' }).catch((err: Error) => {
      throw new Error(`${err.message}: ${stderr} ${lines.join('\n')}`);
    });

    // flanneld on the kernel node, learning vxtun from its Node object.
    const vx = api.node('vx-1')!;
    const ann = vx.metadata.annotations!;
    const data = JSON.parse(ann[`${PREFIX}backend-data`]!) as { VtepMAC: string };
    await addKernelPeer(n2, { subnet: vx.spec!.podCIDR!, publicIp: ann[`${PREFIX}public-ip`]!, vtepMac: data.VtepMAC });
  });

  afterAll(async () => {
    if (node && node.exitCode === null) {
      node.kill('SIGTERM');
      await new Promise((r) => node.once('exit', r));
    }
    await api?.stop();
    await topology.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes flannel's annotations and condition on its node", () => {
    const vx = api.node('vx-1')!;
    expect(vx.metadata.annotations).toEqual({
      [`${PREFIX}backend-data`]: `{"VNI":1,"VtepMAC":"${VXTUN_MAC}"}`,
      [`${PREFIX}backend-type`]: 'vxlan',
      [`${PREFIX}kube-subnet-manager`]: 'true',
      [`${PREFIX}public-ip`]: '198.18.0.1',
    });
    expect(vx.status!.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([['NetworkUnavailable', 'False', 'FlannelIsUp']]);
    expect(api.patches.map((p) => p.contentType)).toEqual(['application/strategic-merge-patch+json', 'application/strategic-merge-patch+json']);
    // The lease's subnet is the node's podCIDR, written for the CNI plugin.
    expect(parseSubnetEnv(readFileSync(join(dir, 'subnet.env'), 'utf8'))).toMatchObject({ FLANNEL_NETWORK: '10.244.0.0/16', FLANNEL_SUBNET: '10.244.1.1/24' });
  });

  it('pods on vxtun and on the kernel node exchange pings and TCP both ways', async () => {
    const there = await ping(pod1, '10.244.2.2');
    expect(there.code, there.out).toBe(0);
    const back = await ping(pod2, '10.244.1.2');
    expect(back.code, back.out).toBe(0);
    for (const [from, to, ip] of [[pod1, pod2, '10.244.2.2'], [pod2, pod1, '10.244.1.2']] as const) {
      const t = await tcpTransfer(from, to, ip, 4 * 1024 * 1024);
      expect(t.received).toEqual(t.sent);
      expect(t.sent.bytes).toBe(4 * 1024 * 1024);
    }
  });

  it("follows the kernel node's Node object: deleted, no route; back, traffic again", async () => {
    api.deleteNode('k-2');
    await waitFor(() => lastRoutes(lines) === '[]', { timeoutMs: 10_000, what: 'vxtun dropping the route' });
    const gone = await ping(pod1, '10.244.2.2', ['-c', '1']);
    expect(gone.code).not.toBe(0);
    api.addNode(kernelNodeObject());
    await waitFor(() => lastRoutes(lines) === '["10.244.2.0/24@198.18.0.2"]', { timeoutMs: 10_000, what: 'vxtun learning the node again' });
    const again = await ping(pod1, '10.244.2.2');
    expect(again.code, again.out).toBe(0);
  });
});
