/**
 * flannel's subnet.env (default /run/flannel/subnet.env), read by the flannel CNI plugin:
 *   FLANNEL_NETWORK=10.244.0.0/16
 *   FLANNEL_SUBNET=10.244.2.1/24     (the subnet's first host address: the bridge's)
 *   FLANNEL_IPV6_NETWORK=fd00:10:244::/56   (dual-stack only, as flanneld's WriteSubnetFile orders them)
 *   FLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64
 *   FLANNEL_MTU=1450
 *   FLANNEL_IPMASQ=false
 * Written atomically (temp file + rename) so a plugin never reads half a file.
 */
import { mkdirSync, renameSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Cidr, cidrToString } from '../packet/cidr.js';
import { ipv4ToString } from '../packet/wire/ipv4.js';
import { ipv6ToString } from '../packet/wire/ipv6.js';

export const DEFAULT_SUBNET_ENV = '/run/flannel/subnet.env';

export interface SubnetEnv {
  network: Cidr & { family: 4 };
  subnet: Cidr & { family: 4 };
  mtu: number;
  ipMasq: boolean;
  ipv6?: { network: Cidr & { family: 6 }; subnet: Cidr & { family: 6 } };
}

export function formatSubnetEnv(env: SubnetEnv): string {
  const gateway = ipv4ToString((env.subnet.addr + 1) >>> 0);
  return (
    `FLANNEL_NETWORK=${cidrToString(env.network)}\n` +
    `FLANNEL_SUBNET=${gateway}/${env.subnet.prefixLen}\n` +
    (env.ipv6 ? `FLANNEL_IPV6_NETWORK=${cidrToString(env.ipv6.network)}\nFLANNEL_IPV6_SUBNET=${firstHost6(env.ipv6.subnet.addr)}/${env.ipv6.subnet.prefixLen}\n` : '') +
    `FLANNEL_MTU=${env.mtu}\n` +
    `FLANNEL_IPMASQ=${env.ipMasq ? 'true' : 'false'}\n`
  );
}

/** The subnet's first host address (flannel's IncrementIP): the bridge's IPv6 gateway. */
function firstHost6(addr: Uint8Array): string {
  const next = Buffer.from(addr);
  for (let i = 15; i >= 0; i--) {
    next[i] = (next[i]! + 1) & 0xff;
    if (next[i] !== 0) break;
  }
  return ipv6ToString(next);
}

export function writeSubnetEnv(path: string, env: SubnetEnv): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, formatSubnetEnv(env), { mode: 0o644 });
  renameSync(tmp, path);
}

/** Parses KEY=VALUE lines (what the flannel CNI plugin does); unknown keys are kept. */
export function parseSubnetEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export function readSubnetEnv(path: string): Record<string, string> {
  return parseSubnetEnv(readFileSync(path, 'utf8'));
}
