/** The lab's underlay: one L2 segment (a bridge in its own namespace) joining the nodes' eth0. */
import { assertUnderlay } from './addresses.js';
import { Netns, Topology } from './netns.js';

/** `veth`: as veth gives it; `link`: segmentation offloads off and GRO on at every port, as a NIC behaves. */
export type WireMode = 'veth' | 'link';

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
  private portCount = 0;
  private readonly ports: UnderlayPort[] = [];
  private constructor(
    readonly ns: Netns,
    readonly wire: WireMode,
  ) {}

  static async create(topology: Topology, suffix = 'ul', opts: { wire?: WireMode } = {}): Promise<Underlay> {
    const ns = await topology.netns(suffix);
    const ul = new Underlay(ns, opts.wire ?? 'veth');
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
    const bridgePort = `p${++this.portCount}`;
    await this.ns.ip(['link', 'add', bridgePort, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', ifname, 'mtu', String(mtu), 'netns', node.name]);
    await this.ns.ip(['link', 'set', bridgePort, 'master', this.bridge, 'up']);
    if (this.wire === 'link') {
      await this.ns.execOk(['ethtool', '-K', bridgePort, ...LINK_FEATURES]);
      await node.execOk(['ethtool', '-K', ifname, ...LINK_FEATURES]);
    }
    await node.ip(['addr', 'add', `${ip}/${prefixLen}`, 'dev', ifname]);
    await node.ip(['link', 'set', ifname, 'up']);
    const port = { node, ifname, ip, prefixLen, mtu, bridgePort };
    this.ports.push(port);
    return port;
  }

  /** The bridge port `node` is attached by: where a capture sees every frame to and from that node. */
  portOf(node: Netns): string {
    const port = this.ports.find((p) => p.node === node);
    if (!port) throw new Error(`${node.name} is not attached to the underlay ${this.ns.name}`);
    return port.bridgePort;
  }
}

/**
 * A link wire: every segmentation offload off, so the sender's kernel cuts TCP, UDP (USO) and
 * encapsulated super-packets into MTU-sized frames before they cross; GRO on, so the receiver
 * coalesces them again as a NIC driver's NAPI poll would.
 */
const LINK_FEATURES = [
  'tso', 'off', 'gso', 'off', 'gro', 'on',
  'tx-udp-segmentation', 'off', 'tx-gso-list', 'off',
  'tx-udp_tnl-segmentation', 'off', 'tx-udp_tnl-csum-segmentation', 'off',
  'tx-gre-segmentation', 'off', 'tx-gre-csum-segmentation', 'off',
  'tx-ipxip4-segmentation', 'off', 'tx-ipxip6-segmentation', 'off',
];
