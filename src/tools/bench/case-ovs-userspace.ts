/**
 * The `ovs-userspace` bench case: Open vSwitch's userspace datapath (`datapath_type=netdev`) on
 * both nodes, with flannel's VXLAN on the wire (VNI 1, udp 8472, inner MACs the nodes' VTEP MACs),
 * as OVS's "userspace tunneling" guide lays it out:
 *
 *   brphy (netdev): the node's eth0 as a port and the node's underlay address on brphy's own port,
 *     so the userspace tunnel's route (ovs/route, learnt from the kernel's table) goes out brphy;
 *     the peer's brphy MAC is set with tnl/arp/set. brphy's MAC is not eth0's: a frame for eth0's
 *     MAC would also reach the kernel, which answers VXLAN it has no socket for with port-unreachable.
 *   brint (netdev, fail-mode secure): the pod's veth (port 1) and a vxlan port (port 2); two flows
 *     route as a flannel node does: to the peer's lease, TTL − 1, VTEP MACs, out the tunnel; from the
 *     tunnel to the pod, TTL − 1, gateway and pod MACs. The pod reaches its gateway by a permanent
 *     neighbour entry (no ARP to answer).
 *
 * OVS forwards the pod's frames as they come: a veth with tx checksum offload on would hand it inner
 * checksums left partial (and OVS drops VXLAN whose outer UDP checksum a veth left partial), so tx
 * checksum offload is off on the pod's eth0 and the node's eth0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchCase } from './built-case.js';
import { buildTwoNodeCase, requirePrograms, type CaseNode } from './two-node-case.js';
import { WIRE } from './verify-wire.js';
import { OvsNode } from '../lab/ovs.js';
import { setOffloads } from '../lab/kernel-flannel.js';

const VXLAN_PORT = 8472;
const POD_PORT = 1;
const TUNNEL_PORT = 2;

/** brphy's MAC on node i: locally administered, distinct from every veth's. */
const brphyMac = (i: number): string => `02:00:c6:12:00:${i.toString(16).padStart(2, '0')}`;
/** The MAC the pod's gateway answers with (only ever in the pod's neighbour table and the flows). */
const gatewayMac = (i: number): string => `0a:58:0a:f4:${i.toString(16).padStart(2, '0')}:01`;

async function linkMac(node: CaseNode['ns'], dev: string): Promise<string> {
  const [link] = JSON.parse((await node.ip(['-j', 'link', 'show', 'dev', dev])).stdout) as { address: string }[];
  return link!.address;
}

async function setupOvsNode(node: CaseNode, ovs: OvsNode): Promise<void> {
  const { ns, pod, addr, peer, index } = node;
  await setOffloads(ns, 'eth0', { tx: false });
  await setOffloads(pod, 'eth0', { tx: false });

  await ovs.vsctl(['add-br', 'brphy', '--', 'set', 'bridge', 'brphy', 'datapath_type=netdev', 'fail-mode=standalone', `other_config:hwaddr=${brphyMac(index)}`]);
  await ovs.vsctl(['add-port', 'brphy', 'eth0']);
  await ns.ip(['addr', 'del', `${addr.publicIp}/24`, 'dev', 'eth0']);
  await ns.ip(['addr', 'add', `${addr.publicIp}/24`, 'dev', 'brphy']);
  await ns.ip(['link', 'set', 'brphy', 'up']);

  // The pod's veth moves from the CNI bridge to brint.
  const [hostVeth] = (JSON.parse((await ns.ip(['-j', 'link', 'show', 'master', 'cni0'])).stdout) as { ifname: string }[]).map((l) => l.ifname);
  await ns.ip(['link', 'set', hostVeth!, 'nomaster']);
  await ns.ip(['link', 'del', 'cni0']);
  await ovs.vsctl(['add-br', 'brint', '--', 'set', 'bridge', 'brint', 'datapath_type=netdev', 'fail-mode=secure']);
  await ovs.vsctl(['add-port', 'brint', hostVeth!, '--', 'set', 'interface', hostVeth!, `ofport_request=${POD_PORT}`]);
  await ovs.vsctl([
    'add-port', 'brint', 'vxlan0', '--', 'set', 'interface', 'vxlan0', 'type=vxlan', `ofport_request=${TUNNEL_PORT}`,
    `options:remote_ip=${peer.publicIp}`, `options:local_ip=${addr.publicIp}`, 'options:key=1', `options:dst_port=${VXLAN_PORT}`,
  ]);
  const podMac = await linkMac(pod, 'eth0');
  await pod.ip(['neigh', 'replace', addr.gateway, 'lladdr', gatewayMac(index), 'dev', 'eth0', 'nud', 'permanent']);
  await ovs.ofctl('add-flow', 'brint', [`ip,in_port=${POD_PORT},nw_dst=${peer.subnet},actions=dec_ttl,mod_dl_src:${addr.vtepMac},mod_dl_dst:${peer.vtepMac},output:${TUNNEL_PORT}`]);
  await ovs.ofctl('add-flow', 'brint', [`ip,in_port=${TUNNEL_PORT},nw_dst=${addr.podIp},actions=dec_ttl,mod_dl_src:${gatewayMac(index)},mod_dl_dst:${podMac},output:${POD_PORT}`]);
  await ovs.appctl(['tnl/arp/set', 'brphy', peer.publicIp, brphyMac(3 - index)]);
}

export const OVS_USERSPACE_CASE: BenchCase = {
  id: 'ovs-userspace',
  dataplane: 'OVS userspace (netdev)',
  title: 'Open vSwitch userspace datapath, VXLAN',
  description:
    `Open vSwitch's userspace datapath (datapath_type=netdev) on both nodes, its own ovsdb-server and ovs-vswitchd per node; VXLAN VNI 1 on udp ${VXLAN_PORT} (flannel's wire: VTEP MACs inside), ` +
    'two OpenFlow flows routing pod to tunnel and back, pods at the underlay MTU − 50. Tx checksum offload is off on the pods\' and nodes\' eth0: OVS forwards frames as the veth hands them, and drops VXLAN whose outer UDP checksum a veth left partial. The dataplane processes are the ovs-vswitchd',
  async build(say, env) {
    requirePrograms(['ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-ofctl', 'ovs-appctl'], 'openvswitch-switch');
    const dir = mkdtempSync(join(tmpdir(), 'vxtun-ovs-'));
    let removeDir = true;
    try {
      const built = await buildTwoNodeCase(say, env, {
        overhead: 50,
        stack: WIRE.vxlan(VXLAN_PORT),
        async setupNode(node) {
          if (removeDir) {
            // From here the topology owns the directory (also when the run is cut short by a signal).
            node.topology.atDestroy(() => rmSync(dir, { recursive: true, force: true }));
            removeDir = false;
          }
          const ovs = await OvsNode.start(node.ns, join(dir, `n${node.index}`));
          await setupOvsNode(node, ovs);
          return [{ role: `ovs-vswitchd node ${node.index}`, pid: ovs.vswitchd.pid! }];
        },
      });
      return built;
    } finally {
      if (removeDir) rmSync(dir, { recursive: true, force: true });
    }
  },
};
