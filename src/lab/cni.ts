/**
 * Pods made by the real CNI plugins (Debian's containernetworking-plugins), the way the flannel CNI
 * plugin delegates: `bridge` (cni0, isGateway) with `host-local` IPAM over FLANNEL_SUBNET, a route to
 * FLANNEL_NETWORK (never a default route), MTU FLANNEL_MTU — all read from the node's subnet.env.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Netns, run } from './netns.js';
import { readSubnetEnv } from '../control/subnet-env.js';

export const CNI_PATH = ['/usr/lib/cni', '/opt/cni/bin'].find((d) => existsSync(join(d, 'bridge'))) ?? '/usr/lib/cni';

export interface CniPod {
  ns: Netns;
  ip: string;
  containerId: string;
  config: string;
}

/** The bridge + host-local config the flannel CNI plugin would hand to its delegate. */
export function bridgeConfigFromSubnetEnv(subnetEnvPath: string, dataDir: string): string {
  const env = readSubnetEnv(subnetEnvPath);
  for (const k of ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU']) if (!env[k]) throw new Error(`${subnetEnvPath}: no ${k}`);
  // The flannel CNI plugin parses FLANNEL_SUBNET with net.ParseCIDR, which masks it: 10.244.2.1/24 -> 10.244.2.0/24.
  const [gw, len] = env.FLANNEL_SUBNET!.split('/');
  const o = gw!.split('.').map(Number);
  const addr = (((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0) & (Number(len) === 0 ? 0 : (0xffffffff << (32 - Number(len))) >>> 0);
  const subnet = `${[addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.')}/${len}`;
  return JSON.stringify({
    cniVersion: '0.3.1',
    name: 'cbr0',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    ipMasq: false,
    hairpinMode: true,
    mtu: Number(env.FLANNEL_MTU),
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]], routes: [{ dst: env.FLANNEL_NETWORK }] },
  });
}

async function plugin(node: Netns, command: 'ADD' | 'DEL', pod: Netns, containerId: string, config: string): Promise<string> {
  const env = {
    ...process.env,
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: `/var/run/netns/${pod.name}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH,
  };
  const r = await run(['ip', 'netns', 'exec', node.name, join(CNI_PATH, 'bridge')], { input: config, env, timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`CNI bridge ${command} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

/** CNI_COMMAND=ADD for a new pod namespace on `node`; returns the address host-local gave it. */
export async function cniAddPod(node: Netns, pod: Netns, subnetEnvPath: string, dataDir: string): Promise<CniPod> {
  const config = bridgeConfigFromSubnetEnv(subnetEnvPath, dataDir);
  const containerId = `vxtun-${pod.name}`;
  const out = JSON.parse(await plugin(node, 'ADD', pod, containerId, config)) as { ips?: Array<{ address: string }> };
  const address = out.ips?.[0]?.address;
  if (!address) throw new Error(`CNI bridge ADD returned no address: ${JSON.stringify(out)}`);
  return { ns: pod, ip: address.split('/')[0]!, containerId, config };
}

/** CNI_COMMAND=DEL: the plugin removes the veth and releases the address. */
export async function cniDelPod(node: Netns, pod: CniPod): Promise<void> {
  await plugin(node, 'DEL', pod.ns, pod.containerId, pod.config);
}
