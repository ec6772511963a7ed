/**
 * The shape every encapsulating bench case shares, for the cases that are not vxtun clusters: two
 * nodes on one underlay bridge (nodeAddressing(1) and (2)), a pod on each wired as the CNI bridge
 * plugin wires it, and a dataplane per node that the case sets up; traffic from node 1's pod to
 * node 2's pod, verified on node 1's underlay port before anything is measured.
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { release } from 'node:os';
import { Topology, type Netns } from '../lab/netns.js';
import { Underlay } from '../lab/underlay.js';
import { addPod } from '../lab/pods.js';
import { nodeAddressing } from '../lab/cluster.js';
import { CommandError } from '../lab/exec.js';
import { UnsupportedCase, type BuiltCase, type CaseEnv } from './built-case.js';
import { verifyWire, type WireStack } from './verify-wire.js';

export type NodeAddressing = ReturnType<typeof nodeAddressing>;

export interface CaseNode {
  /** 1 or 2. */
  index: number;
  ns: Netns;
  addr: NodeAddressing;
  peer: NodeAddressing;
  pod: Netns;
  /** The pods' MTU, also the tunnel device's. */
  podMtu: number;
  topology: Topology;
}

export interface TwoNodeCaseSpec {
  /** Encapsulation overhead: the pods' MTU is the underlay MTU minus this. */
  overhead: number;
  /** What the pods' packets must look like on the underlay. */
  stack: WireStack;
  /** Sets up one node's dataplane (its underlay port and pod exist); returns its dataplane processes. */
  setupNode(node: CaseNode): Promise<BuiltCase['dataplane']>;
  /** Runs before the topology is destroyed (e.g. stopping processes that clean up on SIGTERM). */
  stop?(): Promise<void>;
}

export async function buildTwoNodeCase(say: (line: string) => void, env: CaseEnv, spec: TwoNodeCaseSpec): Promise<BuiltCase> {
  const topology = new Topology();
  const destroy = async (): Promise<void> => {
    await spec.stop?.();
    await topology.destroy();
  };
  try {
    const underlay = await Underlay.create(topology, 'ul', { wire: env.wire });
    const podMtu = env.mtu - spec.overhead;
    const dataplane: BuiltCase['dataplane'] = [];
    const nodes: CaseNode[] = [];
    for (const index of [1, 2]) {
      const addr = nodeAddressing(index);
      const ns = await topology.netns(`n${index}`);
      await underlay.attach(ns, addr.publicIp, { mtu: env.mtu });
      const pod = await addPod(ns, { name: `n${index}pod`, gatewayCidr: `${addr.gateway}/24`, podIp: `${addr.podIp}/24`, mtu: podMtu });
      const node = { index, ns, addr, peer: nodeAddressing(3 - index), pod, podMtu, topology };
      dataplane.push(...(await spec.setupNode(node)));
      nodes.push(node);
      say(`node ${index} (${ns.name}): ${spec.stack.name}, pod ${addr.podIp} MTU ${podMtu}, underlay ${addr.publicIp} MTU ${env.mtu}`);
    }
    const [client, server] = nodes as [CaseNode, CaseNode];
    return {
      client: client.pod,
      server: server.pod,
      serverIp: server.addr.podIp,
      namespacePrefix: topology.prefix,
      dataplane,
      datapaths: [],
      verify: () => verifyWire({ underlay, clientNode: client.ns, client: client.pod, serverIp: server.addr.podIp, stack: spec.stack }),
      destroy,
    };
  } catch (err) {
    await destroy().catch(() => {});
    throw err;
  }
}

/**
 * `ip link add <args>` in `ns`; a kernel without the device type (e.g. built without CONFIG_GENEVE,
 * no module to load) is UnsupportedCase "unavailable: ...", any other refusal an error.
 */
export async function addKernelLink(ns: Netns, args: string[], what: string): Promise<void> {
  try {
    await ns.ip(['link', 'add', ...args]);
  } catch (err) {
    if (err instanceof CommandError && /Unknown device type|not supported/i.test(err.stderr)) {
      throw new UnsupportedCase(`unavailable: this kernel (${release()}) has no ${what}`);
    }
    throw err;
  }
}

/** A case whose programs are not installed is UnsupportedCase "unavailable: ...", naming the Debian package (scripts/install-deps.sh installs them). */
export function requirePrograms(programs: string[], debianPackage: string): void {
  const path = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const missing = programs.filter((p) => !path.some((dir) => existsSync(join(dir, p))));
  if (missing.length > 0) throw new UnsupportedCase(`unavailable: ${missing.join(', ')} not installed (Debian package ${debianPackage})`);
}

/** Routes the peer's lease through an L3 tunnel device (ipip, fou, wireguard): the device's own address is the node's `<lease>.0`/32, as flannel numbers it. */
export async function routeThroughDevice(node: CaseNode, dev: string): Promise<void> {
  await node.ns.ip(['link', 'set', dev, 'mtu', String(node.podMtu), 'up']);
  await node.ns.ip(['addr', 'add', `${node.addr.vtepIp}/32`, 'dev', dev]);
  await node.ns.ip(['route', 'add', node.peer.subnet, 'dev', dev]);
}
