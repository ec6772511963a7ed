/** Pods, as the CNI bridge plugin wires them: a veth from the pod's eth0 into bridge cni0 in the node. */
import { assertPodV4, assertPodV6, splitCidr } from './addresses.js';
import { run } from './exec.js';
import { enableIpv4Forwarding, enableIpv6Forwarding } from './kernel-flannel.js';
import { Netns } from './netns.js';

export interface PodOptions {
  /** Namespace suffix (full name when the node has no topology). */
  name: string;
  /** Address of the bridge, e.g. `10.244.1.1/24`. */
  gatewayCidr: string;
  /** The pod's address, e.g. `10.244.1.2/24`. */
  podIp: string;
  /** Routed via the gateway (never a default route). */
  network?: string;
  bridge?: string;
  /** MTU of the veth pair (the CNI plugin uses FLANNEL_MTU). */
  mtu?: number;
  gatewayCidr6?: string;
  podIp6?: string;
  network6?: string;
}

const podCounters = new WeakMap<Netns, number>();

export async function addPod(node: Netns, opts: PodOptions): Promise<Netns> {
  const bridge = opts.bridge ?? 'cni0';
  const network = opts.network ?? '10.244.0.0/16';
  const mtu = opts.mtu ?? 1450;
  const gw = splitCidr(opts.gatewayCidr);
  const pod = splitCidr(opts.podIp, gw.len);
  for (const a of [gw.ip, pod.ip, splitCidr(network).ip]) assertPodV4(a);
  const v6 = opts.podIp6 !== undefined && opts.gatewayCidr6 !== undefined;
  if (v6) for (const a of [opts.podIp6!, opts.gatewayCidr6!, opts.network6 ?? 'fd00::']) assertPodV6(a);

  const podNs = node.topology ? await node.topology.netns(opts.name) : await Netns.create(opts.name);
  if ((await run(['ip', '-n', node.name, 'link', 'show', 'dev', bridge])).code !== 0) {
    await node.ip(['link', 'add', bridge, 'type', 'bridge']);
    await node.ip(['link', 'set', bridge, 'up']);
  }
  await node.ip(['addr', 'replace', `${gw.ip}/${gw.len}`, 'dev', bridge]);
  if (v6) await node.ip(['-6', 'addr', 'replace', opts.gatewayCidr6!, 'dev', bridge, 'nodad']);
  const n = (podCounters.get(node) ?? 0) + 1;
  podCounters.set(node, n);
  const hostIf = `veth${n}`;
  await node.ip(['link', 'add', hostIf, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', podNs.name]);
  await node.ip(['link', 'set', hostIf, 'master', bridge, 'up']);
  await podNs.ip(['addr', 'add', `${pod.ip}/${pod.len}`, 'dev', 'eth0']);
  if (v6) await podNs.ip(['-6', 'addr', 'add', opts.podIp6!, 'dev', 'eth0', 'nodad']);
  await podNs.ip(['link', 'set', 'eth0', 'up']);
  await podNs.ip(['route', 'add', network, 'via', gw.ip, 'dev', 'eth0']);
  if (v6 && opts.network6 !== undefined) {
    await podNs.ip(['-6', 'route', 'add', opts.network6, 'via', splitCidr(opts.gatewayCidr6!).ip, 'dev', 'eth0']);
  }
  await enableIpv4Forwarding(node);
  if (v6) await enableIpv6Forwarding(node);
  return podNs;
}
