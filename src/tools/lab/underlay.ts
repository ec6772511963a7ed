/** The lab's underlay: one L2 segment (a bridge in its own namespace) joining the nodes' eth0. */
import { assertUnderlay } from './addresses.js';
import { Netns, Topology } from './netns.js';

export interface UnderlayPort {
  node: Netns;
  ifname: string;
  ip: string;
  prefixLen: number;
  mtu: number;
  /** The veth end enslaved to the bridge, in the underlay namespace. */
  bridgePort: string;
}

export class Underlay {
  readonly bridge = 'br0';
  private ports = 0;
  private constructor(readonly ns: Netns) {}

  static async create(topology: Topology, suffix = 'ul'): Promise<Underlay> {
    const ns = await topology.netns(suffix);
    const ul = new Underlay(ns);
    await ns.ip(['link', 'add', ul.bridge, 'type', 'bridge']);
    await ns.ip(['link', 'set', ul.bridge, 'up']);
    return ul;
  }

  /** Connects `node` by a veth pair: `ifname` (default eth0) in the node with `ip/prefixLen`, the other end on the bridge. */
  async attach(
    node: Netns,
    ip: string,
    opts: { mtu?: number; prefixLen?: number; ifname?: string } = {},
  ): Promise<UnderlayPort> {
    assertUnderlay(ip);
    const mtu = opts.mtu ?? 1500;
    const prefixLen = opts.prefixLen ?? 24;
    const ifname = opts.ifname ?? 'eth0';
    const bridgePort = `p${++this.ports}`;
    await this.ns.ip(['link', 'add', bridgePort, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', ifname, 'mtu', String(mtu), 'netns', node.name]);
    await this.ns.ip(['link', 'set', bridgePort, 'master', this.bridge, 'up']);
    await node.ip(['addr', 'add', `${ip}/${prefixLen}`, 'dev', ifname]);
    await node.ip(['link', 'set', ifname, 'up']);
    return { node, ifname, ip, prefixLen, mtu, bridgePort };
  }
}
