/**
 * The `udp-proxy-c` bench case: on both nodes, a C udp proxy in flannel's udp-backend design (one
 * read and one sendto per packet), written for vxtun — not flannel's code (src/tools/lab/udp-proxy-c.ts).
 * It is the classic one-packet-per-syscall baseline that vxtun's batched udp backend is measured
 * against. Same shape as the other cases: two nodes on one underlay bridge, a pod on each (MTU 1472,
 * the MTU a flannel udp network gives pods on a 1500-byte underlay).
 */
import { UdpProxyCNode, UDP_PROXY_C_PORT, buildUdpProxyC } from '../lab/udp-proxy-c.js';
import type { BuiltCase, CaseEnv } from './built-case.js';
import { buildTwoNodeCase } from './two-node-case.js';
import { WIRE } from './verify-wire.js';

export async function buildUdpProxyCCase(say: (line: string) => void, env: CaseEnv): Promise<BuiltCase> {
  await buildUdpProxyC();
  const proxies: UdpProxyCNode[] = [];
  return buildTwoNodeCase(say, env, {
    overhead: 28,
    stack: WIRE.ipInUdp(UDP_PROXY_C_PORT, "flannel's udp format"),
    async setupNode({ ns, addr, peer, index }) {
      const proxy = await UdpProxyCNode.start(ns, { publicIp: addr.publicIp, subnet: addr.subnet, peers: [{ subnet: peer.subnet, publicIp: peer.publicIp }] });
      proxies.push(proxy);
      say(`node ${index} (${ns.name}): C udp proxy on ${proxy.device}, ${addr.vtepIp}/16, MTU ${proxy.mtu}, underlay ${addr.publicIp}:${UDP_PROXY_C_PORT}`);
      return [{ role: `C udp proxy node ${index}`, pid: proxy.child.pid! }];
    },
    stop: async () => void (await Promise.all(proxies.map((p) => p.stop()))),
  });
}
