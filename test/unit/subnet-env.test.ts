import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatSubnetEnv, parseSubnetEnv, writeSubnetEnv } from '../../src/control/subnet-env.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';

const v4 = (s: string) => parseCidr(s) as Cidr & { family: 4 };

describe('subnet.env', () => {
  it("is flannel's format: the subnet's first address as FLANNEL_SUBNET", () => {
    expect(formatSubnetEnv({ network: v4('10.244.0.0/16'), subnet: v4('10.244.2.0/24'), mtu: 1450, ipMasq: true })).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
    );
  });

  it("carries a dual-stack network's IPv6 half in flanneld's order", () => {
    const v6 = (t: string) => parseCidr(t) as Cidr & { family: 6 };
    expect(formatSubnetEnv({ network: v4('10.244.0.0/16'), subnet: v4('10.244.2.0/24'), mtu: 1450, ipMasq: false, ipv6: { network: v6('fd00:10:244::/56'), subnet: v6('fd00:10:244:ff::/64') } })).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:ff::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
    );
  });

  it('is written atomically, leaving no temporary file, and parses back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'subnet-env-'));
    try {
      const path = join(dir, 'run', 'flannel', 'subnet.env');
      writeSubnetEnv(path, { network: v4('10.244.0.0/16'), subnet: v4('10.244.7.0/24'), mtu: 1400, ipMasq: false });
      expect(readdirSync(join(dir, 'run', 'flannel'))).toEqual(['subnet.env']);
      expect(parseSubnetEnv(readFileSync(path, 'utf8'))).toEqual({
        FLANNEL_NETWORK: '10.244.0.0/16',
        FLANNEL_SUBNET: '10.244.7.1/24',
        FLANNEL_MTU: '1400',
        FLANNEL_IPMASQ: 'false',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
