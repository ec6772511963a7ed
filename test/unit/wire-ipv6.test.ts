import { isIPv6 } from 'node:net';
import { describe, it, expect } from 'vitest';
import { WireError } from '../../src/packet/wire/error.js';
import { EtherType } from '../../src/packet/wire/ethernet.js';
import { IpProtocol } from '../../src/packet/wire/ipv4.js';
import {
  IPV6_HEADER_LEN,
  Ipv6Field,
  Ipv6Packet,
  emitIpv6,
  ipv6FromString,
  ipv6PseudoHeaderSum,
  ipv6ToString,
  isIpv6String,
} from '../../src/packet/wire/ipv6.js';
import { loadTcpdumpHex } from '../support/fixtures.js';
import { decap, exercise, ok, randomBytes, rng } from '../support/wire.js';
import { ICMPV6_ECHO_REQUEST, MLD_REPORT_HOP_BY_HOP, NEIGHBOR_SOLICIT_DAD, TCP6_SYN } from '../support/kernel-frames.js';

// Golden vectors: frames the Linux kernel's own VXLAN device (flannel.1, VNI 1, port 8472) sent
// over a veth underlay, captured with `tcpdump -xx` and printed with `tcpdump -vv`; the comment
// above each is tcpdump's decode of it.

function innerIpv6(frame: Buffer): Ipv6Packet {
  const inner = decap(frame);
  expect(inner.etherType).toBe(EtherType.IPV6);
  return ok(Ipv6Packet.check(frame, inner.payloadOffset, inner.payloadLength));
}

describe('Ipv6Packet on kernel-captured packets', () => {
  it('decodes an ICMPv6 echo request as tcpdump does', () => {
    const ip = innerIpv6(ICMPV6_ECHO_REQUEST);
    expect(ip.version).toBe(6);
    expect(ip.trafficClass).toBe(0);
    expect(ip.flowLabel).toBe(0xc60e6);
    expect(ip.payloadLength).toBe(64);
    expect(ip.totalLength).toBe(104);
    expect(ip.nextHeader).toBe(IpProtocol.ICMPV6);
    expect(ip.hopLimit).toBe(64);
    expect(ipv6ToString(ip.src)).toBe('fd00:1::1');
    expect(ipv6ToString(ip.dst)).toBe('fd00:2::1');
    expect(ip.payloadOffset).toBe(ip.offset + 40);
  });

  it('decodes a DAD neighbour solicitation from ::', () => {
    const ip = innerIpv6(NEIGHBOR_SOLICIT_DAD);
    expect(ip.flowLabel).toBe(0);
    expect(ip.hopLimit).toBe(255);
    expect(ip.payloadLength).toBe(32);
    expect(ip.nextHeader).toBe(IpProtocol.ICMPV6);
    expect(ipv6ToString(ip.src)).toBe('::');
    expect(ipv6ToString(ip.dst)).toBe('ff02::1:fff4:100');
  });

  it('reports a hop-by-hop options header as next header 0 (not walked)', () => {
    const ip = innerIpv6(MLD_REPORT_HOP_BY_HOP);
    expect(ip.nextHeader).toBe(0);
    expect(ip.hopLimit).toBe(1);
    expect(ip.payloadLength).toBe(56);
    expect(ipv6ToString(ip.dst)).toBe('ff02::16');
  });

  it('decodes a TCP SYN', () => {
    const ip = innerIpv6(TCP6_SYN);
    expect(ip.flowLabel).toBe(0xde8a7);
    expect(ip.nextHeader).toBe(IpProtocol.TCP);
    expect(ip.payloadLength).toBe(40);
  });

  it('gives the pseudo-header sum that the addresses give', () => {
    const ip = innerIpv6(TCP6_SYN);
    const sum = ip.pseudoHeaderSum(IpProtocol.TCP, 40);
    expect(sum).toBe(ipv6PseudoHeaderSum(ip.src, ip.dst, IpProtocol.TCP, 40));
    // By hand: fd00+0001+0001 (src) + fd00+0002+0001 (dst) + 0028 + 0006, folded
    const raw = 0xfd00 + 1 + 1 + 0xfd00 + 2 + 1 + 40 + 6;
    expect(sum).toBe((raw & 0xffff) + (raw >>> 16));
    // 32-bit upper-layer lengths (jumbograms) fold in too
    expect(ipv6PseudoHeaderSum(ip.src, ip.dst, 6, 0x10028)).toBe(ip.pseudoHeaderSum(6, 0x10028));
  });

  it('parse() then emitIpv6() reproduces every captured header byte (poisoned buffer)', () => {
    for (const frame of [ICMPV6_ECHO_REQUEST, NEIGHBOR_SOLICIT_DAD, MLD_REPORT_HOP_BY_HOP, TCP6_SYN]) {
      const ip = innerIpv6(frame);
      const out = Buffer.alloc(IPV6_HEADER_LEN + 6, 0xa5);
      expect(emitIpv6(ip.parse(), out, 3)).toBe(IPV6_HEADER_LEN);
      expect(out.subarray(3, 43)).toEqual(frame.subarray(ip.offset, ip.offset + 40));
      expect(out.subarray(0, 3)).toEqual(Buffer.alloc(3, 0xa5));
      expect(out.subarray(43)).toEqual(Buffer.alloc(3, 0xa5));
    }
  });

  it('keeps traffic class and flow label apart', () => {
    const out = Buffer.alloc(40, 0xa5);
    const src = ipv6FromString('fd00:1::1');
    const dst = ipv6FromString('fd00:2::1');
    emitIpv6({ src, dst, nextHeader: 17, hopLimit: 1, payloadLength: 0, trafficClass: 0xb8, flowLabel: 0xfffff }, out, 0);
    const ip = ok(Ipv6Packet.check(out));
    expect([ip.version, ip.trafficClass, ip.flowLabel]).toEqual([6, 0xb8, 0xfffff]);
    expect(out.subarray(0, 4)).toEqual(Buffer.from([0x6b, 0x8f, 0xff, 0xff]));
    emitIpv6({ src, dst, nextHeader: 17, hopLimit: 1, payloadLength: 0 }, out, 0);
    expect(ok(Ipv6Packet.check(out)).parse()).toEqual({ src, dst, nextHeader: 17, hopLimit: 1, payloadLength: 0, trafficClass: 0, flowLabel: 0 });
  });
});

describe('Ipv6Packet.check refusals', () => {
  const base = (): Buffer => {
    const b = Buffer.alloc(48, 0);
    emitIpv6({ src: ipv6FromString('fd00:1::1'), dst: ipv6FromString('fd00:2::1'), nextHeader: 17, hopLimit: 64, payloadLength: 8 }, b, 0);
    return b;
  };

  it('refuses every length below 40 as Truncated', () => {
    const b = base();
    for (let len = 0; len < IPV6_HEADER_LEN; len++) expect(Ipv6Packet.check(b, 0, len)).toBe(WireError.Truncated);
    expect(Ipv6Packet.check(b, 9, 40)).toBe(WireError.Truncated);
    expect(Ipv6Packet.check(b, -1, 40)).toBe(WireError.Truncated);
  });

  it('refuses a version other than 6', () => {
    for (const v of [0, 4, 7, 15]) {
      const b = base();
      b[0] = (v << 4) | (b[0]! & 0x0f);
      expect(Ipv6Packet.check(b)).toBe(WireError.BadVersion);
    }
  });

  it('refuses a payload length beyond the bytes, accepts padding', () => {
    const b = base();
    b.writeUInt16BE(9, Ipv6Field.PAYLOAD_LENGTH);
    expect(Ipv6Packet.check(b)).toBe(WireError.BadTotalLength);
    b.writeUInt16BE(8, Ipv6Field.PAYLOAD_LENGTH);
    expect(Ipv6Packet.check(b, 0, 47)).toBe(WireError.BadTotalLength);
    b.writeUInt16BE(2, Ipv6Field.PAYLOAD_LENGTH);
    const ip = ok(Ipv6Packet.check(b));
    expect(ip.payloadLength).toBe(2);
    expect(ip.length).toBe(48);
  });
});

describe('IPv6 address text', () => {
  // RFC 5952 §2 and §4: every form on the left has the canonical form on the right.
  const canonical: [string, string][] = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8::1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:db8:0000:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:DB8:0:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:0001', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:001', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:01', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd::1', '2001:db8:aaaa:bbbb:cccc:dddd:0:1'], // §4.2.2: one 0 field is not shortened
    ['2001:db8:0:0:0::1', '2001:db8::1'], // §4.2.1
    ['2001:db8:0:0::1', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0db8::0001', '2001:db8::1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // §4.2.3: the longest run
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3: the first of equal runs
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:AAAA', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa'], // §4.3
    ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'], // §5: IPv4-mapped in mixed notation
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['::1.2.3.4', '::102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['fe80::0858:0aff:fef4:0100', 'fe80::858:aff:fef4:100'],
    ['FD00:0001:0000:0000:0000:0000:0000:0001', 'fd00:1::1'],
  ];

  it('prints RFC 5952 canonical text and parses every RFC 4291 form', () => {
    for (const [text, canon] of canonical) {
      expect(isIpv6String(text), text).toBe(true);
      expect(ipv6ToString(ipv6FromString(text)), text).toBe(canon);
      expect(ipv6FromString(canon)).toEqual(ipv6FromString(text));
      expect(isIPv6(text), text).toBe(true);
    }
    expect(ipv6FromString('::ffff:192.0.2.1')).toEqual(Buffer.from('00000000000000000000ffffc0000201', 'hex'));
    expect(ipv6FromString('2001:db8::1')).toEqual(Buffer.from('20010db8000000000000000000000001', 'hex'));
  });

  it('refuses malformed text', () => {
    const bad = [
      '', ':', ':::', '1:', ':1', '1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::',
      '::0:1:2:3:4:5:6:7', '12345::', 'g::', '::g', '1:2:3:4:5:6:7:8:', ':1:2:3:4:5:6:7:8', '1.2.3.4',
      '::1.2.3.4.5', '::1.2.3', '::256.1.1.1', '::01.2.3.4', '1.2.3.4::', '::1.2.3.4:1', '1:2:3:4:5:6:7:1.2.3.4',
      'fe80::1%eth0', ' ::1', '::1 ', '[::1]', '::1/128', '0x1::', '1::2:3:4:5:6:7:8',
    ];
    for (const text of bad) {
      expect(isIpv6String(text), text).toBe(false);
      expect(() => ipv6FromString(text), text).toThrow();
    }
  });

  it('agrees with the WHATWG URL serializer (same compression rule, no mixed notation)', () => {
    const r = rng(6);
    for (let i = 0; i < 10_000; i++) {
      const b = Buffer.alloc(16);
      for (let g = 0; g < 8; g++) {
        const x = r();
        b.writeUInt16BE(x < 0.5 ? 0 : x < 0.6 ? Math.floor(r() * 16) : Math.floor(r() * 0x10000), 2 * g);
      }
      const text = ipv6ToString(b);
      expect(ipv6FromString(text)).toEqual(b);
      expect(ipv6ToString(ipv6FromString(text))).toBe(text);
      if (!text.startsWith('::ffff:') || text.split(':').length > 4) {
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
      }
    }
  });
});

describe('Ipv6Packet fuzz', () => {
  it('check(), every accessor and parse() never throw on random bytes (10 000 cases)', () => {
    const r = rng(0x6666);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const size = Math.floor(r() * 100);
      const b = randomBytes(r, size);
      if (size > 6 && r() < 0.7) {
        b[0] = 0x60 | (b[0]! & 0x0f);
        b.writeUInt16BE(Math.floor(r() * Math.max(1, size - 30)), 4);
      }
      const offset = Math.floor(r() * 4) - 1;
      const length = Math.floor(r() * (size + 4)) - 2;
      for (const v of [Ipv6Packet.check(b), Ipv6Packet.check(b, offset, length)]) {
        if (v instanceof WireError) continue;
        accepted++;
        exercise(v);
        v.parse();
        v.pseudoHeaderSum(IpProtocol.UDP, v.payloadLength);
        expect(v.payloadOffset + v.payloadLength).toBeLessThanOrEqual(b.length);
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});

/** tcpdump's "IP6 (flowlabel 0x71d84, hlim 64, next-header ICMPv6 (58) payload length: 64) a > b:" line. */
function tcpdumpIpv6Line(summary: string) {
  const m = /IP6 \((?:flowlabel 0x([0-9a-f]+), )?hlim (\d+), next-header \S+ \((\d+)\) payload length: (\d+)\) (\S+) > (\S+): /.exec(summary);
  if (!m) throw new Error(`no IP6 line in ${summary}`);
  return {
    flowLabel: m[1] === undefined ? 0 : parseInt(m[1], 16),
    hopLimit: Number(m[2]),
    nextHeader: Number(m[3]),
    payloadLength: Number(m[4]),
    src: m[5]!,
    dst: m[6]!,
  };
}

describe('Ipv6Packet on the kernel fixtures (test/fixtures/kernel)', () => {
  const names = [
    'vxlan-icmpv6-echo-request',
    'vxlan-icmpv6-echo-reply',
    'vxlan-icmpv6-neighbor-solicitation',
    'vxlan-icmpv6-neighbor-advertisement',
  ];
  for (const name of names) {
    it(`${name}: fields and canonical address text as tcpdump printed them; emit reproduces the header`, () => {
      const fx = loadTcpdumpHex(name);
      const want = tcpdumpIpv6Line(fx.summary);
      const ip = innerIpv6(fx.bytes);
      expect(ip.version).toBe(6);
      expect(ip.trafficClass).toBe(0);
      expect(ip.flowLabel).toBe(want.flowLabel);
      expect(ip.hopLimit).toBe(want.hopLimit);
      expect(ip.nextHeader).toBe(want.nextHeader);
      expect(ip.payloadLength).toBe(want.payloadLength);
      expect(ipv6ToString(ip.src)).toBe(want.src);
      expect(ipv6ToString(ip.dst)).toBe(want.dst);
      expect(ipv6FromString(want.src)).toEqual(ip.src);
      const out = Buffer.alloc(44, 0xa5);
      emitIpv6(ip.parse(), out, 2);
      expect(out.subarray(2, 42)).toEqual(fx.bytes.subarray(ip.offset, ip.offset + 40));
      expect([out[0], out[1], out[42], out[43]]).toEqual([0xa5, 0xa5, 0xa5, 0xa5]);
    });
  }
});
