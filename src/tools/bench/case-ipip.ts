/**
 * The `ipip` bench case: the kernel's IP-in-IP tunnel (ip.proto 4) between the two nodes, pods
 * routed over it; no UDP and no inner Ethernet header, so 20 bytes of overhead.
 */
import type { BenchCase } from './built-case.js';
import { addKernelLink, buildTwoNodeCase, routeThroughDevice } from './two-node-case.js';
import { WIRE } from './verify-wire.js';

export const IPIP_CASE: BenchCase = {
  id: 'ipip',
  dataplane: 'kernel IP-in-IP',
  title: 'kernel IP-in-IP (ipip)',
  description: "Linux's ipip device on both nodes (IPv4 in IPv4, protocol 4), pods routed over it at the underlay MTU − 20: the lightest encapsulation the kernel has, no UDP (so no flow entropy for the underlay's hashing)",
  build: (say, env) =>
    buildTwoNodeCase(say, env, {
      overhead: 20,
      stack: WIRE.ipip(),
      async setupNode(node) {
        await addKernelLink(node.ns, ['ipip1', 'type', 'ipip', 'local', node.addr.publicIp, 'remote', node.peer.publicIp], 'ipip device (CONFIG_NET_IPIP)');
        await routeThroughDevice(node, 'ipip1');
        return [];
      },
    }),
};
