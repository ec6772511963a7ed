/**
 * The `udp-proxy-c` bench case: on both nodes, a C udp proxy in flannel's udp-backend design (one
 * read and one sendto per packet), written for vxtun — not flannel's code (src/tools/lab/udp-proxy-c.ts).
 * It is the classic one-packet-per-syscall baseline that vxtun's batched udp backend is measured
 * against. Same shape as the other cases: two nodes on one underlay bridge, a pod on each (MTU 1472,
 * the MTU a flannel udp network gives pods on a 1500-byte underlay).
 */
import { Topology } from '../lab/netns.js';
import { Underlay } from '../lab/underlay.js';
import { addPod } from '../lab/pods.js';
import { nodeAddressing } from '../lab/cluster.js';
import { UdpProxyCNode, buildUdpProxyC } from '../lab/udp-proxy-c.js';
import type { BuiltCase, CaseEnv } from './built-case.js';


export async function buildUdpProxyCCase(say: (line: string) => void, env: CaseEnv): Promise<BuiltCase> {
  const podMtu = env.mtu - 28;
  await buildUdpProxyC();
  const topology = new Topology();
  const proxies: UdpProxyCNode[] = [];
  const destroy = async (): Promise<void> => {
    await Promise.all(proxies.map((p) => p.stop()));
    await topology.destroy();
  };
  try {
    const underlay = await Underlay.create(topology, 'ul', { wire: env.wire });
    const addrs = [nodeAddressing(1), nodeAddressing(2)];
    const pods = [];
    for (let k = 0; k < 2; k++) {
      const a = addrs[k]!;
      const peer = addrs[1 - k]!;
      const ns = await topology.netns(`n${k + 1}`);
      await underlay.attach(ns, a.publicIp, { mtu: env.mtu });
      pods.push(await addPod(ns, { name: `n${k + 1}pod`, gatewayCidr: `${a.gateway}/24`, podIp: `${a.podIp}/24`, mtu: podMtu }));
      const proxy = await UdpProxyCNode.start(ns, { publicIp: a.publicIp, subnet: a.subnet, peers: [{ subnet: peer.subnet, publicIp: peer.publicIp }] });
      proxies.push(proxy);
      say(`node ${k + 1} (${ns.name}): C udp proxy on ${proxy.device}, ${a.vtepIp}/16, MTU ${proxy.mtu}, underlay ${a.publicIp}:8285`);
    }
    return {
      client: pods[0]!,
      server: pods[1]!,
      serverIp: addrs[1]!.podIp,
      namespacePrefix: topology.prefix,
      dataplane: proxies.map((p, k) => ({ role: `C udp proxy node ${k + 1}`, pid: p.child.pid! })),
      datapaths: [],
      destroy,
    };
  } catch (err) {
    await destroy().catch(() => {});
    throw err;
  }
}
