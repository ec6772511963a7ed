// The kernel golden packets load, and say what their names say. All parsing here is by hand
// (readUInt16BE & co.) so these checks stay independent of src/wire.
import { describe, expect, it } from 'vitest';
import { fixtureNote, listKernelFixtures, loadTcpdumpHex, parseTcpdumpFixture, type TcpdumpFixture } from '../support/fixtures.js';

const ETH = 14;
const OUTER_IP = ETH;
const OUTER_UDP = OUTER_IP + 20;
const VXLAN = OUTER_UDP + 8;
const INNER_ETH = VXLAN + 8;
const INNER_IP = INNER_ETH + 14;

const VTEP_MAC: Record<string, string> = { '198.18.0.1': '0a580af40100', '198.18.0.2': '0a580af40200' };

const ipv4 = (b: Buffer, off: number) => [...b.subarray(off, off + 4)].join('.');
const hex = (b: Buffer, off: number, len: number) => b.subarray(off, off + len).toString('hex');

/** Unfolded sum of big-endian 16-bit words (odd tail padded with zero). */
function sum16(b: Buffer, start: number, end: number, acc = 0): number {
  for (let i = start; i + 1 < end; i += 2) acc += b.readUInt16BE(i);
  if ((end - start) & 1) acc += b[end - 1]! << 8;
  return acc;
}
const fold = (x: number) => {
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
  return x;
};

type L4 = { proto: number; l4: number; len: number; pseudo: number; csumOff: number };

/** Locates the L4 header behind the IP header at `ip` and its pseudo-header sum. */
function l4Of(b: Buffer, ip: number): L4 {
  const version = b[ip]! >> 4;
  let proto: number, l4: number, len: number, pseudo: number;
  if (version === 4) {
    proto = b[ip + 9]!;
    l4 = ip + (b[ip]! & 15) * 4;
    len = b.readUInt16BE(ip + 2) - (l4 - ip);
    pseudo = sum16(b, ip + 12, ip + 20) + proto + len;
  } else {
    proto = b[ip + 6]!;
    l4 = ip + 40;
    len = b.readUInt16BE(ip + 4);
    pseudo = sum16(b, ip + 8, ip + 40) + proto + len;
  }
  const csumOff = l4 + ({ 6: 16, 17: 6, 58: 2, 1: 2 } as Record<number, number>)[proto]!;
  if (proto === 1) pseudo = 0; // ICMPv4 has no pseudo-header
  return { proto, l4, len, pseudo, csumOff };
}

/** 'complete' | 'partial' (field = folded pseudo-header sum) | 'zero' | 'bad', as the capture script defines them. */
function checksumState(b: Buffer, ip: number): string {
  const { proto, l4, len, pseudo, csumOff } = l4Of(b, ip);
  const field = b.readUInt16BE(csumOff);
  if (proto === 17 && field === 0 && b[ip]! >> 4 === 4) return 'zero';
  if (fold(pseudo + sum16(b, l4, l4 + len)) === 0xffff) return 'complete';
  if (field === fold(pseudo)) return 'partial';
  return 'bad';
}

/** The value the checksum field should hold. */
function correctChecksum(b: Buffer, ip: number): number {
  const { l4, len, pseudo, csumOff } = l4Of(b, ip);
  return ~fold(pseudo + sum16(b, l4, l4 + len) - b.readUInt16BE(csumOff)) & 0xffff;
}

const all = listKernelFixtures();
const vxlan = all.filter((n) => n.startsWith('vxlan-'));
const load = (n: string): TcpdumpFixture => loadTcpdumpHex(n);

describe('kernel fixtures: loader', () => {
  it('finds the expected set', () => {
    for (const n of [
      'vxlan-icmp-echo-request',
      'vxlan-icmp-echo-reply',
      'vxlan-tcp-syn',
      'vxlan-tcp-data',
      'vxlan-udp',
      'vxlan-arp-request',
      'vxlan-icmpv6-echo-request',
      'eth-ipv4-icmp-echo-request',
    ]) {
      expect(all).toContain(n);
    }
  });

  it.each(all)('%s loads one complete, non-empty packet', (name) => {
    const fx = load(name);
    expect(fx.bytes.length).toBeGreaterThan(ETH + 20);
    expect(fx.summary).toMatch(/^\d\d:\d\d:\d\d\.\d{6} IP /);
    expect(fx.notes.some((n) => n.startsWith('captured on '))).toBe(true);
    expect(fx.bytes.readUInt16BE(12)).toBe(0x0800);
    // Not truncated: the dump covers the whole outer IPv4 datagram.
    expect(fx.bytes.length).toBe(ETH + fx.bytes.readUInt16BE(OUTER_IP + 2));
    // The kernel always fills in the IPv4 header checksum.
    expect(fold(sum16(fx.bytes, OUTER_IP, OUTER_IP + 20))).toBe(0xffff);
  });

  it('accepts the name with or without .txt and strips "# " from notes', () => {
    const a = loadTcpdumpHex('vxlan-udp');
    const b = loadTcpdumpHex('vxlan-udp.txt');
    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect(a.notes[0]).not.toMatch(/^#/);
    expect(fixtureNote(a, 'inner-udp-checksum')).toBeDefined();
  });

  it('parses the format and rejects malformed input', () => {
    const text = [
      '# a note',
      '12:00:00.000000 IP 198.18.0.1 > 198.18.0.2: test',
      '\t    0x0000:  dead beef',
      '\t0x0000:  0102 0304 0506 0708 090a 0b0c 0d0e 0f10',
      '\t0x0010:  11',
    ].join('\n');
    const fx = parseTcpdumpFixture(text);
    expect(fx.notes).toEqual(['a note']);
    expect(fx.bytes.toString('hex')).toBe('0102030405060708090a0b0c0d0e0f1011');
    expect(fx.summary).toContain('0x0000:  dead beef'); // a -vv decoder's dump is not packet data
    expect(() => parseTcpdumpFixture('x\n\t0x0000:  0102\n\t0x0004:  0304')).toThrow(/offset/);
    expect(() => parseTcpdumpFixture('# only notes')).toThrow(/one packet/);
    expect(() => parseTcpdumpFixture(`${text}\n12:00:01.000000 IP second\n\t0x0000:  00`)).toThrow(/one packet/);
  });
});

describe('kernel fixtures: VXLAN framing as flannel.1 sends it', () => {
  it.each(vxlan)('%s is IPv4/UDP to 8472 carrying VXLAN VNI 1 between the VTEP MACs', (name) => {
    const b = load(name).bytes;
    expect(b.readUInt16BE(12)).toBe(0x0800);
    expect(b[OUTER_IP]).toBe(0x45);
    expect(b[OUTER_IP + 9]).toBe(17);
    // Outer DF is clear: the kernel's VXLAN does not set it by default.
    expect(b.readUInt16BE(OUTER_IP + 6) & 0x4000).toBe(0);
    expect(b.readUInt16BE(OUTER_UDP + 2)).toBe(8472);
    const sport = b.readUInt16BE(OUTER_UDP);
    expect(sport).toBeGreaterThan(1023); // hashed from the inner flow into the ephemeral range
    expect(b.readUInt16BE(OUTER_UDP + 4)).toBe(b.readUInt16BE(OUTER_IP + 2) - 20);
    expect(b.readUInt16BE(OUTER_UDP + 6)).not.toBe(0); // flannel.1 has udpcsum
    // VXLAN: flags I only, reserved zero, VNI 1.
    expect(b.readUInt32BE(VXLAN)).toBe(0x08000000);
    expect(b.readUInt32BE(VXLAN + 4)).toBe(1 << 8);
    // Inner Ethernet: dst = receiving VTEP's MAC, src = sending VTEP's MAC.
    const src = ipv4(b, OUTER_IP + 12);
    const dst = ipv4(b, OUTER_IP + 16);
    expect(hex(b, INNER_ETH, 6)).toBe(VTEP_MAC[dst]);
    expect(hex(b, INNER_ETH + 6, 6)).toBe(VTEP_MAC[src]);
    expect([0x0800, 0x0806, 0x86dd]).toContain(b.readUInt16BE(INNER_ETH + 12));
  });

  it('ICMP echo request/reply: 10.244.1.0 <-> 10.244.2.0, ICMP summed in software', () => {
    const req = load('vxlan-icmp-echo-request').bytes;
    expect(req.readUInt16BE(INNER_ETH + 12)).toBe(0x0800);
    expect(ipv4(req, INNER_IP + 12)).toBe('10.244.1.0');
    expect(ipv4(req, INNER_IP + 16)).toBe('10.244.2.0');
    expect(req[INNER_IP + 9]).toBe(1);
    expect(req[INNER_IP + 20]).toBe(8);
    expect(checksumState(req, INNER_IP)).toBe('complete');
    const rep = load('vxlan-icmp-echo-reply').bytes;
    expect(ipv4(rep, INNER_IP + 12)).toBe('10.244.2.0');
    expect(rep[INNER_IP + 20]).toBe(0);
    expect(checksumState(rep, INNER_IP)).toBe('complete');
    // Outer UDP checksum left to the (absent) offload: pseudo-header sum only.
    expect(checksumState(req, OUTER_IP)).toBe('partial');
  });

  it('TCP SYN: inner TCP to 5201 with SYN only', () => {
    const b = load('vxlan-tcp-syn').bytes;
    const tcp = INNER_IP + 20;
    expect(b[INNER_IP + 9]).toBe(6);
    expect(b.readUInt16BE(tcp + 2)).toBe(5201);
    expect(b[tcp + 13]! & 0x3f).toBe(0x02);
  });

  it('TCP data over veth: inner checksum is only the pseudo-header sum (CHECKSUM_PARTIAL), outer by LCO', () => {
    const fx = load('vxlan-tcp-data');
    const b = Buffer.from(fx.bytes);
    const tcp = INNER_IP + 20;
    expect(b[tcp + 13]! & 0x08).toBe(0x08); // PSH
    const payload = b.subarray(tcp + (b[tcp + 12]! >> 4) * 4).toString();
    expect(payload).toBe('hello from a kernel vxlan peer\n');
    expect(checksumState(b, INNER_IP)).toBe('partial');
    expect(fixtureNote(fx, 'inner-tcp-checksum')).toBe('partial');
    // The outer UDP checksum is wrong as captured, but right once the inner one is completed:
    // the kernel computed it by local checksum offload over the final inner bytes.
    expect(checksumState(b, OUTER_IP)).toBe('bad');
    b.writeUInt16BE(correctChecksum(b, INNER_IP), tcp + 16);
    expect(checksumState(b, INNER_IP)).toBe('complete');
    expect(checksumState(b, OUTER_IP)).toBe('complete');
    expect(fixtureNote(fx, 'outer-udp-checksum')).toBe('lco');
  });

  it('TCP data with tx checksumming off on the sender: both checksums complete', () => {
    const fx = load('vxlan-tcp-data-txcsum-off');
    expect(checksumState(fx.bytes, INNER_IP)).toBe('complete');
    expect(checksumState(fx.bytes, OUTER_IP)).toBe('complete');
  });

  it('TCP GSO super-packet: inner IPv4 longer than the 1450 MTU, outer UDP pseudo-header only', () => {
    const fx = load('vxlan-tcp-gso');
    const b = fx.bytes;
    expect(b.readUInt16BE(INNER_IP + 2)).toBe(20 + 32 + 4000);
    expect(b.readUInt16BE(INNER_IP + 2)).toBeGreaterThan(1450);
    expect(checksumState(b, INNER_IP)).toBe('partial');
    expect(checksumState(b, OUTER_IP)).toBe('partial');
  });

  it('UDP: inner datagram to 9999 with a partial checksum', () => {
    const b = load('vxlan-udp').bytes;
    const udp = INNER_IP + 20;
    expect(b[INNER_IP + 9]).toBe(17);
    expect(b.readUInt16BE(udp + 2)).toBe(9999);
    expect(b.subarray(udp + 8, udp + b.readUInt16BE(udp + 4)).toString()).toBe('vxtun udp fixture\n');
    expect(checksumState(b, INNER_IP)).toBe('partial');
  });

  it('ARP request and reply for 10.244.2.0 ride inside VXLAN', () => {
    const req = load('vxlan-arp-request').bytes;
    const arp = INNER_ETH + 14;
    expect(req.readUInt16BE(INNER_ETH + 12)).toBe(0x0806);
    expect(req.readUInt16BE(arp)).toBe(1); // Ethernet
    expect(req.readUInt16BE(arp + 2)).toBe(0x0800);
    expect(req[arp + 4]).toBe(6);
    expect(req[arp + 5]).toBe(4);
    expect(req.readUInt16BE(arp + 6)).toBe(1); // request
    expect(hex(req, arp + 8, 6)).toBe('0a580af40100');
    expect(ipv4(req, arp + 14)).toBe('10.244.1.0');
    expect(ipv4(req, arp + 24)).toBe('10.244.2.0');
    // A unicast probe: inner dst MAC is the peer's VTEP MAC, not broadcast.
    expect(hex(req, INNER_ETH, 6)).toBe('0a580af40200');
    const rep = load('vxlan-arp-reply').bytes;
    expect(rep.readUInt16BE(arp + 6)).toBe(2);
    expect(hex(rep, arp + 8, 6)).toBe('0a580af40200');
    expect(ipv4(rep, arp + 14)).toBe('10.244.2.0');
    expect(ipv4(rep, arp + 24)).toBe('10.244.1.0');
  });

  it('ICMPv6 echo and neighbour discovery ride inside VXLAN with complete ICMPv6 checksums', () => {
    const cases: [string, number][] = [
      ['vxlan-icmpv6-echo-request', 128],
      ['vxlan-icmpv6-echo-reply', 129],
      ['vxlan-icmpv6-neighbor-solicitation', 135],
      ['vxlan-icmpv6-neighbor-advertisement', 136],
    ];
    for (const [name, type] of cases) {
      if (!all.includes(name)) continue;
      const b = load(name).bytes;
      expect(b.readUInt16BE(INNER_ETH + 12), name).toBe(0x86dd);
      expect(b[INNER_IP]! >> 4, name).toBe(6);
      expect(b[INNER_IP + 6], name).toBe(58);
      expect(b[INNER_IP + 40], name).toBe(type);
      expect(b.length, name).toBe(INNER_IP + 40 + b.readUInt16BE(INNER_IP + 4));
      expect(checksumState(b, INNER_IP), name).toBe('complete');
    }
    const req = load('vxlan-icmpv6-echo-request').bytes;
    expect(hex(req, INNER_IP + 8, 16)).toBe('fd000244000100000000000000000000');
    expect(hex(req, INNER_IP + 24, 16)).toBe('fd000244000200000000000000000000');
  });

  it.each(vxlan)('%s: checksum notes agree with an independent computation', (name) => {
    const fx = load(name);
    const outer = fixtureNote(fx, 'outer-udp-checksum');
    expect(outer).toBeDefined();
    const innerKey = fx.notes.map((n) => /^(inner-\w+-checksum): /.exec(n)?.[1]).find(Boolean);
    if (innerKey) expect(checksumState(fx.bytes, INNER_IP)).toBe(fixtureNote(fx, innerKey));
    const o = checksumState(fx.bytes, OUTER_IP);
    expect(outer === 'lco' ? o === 'bad' : o === outer).toBe(true);
  });
});

describe('kernel fixtures: plain underlay packets', () => {
  it('ICMP echo request 198.18.0.1 -> 198.18.0.2', () => {
    const b = load('eth-ipv4-icmp-echo-request').bytes;
    expect(b[OUTER_IP + 9]).toBe(1);
    expect(ipv4(b, OUTER_IP + 12)).toBe('198.18.0.1');
    expect(ipv4(b, OUTER_IP + 16)).toBe('198.18.0.2');
    expect(b[OUTER_IP + 20]).toBe(8);
    expect(checksumState(b, OUTER_IP)).toBe('complete');
  });

  it('UDP datagram to 9999 (checksum left partial over veth)', () => {
    const b = load('eth-ipv4-udp').bytes;
    expect(b[OUTER_IP + 9]).toBe(17);
    expect(b.readUInt16BE(OUTER_UDP + 2)).toBe(9999);
    expect(checksumState(b, OUTER_IP)).toBe('partial');
  });

  it('ICMP port unreachable quotes the UDP datagram', () => {
    const b = load('eth-ipv4-icmp-port-unreachable').bytes;
    const icmp = OUTER_IP + 20;
    expect(b[icmp]).toBe(3);
    expect(b[icmp + 1]).toBe(3);
    expect(checksumState(b, OUTER_IP)).toBe('complete');
    expect(b[icmp + 8]).toBe(0x45); // quoted IPv4 header
    expect(b.readUInt16BE(icmp + 8 + 20 + 2)).toBe(9999);
  });
});
