// The node config contract: a good file validates with every default filled; every bad one is a
// ConfigError whose message is ONE line naming the field and the offending value.
import { defaultControlSocket } from '../../src/control/socket-path.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, deriveVtepMac, loadConfig, validateConfig, vtepAddress, vtepAddressString, type NodeConfig } from '../../src/control/config.js';

/** The example node config (node 2 of a two-node cluster, flannel's addressing). */
const EXAMPLE = {
  publicIp: '198.18.0.2',
  network: '10.244.0.0/16',
  subnet: '10.244.2.0/24',
  peers: [{ subnet: '10.244.1.0/24', publicIp: '198.18.0.1', vtepMac: '0a:58:0a:f4:01:00' }],
};
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
/** The example with `edit` applied to a deep copy. */
function withEdit(edit: (c: Record<string, any>) => void): Record<string, unknown> {
  const c = clone(EXAMPLE) as Record<string, any>;
  edit(c);
  return c;
}

function configError(fn: () => unknown): ConfigError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a ConfigError').toBeInstanceOf(ConfigError);
  const e = thrown as ConfigError;
  expect(e.name).toBe('ConfigError');
  expect(e.message, 'one line').not.toMatch(/[\r\n]/);
  expect(e.message.length).toBeGreaterThan(0);
  return e;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vxtun-config-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('validateConfig: the example config', () => {
  it('validates, with defaults filled in', () => {
    const c = validateConfig(clone(EXAMPLE));
    const expected: NodeConfig = {
      publicIp: '198.18.0.2',
      network: { family: 4, addr: 0x0af40000, prefixLen: 16 },
      subnet: { family: 4, addr: 0x0af40200, prefixLen: 24 },
      device: { name: 'vxtun0' },
      backend: { type: 'vxlan', vni: 1, port: 8472, vtepMac: deriveVtepMac('198.18.0.2') },
      peers: [
        {
          subnet: { family: 4, addr: 0x0af40100, prefixLen: 24 },
          publicIp: '198.18.0.1',
          vtepMac: Buffer.from([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x00]),
          vni: 1,
          port: 8472,
        },
      ],
      controlSocket: defaultControlSocket('vxtun0'),
      datapath: { kind: 'auto', gso: true, gro: true, tunOffload: true, express: true, batchScheduling: true, peerFilter: true, codel: false, tunQueueLength: undefined, nice: 0, tunUso: true, workers: undefined, sourcePorts: { min: 32768, max: 60999, sockets: 16 } },
      security: { antiSpoofing: { unknownPeer: true, spoofedSource: true, notForThisNode: true } },
    };
    expect(c).toEqual(expected);
    expect('mtu' in c.device).toBe(false); // left to the host (underlay MTU - 50)
    expect(vtepAddress(c)).toBe(0x0af40200);
    expect(vtepAddressString(c)).toBe('10.244.2.0');
  });

  it('security.antiSpoofing: every check on by default, false turns all off, an object switches each, a wrong value is one line naming the field', () => {
    const all = (v: boolean) => ({ unknownPeer: v, spoofedSource: v, notForThisNode: v });
    const withSecurity = (s: unknown): NodeConfig => validateConfig({ ...clone(EXAMPLE), security: s });
    expect(validateConfig(clone(EXAMPLE)).security.antiSpoofing).toEqual(all(true));
    expect(withSecurity({}).security.antiSpoofing).toEqual(all(true));
    expect(withSecurity({ antiSpoofing: false }).security.antiSpoofing).toEqual(all(false));
    expect(withSecurity({ antiSpoofing: { notForThisNode: false } }).security.antiSpoofing).toEqual({ unknownPeer: true, spoofedSource: true, notForThisNode: false });
    expect(() => withSecurity({ antiSpoofing: 'off' })).toThrow(/^config: security\.antiSpoofing: /);
    expect(() => withSecurity({ antiSpoofing: { spoofedSrc: false } })).toThrow(/security\.antiSpoofing/);
  });

  it('datapath.sourcePorts: flow-hashed over Linux\'s range by default, "fixed" keeps the VXLAN port, a partial range is filled in', () => {
    const withDatapath = (d: unknown): NodeConfig => validateConfig({ ...clone(EXAMPLE), datapath: d });
    expect(withDatapath({ sourcePorts: 'fixed' }).datapath.sourcePorts).toBe('fixed');
    expect(withDatapath({ sourcePorts: {} }).datapath.sourcePorts).toEqual({ min: 32768, max: 60999, sockets: 16 });
    expect(withDatapath({ sourcePorts: { min: 40000, sockets: 4 } }).datapath.sourcePorts).toEqual({ min: 40000, max: 60999, sockets: 4 });
  });

  it('datapath.tunQueueLength: left to the kernel by default, taken as given', () => {
    const withDatapath = (d: unknown): NodeConfig => validateConfig({ ...clone(EXAMPLE), datapath: d });
    expect(withDatapath({}).datapath.tunQueueLength).toBeUndefined();
    expect(withDatapath({ tunQueueLength: 16 }).datapath.tunQueueLength).toBe(16);
  });
  it('datapath.codel: off by default, true takes 250 µs / 2.5 ms, a partial object is filled in', () => {
    const withDatapath = (d: unknown): NodeConfig => validateConfig({ ...clone(EXAMPLE), datapath: d });
    expect(withDatapath({}).datapath.codel).toBe(false);
    expect(withDatapath({ codel: false }).datapath.codel).toBe(false);
    expect(withDatapath({ codel: true }).datapath.codel).toEqual({ targetUs: 250, intervalUs: 2500 });
    expect(withDatapath({ codel: { targetUs: 500 } }).datapath.codel).toEqual({ targetUs: 500, intervalUs: 2500 });
    expect(withDatapath({ workers: 3 }).datapath).toMatchObject({ workers: 3, sourcePorts: { min: 32768, max: 60999, sockets: 16 } });
  });

  it('loadConfig reads the same from a file', () => {
    const p = file('example.json', JSON.stringify(EXAMPLE, null, 2));
    expect(loadConfig(p)).toEqual(validateConfig(clone(EXAMPLE)));
  });

  it('the derived VTEP MAC: stable across calls, locally administered unicast, different per IP', () => {
    const m1 = validateConfig(clone(EXAMPLE)).backend.vtepMac;
    const m2 = validateConfig(clone(EXAMPLE)).backend.vtepMac;
    expect(m1.length).toBe(6);
    expect(m1.equals(m2)).toBe(true);
    expect(m1.equals(deriveVtepMac('198.18.0.2'))).toBe(true);
    expect(m1[0]! & 0x01).toBe(0); // unicast
    expect(m1[0]! & 0x02).toBe(0x02); // locally administered
    const others = ['198.18.0.1', '198.18.0.3', '10.0.0.2', '198.18.1.2'].map((ip) => deriveVtepMac(ip));
    const all = [m1, ...others].map((m) => m.toString('hex'));
    expect(new Set(all).size).toBe(all.length);
    for (const m of others) {
      expect(m[0]! & 0x03).toBe(0x02);
    }
    const other = validateConfig(withEdit((c) => (c.publicIp = '198.18.0.3'))).backend.vtepMac;
    expect(other.equals(m1)).toBe(false);
  });

  it('explicit values win over defaults; peers inherit the backend VNI and port unless they set their own', () => {
    const c = validateConfig(
      withEdit((c) => {
        c.device = { name: 'vx1', mtu: 1400 };
        c.backend = { type: 'vxlan', vni: 42, port: 4789, vtepMac: '0A:58:0A:F4:02:00' };
        c.peers.push({ subnet: '10.244.3.0/24', publicIp: '198.18.0.3', vtepMac: '0a:58:0a:f4:03:00', vni: 7, port: 5000 });
      }),
    );
    expect(c.device).toEqual({ name: 'vx1', mtu: 1400 });
    expect(c.backend).toEqual({ type: 'vxlan', vni: 42, port: 4789, vtepMac: Buffer.from('0a580af40200', 'hex') });
    expect(c.peers.map((p) => [p.vni, p.port])).toEqual([
      [42, 4789],
      [7, 5000],
    ]);
    // One directory per network namespace: nodes in two namespaces never share a socket.
    expect(c.controlSocket).toMatch(/^\/run\/vxtun\/netns-\d+\/vx1\.sock$/);
    expect(validateConfig(withEdit((c) => (c.controlSocket = '/tmp/x.sock'))).controlSocket).toBe('/tmp/x.sock');
  });

  it.each<[string, (c: Record<string, any>) => void]>([
    ['no peers', (c) => delete c.peers],
    ['empty peers', (c) => (c.peers = [])],
    ['vni 0 and port 1', (c) => (c.backend = { type: 'vxlan', vni: 0, port: 1 })],
    ['vni 16777215 and port 65535', (c) => (c.backend = { type: 'vxlan', vni: 16777215, port: 65535 })],
    ['a 15-character device name', (c) => (c.device = { name: 'abcdefghijklmno' })],
    ['a /30 subnet', (c) => (c.subnet = '10.244.2.0/30')],
    ['a /8 network', (c) => (c.network = '10.0.0.0/8')],
    ['adjacent peer subnets', (c) => c.peers.push({ subnet: '10.244.3.0/24', publicIp: '198.18.0.3', vtepMac: '0a:58:0a:f4:03:00' })],
  ])('also valid: %s', (_name, edit) => {
    expect(() => validateConfig(withEdit(edit))).not.toThrow();
  });
});

describe('validateConfig: every refusal is one line naming the field and the value', () => {
  const cases: [string, (c: Record<string, any>) => void, string, string][] = [
    // name, edit, field (the message starts "config: <field>"), the value as it must appear
    ['network not a CIDR', (c) => (c.network = 'x'), 'network', '"x"'],
    ['network prefix over 32', (c) => (c.network = '10.244.0.0/33'), 'network', '"10.244.0.0/33"'],
    ['network without prefix', (c) => (c.network = '10.244.0.0'), 'network', '"10.244.0.0"'],
    ['network IPv6', (c) => (c.network = 'fd00::/16'), 'network', '"fd00::/16"'],
    ['network host bits set', (c) => (c.network = '10.244.1.0/16'), 'network', '"10.244.1.0/16"'],
    ['subnet not a CIDR', (c) => (c.subnet = '10.244.2.0/24x'), 'subnet', '"10.244.2.0/24x"'],
    ['subnet host bits set', (c) => (c.subnet = '10.244.2.1/24'), 'subnet', '"10.244.2.1/24"'],
    ['subnet outside network', (c) => (c.subnet = '10.245.2.0/24'), 'subnet', '"10.245.2.0/24"'],
    ['subnet equal to network', (c) => (c.subnet = '10.244.0.0/16'), 'subnet', '"10.244.0.0/16"'],
    ['subnet wider than network', (c) => (c.subnet = '10.244.0.0/15'), 'subnet', '"10.244.0.0/15"'],
    ['subnet too small for a node', (c) => (c.subnet = '10.244.2.0/31'), 'subnet', '"10.244.2.0/31"'],
    ['subnet not a string', (c) => (c.subnet = 24), 'subnet', '24'],
    ['peers[0].subnet not a CIDR', (c) => (c.peers[0].subnet = '10.244.1.0/24/1'), 'peers[0].subnet', '"10.244.1.0/24/1"'],
    ['peers[0].subnet host bits set', (c) => (c.peers[0].subnet = '10.244.1.7/24'), 'peers[0].subnet', '"10.244.1.7/24"'],
    ['peers[1].subnet bad', (c) => c.peers.push({ subnet: '10.244.3.0/', publicIp: '198.18.0.3', vtepMac: '0a:58:0a:f4:03:00' }), 'peers[1].subnet', '"10.244.3.0/"'],
    ['peers[0].subnet outside network', (c) => (c.peers[0].subnet = '10.245.1.0/24'), 'peers[0].subnet', '"10.245.1.0/24"'],
    [
      'overlapping peer subnets',
      (c) => c.peers.push({ subnet: '10.244.1.128/25', publicIp: '198.18.0.3', vtepMac: '0a:58:0a:f4:03:00' }),
      'peers[1].subnet',
      '"10.244.1.128/25"',
    ],
    [
      'a peer subnet containing an earlier one',
      (c) => c.peers.push({ subnet: '10.244.0.0/23', publicIp: '198.18.0.3', vtepMac: '0a:58:0a:f4:03:00' }),
      'peers[1].subnet',
      '"10.244.0.0/23"',
    ],
    ['a peer subnet overlapping our own', (c) => (c.peers[0].subnet = '10.244.2.0/24'), 'peers[0].subnet', '"10.244.2.0/24"'],
    ['unknown top-level key', (c) => (c.foo = 1), 'unknown key', '"foo"'],
    ['unknown key in device', (c) => (c.device = { foo: 1 }), 'device', '"foo"'],
    ['unknown key in backend', (c) => (c.backend = { type: 'vxlan', mtu: 1 }), 'backend', '"mtu"'],
    ['unknown key in peers[0]', (c) => (c.peers[0].vtepIp = '10.244.1.0'), 'peers[0]', '"vtepIp"'],
    ['backend.vtepMac garbage', (c) => (c.backend = { type: 'vxlan', vtepMac: 'zz:zz:zz:zz:zz:zz' }), 'backend.vtepMac', '"zz:zz:zz:zz:zz:zz"'],
    ['backend.vtepMac five octets', (c) => (c.backend = { type: 'vxlan', vtepMac: '0a:58:0a:f4:02' }), 'backend.vtepMac', '"0a:58:0a:f4:02"'],
    ['backend.vtepMac dashes', (c) => (c.backend = { type: 'vxlan', vtepMac: '0a-58-0a-f4-02-00' }), 'backend.vtepMac', '"0a-58-0a-f4-02-00"'],
    ['peers[0].vtepMac bad', (c) => (c.peers[0].vtepMac = '0a:58:0a:f4:01:000'), 'peers[0].vtepMac', '"0a:58:0a:f4:01:000"'],
    ['peers[0].vtepMac missing', (c) => delete c.peers[0].vtepMac, 'peers[0].vtepMac', 'missing'],
    ['vni 2^24', (c) => (c.backend = { type: 'vxlan', vni: 16777216 }), 'backend.vni', '16777216'],
    ['vni -1', (c) => (c.backend = { type: 'vxlan', vni: -1 }), 'backend.vni', '-1'],
    ['vni 1.5', (c) => (c.backend = { type: 'vxlan', vni: 1.5 }), 'backend.vni', '1.5'],
    ['vni as a string', (c) => (c.backend = { type: 'vxlan', vni: '1' }), 'backend.vni', '"1"'],
    ['peers[0].vni 2^24', (c) => (c.peers[0].vni = 16777216), 'peers[0].vni', '16777216'],
    ['port 0', (c) => (c.backend = { type: 'vxlan', port: 0 }), 'backend.port', '0'],
    ['port 65536', (c) => (c.backend = { type: 'vxlan', port: 65536 }), 'backend.port', '65536'],
    ['port 8472.5', (c) => (c.backend = { type: 'vxlan', port: 8472.5 }), 'backend.port', '8472.5'],
    ['peers[0].port 65536', (c) => (c.peers[0].port = 65536), 'peers[0].port', '65536'],
    ['backend.type udp', (c) => (c.backend = { type: 'udp' }), 'backend.type', '"udp"'],
    ['missing publicIp', (c) => delete c.publicIp, 'publicIp', 'missing'],
    ['publicIp IPv6', (c) => (c.publicIp = 'fd00::1'), 'publicIp', '"fd00::1"'],
    ['publicIp octet 256', (c) => (c.publicIp = '198.18.0.256'), 'publicIp', '"198.18.0.256"'],
    ['publicIp empty', (c) => (c.publicIp = ''), 'publicIp', '""'],
    ['publicIp a number', (c) => (c.publicIp = 3323068418), 'publicIp', '3323068418'],
    ['peers[0].publicIp bad', (c) => (c.peers[0].publicIp = 'node-1'), 'peers[0].publicIp', '"node-1"'],
    ['missing network', (c) => delete c.network, 'network', 'missing'],
    ['missing subnet', (c) => delete c.subnet, 'subnet', 'missing'],
    ['device.name 16 characters', (c) => (c.device = { name: 'abcdefghijklmnop' }), 'device.name', '"abcdefghijklmnop"'],
    ['device.name empty', (c) => (c.device = { name: '' }), 'device.name', '""'],
    ['device.name with a slash', (c) => (c.device = { name: 'vx/0' }), 'device.name', '"vx/0"'],
    ['device.name with a space', (c) => (c.device = { name: 'vx 0' }), 'device.name', '"vx 0"'],
    ['device.name with a colon', (c) => (c.device = { name: 'vx:0' }), 'device.name', '"vx:0"'],
    ['device.mtu 575', (c) => (c.device = { mtu: 575 }), 'device.mtu', '575'],
    ['peers not an array', (c) => (c.peers = { subnet: '10.244.1.0/24' }), 'peers', 'subnet'],
    ['a multi-line string value', (c) => (c.publicIp = '198.18.0.2\n'), 'publicIp', '"198.18.0.2\\n"'],
    ['datapath.kind fast', (c) => (c.datapath = { kind: 'fast' }), 'datapath.kind', '"fast"'],
    ['datapath.gso "yes"', (c) => (c.datapath = { gso: 'yes' }), 'datapath.gso', '"yes"'],
    ['datapath.workers 0', (c) => (c.datapath = { workers: 0 }), 'datapath.workers', '0'],
    ['datapath.tunQueueLength 0', (c) => (c.datapath = { tunQueueLength: 0 }), 'datapath.tunQueueLength', '0'],
    ['datapath.tunQueueLength 16.5', (c) => (c.datapath = { tunQueueLength: 16.5 }), 'datapath.tunQueueLength', '16.5'],
    ['datapath.nice -21', (c) => (c.datapath = { nice: -21 }), 'datapath.nice', '-21'],
    ['datapath.nice 1.5', (c) => (c.datapath = { nice: 1.5 }), 'datapath.nice', '1.5'],
    ['datapath.codel.targetUs 0', (c) => (c.datapath = { codel: { targetUs: 0 } }), 'datapath.codel', '0'],
    ['datapath.sourcePorts min above max', (c) => (c.datapath = { sourcePorts: { min: 50000, max: 40000 } }), 'datapath.sourcePorts', '"min":50000'],
    ['datapath.sourcePorts.max 70000', (c) => (c.datapath = { sourcePorts: { max: 70000 } }), 'datapath.sourcePorts', '70000'],
  ];

  it.each(cases)('%s', (_name, edit, field, value) => {
    const e = configError(() => validateConfig(withEdit(edit)));
    expect(e.message.startsWith(`config: ${field}`), e.message).toBe(true);
    expect(e.message, e.message).toContain(value);
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['an array', []],
    ['a string', 'publicIp=198.18.0.2'],
    ['a number', 5],
  ])('not an object (%s)', (_name, raw) => {
    const e = configError(() => validateConfig(raw));
    expect(e.message).toMatch(/^config: /);
  });

  // Linux (dev_valid_name) refuses "." and ".." as interface names; the regex lets them through,
  // so validation passes and the TUN ioctl fails later with EINVAL instead.
  it.each(['.', '..'])('device.name %j is refused like Linux refuses it', (name) => {
    const e = configError(() => validateConfig(withEdit((c) => (c.device = { name }))));
    expect(e.message.startsWith('config: device.name'), e.message).toBe(true);
  });
});

describe('loadConfig: file errors', () => {
  it('a missing file: one line naming the path', () => {
    const p = join(dir, 'does-not-exist', 'vxtun.json');
    const e = configError(() => loadConfig(p));
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/no such file/);
  });

  it('a directory instead of a file', () => {
    const e = configError(() => loadConfig(dir));
    expect(e.message).toContain(dir);
  });

  it.each<[string, string]>([
    ['truncated', '{"publicIp": "198.18.0.2", '],
    ['trailing comma', '{"publicIp": "198.18.0.2",}'],
    ['empty file', ''],
    ['not JSON at all', 'publicIp = 198.18.0.2'],
  ])('invalid JSON (%s): one line naming the file', (name, text) => {
    const p = file(`bad-${name.replace(/\W+/g, '-')}.json`, text);
    const e = configError(() => loadConfig(p));
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/not valid JSON/);
  });

  it('invalid JSON in a multi-line file: still one line (V8 quotes the source text in its message)', () => {
    // an unquoted value: V8 says `Unexpected token 'v', ..."{ "type": vxlan }\n}\n" is not valid JSON`
    const p = file('bad-multiline.json', '{\n  "publicIp": "198.18.0.2",\n  "backend": { "type": vxlan }\n}\n');
    const e = configError(() => loadConfig(p));
    expect(e.message).toContain(p);
  });

  it('a file that is valid JSON but a bad config: the field error, not a file error', () => {
    const p = file('bad-vni.json', JSON.stringify({ ...EXAMPLE, backend: { type: 'vxlan', vni: 16777216 } }, null, 2));
    const e = configError(() => loadConfig(p));
    expect(e.message).toMatch(/^config: backend\.vni: 16777216/);
  });
});

