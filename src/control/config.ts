/**
 * The node config file: the contract tests, benchmarks and other tools drive vxtun through.
 * Validation is pure (nothing on the host is touched) and every refusal is one line that names
 * the field, the value and why — `ConfigError.message` is what the CLI prints before exit 2.
 */
import { createHash } from 'node:crypto';
import { defaultControlSocket } from './socket-path.js';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { type Cidr, parseCidr, cidrContains, cidrOverlaps, cidrToString } from '../packet/cidr.js';
import { isIpv4String, ipv4ToString } from '../packet/wire/ipv4.js';
import { isMacString, macFromString, type Mac } from '../packet/wire/ethernet.js';
import { VXLAN_PORT_LINUX, VXLAN_VNI_MAX } from '../packet/wire/vxlan.js';
import { DatapathSchema, datapathDefaults, SecuritySchema, securityDefaults, type DatapathConfig, type SecurityConfig } from '../datapath/config.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const ipv4 = z.string().refine(isIpv4String, { message: 'is not an IPv4 address' });
const cidr4 = z.string().refine((s) => {
  const c = parseCidr(s);
  return typeof c !== 'string' && c.family === 4;
}, { message: 'is not an IPv4 CIDR (a.b.c.d/len with no host bits set)' });
const mac = z
  .string()
  .refine(isMacString, { message: 'is not a MAC address (xx:xx:xx:xx:xx:xx)' })
  // A VTEP is addressed by unicast: a group bit or all zeros would never be delivered to it.
  .refine((m) => !isMacString(m) || ((parseInt(m.slice(0, 2), 16) & 1) === 0 && m !== '00:00:00:00:00:00'), {
    message: 'is not a unicast MAC address',
  });
const port = z.number().int().min(1).max(65535);
const vni = z.number().int().min(0).max(VXLAN_VNI_MAX);

const PeerSchema = z.strictObject({
  subnet: cidr4,
  publicIp: ipv4,
  vtepMac: mac,
  vni: vni.optional(),
  port: port.optional(),
});

const ConfigSchema = z.strictObject({
  publicIp: ipv4,
  network: cidr4,
  subnet: cidr4,
  device: z
    .strictObject({
      name: z
        .string()
        .regex(/^[A-Za-z0-9_.-]{1,15}$/, { message: 'must be 1-15 characters of A-Z a-z 0-9 _ . -' })
        .refine((n) => n !== '.' && n !== '..', { message: 'is not a valid interface name' })
        .optional(),
      mtu: z.number().int().min(576).max(65535).optional(),
    })
    .optional(),
  backend: z
    .strictObject({
      type: z.literal('vxlan'),
      vni: vni.optional(),
      port: port.optional(),
      vtepMac: mac.optional(),
    })
    .optional(),
  peers: z.array(PeerSchema).optional(),
  controlSocket: z.string().min(1).optional(),
  datapath: DatapathSchema,
  security: SecuritySchema,
});

export type RawConfig = z.infer<typeof ConfigSchema>;

export interface PeerConfig {
  subnet: Cidr & { family: 4 };
  publicIp: string;
  vtepMac: Mac;
  vni: number;
  port: number;
}

/** A validated config with every default filled in except the ones that need the host (mtu). */
export interface NodeConfig {
  publicIp: string;
  network: Cidr & { family: 4 };
  subnet: Cidr & { family: 4 };
  device: { name: string; mtu?: number };
  backend: { type: 'vxlan'; vni: number; port: number; vtepMac: Mac };
  peers: PeerConfig[];
  controlSocket: string;
  datapath: DatapathConfig;
  security: SecurityConfig;
}

/** The overhead vxtun adds over IPv4: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD_V4 = 50;
/** Over an IPv6 underlay (flannel-v6.<VNI>): 40 of IPv6 instead of 20 of IPv4. */
export const VXLAN_OVERHEAD_V6 = 70;

/** A stable, locally administered unicast MAC for a node that did not name one. */
export function deriveVtepMac(publicIp: string): Mac {
  const mac = createHash('sha256').update(`vxtun-vtep:${publicIp}`).digest().subarray(0, 6);
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return Buffer.from(mac);
}

export function describeValue(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || '(top level)';
}

/** The first schema issue as one line naming the field, the value and why. */
export function configErrorFrom(error: z.ZodError, raw: unknown): ConfigError {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length ? `${fieldName(issue.path)}: ` : '';
    return new ConfigError(`config: ${where}unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`);
  }
  const value = valueAt(raw, issue.path);
  const why = value === undefined ? 'is required' : issue.message;
  return new ConfigError(`config: ${fieldName(issue.path)}: ${describeValue(value)} ${why}`);
}

/** Validates parsed JSON; throws ConfigError with one line naming field, value and reason. */
export function validateConfig(raw: unknown): NodeConfig {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) throw configErrorFrom(result.error, raw);
  const c = result.data;
  const network = parseCidr(c.network) as Cidr & { family: 4 };
  const subnet = parseCidr(c.subnet) as Cidr & { family: 4 };
  if (!cidrContains(network, subnet) || subnet.prefixLen === network.prefixLen) {
    throw new ConfigError(`config: subnet: "${c.subnet}" is not a subnet inside network ${c.network}`);
  }
  if (subnet.prefixLen > 30) {
    throw new ConfigError(`config: subnet: "${c.subnet}" is too small for a node (at most /30)`);
  }
  const vniValue = c.backend?.vni ?? 1;
  const portValue = c.backend?.port ?? VXLAN_PORT_LINUX;
  const peers: PeerConfig[] = [];
  const seen: Cidr[] = [subnet];
  (c.peers ?? []).forEach((p, i) => {
    const ps = parseCidr(p.subnet) as Cidr & { family: 4 };
    if (!cidrContains(network, ps)) {
      throw new ConfigError(`config: peers[${i}].subnet: "${p.subnet}" is outside network ${c.network}`);
    }
    const clash = seen.find((s) => cidrOverlaps(s, ps));
    if (clash) {
      throw new ConfigError(`config: peers[${i}].subnet: "${p.subnet}" overlaps ${cidrToString(clash)}`);
    }
    seen.push(ps);
    peers.push({ subnet: ps, publicIp: p.publicIp, vtepMac: macFromString(p.vtepMac), vni: p.vni ?? vniValue, port: p.port ?? portValue });
  });
  const deviceName = c.device?.name ?? 'vxtun0';
  return {
    publicIp: c.publicIp,
    network,
    subnet,
    device: { name: deviceName, ...(c.device?.mtu !== undefined ? { mtu: c.device.mtu } : {}) },
    backend: {
      type: 'vxlan',
      vni: vniValue,
      port: portValue,
      vtepMac: c.backend?.vtepMac ? macFromString(c.backend.vtepMac) : deriveVtepMac(c.publicIp),
    },
    peers,
    controlSocket: c.controlSocket ?? defaultControlSocket(deviceName),
    datapath: datapathDefaults(c.datapath),
    security: securityDefaults(c.security),
  };
}

/** Reads and validates a config file; every failure is a ConfigError naming the file or field. */
export function loadConfig(path: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`config: cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // Node's message may quote the file, newlines and all: the error stays one line.
    throw new ConfigError(`config: ${path} is not valid JSON: ${(err as Error).message.replace(/\s+/g, ' ')}`);
  }
  return validateConfig(raw);
}

/** The node's own VTEP address: the subnet's .0, as flannel puts on flannel.1. */
export function vtepAddress(cfg: NodeConfig): number {
  return cfg.subnet.addr;
}

export function vtepAddressString(cfg: NodeConfig): string {
  return ipv4ToString(cfg.subnet.addr);
}
