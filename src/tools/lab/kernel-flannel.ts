/** Kernel VXLAN set up exactly as flanneld's vxlan backend does it (flannel.<VNI>, permanent neighbours, FDB, onlink routes). */
import { assertMac, assertPodV4, assertPodV6, assertUnderlay, assertUnderlay6, networkAddress, splitCidr } from './addresses.js';
import { run } from './exec.js';
import { Netns } from './netns.js';

//
// flannel-io/flannel pkg/backend/vxlan/vxlan.go (RegisterNetwork) and device.go (newVXLANDevice):
// a netlink.Vxlan link `flannel.<VNI>` with VtepDevIndex = the external interface, SrcAddr = its
// address, Port = the configured port (0 -> the kernel default 8472), Learning = false, a random
// MAC, MTU = external MTU − 50; accept_ra=0; address `<lease subnet IP>/32` ("so that no broadcast
// routes are created"), link up.
// Per remote lease, vxlan_network.go handleSubnetEvents (in this order):
//   AddARP: NeighSet{State: NUD_PERMANENT, Type: RTN_UNICAST, IP: <subnet>.0, MAC: VtepMAC}
//   AddFDB: NeighSet{Family: AF_BRIDGE, Flags: NTF_SELF, State: NUD_PERMANENT, IP: PublicIP, MAC: VtepMAC}
//   route:  RouteReplace{Dst: <subnet>, Gw: <subnet>.0, LinkIndex: flannel.<VNI>, Flags: ONLINK}
// NeighSet is RTM_NEWNEIGH with NLM_F_CREATE|NLM_F_REPLACE, i.e. `ip neigh replace` and
// `bridge fdb replace` (not `append`, which would add a second remote for the same MAC).

export interface KernelFlannelOptions {
  publicIp: string;
  /** The node's lease, e.g. `10.244.1.0/24`. */
  subnet: string;
  vtepMac: string;
  vni?: number;
  port?: number;
  dev?: string;
  underlayDev?: string;
  /** Default: MTU of underlayDev − 50. */
  mtu?: number;
  /** Optional inner IPv6 address with prefix, e.g. `fd00:244:1::/128` (inner IPv6 over the IPv4 underlay). */
  ipv6Address?: string;
}

export interface KernelFlannelNode {
  ns: Netns;
  dev: string;
  publicIp: string;
  subnet: string;
  /** `<subnet>.0`, the address on the device. */
  address: string;
  vtepMac: string;
  vni: number;
  port: number;
  mtu: number;
}

export async function createKernelFlannelNode(ns: Netns, opts: KernelFlannelOptions): Promise<KernelFlannelNode> {
  assertUnderlay(opts.publicIp);
  assertMac(opts.vtepMac);
  const address = networkAddress(opts.subnet);
  assertPodV4(address);
  const vni = opts.vni ?? 1;
  const port = opts.port ?? 8472;
  const dev = opts.dev ?? `flannel.${vni}`;
  const underlayDev = opts.underlayDev ?? 'eth0';
  const mtu = opts.mtu ?? (await ns.linkMtu(underlayDev)) - 50;
  await ns.ip(['link', 'add', dev, 'type', 'vxlan', 'id', String(vni), 'local', opts.publicIp, 'dev', underlayDev, 'dstport', String(port), 'nolearning']);
  await ns.ip(['link', 'set', dev, 'address', opts.vtepMac, 'mtu', String(mtu)]);
  await ns.sysctl(`net/ipv6/conf/${dev}/accept_ra`, 0); // slash form: the device name contains a dot
  await ns.ip(['addr', 'add', `${address}/32`, 'dev', dev]);
  if (opts.ipv6Address !== undefined) {
    assertPodV6(opts.ipv6Address);
    await ns.ip(['addr', 'add', opts.ipv6Address, 'dev', dev, 'nodad']);
  }
  await ns.ip(['link', 'set', dev, 'up']);
  return { ns, dev, publicIp: opts.publicIp, subnet: opts.subnet, address, vtepMac: opts.vtepMac, vni, port, mtu };
}

export interface KernelPeer {
  /** The peer's lease, e.g. `10.244.2.0/24`. */
  subnet: string;
  publicIp: string;
  vtepMac: string;
  dev?: string;
  /** UDP port for this FDB entry (default: the device's dstport). */
  port?: number;
}

/** Programs one remote lease the way flanneld does: permanent ARP, permanent FDB, onlink route. */
export async function addKernelPeer(ns: Netns, peer: KernelPeer): Promise<void> {
  assertUnderlay(peer.publicIp);
  assertMac(peer.vtepMac);
  const dev = peer.dev ?? 'flannel.1';
  const gw = networkAddress(peer.subnet);
  assertPodV4(gw);
  await ns.ip(['neigh', 'replace', gw, 'lladdr', peer.vtepMac, 'dev', dev, 'nud', 'permanent']);
  const fdb = ['fdb', 'replace', peer.vtepMac, 'dev', dev, 'dst', peer.publicIp, 'self', 'permanent'];
  if (peer.port !== undefined) fdb.push('port', String(peer.port));
  await ns.bridge(fdb);
  await ns.ip(['route', 'replace', `${gw}/${splitCidr(peer.subnet).len}`, 'via', gw, 'dev', dev, 'onlink']);
}

/**
 * A remote lease as flanneld programs it with "DirectRouting": true when the peer's PublicIP is on
 * the underlay's own subnet (vxlan_network.go): `<subnet> via <PublicIP> dev <underlayDev>`, no
 * neighbour, FDB entry or route through flannel.<VNI>.
 */
export async function addKernelDirectPeer(ns: Netns, peer: { subnet: string; publicIp: string; underlayDev?: string }): Promise<void> {
  assertUnderlay(peer.publicIp);
  const { ip: net, len } = splitCidr(peer.subnet);
  assertPodV4(net);
  await ns.ip(['route', 'replace', `${net}/${len}`, 'via', peer.publicIp, 'dev', peer.underlayDev ?? 'eth0']);
}

/** Strict reverse-path filtering on every interface of `ns` (the kernel applies the larger of `all` and the interface's value). */
export async function strictReversePath(ns: Netns): Promise<void> {
  await ns.sysctl('net.ipv4.conf.all.rp_filter', 1);
  await ns.sysctl('net.ipv4.conf.default.rp_filter', 1);
}

/** Undoes addKernelPeer (flanneld's EventRemoved): neighbour, FDB entry and route. Missing entries are ignored. */
export async function removeKernelPeer(ns: Netns, peer: KernelPeer): Promise<void> {
  const dev = peer.dev ?? 'flannel.1';
  const gw = networkAddress(peer.subnet);
  await run(['ip', '-n', ns.name, 'route', 'del', `${gw}/${splitCidr(peer.subnet).len}`, 'dev', dev]);
  await run(['ip', '-n', ns.name, 'neigh', 'del', gw, 'dev', dev]);
  await run(['bridge', '-n', ns.name, 'fdb', 'del', peer.vtepMac, 'dev', dev, 'dst', peer.publicIp, 'self']);
}

/**
 * Inner IPv6 towards a peer whose FDB entry already exists (addKernelPeer): permanent neighbour
 * `<subnet6 network>` -> vtepMac and route `subnet6 via <network> dev <dev> onlink`. (flanneld itself
 * uses a separate flannel-v6.<VNI> device over an IPv6 underlay; this is the same shape on one device.)
 */
export async function addKernelPeerV6(ns: Netns, peer: { subnet6: string; vtepMac: string; dev?: string }): Promise<void> {
  const dev = peer.dev ?? 'flannel.1';
  const { ip: gw, len } = splitCidr(peer.subnet6);
  assertPodV6(gw);
  assertMac(peer.vtepMac);
  await ns.ip(['-6', 'neigh', 'replace', gw, 'lladdr', peer.vtepMac, 'dev', dev, 'nud', 'permanent']);
  await ns.ip(['-6', 'route', 'replace', `${gw}/${len}`, 'via', gw, 'dev', dev, 'onlink']);
}

//
// Dual-stack (EnableIPv6), vxlan.go RegisterNetwork and vxlan_network.go handleSubnetEvents: a second
// device `flannel-v6.<VNI>` with SrcAddr = the external interface's IPv6 address (VXLAN over the IPv6
// underlay, overhead 70), its own random MAC (the lease's BackendV6Data VtepMAC), address
// `<lease IPv6 subnet IP>/128`; per remote dual-stack lease AddV6ARP (permanent neighbour
// `<subnet6 IP>` -> BackendV6Data VtepMAC), AddV6FDB (permanent FDB VtepMAC -> PublicIPv6) and
// RouteReplace `<subnet6> via <subnet6 IP> dev flannel-v6.<VNI> onlink`.

export interface KernelFlannelV6Options {
  publicIpv6: string;
  /** The node's IPv6 lease subnet, e.g. `fd00:10:244:1::/64`. */
  subnet6: string;
  vtepMac6: string;
  vni?: number;
  port?: number;
  underlayDev?: string;
}

/** Creates flannel-v6.<VNI> as flanneld does; returns its name. */
export async function createKernelFlannelV6Device(ns: Netns, opts: KernelFlannelV6Options): Promise<string> {
  assertUnderlay6(opts.publicIpv6);
  assertMac(opts.vtepMac6);
  const { ip: subnetIp } = splitCidr(opts.subnet6);
  assertPodV6(subnetIp);
  const vni = opts.vni ?? 1;
  const dev = `flannel-v6.${vni}`;
  const underlayDev = opts.underlayDev ?? 'eth0';
  const mtu = (await ns.linkMtu(underlayDev)) - 70;
  await ns.ip(['link', 'add', dev, 'type', 'vxlan', 'id', String(vni), 'local', opts.publicIpv6, 'dev', underlayDev, 'dstport', String(opts.port ?? 8472), 'nolearning']);
  await ns.ip(['link', 'set', dev, 'address', opts.vtepMac6, 'mtu', String(mtu)]);
  await ns.sysctl(`net/ipv6/conf/${dev}/accept_ra`, 0);
  await ns.ip(['-6', 'addr', 'add', `${subnetIp}/128`, 'dev', dev, 'nodad']);
  await ns.ip(['link', 'set', dev, 'up']);
  return dev;
}

/** One remote dual-stack lease's IPv6 half, as flanneld programs flannel-v6.<VNI>: neighbour, FDB, onlink route. */
export async function addKernelPeerV6Lease(ns: Netns, peer: { subnet6: string; publicIpv6: string; vtepMac6: string; dev?: string }): Promise<void> {
  assertUnderlay6(peer.publicIpv6);
  const dev = peer.dev ?? 'flannel-v6.1';
  await ns.bridge(['fdb', 'replace', peer.vtepMac6, 'dev', dev, 'dst', peer.publicIpv6, 'self', 'permanent']);
  await addKernelPeerV6(ns, { subnet6: peer.subnet6, vtepMac: peer.vtepMac6, dev });
}

export async function enableIpv4Forwarding(ns: Netns): Promise<void> {
  await ns.sysctl('net.ipv4.ip_forward', 1);
}

export async function enableIpv6Forwarding(ns: Netns): Promise<void> {
  await ns.sysctl('net.ipv6.conf.all.forwarding', 1);
}

/**
 * `ethtool -K <dev> <feature> on|off ...` inside `ns`. With veth's defaults a kernel VXLAN sender
 * hands its peer inner TCP/UDP checksums that are only the pseudo-header sum (CHECKSUM_PARTIAL) and
 * GSO super-packets of up to ~64 KB; `{ tx: false }` on the sender's eth0 (or flannel.1) makes it
 * finish checksums and segment in software (see test/fixtures/kernel/README.md).
 */
export async function setOffloads(ns: Netns, dev: string, features: Record<string, boolean>): Promise<void> {
  const args = Object.entries(features).flatMap(([k, v]) => [k, v ? 'on' : 'off']);
  if (args.length > 0) await ns.execOk(['ethtool', '-K', dev, ...args]);
}
