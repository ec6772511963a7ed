/**
 * The `geneve` bench case: the kernel's Geneve device between the two nodes (udp 6081, VNI 1,
 * Ethernet inside as VXLAN has it), pods routed over it the way flannel routes over flannel.1:
 * `<lease>.0/32` on the device, a permanent neighbour and an onlink route per peer; 50 bytes of overhead.
 */
import type { BenchCase } from './built-case.js';
import { addKernelLink, buildTwoNodeCase } from './two-node-case.js';
import { WIRE } from './verify-wire.js';

export const GENEVE_PORT = 6081;

export const GENEVE_CASE: BenchCase = {
  id: 'geneve',
  dataplane: 'kernel Geneve',
  title: 'kernel Geneve',
  description: `Linux's geneve device on both nodes (udp ${GENEVE_PORT}, VNI 1, one remote), programmed as flannel programs flannel.1 (neighbour, onlink route), pods at the underlay MTU − 50: VXLAN's overhead in the encapsulation OVN uses`,
  build: (say, env) =>
    buildTwoNodeCase(say, env, {
      overhead: 50,
      stack: WIRE.geneve(GENEVE_PORT),
      async setupNode(node) {
        const { ns, addr, peer } = node;
        await addKernelLink(ns, ['gnv1', 'type', 'geneve', 'id', '1', 'remote', peer.publicIp, 'dstport', String(GENEVE_PORT)], 'geneve device (CONFIG_GENEVE)');
        await ns.ip(['link', 'set', 'gnv1', 'address', addr.vtepMac, 'mtu', String(node.podMtu), 'up']);
        await ns.ip(['addr', 'add', `${addr.vtepIp}/32`, 'dev', 'gnv1']);
        await ns.ip(['neigh', 'replace', peer.vtepIp, 'lladdr', peer.vtepMac, 'dev', 'gnv1', 'nud', 'permanent']);
        await ns.ip(['route', 'replace', peer.subnet, 'via', peer.vtepIp, 'dev', 'gnv1', 'onlink']);
        return [];
      },
    }),
};
