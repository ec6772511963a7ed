/**
 * The node config of a node that joins a flannel network: `registry` (etcd v3/v2, TLS), or static
 * peers with flannel's udp backend; `subnetEnv`, `ipMasq`. Same contract as config.ts: validation
 * touches nothing, and every refusal is one line naming the field and the value (exit 2).
 * A config without these keys is config.ts's, unchanged.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseCidr, cidrContains, cidrOverlaps, cidrToString } from '../packet/cidr.js';
import { isIpv4String } from '../packet/wire/ipv4.js';
import { isIpv6String } from '../packet/wire/ipv6.js';
import { isMacString, macFromString, type Mac } from '../packet/wire/ethernet.js';
import { VXLAN_VNI_MAX } from '../packet/wire/vxlan.js';
import { ConfigError, configErrorFrom, deriveVtepMac, describeValue } from './config.js';
import { DEFAULT_SUBNET_ENV } from './subnet-env.js';
import { DEFAULT_PREFIX, DEFAULT_UDP_PORT, DEFAULT_VXLAN_PORT, type BackendType, type Cidr4 } from './flannel.js';
import type { EtcdTlsFiles } from './registry/etcd-common.js';
import { DatapathSchema, datapathDefaults, SecuritySchema, securityDefaults, type DatapathConfig, type SecurityConfig } from '../datapath/config.js';

const ipv4 = z.string().refine(isIpv4String, { message: 'is not an IPv4 address' });
const cidr4 = z.string().refine((s) => {
  const c = parseCidr(s);
  return typeof c !== 'string' && c.family === 4;
}, { message: 'is not an IPv4 CIDR (a.b.c.d/len with no host bits set)' });
const mac = z.string().refine(isMacString, { message: 'is not a MAC address (xx:xx:xx:xx:xx:xx)' });
const port = z.number().int().min(1).max(65535);
const path = z.string().min(1, { message: 'must be a file path' });
const endpoint = z.string().refine((s) => /^https?:\/\/[^/]+(:\d+)?\/?$/.test(s), { message: 'is not an etcd endpoint (http://host:port or https://host:port)' });

const RegistrySchema = z.strictObject({
  type: z.literal('etcd'),
  endpoints: z.array(endpoint).min(1, { message: 'needs at least one endpoint' }),
  prefix: z.string().regex(/^\/[^\s]*[^/\s]$/, { message: 'must be an etcd key path such as /coreos.com/network' }).optional(),
  api: z.enum(['v3', 'v2']).optional(),
  tls: z.strictObject({ ca: path, cert: path.optional(), key: path.optional() }).optional(),
  /** Give up (exit 2) when etcd cannot be reached for this long at start-up; default: keep trying, as flanneld does. */
  startupTimeoutSeconds: z.number().positive().optional(),
  leaseTtlSeconds: z.number().int().min(5).max(86400 * 7).optional(),
  renewMarginSeconds: z.number().int().min(1).optional(),
  /** etcd's basic auth (flanneld's --etcd-username/--etcd-password). */
  username: z.string().min(1).optional(),
  password: z.string().optional(),
});

/** flanneld's --kube-subnet-mgr: the subnet from node.spec.podCIDR, peers from node annotations (registry/kube.ts). */
const KubeRegistrySchema = z.strictObject({
  type: z.literal('kube'),
  apiUrl: z.string().regex(/^https?:\/\/[^/\s]+/, { message: 'is not an API server URL (http(s)://host:port)' }).optional(),
  kubeconfigFile: path.optional(),
  annotationPrefix: z.string().min(1).optional(),
  netConfPath: path.optional(),
  setNodeNetworkUnavailable: z.boolean().optional(),
  startupTimeoutSeconds: z.number().positive().optional(),
});

const FlannelNodeSchema = z.strictObject({
  publicIp: ipv4,
  /** flanneld's --public-ipv6 (dual-stack networks); default: the IPv6 address of publicIp's interface. */
  publicIpv6: z.string().refine(isIpv6String, { message: 'is not an IPv6 address' }).optional(),
  network: cidr4.optional(),
  subnet: cidr4.optional(),
  device: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, { message: 'must be 1-15 characters of A-Z a-z 0-9 _ . -' }).optional(),
    mtu: z.number().int().min(576).max(65535).optional(),
  }).optional(),
  backend: z.strictObject({
    type: z.enum(['vxlan', 'udp']).optional(),
    vni: z.number().int().min(0).max(VXLAN_VNI_MAX).optional(),
    port: port.optional(),
    vtepMac: mac.optional(),
  }).optional(),
  peers: z.array(z.strictObject({ subnet: cidr4, publicIp: ipv4, vtepMac: mac.optional(), vni: z.number().int().optional(), port: port.optional() })).optional(),
  registry: z.discriminatedUnion('type', [RegistrySchema, KubeRegistrySchema]).optional(),
  subnetEnv: path.optional(),
  ipMasq: z.boolean().optional(),
  controlSocket: z.string().min(1).optional(),
  /** The same section as a static node's (src/datapath/config.ts). */
  datapath: DatapathSchema,
  security: SecuritySchema,
});

export interface EtcdRegistryConfig {
  type: 'etcd';
  endpoints: string[];
  prefix: string;
  api: 'v3' | 'v2';
  tls?: EtcdTlsFiles;
  startupTimeoutSeconds?: number;
  leaseTtlSeconds?: number;
  renewMarginSeconds?: number;
  auth?: { username: string; password: string };
}

export interface KubeRegistryConfig {
  type: 'kube';
  apiUrl?: string;
  kubeconfigFile?: string;
  annotationPrefix?: string;
  netConfPath?: string;
  setNodeNetworkUnavailable?: boolean;
  startupTimeoutSeconds?: number;
}

export interface FlannelNodeConfig {
  publicIp: string;
  publicIpv6?: string;
  device: { name?: string; mtu?: number };
  /** What the file says; with a registry, the registry's `<prefix>/config` decides type, VNI and port. */
  backend: { type?: BackendType; vni?: number; port?: number; vtepMac: Mac };
  registry?: EtcdRegistryConfig | KubeRegistryConfig;
  /** Static mode (no registry): the network, our subnet and the peers from the file. */
  static?: { network: Cidr4; subnet: Cidr4; peers: Array<{ subnet: Cidr4; publicIp: string; vtepMac?: Mac; port?: number }> };
  subnetEnv: string;
  ipMasq: boolean;
  controlSocket?: string;
  datapath: DatapathConfig;
  security: SecurityConfig;
}

const FLANNEL_KEYS = ['registry', 'subnetEnv', 'ipMasq'];

/** Is this config a flannel node's (this file) rather than a plain static vxlan node's (config.ts)? */
export function isFlannelNodeConfig(raw: unknown): boolean {
  if (raw === null || typeof raw !== 'object') return false;
  const o = raw as Record<string, unknown>;
  return FLANNEL_KEYS.some((k) => k in o) || (o.backend as Record<string, unknown> | undefined)?.type === 'udp';
}

export function validateFlannelNodeConfig(raw: unknown, opts: { ipMasq?: boolean } = {}): FlannelNodeConfig {
  const result = FlannelNodeSchema.safeParse(raw);
  if (!result.success) throw configErrorFrom(result.error, raw);
  const c = result.data;
  let staticPart: FlannelNodeConfig['static'];
  if (c.registry) {
    for (const k of ['network', 'subnet', 'peers'] as const) {
      if (c[k] !== undefined) throw new ConfigError(`config: ${k}: ${describeValue(c[k])} comes from the registry; remove it when "registry" is set`);
    }
  } else {
    if (!c.network) throw new ConfigError('config: network: missing is required (or set "registry")');
    if (!c.subnet) throw new ConfigError('config: subnet: missing is required (or set "registry")');
    const network = parseCidr(c.network) as Cidr4;
    const subnet = parseCidr(c.subnet) as Cidr4;
    if (!cidrContains(network, subnet) || subnet.prefixLen === network.prefixLen || subnet.prefixLen > 30) {
      throw new ConfigError(`config: subnet: "${c.subnet}" is not a node subnet inside network ${c.network}`);
    }
    const seen: Cidr4[] = [subnet];
    const peers = (c.peers ?? []).map((p, i) => {
      const ps = parseCidr(p.subnet) as Cidr4;
      if (!cidrContains(network, ps)) throw new ConfigError(`config: peers[${i}].subnet: "${p.subnet}" is outside network ${cidrToString(network)}`);
      // The peers become leases, judged as a registry's are (flannel.ts judgeLease): one subnet length, no overlap.
      if (ps.prefixLen !== subnet.prefixLen) throw new ConfigError(`config: peers[${i}].subnet: "${p.subnet}" is not a /${subnet.prefixLen} as subnet is (a flannel network gives every node one subnet length)`);
      const clash = seen.find((s) => cidrOverlaps(s, ps));
      if (clash) throw new ConfigError(`config: peers[${i}].subnet: "${p.subnet}" overlaps ${cidrToString(clash)}`);
      seen.push(ps);
      if ((c.backend?.type ?? 'vxlan') === 'vxlan' && !p.vtepMac) throw new ConfigError(`config: peers[${i}].vtepMac: missing is required for the vxlan backend`);
      return { subnet: ps, publicIp: p.publicIp, ...(p.vtepMac ? { vtepMac: macFromString(p.vtepMac) } : {}), ...(p.port ? { port: p.port } : {}) };
    });
    staticPart = { network, subnet, peers };
  }
  const r = c.registry;
  return {
    publicIp: c.publicIp,
    ...(c.publicIpv6 !== undefined ? { publicIpv6: c.publicIpv6 } : {}),
    device: { ...c.device },
    backend: {
      ...(c.backend?.type ? { type: c.backend.type } : r ? {} : { type: 'vxlan' as const }),
      ...(c.backend?.vni !== undefined ? { vni: c.backend.vni } : {}),
      ...(c.backend?.port !== undefined ? { port: c.backend.port } : {}),
      vtepMac: c.backend?.vtepMac ? macFromString(c.backend.vtepMac) : deriveVtepMac(c.publicIp),
    },
    ...(r ? { registry: registryConfig(r) } : {}),
    ...(staticPart ? { static: staticPart } : {}),
    subnetEnv: c.subnetEnv ?? DEFAULT_SUBNET_ENV,
    ipMasq: opts.ipMasq || (c.ipMasq ?? false),
    ...(c.controlSocket ? { controlSocket: c.controlSocket } : {}),
    datapath: datapathDefaults(c.datapath),
    security: securityDefaults(c.security),
  };
}

function registryConfig(r: z.infer<typeof FlannelNodeSchema>['registry'] & object): EtcdRegistryConfig | KubeRegistryConfig {
  if (r.type === 'kube') return { ...r };
  if (r.password !== undefined && r.username === undefined) throw new ConfigError('config: registry.password: given without registry.username');
  return {
    type: 'etcd',
    endpoints: r.endpoints,
    prefix: r.prefix ?? DEFAULT_PREFIX,
    api: r.api ?? 'v3',
    ...(r.tls ? { tls: r.tls } : {}),
    ...(r.startupTimeoutSeconds !== undefined ? { startupTimeoutSeconds: r.startupTimeoutSeconds } : {}),
    ...(r.leaseTtlSeconds !== undefined ? { leaseTtlSeconds: r.leaseTtlSeconds } : {}),
    ...(r.renewMarginSeconds !== undefined ? { renewMarginSeconds: r.renewMarginSeconds } : {}),
    ...(r.username !== undefined ? { auth: { username: r.username, password: r.password ?? '' } } : {}),
  };
}

/** Reads the file; undefined when it is not a flannel node's config (config.ts then reads it, and reports its errors). */
export function loadFlannelNodeConfig(file: string, opts: { ipMasq?: boolean } = {}): FlannelNodeConfig | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  if (!isFlannelNodeConfig(raw) && !opts.ipMasq) return undefined;
  return validateFlannelNodeConfig(raw, opts);
}

export const defaultPort = (type: BackendType): number => (type === 'vxlan' ? DEFAULT_VXLAN_PORT : DEFAULT_UDP_PORT);
