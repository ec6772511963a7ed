/**
 * Pods made by the real CNI plugins (Debian's containernetworking-plugins), the way the flannel CNI
 * plugin delegates: `bridge` (cni0, isGateway) with `host-local` IPAM over FLANNEL_SUBNET, a route to
 * FLANNEL_NETWORK (never a default route), MTU FLANNEL_MTU — all read from the node's subnet.env.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Netns } from './netns.js';
import { run } from './exec.js';
import { readSubnetEnv } from '../../control/subnet-env.js';
import { ipv4Mask } from '../../packet/cidr.js';
import { isIpv4String, ipv4FromString, ipv4ToString } from '../../packet/wire/ipv4.js';

export const CNI_PATH = ['/usr/lib/cni', '/opt/cni/bin'].find((d) => existsSync(join(d, 'bridge'))) ?? '/usr/lib/cni';

export interface CniPod {
  ns: Netns;
  ip: string;
  containerId: string;
  config: string;
}

export interface BridgeConfigOptions {
  /**
   * Follow flannel's CNI plugin: the bridge masquerades pod traffic only when flanneld does not
   * (FLANNEL_IPMASQ != true). Default off: pod addresses cross the tunnel unchanged, which is what
   * the tests check and what clusters running flanneld --ip-masq see.
   */
  ipMasqFromSubnetEnv?: boolean;
}

/**
 * The bridge + host-local config the flannel CNI plugin would hand to its delegate, from subnet.env's
 * values. FLANNEL_SUBNET names the gateway (10.244.2.1/24); flannel parses it with net.ParseCIDR, which
 * masks it to the subnet host-local hands addresses from (10.244.2.0/24, 10.244.2.128/25, ...).
 */
export function bridgeConfig(env: Record<string, string>, dataDir: string, opts: BridgeConfigOptions = {}): Record<string, unknown> {
  for (const k of ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU']) if (!env[k]) throw new Error(`subnet.env: no ${k}`);
  const [gateway, len] = env.FLANNEL_SUBNET!.split('/');
  const prefixLen = Number(len);
  if (gateway === undefined || !isIpv4String(gateway) || !/^\d{1,2}$/.test(len ?? '') || prefixLen > 32) {
    throw new Error(`subnet.env: FLANNEL_SUBNET "${env.FLANNEL_SUBNET}" is not an IPv4 address/prefix`);
  }
  const subnet = `${ipv4ToString((ipv4FromString(gateway) & ipv4Mask(prefixLen)) >>> 0)}/${prefixLen}`;
  const mtu = Number(env.FLANNEL_MTU);
  if (!Number.isInteger(mtu) || mtu <= 0) throw new Error(`subnet.env: FLANNEL_MTU "${env.FLANNEL_MTU}" is not a positive integer`);
  return {
    cniVersion: '0.3.1',
    name: 'cbr0',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    ipMasq: opts.ipMasqFromSubnetEnv === true ? env.FLANNEL_IPMASQ !== 'true' : false,
    hairpinMode: true,
    mtu,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]], routes: [{ dst: env.FLANNEL_NETWORK }] },
  };
}

/** bridgeConfig for the subnet.env file at `subnetEnvPath`, as the JSON the plugin reads on stdin. */
export function bridgeConfigFromSubnetEnv(subnetEnvPath: string, dataDir: string, opts: BridgeConfigOptions = {}): string {
  try {
    return JSON.stringify(bridgeConfig(readSubnetEnv(subnetEnvPath), dataDir, opts));
  } catch (e) {
    throw new Error(`${subnetEnvPath}: ${(e as Error).message.replace(/^subnet\.env: /, '')}`);
  }
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
export async function cniAddPod(node: Netns, pod: Netns, subnetEnvPath: string, dataDir: string, opts: BridgeConfigOptions = {}): Promise<CniPod> {
  const config = bridgeConfigFromSubnetEnv(subnetEnvPath, dataDir, opts);
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
