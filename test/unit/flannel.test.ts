/**
 * flannel's registry rules without etcd: config defaults and refusals (as flanneld's
 * subnet/config.go), lease values, subnet picking, and the lease manager's race handling and
 * peer table over the in-process StaticRegistry; and the udp pipeline over fake TUN/Bind.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parseNetworkConfig, encodeLeaseValue, decodeLeaseValue, leaseRoute, pickFreeSubnet, pickFreeSubnet6, judgeLease, parseLeaseKey, subnetKey, FlannelConfigError, type Cidr4, type Cidr6 } from '../../src/control/flannel.js';
import { StaticRegistry } from '../../src/control/registry/static.js';
import { LeaseManager } from '../../src/control/lease-manager.js';
import { validateFlannelNodeConfig } from '../../src/control/flannel-node-config.js';
import { parseCidr, cidrToString } from '../../src/packet/cidr.js';
import { macFromString, macToString } from '../../src/packet/wire/ethernet.js';
import { emitIpv4, ipv4FromString, ipv4ToString } from '../../src/packet/wire/ipv4.js';
import { internetChecksum } from '../../src/packet/wire/checksum.js';
import { createFakeTun } from '../../src/io/tun-fake.js';
import { FakeNetwork } from '../../src/io/bind-fake.js';
import { FlannelUdpEngine } from '../../src/datapath/flannel-udp.js';
import { RouteTable } from '../../src/packet/routes.js';

const log = pino({ level: 'silent' });
const cidr = (s: string): Cidr4 => parseCidr(s) as Cidr4;

describe('flannel network config', () => {
  it("fills flannel's defaults", () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/16"}', 'cfg');
    expect(c.subnetLen).toBe(24);
    expect(c.subnetMin).toBe(ipv4FromString('10.244.1.0'));
    expect(c.subnetMax).toBe(ipv4FromString('10.244.255.0'));
    expect(c.backend).toEqual({ type: 'udp', vni: 1, port: 8285 });
    const v = parseNetworkConfig('{"Network":"10.244.0.0/24","Backend":{"Type":"vxlan"}}', 'cfg');
    expect(v.subnetLen).toBe(26);
    expect(v.backend).toEqual({ type: 'vxlan', vni: 1, port: 8472 });
  });

  it('reads "DirectRouting" for the vxlan backend (flanneld\'s udp backend has no such option)', () => {
    expect(parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}', 'cfg').backend).toEqual({ type: 'vxlan', vni: 1, port: 8472, directRouting: true });
    expect(parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","DirectRouting":false}}', 'cfg').backend.directRouting).toBeUndefined();
    expect(parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"udp","DirectRouting":true}}', 'cfg').backend.directRouting).toBeUndefined();
  });

  it('reads a dual-stack network (EnableIPv6, IPv6Network, IPv6SubnetLen/Min/Max) with flannel\'s defaults', () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}', 'cfg');
    expect(cidrToString(c.ipv6!.network)).toBe('fd00:10:244::/56');
    expect(c.ipv6!.subnetLen).toBe(64);
    expect(c.ipv6!.subnetMin).toBe(0xfd00_0010_0244_0001_0000_0000_0000_0000n);
    expect(c.ipv6!.subnetMax).toBe(0xfd00_0010_0244_00ff_0000_0000_0000_0000n);
    const picked = pickFreeSubnet6(c.ipv6!, [parseCidr('fd00:10:244:1::/64') as Cidr6], () => 0);
    expect(cidrToString(picked!)).toBe('fd00:10:244:2::/64');
    expect(parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}', 'cfg').ipv6).toBeUndefined();
  });

  it.each([
    ['{"Network":', 'not valid JSON'],
    ['{}', 'Network: missing is required'],
    ['{"Network":"10.244.0.0/29"}', 'too small'],
    ['{"Network":"10.244.0.0/16","SubnetLen":31}', 'SubnetLen: 31'],
    ['{"Network":"10.244.0.0/16","SubnetLen":17}', 'fewer than four subnets'],
    ['{"Network":"10.244.0.0/16","SubnetMin":"10.245.0.0"}', 'SubnetMin: "10.245.0.0" is not in the range'],
    ['{"Network":"10.244.0.0/16","SubnetMax":"10.244.3.7"}', 'not on a /24 boundary'],
    ['{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}', 'Backend.Type: "host-gw"'],
    ['{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","DirectRouting":"yes"}}', 'Backend.DirectRouting: "yes"'],
    ['{"Network":"10.244.0.0/16","EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/56"}', 'EnableIPv4: false'],
    ['{"Network":"10.244.0.0/16","EnableIPv6":true}', 'IPv6Network: missing is required'],
    ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"10.1.0.0/16"}', 'IPv6Network: "10.1.0.0/16" is not an IPv6 CIDR'],
    ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/63"}', 'minimum useful prefix is /62'],
    ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":127}', 'IPv6SubnetLen: 127'],
    ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetMin":"fd00:0:0:1::1"}', 'not on a /64 boundary'],
    ['{"Network":"10.244.0.0/16","EnableIPv6":"yes"}', 'EnableIPv6: "yes"'],
    ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","Backend":{"Type":"udp"}}', 'vxlan backend only'],
  ])('%s is refused with one line naming the key', (text, mention) => {
    expect(() => parseNetworkConfig(text, '/p/config')).toThrow(FlannelConfigError);
    try {
      parseNetworkConfig(text, '/p/config');
    } catch (err) {
      expect((err as Error).message).toContain('/p/config: ');
      expect((err as Error).message).toContain(mention);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});

describe('lease values', () => {
  it('are written as flanneld writes them and read back', () => {
    const mac = macFromString('0a:58:0a:f4:01:00');
    const v = encodeLeaseValue('198.18.0.1', { type: 'vxlan', vni: 1, vtepMac: mac });
    expect(v).toBe('{"PublicIP":"198.18.0.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:58:0a:f4:01:00"}}');
    expect(encodeLeaseValue('198.18.0.1', { type: 'udp' })).toBe('{"PublicIP":"198.18.0.1","PublicIPv6":null}');
    const attrs = decodeLeaseValue(v)!;
    const vx = { type: 'vxlan' as const, vni: 1, port: 8472 };
    expect(leaseRoute(cidr('10.244.1.0/24'), attrs, vx)?.target.endpoint).toEqual({ address: '198.18.0.1', port: 8472 });
    // a udp lease is no vxlan peer, and a vxlan lease is no udp peer
    expect(leaseRoute(cidr('10.244.1.0/24'), decodeLeaseValue('{"PublicIP":"198.18.0.1","PublicIPv6":null}')!, vx)).toBeUndefined();
    expect(leaseRoute(cidr('10.244.1.0/24'), attrs, { type: 'udp', vni: 1, port: 8285 })).toBeUndefined();
    for (const bad of ['', 'null', '{"PublicIP":"x"}', '[]']) expect(decodeLeaseValue(bad)).toBeUndefined();
    // dual-stack, as flanneld writes it: PublicIPv6 and BackendV6Data (the flannel-v6.<VNI> VTEP)
    const dual = encodeLeaseValue('198.18.0.1', { type: 'vxlan', vni: 1, vtepMac: mac }, { publicIpv6: '2001:db8::1', vtepMac6: macFromString('0a:58:0a:f4:01:01') });
    expect(dual).toBe('{"PublicIP":"198.18.0.1","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"' + macToString(mac) + '"},"BackendV6Data":{"VNI":1,"VtepMAC":"0a:58:0a:f4:01:01"}}');
    expect(decodeLeaseValue(dual)).toMatchObject({ publicIp: '198.18.0.1', publicIpv6: '2001:db8::1', vtepMac6: macFromString('0a:58:0a:f4:01:01') });
  });

  it('a dual-stack lease gives an IPv6 route to PublicIPv6 and the BackendV6Data MAC; an unusable IPv6 half leaves the IPv4 route', () => {
    const dualNet = parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}', 'cfg');
    const mac = macFromString('0a:00:00:00:04:02');
    const own = { subnet: cidr('10.244.1.0/24'), publicIp: '198.18.0.1', subnet6: parseCidr('fd00:10:244:1::/64') as Cidr6, publicIpv6: '2001:db8::1' };
    const v = (six: string): string => encodeLeaseValue('198.18.0.2', { type: 'vxlan', vni: 1, vtepMac: mac }, { publicIpv6: six, vtepMac6: macFromString('0a:00:00:00:06:02') });
    const ok = judgeLease('10.244.2.0-24&fd00:10:244:2::-64', v('2001:db8::2'), dualNet, own);
    expect(ok).toMatchObject({ route: { target: { endpoint: { address: '198.18.0.2' } } }, route6: { target: { endpoint: { address: '2001:db8::2', port: 8472 }, vtepMac: macFromString('0a:00:00:00:06:02'), vni: 1 } } });
    expect('route6' in ok && cidrToString(ok.route6!.prefix)).toBe('fd00:10:244:2::/64');
    expect(judgeLease('10.244.2.0-24&fd00:10:244:1::-64', v('2001:db8::2'), dualNet, own)).toMatchObject({ refusal6: 'overlaps-own-subnet' });
    expect(judgeLease('10.244.2.0-24&fd00:10:245:2::-64', v('2001:db8::2'), dualNet, own)).toMatchObject({ refusal6: 'outside-network' });
    expect(judgeLease('10.244.2.0-24&fd00:10:244:2::-64', v('2001:db8::1'), dualNet, own)).toMatchObject({ refusal6: 'own-public-ip' });
    expect(judgeLease('10.244.2.0-24&fd00:10:244:2::-64', encodeLeaseValue('198.18.0.2', { type: 'vxlan', vni: 1, vtepMac: mac }), dualNet, own)).toMatchObject({ refusal6: 'malformed' });
    // an IPv4-only network routes the IPv4 half alone
    expect(judgeLease('10.244.2.0-24&fd00:10:244:2::-64', v('2001:db8::2'), parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}', 'cfg'), own)).not.toHaveProperty('route6');
  });

  it("lease keys as flannel's ParseSubnetKey reads them, dual-stack ones included", () => {
    const text = (k: string): unknown => {
      const p = parseLeaseKey(k);
      return p && { v4: p.subnet && cidrToString(p.subnet), v6: p.subnet6 && cidrToString(p.subnet6) };
    };
    expect(text('10.244.73.0-24')).toEqual({ v4: '10.244.73.0/24', v6: undefined });
    expect(text('10.244.73.0-24&fd00:10:244:1f::-64')).toEqual({ v4: '10.244.73.0/24', v6: 'fd00:10:244:1f::/64' });
    expect(text('0.0.0.0-0&fd00:10:244:1f::-64')).toEqual({ v4: undefined, v6: 'fd00:10:244:1f::/64' });
    for (const bad of ['10.244.73.0/24', '10.244.73.0-24&', '10.244.73.0-24&fd00::1-64', '10.244.73.0-24&10.1.0.0-16', 'x10.244.73.0-24']) expect(parseLeaseKey(bad)).toBeUndefined();
    expect(subnetKey(cidr('10.244.73.0/24'), parseCidr('fd00:10:244:1f::/64') as Cidr6)).toBe('10.244.73.0-24&fd00:10:244:1f::-64');
  });

  it('pickFreeSubnet never returns a taken subnet and stays within SubnetMin..SubnetMax', () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/22"}', 'cfg');
    const taken = [cidr('10.244.1.0/24'), cidr('10.244.3.0/24')];
    for (let i = 0; i < 50; i++) expect(cidrToString(pickFreeSubnet(c, taken)!)).toBe('10.244.2.0/24');
    expect(pickFreeSubnet(c, [...taken, cidr('10.244.2.0/24')])).toBeUndefined();
  });
});

describe('LeaseManager over the in-process registry', () => {
  const network = parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetMin":"10.244.5.0","SubnetMax":"10.244.6.0","Backend":{"Type":"vxlan"}}', 'cfg');
  // each node its own VtepMAC (a lease carrying ours would be a loop, and is refused)
  const value = (ip: string): string => encodeLeaseValue(ip, { type: 'vxlan', vni: 1, vtepMac: macFromString(`0a:00:00:00:00:0${ip.split('.')[3]}`) });

  it('two managers that pick the same subnet at once end on distinct subnets (create-if-absent)', async () => {
    const registry = new StaticRegistry('');
    // Both draw the same random number: both try the same subnet first, one loses the create.
    const a = new LeaseManager({ registry, network, publicIp: '198.18.0.1', leaseValue: value('198.18.0.1'), log });
    const b = new LeaseManager({ registry, network, publicIp: '198.18.0.2', leaseValue: value('198.18.0.2'), log });
    const orig = Math.random;
    Math.random = () => 0;
    try {
      const [sa, sb] = await Promise.all([a.acquire(), b.acquire()]);
      expect(cidrToString(sa)).not.toBe(cidrToString(sb));
    } finally {
      Math.random = orig;
    }
    expect((await registry.listLeases()).leases).toHaveLength(2);
  });

  it('reuses the lease carrying its PublicIP; watches peers; takes its lease again when deleted', async () => {
    const registry = new StaticRegistry('', [{ subnetKey: '10.244.6.0-24', value: value('198.18.0.1') }]);
    const m = new LeaseManager({ registry, network, publicIp: '198.18.0.1', leaseValue: value('198.18.0.1'), log });
    expect(cidrToString(await m.acquire())).toBe('10.244.6.0/24');
    const seen: string[][] = [];
    m.on('routes', (r) => seen.push(r.map((x) => cidrToString(x.prefix))));
    m.start();
    await registry.createLease('10.244.5.0-24', value('198.18.0.2'), 60);
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.at(-1)).toEqual(['10.244.5.0/24']);
    registry.remove('10.244.5.0-24');
    registry.remove('10.244.6.0-24');
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.at(-1)).toEqual([]);
    expect((await registry.listLeases()).leases.map((l) => l.subnetKey)).toEqual(['10.244.6.0-24']);
    expect(m.stats.reacquired).toBe(1);
    await m.stop();
  });
});

describe('LeaseManager: own subnet taken by another node', () => {
  it('stops with a fatal error instead of moving to another subnet under running pods', async () => {
    const network = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}', 'cfg');
    const v = (ip: string): string => encodeLeaseValue(ip, { type: 'vxlan', vni: 1, vtepMac: macFromString('0a:00:00:00:00:02') });
    const registry = new StaticRegistry('');
    const m = new LeaseManager({ registry, network, publicIp: '198.18.0.1', leaseValue: v('198.18.0.1'), preferredSubnet: cidr('10.244.9.0/24'), log });
    expect(cidrToString(await m.acquire())).toBe('10.244.9.0/24');
    const fatal = new Promise<Error>((resolve) => m.once('fatal', resolve));
    m.start();
    await new Promise((r) => setTimeout(r, 10));
    registry.remove('10.244.9.0-24');
    await registry.createLease('10.244.9.0-24', v('198.18.0.2'), 60); // before our watch hears of the delete
    expect((await fatal).message).toContain('10.244.9.0/24 is gone and another node holds it now');
    // and no second lease of ours was left behind
    expect((await registry.listLeases()).leases).toEqual([{ subnetKey: '10.244.9.0-24', value: v('198.18.0.2') }]);
    await m.stop();
  });
});

describe('FlannelUdpEngine', () => {
  function packet(dst: string, ttl: number, src = '10.244.1.2'): Buffer {
    const b = Buffer.alloc(28);
    emitIpv4({ src: ipv4FromString(src), dst: ipv4FromString(dst), protocol: 17, ttl, payloadLength: 8 } as Parameters<typeof emitIpv4>[0], b, 0);
    return b;
  }

  it('sends the raw packet in UDP with the TTL decremented, drops TTL 1, answers unknown subnets; inbound decrements too', async () => {
    const net = new FakeNetwork();
    const tun = createFakeTun('udp0', 1472);
    const bind = net.bind('198.18.0.1', 8285);
    const engine = new FlannelUdpEngine(tun.device, bind, { tunMtu: 1472, vtepIp: ipv4FromString('10.244.1.0'), localSubnets: [cidr('10.244.1.0/24')] });
    engine.setRoutes(new RouteTable([{ prefix: cidr('10.244.2.0/24'), target: { endpoint: { address: '198.18.0.2', port: 8285 }, vtepMac: Buffer.alloc(6), vni: 0 } }]));
    engine.start();
    tun.inject(packet('10.244.2.2', 64));
    tun.inject(packet('10.244.2.2', 1));
    tun.inject(packet('10.244.9.9', 64));
    await new Promise((r) => setTimeout(r, 20));
    expect(net.log).toHaveLength(1);
    const wire = net.log[0]!;
    expect(wire.dst).toEqual({ address: '198.18.0.2', port: 8285 });
    expect(wire.bytes.length).toBe(28);
    expect(wire.bytes[8]).toBe(63);
    expect(internetChecksum(wire.bytes, 0, 20)).toBe(0);
    const snap = engine.counters.snapshot();
    expect(snap.dropped['ttl-expired']).toBe(1);
    expect(snap.answered['icmp-unreachable']).toBe(1);
    net.inject({ address: '198.18.0.2', port: 8285 }, bind.local, packet('10.244.1.2', 10, '10.244.2.2'));
    net.inject({ address: '198.18.0.2', port: 8285 }, bind.local, Buffer.from('not an ip packet'));
    await new Promise((r) => setTimeout(r, 20));
    const inbound = tun.written.filter((p) => p[9] === 17);
    expect(inbound).toHaveLength(1);
    expect(inbound[0]![8]).toBe(9);
    expect(internetChecksum(inbound[0]!, 0, 20)).toBe(0);
    expect(engine.counters.snapshot().dropped['malformed-inner-ipv4']).toBe(1);
    engine.stop();
    tun.device.close();
    await bind.close();
  });

  it('anti-spoofing: a non-peer sender, a source outside the peer\'s subnet and a destination outside ours are dropped, each counted; switched off they pass', async () => {
    for (const on of [true, false]) {
      const net = new FakeNetwork();
      const tun = createFakeTun('udp0', 1472);
      const bind = net.bind('198.18.0.1', 8285);
      const antiSpoofing = { unknownPeer: on, spoofedSource: on, notForThisNode: on };
      const engine = new FlannelUdpEngine(tun.device, bind, { tunMtu: 1472, vtepIp: ipv4FromString('10.244.1.0'), localSubnets: [cidr('10.244.1.0/24')], antiSpoofing });
      engine.setRoutes(new RouteTable([{ prefix: cidr('10.244.2.0/24'), target: { endpoint: { address: '198.18.0.2', port: 8285 }, vtepMac: Buffer.alloc(6), vni: 0 } }]));
      engine.start();
      const peer = { address: '198.18.0.2', port: 8285 };
      net.inject({ address: '198.18.0.9', port: 8285 }, bind.local, packet('10.244.1.2', 10, '10.244.2.2'));
      net.inject(peer, bind.local, packet('10.244.1.2', 10, '10.244.3.2'));
      net.inject(peer, bind.local, packet('10.244.3.2', 10, '10.244.2.2'));
      net.inject(peer, bind.local, packet('10.244.1.0', 10, '10.244.2.0')); // VTEP to VTEP: always fine
      await new Promise((r) => setTimeout(r, 20));
      const dropped = engine.counters.snapshot().dropped;
      if (on) {
        expect(tun.written.map((p) => ipv4ToString(p.readUInt32BE(16)))).toEqual(['10.244.1.0']);
        expect([dropped['unknown-peer'], dropped['spoofed-source'], dropped['not-for-this-node']]).toEqual([1, 1, 1]);
      } else {
        expect(tun.written).toHaveLength(4);
        expect(engine.counters.totalDropped()).toBe(0);
      }
      engine.stop();
      tun.device.close();
      await bind.close();
    }
  });
});

describe('LeaseManager: leases that must not become routes', () => {
  const network = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}', 'cfg');
  const ourMac = macFromString('0a:00:00:00:00:06');
  const lease = (ip: string, mac = '0a:00:00:00:00:99'): string => encodeLeaseValue(ip, { type: 'vxlan', vni: 1, vtepMac: macFromString(mac) });
  const ours = encodeLeaseValue('198.18.0.1', { type: 'vxlan', vni: 1, vtepMac: ourMac });
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

  /** A manager whose warnings are kept as parsed lines. */
  function managerOver(registry: StaticRegistry, preferredSubnet?: Cidr4): { m: LeaseManager; warnings: Array<{ lease: string; reason: string }> } {
    const warnings: Array<{ lease: string; reason: string }> = [];
    const logged = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    const m = new LeaseManager({ registry, network, publicIp: '198.18.0.1', leaseValue: ours, ...(preferredSubnet ? { preferredSubnet } : {}), log: logged });
    return { m, warnings };
  }

  const bad: Array<[key: string, reason: string, value: string]> = [
    ['0.0.0.0-0', 'outside-network', lease('198.18.0.2')],
    ['10.245.1.0-24', 'outside-network', lease('198.18.0.3')],
    ['10.244.7.128-25', 'wrong-subnet-length', lease('198.18.0.4')],
    ['10.244.0.0-16', 'wrong-subnet-length', lease('198.18.0.5')],
    ['10.244.8.0-24', 'own-public-ip', lease('198.18.0.1')],
    ['10.244.9.0-24', 'own-vtep-mac', lease('198.18.0.7', '0a:00:00:00:00:06')],
    ['10.244.10.0-24', 'other-backend', encodeLeaseValue('198.18.0.8', { type: 'udp' })],
    ['10.244.11.7-24', 'malformed', lease('198.18.0.9')],
    ['10.244.12.0-24', 'malformed', '{"PublicIP":"nowhere"}'],
    ['10.244.13.0-24&fd00:10:244:d::1-64', 'malformed', lease('198.18.0.10')],
    ['0.0.0.0-0&fd00:10:244:e::-64', 'ipv6-only', lease('0.0.0.0')],
  ];

  it.each(bad)('%s is no route, logged once and counted as %s', async (key, reason, value) => {
    const registry = new StaticRegistry('', [{ subnetKey: '10.244.6.0-24', value: ours }, { subnetKey: '10.244.5.0-24', value: lease('198.18.0.2') }, { subnetKey: key, value }]);
    const { m, warnings } = managerOver(registry);
    expect(cidrToString(await m.acquire())).toBe('10.244.6.0/24');
    const tables: string[][] = [];
    m.on('routes', (r) => tables.push(r.map((x) => cidrToString(x.prefix))));
    m.start();
    await settle();
    // the same value written again (a renewal, a resync) is not logged or counted again
    await registry.refreshLease(key, value, 60);
    await settle();
    expect(tables.at(-1)).toEqual(['10.244.5.0/24']);
    expect(warnings.filter((w) => w.lease === key)).toEqual([expect.objectContaining({ lease: key, reason, msg: 'lease ignored' })]);
    expect(m.stats.ignoredLeases).toBe(1);
    expect(m.stats.ignoredByReason).toMatchObject({ [reason]: 1 });
    await m.stop();
  });

  it('two dual-stack managers that pick the same IPv4 subnet at once end on distinct subnets in both families', async () => {
    const dualNet = parseNetworkConfig('{"Network":"10.244.0.0/22","EnableIPv6":true,"IPv6Network":"fd00:10:244::/62","Backend":{"Type":"vxlan"}}', 'cfg');
    const dualValue = (ip: string, n: number): string => encodeLeaseValue(ip, { type: 'vxlan', vni: 1, vtepMac: macFromString(`0a:00:00:00:00:0${n}`) }, { publicIpv6: `2001:db8::${n}`, vtepMac6: macFromString(`0a:00:00:00:01:0${n}`) });
    const registry = new StaticRegistry('');
    const a = new LeaseManager({ registry, network: dualNet, publicIp: '198.18.0.1', leaseValue: dualValue('198.18.0.1', 1), log });
    const b = new LeaseManager({ registry, network: dualNet, publicIp: '198.18.0.2', leaseValue: dualValue('198.18.0.2', 2), log });
    // Both draw the first free IPv4 subnet; a free IPv6 draw would give them different IPv6 halves,
    // hence different keys that create-if-absent cannot tell apart.
    const draws = [0, 0, 0, 0.99];
    const orig = Math.random;
    Math.random = () => draws.shift() ?? 0.5;
    try {
      await Promise.all([a.acquire(), b.acquire()]);
    } finally {
      Math.random = orig;
    }
    const keys = (await registry.listLeases()).leases.map((l) => l.subnetKey);
    expect(keys).toHaveLength(2);
    expect(new Set(keys.map((k) => k.split('&')[0])).size).toBe(2);
    expect(new Set(keys.map((k) => k.split('&')[1])).size).toBe(2);
  });

  it("a flanneld dual-stack lease is a route to its IPv4 subnet, and its subnet is never handed out again", async () => {
    // 10.244.0.0/22 in /24s: SubnetMin..Max is 10.244.1.0-10.244.3.0; flanneld's dual-stack nodes hold two of them.
    const small = parseNetworkConfig('{"Network":"10.244.0.0/22","Backend":{"Type":"vxlan"}}', 'cfg');
    const dual = (ip: string, six: string): string => encodeLeaseValue(ip, { type: 'vxlan', vni: 1, vtepMac: macFromString('0a:00:00:00:00:98') }, { publicIpv6: six, vtepMac6: macFromString('0a:00:00:00:01:98') });
    for (let round = 0; round < 20; round++) {
      const registry = new StaticRegistry('', [
        { subnetKey: '10.244.1.0-24&fd00:10:244:1::-64', value: dual('198.18.0.2', '2001:db8::2') },
        { subnetKey: '10.244.3.0-24&fd00:10:244:3::-64', value: dual('198.18.0.3', '2001:db8::3') },
      ]);
      const m = new LeaseManager({ registry, network: small, publicIp: '198.18.0.1', leaseValue: ours, log });
      expect(cidrToString(await m.acquire())).toBe('10.244.2.0/24');
      const tables: string[][] = [];
      m.on('routes', (r) => tables.push(r.map((x) => `${cidrToString(x.prefix)}@${x.target.endpoint.address}`)));
      m.start();
      await settle();
      expect(tables.at(-1)).toEqual(['10.244.1.0/24@198.18.0.2', '10.244.3.0/24@198.18.0.3']);
      expect(m.stats.ignoredLeases).toBe(0);
      await m.stop();
      // ... and with every subnet held, none is left rather than one twice
      const full = new StaticRegistry('', [
        { subnetKey: '10.244.1.0-24&fd00:10:244:1::-64', value: dual('198.18.0.2', '2001:db8::2') },
        { subnetKey: '10.244.2.0-24&fd00:10:244:2::-64', value: dual('198.18.0.4', '2001:db8::4') },
        { subnetKey: '10.244.3.0-24&fd00:10:244:3::-64', value: dual('198.18.0.3', '2001:db8::3') },
      ]);
      await expect(new LeaseManager({ registry: full, network: small, publicIp: '198.18.0.1', leaseValue: ours, log }).acquire()).rejects.toThrow('no free /24 left in 10.244.0.0/22');
    }
  });

  it('a lease overlapping our own subnet is no route', async () => {
    const registry = new StaticRegistry('', [{ subnetKey: '10.244.20.0-24', value: lease('198.18.0.2') }]);
    const { m, warnings } = managerOver(registry, cidr('10.244.20.0/25'));
    // our static config asked for a /25 the registry's /24 lease of another node holds half of
    await registry.createLease('10.244.30.0-24', lease('198.18.0.3'), 60);
    registry.remove('10.244.20.0-24');
    expect(cidrToString(await m.acquire())).toBe('10.244.20.0/25');
    const tables: string[][] = [];
    m.on('routes', (r) => tables.push(r.map((x) => cidrToString(x.prefix))));
    m.start();
    await settle();
    await registry.createLease('10.244.20.0-24', lease('198.18.0.2'), 60);
    await settle();
    expect(tables.at(-1)).toEqual(['10.244.30.0/24']);
    expect(warnings).toEqual([expect.objectContaining({ lease: '10.244.20.0-24', reason: 'overlaps-own-subnet' })]);
    expect(m.stats.ignoredByReason['overlaps-own-subnet']).toBe(1);
    await m.stop();
  });

  it('a peer rewritten into a bad lease loses its route; written back good, it has it again', async () => {
    const registry = new StaticRegistry('', [{ subnetKey: '10.244.6.0-24', value: ours }, { subnetKey: '10.244.5.0-24', value: lease('198.18.0.2') }]);
    const { m } = managerOver(registry);
    await m.acquire();
    const tables: string[][] = [];
    m.on('routes', (r) => tables.push(r.map((x) => cidrToString(x.prefix))));
    m.start();
    await settle();
    expect(tables.at(-1)).toEqual(['10.244.5.0/24']);
    await registry.refreshLease('10.244.5.0-24', lease('198.18.0.2', '0a:00:00:00:00:06'), 60);
    await settle();
    expect(tables.at(-1)).toEqual([]);
    expect(m.stats.ignoredByReason['own-vtep-mac']).toBe(1);
    await registry.refreshLease('10.244.5.0-24', lease('198.18.0.2'), 60);
    await settle();
    expect(tables.at(-1)).toEqual(['10.244.5.0/24']);
    await m.stop();
  });

  it('our own lease rewritten with another PublicIP is lost: the manager stops with a fatal error', async () => {
    const registry = new StaticRegistry('', [{ subnetKey: '10.244.6.0-24', value: ours }]);
    const { m } = managerOver(registry);
    await m.acquire();
    const fatal = new Promise<Error>((resolve, reject) => {
      m.once('fatal', resolve);
      setTimeout(() => reject(new Error('no fatal error within 2 s')), 2000).unref();
    });
    m.start();
    await settle();
    await registry.refreshLease('10.244.6.0-24', lease('198.18.0.66'), 60);
    expect((await fatal).message).toContain('10.244.6.0/24 is gone and another node holds it now');
    expect(m.routes).toEqual([]);
    await m.stop();
  });
});

describe('static peers of a flannel-format node (subnetEnv) are judged as leases at load time', () => {
  const base = { publicIp: '198.18.0.1', network: '10.244.0.0/16', subnet: '10.244.1.0/24', subnetEnv: '/run/flannel/subnet.env', backend: { type: 'vxlan' } };

  it('security.antiSpoofing: on by default, switched per check as in a static node config', () => {
    expect(validateFlannelNodeConfig(base).security.antiSpoofing).toEqual({ unknownPeer: true, spoofedSource: true, notForThisNode: true });
    expect(validateFlannelNodeConfig({ ...base, security: { antiSpoofing: { unknownPeer: false } } }).security.antiSpoofing).toEqual({ unknownPeer: false, spoofedSource: true, notForThisNode: true });
  });
  const peer = (subnet: string, ip = '198.18.0.2'): object => ({ subnet, publicIp: ip, vtepMac: '0a:58:0a:f4:02:00' });

  it.each([
    ['a peer of another subnet length', [peer('10.244.2.0/25')], 'config: peers[0].subnet: "10.244.2.0/25" is not a /24 as subnet is'],
    ['a peer on our own subnet', [peer('10.244.1.0/24')], 'config: peers[0].subnet: "10.244.1.0/24" overlaps 10.244.1.0/24'],
    ['two peers on one subnet', [peer('10.244.2.0/24'), peer('10.244.2.0/24', '198.18.0.3')], 'config: peers[1].subnet: "10.244.2.0/24" overlaps 10.244.2.0/24'],
  ])('%s is refused with one line naming it', (_what, peers, message) => {
    expect(() => validateFlannelNodeConfig({ ...base, peers })).toThrow(message);
  });

  it('peers of the same length on other subnets are taken', () => {
    expect(validateFlannelNodeConfig({ ...base, peers: [peer('10.244.2.0/24'), peer('10.244.3.0/24', '198.18.0.3')] }).static?.peers).toHaveLength(2);
  });
});
