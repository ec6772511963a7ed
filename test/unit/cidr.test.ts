// parseCidr / cidrToString / masks / containment and overlap: the prefixes config and routes rely on.
import { describe, expect, it } from 'vitest';
import { parseCidr, cidrToString, cidrContains, cidrOverlaps, ipv4Mask, maskIpv6, type Cidr } from '../../src/packet/cidr.js';

const cidr = (s: string): Cidr => {
  const c = parseCidr(s);
  if (typeof c === 'string') throw new Error(`${s}: ${c}`);
  return c;
};

describe('parseCidr: valid', () => {
  it.each<[string, number, number]>([
    ['10.244.0.0/16', 0x0af40000, 16],
    ['10.244.2.0/24', 0x0af40200, 24],
    ['0.0.0.0/0', 0, 0],
    ['255.255.255.255/32', 0xffffffff, 32],
    ['10.244.2.7/32', 0x0af40207, 32],
    ['128.0.0.0/1', 0x80000000, 1],
    ['192.168.0.0/23', 0xc0a80000, 23],
    ['10.244.2.254/31', 0x0af402fe, 31],
  ])('%s', (text, addr, len) => {
    const c = cidr(text);
    expect(c).toEqual({ family: 4, addr, prefixLen: len });
    expect(c.family === 4 && c.addr >= 0).toBe(true); // unsigned
  });

  it.each<[string, string, number]>([
    ['fd00::/8', 'fd000000000000000000000000000000', 8],
    ['::/0', '00000000000000000000000000000000', 0],
    ['fd00:244:2::/64', 'fd000244000200000000000000000000', 64],
    ['2001:db8::1/128', '20010db8000000000000000000000001', 128],
    ['fd00:244:2:0:8000::/65', 'fd000244000200008000000000000000', 65],
    ['::ffff:10.0.0.0/104', '00000000000000000000ffff0a000000', 104],
    ['FD00:244::/32', 'fd000244000000000000000000000000', 32],
  ])('%s', (text, hexAddr, len) => {
    const c = cidr(text);
    expect(c.family).toBe(6);
    expect(c.prefixLen).toBe(len);
    expect(Buffer.from(c.addr as Buffer).toString('hex')).toBe(hexAddr);
  });
});

describe('parseCidr: invalid input returns a message, never throws', () => {
  it.each<[string, RegExp]>([
    ['10.244.0.0', /address\/prefix-length/],
    ['10.244.0.0/', /prefix length/],
    ['10.244.0.0/33', /33 is over 32/],
    ['10.244.0.0/999', /over 32/],
    ['10.244.0.0/1000', /prefix length/],
    ['10.244.0.0/-1', /prefix length/],
    ['10.244.0.0/1.5', /prefix length/],
    ['10.244.0.0/ 8', /prefix length/],
    ['10.244.0.0/8 ', /prefix length/],
    ['10.244.0.0/+8', /prefix length/],
    ['10.244.0.0/8/8', /prefix length/],
    ['10.244.0.1/16', /host bits set \(network is 10\.244\.0\.0\/16\)/],
    ['10.244.2.7/24', /host bits set \(network is 10\.244\.2\.0\/24\)/],
    ['10.0.0.0/0', /host bits set \(network is 0\.0\.0\.0\/0\)/],
    ['10.244.2.255/31', /host bits set \(network is 10\.244\.2\.254\/31\)/],
    ['fd00::1/64', /host bits set \(network is fd00::\/64\)/],
    ['fd00:244:2:0:c000::/65', /host bits set \(network is fd00:244:2:0:8000::\/65\)/],
    ['fd00::/129', /129 is over 128/],
    ['256.0.0.0/8', /not an IPv4 or IPv6 address/],
    ['10.0.0/8', /not an IPv4 or IPv6 address/],
    ['010.0.0.0/8', /not an IPv4 or IPv6 address/],
    [' 10.0.0.0/8', /not an IPv4 or IPv6 address/],
    ['fd00:::/16', /not an IPv4 or IPv6 address/],
    ['fe80::1%eth0/64', /not an IPv4 or IPv6 address/],
    ['/8', /not an IPv4 or IPv6 address/],
    ['x/8', /not an IPv4 or IPv6 address/],
    ['', /address\/prefix-length/],
  ])('%j -> %s', (text, message) => {
    let r: Cidr | string | undefined;
    expect(() => (r = parseCidr(text))).not.toThrow();
    expect(typeof r).toBe('string');
    expect(r as string).toMatch(message);
  });
});

describe('cidrToString', () => {
  it.each(['10.244.0.0/16', '0.0.0.0/0', '255.255.255.255/32', 'fd00::/8', '::/0', 'fd00:244:2::/64', '2001:db8::1/128', 'fd00:244:2:0:8000::/65'])(
    'round-trips %s',
    (text) => {
      expect(cidrToString(cidr(text))).toBe(text);
    },
  );
  it('prints IPv6 canonically (RFC 5952)', () => {
    expect(cidrToString(cidr('FD00:0244:0000:0000::/32'))).toBe('fd00:244::/32');
    expect(cidrToString(cidr('::ffff:10.0.0.0/104'))).toBe('::ffff:10.0.0.0/104');
  });
});

describe('masks', () => {
  it('ipv4Mask: every length, unsigned', () => {
    expect(ipv4Mask(0)).toBe(0);
    expect(ipv4Mask(1)).toBe(0x80000000);
    expect(ipv4Mask(8)).toBe(0xff000000);
    expect(ipv4Mask(24)).toBe(0xffffff00);
    expect(ipv4Mask(31)).toBe(0xfffffffe);
    expect(ipv4Mask(32)).toBe(0xffffffff);
    for (let len = 0; len <= 32; len++) {
      const m = ipv4Mask(len);
      expect(m).toBeGreaterThanOrEqual(0);
      expect(m.toString(2).replace(/^0$/, '').padStart(32, '0')).toBe('1'.repeat(len) + '0'.repeat(32 - len));
    }
  });

  it('maskIpv6: every length, input untouched, any Uint8Array', () => {
    const all = new Uint8Array(16).fill(0xff);
    for (let len = 0; len <= 128; len++) {
      const m = maskIpv6(all, len);
      expect(m.length).toBe(16);
      const bitsOf = Array.from(m, (b) => b.toString(2).padStart(8, '0')).join('');
      expect(bitsOf).toBe('1'.repeat(len) + '0'.repeat(128 - len));
    }
    expect(Array.from(all).every((b) => b === 0xff)).toBe(true);
    const view = Buffer.from('aa'.repeat(8) + 'fd000244000200000123456789abcdef' + 'bb'.repeat(8), 'hex').subarray(8, 24);
    expect(maskIpv6(view, 64).toString('hex')).toBe('fd000244000200000000000000000000');
    expect(maskIpv6(view, 68).toString('hex')).toBe('fd000244000200000000000000000000');
    expect(maskIpv6(view, 72).toString('hex')).toBe('fd000244000200000100000000000000');
    expect(maskIpv6(view, 76).toString('hex')).toBe('fd000244000200000120000000000000');
  });
});

describe('cidrContains / cidrOverlaps', () => {
  const cases: [string, string, boolean, boolean][] = [
    // outer, inner, contains(outer, inner), overlaps
    ['10.244.0.0/16', '10.244.2.0/24', true, true],
    ['10.244.2.0/24', '10.244.0.0/16', false, true],
    ['10.244.2.0/24', '10.244.2.0/24', true, true],
    ['10.244.2.0/24', '10.244.3.0/24', false, false],
    ['10.244.2.0/24', '10.244.2.128/25', true, true],
    ['10.244.2.0/25', '10.244.2.128/25', false, false], // adjacent halves
    ['10.244.0.0/16', '10.245.0.0/16', false, false],
    ['10.244.0.0/15', '10.245.0.0/16', true, true],
    ['10.246.0.0/15', '10.245.0.0/16', false, false],
    ['0.0.0.0/0', '10.244.2.7/32', true, true],
    ['0.0.0.0/0', '255.255.255.255/32', true, true],
    ['0.0.0.0/0', '0.0.0.0/0', true, true],
    ['128.0.0.0/1', '127.0.0.0/8', false, false],
    ['10.244.2.7/32', '10.244.2.7/32', true, true],
    ['10.244.2.7/32', '10.244.2.6/32', false, false],
    ['fd00::/8', 'fd00:244:2::/64', true, true],
    ['fd00:244::/32', 'fd00:245::/32', false, false],
    ['fd00:244::/31', 'fd00:245::/32', true, true],
    ['fd00:244:2::/64', 'fd00:244:2:0:8000::/65', true, true],
    ['fd00:244:2::/65', 'fd00:244:2:0:8000::/65', false, false],
    ['::/0', 'fd00:244:2::7/128', true, true],
    // families never mix
    ['0.0.0.0/0', '::/0', false, false],
    ['::/0', '0.0.0.0/0', false, false],
    ['::/0', '10.244.0.0/16', false, false],
    ['0.0.0.0/0', '::ffff:10.244.0.0/112', false, false],
  ];
  it.each(cases)('%s vs %s: contains %s, overlaps %s', (outer, inner, contains, overlaps) => {
    const o = cidr(outer);
    const i = cidr(inner);
    expect(cidrContains(o, i)).toBe(contains);
    expect(cidrOverlaps(o, i)).toBe(overlaps);
    expect(cidrOverlaps(i, o)).toBe(overlaps); // symmetric
  });
});
