/**
 * flannel's registry formats and rules, as flanneld (pkg/subnet) applies them:
 *  - `<prefix>/config`: {"Network", "SubnetLen", "SubnetMin", "SubnetMax", "Backend": {"Type", "VNI", "Port"}}
 *    with flannel's defaults (SubnetLen 24 for a /22 or wider network, else network + 2; SubnetMin the
 *    second subnet, SubnetMax the last; Backend type "udp" when absent) and its refusals;
 *  - leases `<prefix>/subnets/10.244.2.0-24` -> {"PublicIP", "PublicIPv6": null, "BackendType", "BackendData"}.
 * Every refusal is one line naming the key and the value.
 */
import { type Cidr, parseCidr, cidrToString, cidrContains, cidrOverlaps, ipv4Mask } from '../packet/cidr.js';
import { ipv4FromString, ipv4ToString, isIpv4String } from '../packet/wire/ipv4.js';
import { ipv6ToString, ipv6FromString, isIpv6String } from '../packet/wire/ipv6.js';
import { isMacString, macFromString, macToString, type Mac } from '../packet/wire/ethernet.js';
import { VXLAN_VNI_MAX } from '../packet/wire/vxlan.js';
import type { Route, Vtep } from '../packet/routes.js';

export type Cidr4 = Cidr & { family: 4 };
export type Cidr6 = Cidr & { family: 6 };
export type BackendType = 'vxlan' | 'udp';

export const DEFAULT_PREFIX = '/coreos.com/network';
/** flannel's subnetTTL: 24 h, renewed an hour before it runs out (subnetLeaseRenewMargin). */
export const LEASE_TTL_SECONDS = 24 * 3600;
export const LEASE_RENEW_MARGIN_SECONDS = 3600;
export const DEFAULT_VXLAN_PORT = 8472;
export const DEFAULT_UDP_PORT = 8285;

export interface FlannelNetworkConfig {
  network: Cidr4;
  subnetLen: number;
  subnetMin: number;
  subnetMax: number;
  /** directRouting: flannel's vxlan "DirectRouting" (peers on the underlay's own subnet are routed without the tunnel). */
  backend: { type: BackendType; vni: number; port: number; directRouting?: boolean };
  /** flannel's EnableIPv6 with IPv6Network, IPv6SubnetLen/Min/Max (addresses as 128-bit integers). */
  ipv6?: FlannelIpv6Config;
}

export interface FlannelIpv6Config {
  network: Cidr6;
  subnetLen: number;
  subnetMin: bigint;
  subnetMax: bigint;
}

export function ipv6ToBigInt(addr: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(addr).toString('hex')}`);
}

export function ipv6FromBigInt(n: bigint): Buffer {
  return Buffer.from(n.toString(16).padStart(32, '0'), 'hex');
}

/** flannel's config.go for the IPv6 half: IPv6SubnetLen 64 by default (the network must be /62 or wider), Min/Max the second and last subnet. */
function parseIpv6Config(c: Record<string, unknown>, where: string): FlannelIpv6Config {
  if (typeof c.IPv6Network !== 'string') fail(where, `IPv6Network: ${shown(c.IPv6Network)} is required with EnableIPv6 (an IPv6 CIDR such as "fd00:10:244::/56")`);
  const network = parseCidr(c.IPv6Network);
  if (typeof network === 'string' || network.family !== 6) {
    fail(where, `IPv6Network: ${shown(c.IPv6Network)} is not an IPv6 CIDR${typeof network === 'string' ? ` (${network})` : ''}`);
  }
  let subnetLen = 64;
  if (c.IPv6SubnetLen !== undefined && c.IPv6SubnetLen !== 0) {
    const len = c.IPv6SubnetLen;
    if (typeof len !== 'number' || !Number.isInteger(len)) fail(where, `IPv6SubnetLen: ${shown(len)} is not an integer`);
    if (len > 126) fail(where, `IPv6SubnetLen: ${len} must be less than /127`);
    if (len < network.prefixLen + 2) fail(where, `IPv6SubnetLen: ${len} leaves IPv6Network ${c.IPv6Network} room for fewer than four subnets`);
    subnetLen = len;
  } else if (network.prefixLen > 62) {
    fail(where, `IPv6Network: ${shown(c.IPv6Network)} is too small (the minimum useful prefix is /62)`);
  }
  const start = ipv6ToBigInt(network.addr);
  const size = 1n << BigInt(128 - subnetLen);
  const end = start + (1n << BigInt(128 - network.prefixLen));
  const bound = (key: 'IPv6SubnetMin' | 'IPv6SubnetMax', dflt: bigint): bigint => {
    const v = c[key];
    if (v === undefined || v === '' || v === '::') return dflt;
    if (typeof v !== 'string' || !isIpv6String(v)) fail(where, `${key}: ${shown(v)} is not an IPv6 address`);
    const a = ipv6ToBigInt(ipv6FromString(v));
    if (a < start || a >= end) fail(where, `${key}: ${shown(v)} is not in the range of the IPv6Network ${c.IPv6Network}`);
    if (a % size !== 0n) fail(where, `${key}: ${shown(v)} is not on a /${subnetLen} boundary`);
    return a;
  };
  const subnetMin = bound('IPv6SubnetMin', start + size);
  const subnetMax = bound('IPv6SubnetMax', end - size);
  if (subnetMin > subnetMax) fail(where, `IPv6SubnetMin ${ipv6ToString(ipv6FromBigInt(subnetMin))} is above IPv6SubnetMax ${ipv6ToString(ipv6FromBigInt(subnetMax))}`);
  return { network, subnetLen, subnetMin, subnetMax };
}

export class FlannelConfigError extends Error {
  override readonly name = 'FlannelConfigError';
}

function fail(where: string, message: string): never {
  throw new FlannelConfigError(`${where}: ${message}`);
}

function shown(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'missing' : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Parses and validates the text of `<prefix>/config`; `where` names the key in errors. */
export function parseNetworkConfig(text: string, where: string): FlannelNetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(where, `is not valid JSON: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(where, `${shown(raw)} is not a JSON object`);
  const c = raw as Record<string, unknown>;
  for (const k of ['EnableIPv4', 'EnableIPv6'] as const) {
    if (c[k] !== undefined && typeof c[k] !== 'boolean') fail(where, `${k}: ${shown(c[k])} is not true or false`);
  }
  // vxtun's pods and its own device are IPv4: an IPv6-only network is out of its reach.
  if (c.EnableIPv4 === false) fail(where, 'EnableIPv4: false (an IPv6-only network) is not supported by vxtun; it needs the IPv4 network');
  const ipv6 = c.EnableIPv6 === true ? parseIpv6Config(c, where) : undefined;
  if (typeof c.Network !== 'string') fail(where, `Network: ${shown(c.Network)} is required (an IPv4 CIDR such as "10.244.0.0/16")`);
  const network = parseCidr(c.Network);
  if (typeof network === 'string' || network.family !== 4) {
    fail(where, `Network: ${shown(c.Network)} is not an IPv4 CIDR${typeof network === 'string' ? ` (${network})` : ''}`);
  }
  let subnetLen: number;
  if (c.SubnetLen !== undefined && c.SubnetLen !== 0) {
    if (typeof c.SubnetLen !== 'number' || !Number.isInteger(c.SubnetLen)) fail(where, `SubnetLen: ${shown(c.SubnetLen)} is not an integer`);
    if (c.SubnetLen > 30) fail(where, `SubnetLen: ${c.SubnetLen} must be less than /31`);
    if (c.SubnetLen < network.prefixLen + 2) fail(where, `SubnetLen: ${c.SubnetLen} leaves Network ${c.Network} room for fewer than four subnets`);
    subnetLen = c.SubnetLen;
  } else if (network.prefixLen > 28) {
    fail(where, `Network: ${shown(c.Network)} is too small (the minimum useful prefix is /28)`);
  } else {
    subnetLen = network.prefixLen <= 22 ? 24 : network.prefixLen + 2;
  }
  const size = 2 ** (32 - subnetLen);
  const networkEnd = network.addr + 2 ** (32 - network.prefixLen);
  const bound = (key: 'SubnetMin' | 'SubnetMax', dflt: number): number => {
    const v = c[key];
    if (v === undefined || v === '' || v === '0.0.0.0') return dflt;
    if (typeof v !== 'string' || !isIpv4String(v)) fail(where, `${key}: ${shown(v)} is not an IPv4 address`);
    const a = ipv4FromString(v);
    if (a < network.addr || a >= networkEnd) fail(where, `${key}: ${shown(v)} is not in the range of the Network ${c.Network}`);
    if ((a & ipv4Mask(subnetLen)) >>> 0 !== a) fail(where, `${key}: ${shown(v)} is not on a /${subnetLen} boundary`);
    return a;
  };
  const subnetMin = bound('SubnetMin', network.addr + size);
  const subnetMax = bound('SubnetMax', networkEnd - size);
  if (subnetMin > subnetMax) fail(where, `SubnetMin ${ipv4ToString(subnetMin)} is above SubnetMax ${ipv4ToString(subnetMax)}`);
  let type: BackendType = 'udp';
  let vni = 1;
  let port = 0;
  let directRouting = false;
  if (c.Backend !== undefined) {
    if (c.Backend === null || typeof c.Backend !== 'object') fail(where, `Backend: ${shown(c.Backend)} is not a JSON object`);
    const b = c.Backend as Record<string, unknown>;
    if (b.Type !== undefined) {
      if (b.Type !== 'vxlan' && b.Type !== 'udp') fail(where, `Backend.Type: ${shown(b.Type)} is not a backend vxtun speaks ("vxlan" or "udp")`);
      type = b.Type;
    }
    if (b.VNI !== undefined) {
      if (typeof b.VNI !== 'number' || !Number.isInteger(b.VNI) || b.VNI < 0 || b.VNI > VXLAN_VNI_MAX) fail(where, `Backend.VNI: ${shown(b.VNI)} is not a VNI (0-${VXLAN_VNI_MAX})`);
      vni = b.VNI;
    }
    if (b.Port !== undefined) {
      if (typeof b.Port !== 'number' || !Number.isInteger(b.Port) || b.Port < 0 || b.Port > 65535) fail(where, `Backend.Port: ${shown(b.Port)} is not a UDP port`);
      port = b.Port;
    }
    if (b.DirectRouting !== undefined) {
      if (typeof b.DirectRouting !== 'boolean') fail(where, `Backend.DirectRouting: ${shown(b.DirectRouting)} is not true or false`);
      // flanneld's udp backend has no such option and ignores the key.
      directRouting = b.DirectRouting && type === 'vxlan';
    }
  }
  if (port === 0) port = type === 'vxlan' ? DEFAULT_VXLAN_PORT : DEFAULT_UDP_PORT;
  if (ipv6 && type !== 'vxlan') fail(where, `EnableIPv6: vxtun carries IPv6 pods with the vxlan backend only, not "${type}"`);
  return { network, subnetLen, subnetMin, subnetMax, backend: { type, vni, port, ...(directRouting ? { directRouting } : {}) }, ...(ipv6 ? { ipv6 } : {}) };
}

/** `10.244.2.0/24` <-> `10.244.2.0-24`, the key flannel writes under `<prefix>/subnets/`. */
export function subnetKey(subnet: Cidr4, subnet6?: Cidr6): string {
  const v4 = `${ipv4ToString(subnet.addr)}-${subnet.prefixLen}`;
  return subnet6 ? `${v4}&${ipv6ToString(subnet6.addr)}-${subnet6.prefixLen}` : v4;
}

/** What a lease key holds: an IPv4 subnet and, in a dual-stack network, an IPv6 one. */
export interface LeaseSubnets {
  /** Absent for an IPv6-only lease (flannel writes its empty IPv4 part as `0.0.0.0-0`). */
  subnet?: Cidr4;
  subnet6?: Cidr6;
}

/**
 * flannel's ParseSubnetKey: `10.244.73.0-24` or, dual-stack, `10.244.73.0-24&fd00:10:244:1f::-64`.
 * Undefined for anything else (or host bits set): such a key holds nothing we could hand out.
 */
export function parseLeaseKey(key: string): LeaseSubnets | undefined {
  const m = /^(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([0-9a-fA-F:]+)-(\d+))?$/.exec(key);
  if (!m) return undefined;
  const v4 = parseCidr(`${m[1]}/${m[2]}`);
  if (typeof v4 === 'string' || v4.family !== 4) return undefined;
  const out: LeaseSubnets = v4.prefixLen === 0 && m[3] !== undefined ? {} : { subnet: v4 };
  if (m[3] !== undefined) {
    const v6 = parseCidr(`${m[3]}/${m[4]}`);
    if (typeof v6 === 'string' || v6.family !== 6) return undefined;
    out.subnet6 = v6;
  }
  return out;
}

/** The IPv4 subnet a lease key holds (an IPv6-only or unreadable key holds none). */
export function parseSubnetKey(key: string): Cidr4 | undefined {
  return parseLeaseKey(key)?.subnet;
}

/** A lease's meaning: whose it is and how to reach it. */
export interface LeaseAttrs {
  publicIp: string;
  backendType: string | undefined;
  vni?: number;
  vtepMac?: Mac;
  /** Dual-stack: PublicIPv6 and BackendV6Data (the VTEP of the node's flannel-v6.<VNI>). */
  publicIpv6?: string;
  vtepMac6?: Mac;
}

/** The IPv6 half of a dual-stack lease value: the node's IPv6 underlay address and its flannel-v6 VTEP MAC. */
export interface LeaseV6 {
  publicIpv6: string;
  vtepMac6: Mac;
}

/** The value flanneld writes (field order as Go's json.Marshal of LeaseAttrs; BackendV6Data only when dual-stack). */
export function encodeLeaseValue(publicIp: string, backend: { type: 'vxlan'; vni: number; vtepMac: Mac } | { type: 'udp' }, v6?: LeaseV6): string {
  if (backend.type === 'udp') return JSON.stringify({ PublicIP: publicIp, PublicIPv6: null });
  return JSON.stringify({
    PublicIP: publicIp,
    PublicIPv6: v6 ? v6.publicIpv6 : null,
    BackendType: 'vxlan',
    BackendData: { VNI: backend.vni, VtepMAC: macToString(backend.vtepMac) },
    ...(v6 ? { BackendV6Data: { VNI: backend.vni, VtepMAC: macToString(v6.vtepMac6) } } : {}),
  });
}

/** Reads a lease value another node wrote; undefined for anything we cannot use (counted by the caller). */
export function decodeLeaseValue(text: string): LeaseAttrs | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.PublicIP !== 'string' || !isIpv4String(o.PublicIP)) return undefined;
  const attrs: LeaseAttrs = { publicIp: o.PublicIP, backendType: typeof o.BackendType === 'string' ? o.BackendType : undefined };
  const data = o.BackendData as Record<string, unknown> | null | undefined;
  if (data && typeof data === 'object') {
    if (typeof data.VNI === 'number') attrs.vni = data.VNI;
    if (typeof data.VtepMAC === 'string' && isMacString(data.VtepMAC)) attrs.vtepMac = macFromString(data.VtepMAC);
  }
  if (typeof o.PublicIPv6 === 'string' && isIpv6String(o.PublicIPv6)) attrs.publicIpv6 = o.PublicIPv6;
  const data6 = o.BackendV6Data as Record<string, unknown> | null | undefined;
  if (data6 && typeof data6 === 'object' && typeof data6.VtepMAC === 'string' && isMacString(data6.VtepMAC)) attrs.vtepMac6 = macFromString(data6.VtepMAC);
  return attrs;
}

/**
 * The route a peer's lease gives this node, or undefined when the lease is not a peer of our backend:
 * a vxlan node takes only vxlan leases with a VtepMAC; a udp node takes leases without a backend type
 * (what flanneld's udp backend writes) or typed "udp".
 */
export function leaseRoute(subnet: Cidr4, attrs: LeaseAttrs, backend: FlannelNetworkConfig['backend']): Route<Vtep> | undefined {
  if (backend.type === 'vxlan') {
    if (attrs.backendType !== 'vxlan' || attrs.vtepMac === undefined) return undefined;
    return { prefix: subnet, target: { endpoint: { address: attrs.publicIp, port: backend.port }, vtepMac: attrs.vtepMac, vni: backend.vni } };
  }
  if (attrs.backendType !== undefined && attrs.backendType !== 'udp') return undefined;
  return { prefix: subnet, target: { endpoint: { address: attrs.publicIp, port: backend.port }, vtepMac: Buffer.alloc(6), vni: 0 } };
}

/** Why a lease another node wrote does not become a route (each logged once and counted by the lease manager). */
export type LeaseRefusal =
  | 'malformed'
  | 'ipv6-only'
  | 'outside-network'
  | 'wrong-subnet-length'
  | 'overlaps-own-subnet'
  | 'own-public-ip'
  | 'own-vtep-mac'
  | 'other-backend';

export const LEASE_REFUSALS: readonly LeaseRefusal[] = ['malformed', 'ipv6-only', 'outside-network', 'wrong-subnet-length', 'overlaps-own-subnet', 'own-public-ip', 'own-vtep-mac', 'other-backend'];

/** What marks a lease as this node's own: a peer carrying any of it would loop packets back to us. */
export interface OwnLease {
  subnet: Cidr4;
  publicIp: string;
  vtepMac?: Mac;
  subnet6?: Cidr6;
  publicIpv6?: string;
}

/**
 * A peer's lease judged against the network and our own lease: its route, or why it gets none.
 * Keys are canonical (parseSubnetKey refuses host bits) and every accepted subnet has the network's
 * subnet length, so two accepted leases can only overlap by being the same key: the length check is
 * what stops a /25 inside another node's /24 from taking its pods.
 */
export function judgeLease(
  key: string,
  value: string,
  network: FlannelNetworkConfig,
  own: OwnLease,
): { route: Route<Vtep>; route6?: Route<Vtep>; refusal6?: LeaseRefusal } | { refusal: LeaseRefusal } {
  const subnets = parseLeaseKey(key);
  const attrs = decodeLeaseValue(value);
  if (!subnets || !attrs) return { refusal: 'malformed' };
  // vxtun's pod network is IPv4 (an IPv6 part rides along in a dual-stack network).
  const subnet = subnets.subnet;
  if (!subnet) return { refusal: 'ipv6-only' };
  if (!cidrContains(network.network, subnet)) return { refusal: 'outside-network' };
  if (subnet.prefixLen !== network.subnetLen) return { refusal: 'wrong-subnet-length' };
  if (cidrOverlaps(subnet, own.subnet)) return { refusal: 'overlaps-own-subnet' };
  if (attrs.publicIp === own.publicIp) return { refusal: 'own-public-ip' };
  if (own.vtepMac && attrs.vtepMac?.equals(own.vtepMac)) return { refusal: 'own-vtep-mac' };
  const route = leaseRoute(subnet, attrs, network.backend);
  if (!route) return { refusal: 'other-backend' };
  if (!network.ipv6 || !subnets.subnet6) return { route };
  const v6 = judgeIpv6Half(subnets.subnet6, attrs, network, own);
  return typeof v6 === 'string' ? { route, refusal6: v6 } : { route, route6: v6 };
}

/**
 * The IPv6 half of a dual-stack lease (flannel-v6.<VNI>): VXLAN to PublicIPv6, inner destination
 * the BackendV6Data VtepMAC. A half we cannot use leaves the IPv4 route standing.
 */
function judgeIpv6Half(subnet6: Cidr6, attrs: LeaseAttrs, network: FlannelNetworkConfig, own: OwnLease): Route<Vtep> | LeaseRefusal {
  const v6 = network.ipv6!;
  if (attrs.publicIpv6 === undefined || attrs.vtepMac6 === undefined) return 'malformed';
  if (!cidrContains(v6.network, subnet6)) return 'outside-network';
  if (subnet6.prefixLen !== v6.subnetLen) return 'wrong-subnet-length';
  if (own.subnet6 && cidrOverlaps(subnet6, own.subnet6)) return 'overlaps-own-subnet';
  if (own.publicIpv6 !== undefined && attrs.publicIpv6 === own.publicIpv6) return 'own-public-ip';
  return { prefix: subnet6, target: { endpoint: { address: attrs.publicIpv6, port: network.backend.port }, vtepMac: attrs.vtepMac6, vni: network.backend.vni } };
}

/** Is `subnet` a lease this network config could have handed out (flannel's isSubnetConfigCompat)? */
export function subnetFits(cfg: FlannelNetworkConfig, subnet: Cidr4): boolean {
  return subnet.prefixLen === cfg.subnetLen && cidrContains(cfg.network, subnet) && subnet.addr >= cfg.subnetMin && subnet.addr <= cfg.subnetMax;
}

/** The same for a lease's IPv6 subnet in a dual-stack network. */
export function subnet6Fits(cfg: FlannelIpv6Config, subnet: Cidr6): boolean {
  const a = ipv6ToBigInt(subnet.addr);
  return subnet.prefixLen === cfg.subnetLen && cidrContains(cfg.network, subnet) && a >= cfg.subnetMin && a <= cfg.subnetMax;
}

/** flanneld's allocateIPv6Subnet: a random one among (up to 100 of) the free IPv6 subnets from IPv6SubnetMin. */
export function pickFreeSubnet6(cfg: FlannelIpv6Config, taken: Iterable<Cidr6>, random: () => number = Math.random, ordinal?: number): Cidr6 | undefined {
  const used = [...taken];
  const size = 1n << BigInt(128 - cfg.subnetLen);
  if (ordinal !== undefined) {
    // The IPv6 subnet at the IPv4 one's place in its range, when free: two nodes racing for one IPv4
    // subnet then race for one key too, and create-if-absent lets only one have it.
    const a = cfg.subnetMin + BigInt(ordinal) * size;
    const s: Cidr6 = { family: 6, addr: ipv6FromBigInt(a), prefixLen: cfg.subnetLen };
    if (a <= cfg.subnetMax && !used.some((u) => cidrOverlaps(u, s))) return s;
  }
  const free: Cidr6[] = [];
  for (let a = cfg.subnetMin; a <= cfg.subnetMax && free.length < 100; a += size) {
    const s: Cidr6 = { family: 6, addr: ipv6FromBigInt(a), prefixLen: cfg.subnetLen };
    if (!used.some((u) => cidrOverlaps(u, s))) free.push(s);
  }
  return free.length === 0 ? undefined : free[Math.floor(random() * free.length)];
}

/** flanneld's allocateSubnet: a random one among (up to 100 of) the free subnets from SubnetMin to SubnetMax. */
export function pickFreeSubnet(cfg: FlannelNetworkConfig, taken: Iterable<Cidr4>, random: () => number = Math.random): Cidr4 | undefined {
  const used = [...taken];
  const size = 2 ** (32 - cfg.subnetLen);
  const free: number[] = [];
  for (let a = cfg.subnetMin; a <= cfg.subnetMax && free.length < 100; a += size) {
    const s = { family: 4 as const, addr: a, prefixLen: cfg.subnetLen };
    if (!used.some((u) => cidrContains(u, s) || cidrContains(s, u))) free.push(a);
  }
  if (free.length === 0) return undefined;
  return { family: 4, addr: free[Math.floor(random() * free.length)]!, prefixLen: cfg.subnetLen };
}

export function describeSubnet(s: Cidr4): string {
  return cidrToString(s);
}
