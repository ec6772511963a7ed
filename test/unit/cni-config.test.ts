import { describe, expect, it } from 'vitest';
import { bridgeConfig } from '../../src/tools/lab/cni.js';

const env = (subnet: string, ipMasq = 'true'): Record<string, string> => ({
  FLANNEL_NETWORK: '10.244.0.0/16',
  FLANNEL_SUBNET: subnet,
  FLANNEL_MTU: '1450',
  FLANNEL_IPMASQ: ipMasq,
});
const subnetOf = (c: Record<string, unknown>): string => (c.ipam as { ranges: Array<Array<{ subnet: string }>> }).ranges[0]![0]!.subnet;

describe("bridgeConfig (what flannel's CNI plugin hands the bridge plugin)", () => {
  it('masks FLANNEL_SUBNET the way net.ParseCIDR does, for any prefix length', () => {
    expect(subnetOf(bridgeConfig(env('10.244.2.1/24'), '/d'))).toBe('10.244.2.0/24');
    expect(subnetOf(bridgeConfig(env('10.244.1.129/25'), '/d'))).toBe('10.244.1.128/25');
    expect(subnetOf(bridgeConfig(env('10.244.3.65/26'), '/d'))).toBe('10.244.3.64/26');
    expect(subnetOf(bridgeConfig(env('10.245.1.1/23'), '/d'))).toBe('10.245.0.0/23');
  });

  it('carries MTU, the route to the whole network and the data directory', () => {
    const c = bridgeConfig(env('10.244.2.1/24'), '/run/x/cni');
    expect(c).toMatchObject({ type: 'bridge', bridge: 'cni0', isGateway: true, mtu: 1450, ipam: { type: 'host-local', dataDir: '/run/x/cni', routes: [{ dst: '10.244.0.0/16' }] } });
  });

  it('masquerades on the bridge only when asked to follow FLANNEL_IPMASQ and flanneld does not', () => {
    expect(bridgeConfig(env('10.244.2.1/24', 'false'), '/d').ipMasq).toBe(false);
    expect(bridgeConfig(env('10.244.2.1/24', 'false'), '/d', { ipMasqFromSubnetEnv: true }).ipMasq).toBe(true);
    expect(bridgeConfig(env('10.244.2.1/24', 'true'), '/d', { ipMasqFromSubnetEnv: true }).ipMasq).toBe(false);
  });

  it('names the field and value it cannot use', () => {
    expect(() => bridgeConfig({ ...env('10.244.2.1/24'), FLANNEL_MTU: 'big' }, '/d')).toThrow('FLANNEL_MTU "big"');
    expect(() => bridgeConfig(env('10.244.2.300/24'), '/d')).toThrow('FLANNEL_SUBNET "10.244.2.300/24"');
    const { FLANNEL_NETWORK: _, ...noNetwork } = env('10.244.2.1/24');
    expect(() => bridgeConfig(noNetwork, '/d')).toThrow('no FLANNEL_NETWORK');
  });
});
