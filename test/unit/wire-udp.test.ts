import { describe, it, expect } from 'vitest';
import { onesSum } from '../../src/packet/wire/checksum.js';
import { WireError } from '../../src/packet/wire/error.js';
import { EthernetFrame, EtherType } from '../../src/packet/wire/ethernet.js';
import { IpProtocol, Ipv4Packet, ipv4PseudoHeaderSum } from '../../src/packet/wire/ipv4.js';
import { Ipv6Packet } from '../../src/packet/wire/ipv6.js';
import { UDP_HEADER_LEN, UdpDatagram, UdpField, emitUdp } from '../../src/packet/wire/udp.js';
import { VXLAN_PORT_LINUX } from '../../src/packet/wire/vxlan.js';
import { loadTcpdumpHex } from '../support/fixtures.js';
import { decap, exercise, hex, ok, randomBytes, rng } from '../support/wire.js';
import { UDP6_TO_CLOSED_PORT } from '../support/kernel-frames.js';

// Golden vectors: frames the Linux kernel's own VXLAN device (flannel.1, VNI 1, port 8472) sent
// over a veth underlay, captured with `tcpdump -xx` and printed with `tcpdump -vv`; the comment
// above each is tcpdump's decode of it.

/**
 * IP (tos 0x0, ttl 64, id 60771, offset 0, flags [none], proto UDP (17), length 85)
 * 198.18.0.1.39356 > 198.18.0.2.8472: [bad udp cksum 0x92df -> 0x365e!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0x0, ttl 64, id 58442, offset 0, flags [DF], proto UDP (17), length 35)
 * 10.244.1.0.45844 > 10.244.2.0.9: [bad udp cksum 0x1908 -> 0xbc86!] UDP, length 7
 */
const UDP_TO_CLOSED_PORT = hex(`
  3e1b6ca911926a315ae6cf81080045000055ed6300004011010dc6120001c612000299bc2118004192df080000000000
  01000a580af402000a580af40100080045000023e44a400040113d980af401000af40200b3140009000f1908636c6f73
  65643f
`);

/** The outer UDP header of a captured VXLAN frame. */
function outerUdp(frame: Buffer): { ip: Ipv4Packet; udp: UdpDatagram } {
  const eth = ok(EthernetFrame.check(frame));
  const ip = ok(Ipv4Packet.check(frame, eth.payloadOffset, eth.payloadLength));
  return { ip, udp: ok(UdpDatagram.check(frame, ip.payloadOffset, ip.payloadLength)) };
}

/** The UDP datagram inside the inner IPv4/IPv6 packet, with its pseudo-header sum. */
function innerUdp(frame: Buffer): { udp: UdpDatagram; pseudo: number } {
  const eth = decap(frame);
  if (eth.etherType === EtherType.IPV4) {
    const ip = ok(Ipv4Packet.check(frame, eth.payloadOffset, eth.payloadLength));
    expect(ip.protocol).toBe(IpProtocol.UDP);
    const udp = ok(UdpDatagram.check(frame, ip.payloadOffset, ip.payloadLength));
    return { udp, pseudo: ip.pseudoHeaderSum(IpProtocol.UDP, udp.length) };
  }
  const ip = ok(Ipv6Packet.check(frame, eth.payloadOffset, eth.payloadLength));
  expect(ip.nextHeader).toBe(IpProtocol.UDP);
  const udp = ok(UdpDatagram.check(frame, ip.payloadOffset, ip.payloadLength));
  return { udp, pseudo: ip.pseudoHeaderSum(IpProtocol.UDP, udp.length) };
}

/** tcpdump's "[bad udp cksum 0xAAAA -> 0xBBBB!]" pairs, in order (outer first). */
function udpChecksums(summary: string): { field: number; correct: number }[] {
  return [...summary.matchAll(/bad udp cksum 0x([0-9a-f]+) -> 0x([0-9a-f]+)!/g)].map((m) => ({
    field: parseInt(m[1]!, 16),
    correct: parseInt(m[2]!, 16),
  }));
}

/** emitUdp(parse(), pseudo) over a copy reproduces the header, with the checksum tcpdump computed. */
function expectEmitReproduces(frame: Buffer, udp: UdpDatagram, pseudo: number, correct: number): void {
  const out = Buffer.alloc(udp.length + 4, 0xa5);
  frame.copy(out, 2 + UDP_HEADER_LEN, udp.payloadOffset, udp.payloadOffset + udp.payloadLength);
  expect(emitUdp(udp.parse(), out, 2, pseudo)).toBe(UDP_HEADER_LEN);
  const expected = Buffer.from(frame.subarray(udp.offset, udp.offset + udp.length));
  expected.writeUInt16BE(correct, UdpField.CHECKSUM);
  expect(out.subarray(2, 2 + udp.length)).toEqual(expected);
  expect([out[0], out[1], out[out.length - 2], out[out.length - 1]]).toEqual([0xa5, 0xa5, 0xa5, 0xa5]);
}

describe('UdpDatagram on kernel-captured packets', () => {
  it('decodes the outer VXLAN datagram "198.18.0.1.39356 > 198.18.0.2.8472"', () => {
    const { ip, udp } = outerUdp(UDP_TO_CLOSED_PORT);
    expect(udp.srcPort).toBe(39356);
    expect(udp.dstPort).toBe(VXLAN_PORT_LINUX);
    expect(udp.length).toBe(ip.payloadLength);
    expect(udp.length).toBe(85 - 20);
    expect(udp.checksum).toBe(0x92df);
    expect(udp.payloadOffset).toBe(udp.offset + 8);
    expect(udp.payloadLength).toBe(udp.length - 8);
  });

  it('decodes inner "10.244.1.0.45844 > 10.244.2.0.9: UDP, length 7" (odd length)', () => {
    const { udp, pseudo } = innerUdp(UDP_TO_CLOSED_PORT);
    expect(udp.parse()).toEqual({ srcPort: 45844, dstPort: 9, payloadLength: 7 });
    expect(udp.checksum).toBe(0x1908);
    expect(udp.verifyChecksum(pseudo)).toBe(false); // partial, see wire-l4checksum
    expect(UDP_TO_CLOSED_PORT.subarray(udp.payloadOffset, udp.payloadOffset + udp.payloadLength).toString()).toBe('closed?');
  });

  it('decodes inner IPv6 "fd00:1::1.40150 > fd00:2::1.9: UDP, length 7"', () => {
    const { udp } = innerUdp(UDP6_TO_CLOSED_PORT);
    expect(udp.parse()).toEqual({ srcPort: 40150, dstPort: 9, payloadLength: 7 });
    expect(udp.checksum).toBe(0xfa26);
  });

  it('emitUdp with a pseudo-header sum gives the checksum tcpdump computed, inner and outer', () => {
    // [frame, outer "-> 0x....", inner "-> 0x...."] from the tcpdump lines above
    const cases: [Buffer, number, number][] = [
      [UDP_TO_CLOSED_PORT, 0x365e, 0xbc86],
      [UDP6_TO_CLOSED_PORT, 0x31e8, 0xfaa5],
    ];
    for (const [frame, outerCorrect, innerCorrect] of cases) {
      const inner = innerUdp(frame);
      expectEmitReproduces(frame, inner.udp, inner.pseudo, innerCorrect);
      const outer = outerUdp(frame);
      expectEmitReproduces(frame, outer.udp, outer.ip.pseudoHeaderSum(IpProtocol.UDP, outer.udp.length), outerCorrect);
    }
  });
});

describe('UdpDatagram on the kernel fixtures (test/fixtures/kernel)', () => {
  it('vxlan-udp: outer and inner ports, lengths and checksums as tcpdump printed them', () => {
    const fx = loadTcpdumpHex('vxlan-udp');
    const sums = udpChecksums(fx.summary);
    expect(sums).toHaveLength(2);
    const outer = outerUdp(fx.bytes);
    expect([outer.udp.srcPort, outer.udp.dstPort, outer.udp.length]).toEqual([43171, 8472, 96 - 20]);
    expect(outer.udp.checksum).toBe(sums[0]!.field);
    const inner = innerUdp(fx.bytes);
    expect(inner.udp.parse()).toEqual({ srcPort: 43012, dstPort: 9999, payloadLength: 18 });
    expect(inner.udp.checksum).toBe(sums[1]!.field);
    const payload = fx.bytes.subarray(inner.udp.payloadOffset, inner.udp.payloadOffset + inner.udp.payloadLength);
    expect(payload.toString()).toBe('vxtun udp fixture\n');
    expectEmitReproduces(fx.bytes, inner.udp, inner.pseudo, sums[1]!.correct);
  });

  it('eth-ipv4-udp: a plain underlay datagram', () => {
    const fx = loadTcpdumpHex('eth-ipv4-udp');
    const [sum] = udpChecksums(fx.summary);
    const { ip, udp } = outerUdp(fx.bytes);
    expect(udp.parse()).toEqual({ srcPort: 44083, dstPort: 9999, payloadLength: 18 });
    expect(udp.checksum).toBe(sum!.field);
    expectEmitReproduces(fx.bytes, udp, ip.pseudoHeaderSum(IpProtocol.UDP, udp.length), sum!.correct);
  });

  it('every VXLAN fixture: outer datagram to 8472 with a non-zero checksum (udpcsum)', () => {
    for (const name of ['vxlan-tcp-syn', 'vxlan-tcp-data', 'vxlan-udp', 'vxlan-arp-request', 'vxlan-icmpv6-echo-request', 'vxlan-tcp-gso']) {
      const fx = loadTcpdumpHex(name);
      const { udp } = outerUdp(fx.bytes);
      expect(udp.dstPort, name).toBe(VXLAN_PORT_LINUX);
      expect(udp.checksum, name).not.toBe(0);
      expect(udp.length, name).toBe(fx.bytes.length - 34);
    }
  });
});

describe('emitUdp', () => {
  it('writes checksum 0 without a pseudo-header sum', () => {
    const out = Buffer.alloc(12, 0xa5);
    expect(emitUdp({ srcPort: 1, dstPort: 8472, payloadLength: 4 }, out, 0)).toBe(8);
    expect(out.subarray(0, 8)).toEqual(Buffer.from([0, 1, 0x21, 0x18, 0, 12, 0, 0]));
    expect(out.subarray(8)).toEqual(Buffer.alloc(4, 0xa5));
  });

  it('stores a computed checksum of 0 as 0xffff (RFC 768)', () => {
    const src = 0x0af40100;
    const dst = 0x0af40200;
    const pseudo = ipv4PseudoHeaderSum(src, dst, IpProtocol.UDP, 10);
    const out = Buffer.alloc(10);
    emitUdp({ srcPort: 1000, dstPort: 2000, payloadLength: 2 }, out, 0);
    // choose the 2 payload bytes so that everything sums to 0xffff: the checksum is then 0
    const partial = onesSum(out, 0, 8, pseudo);
    out.writeUInt16BE(0xffff - partial, 8);
    emitUdp({ srcPort: 1000, dstPort: 2000, payloadLength: 2 }, out, 0, pseudo);
    expect(out.readUInt16BE(UdpField.CHECKSUM)).toBe(0xffff);
    expect(ok(UdpDatagram.check(out)).verifyChecksum(pseudo)).toBe(true);
  });

  it('checksums odd-length payloads and verifies them', () => {
    const r = rng(17);
    for (let i = 0; i < 500; i++) {
      const n = Math.floor(r() * 40);
      const out = randomBytes(r, 8 + n);
      const pseudo = ipv4PseudoHeaderSum(Math.floor(r() * 2 ** 32), Math.floor(r() * 2 ** 32), 17, 8 + n);
      emitUdp({ srcPort: 53, dstPort: 5353, payloadLength: n }, out, 0, pseudo);
      const udp = ok(UdpDatagram.check(out));
      expect(udp.verifyChecksum(pseudo)).toBe(true);
      expect(udp.checksum).not.toBe(0);
    }
  });
});

describe('UdpDatagram.check refusals', () => {
  const base = (): Buffer => {
    const b = Buffer.alloc(12);
    emitUdp({ srcPort: 1, dstPort: 2, payloadLength: 4 }, b, 0);
    return b;
  };

  it('refuses every length below 8 as Truncated', () => {
    const b = base();
    for (let len = 0; len < UDP_HEADER_LEN; len++) expect(UdpDatagram.check(b, 0, len)).toBe(WireError.Truncated);
    expect(UdpDatagram.check(b, 5)).toBe(WireError.Truncated);
    expect(UdpDatagram.check(b, 1, 12)).toBe(WireError.Truncated);
    expect(UdpDatagram.check(b, -1, 8)).toBe(WireError.Truncated);
  });

  it('refuses a length field below 8 or beyond the bytes', () => {
    for (const bad of [0, 1, 7, 13, 0xffff]) {
      const b = base();
      b.writeUInt16BE(bad, UdpField.LENGTH);
      expect(UdpDatagram.check(b)).toBe(WireError.BadTotalLength);
    }
    expect(UdpDatagram.check(base(), 0, 11)).toBe(WireError.BadTotalLength);
  });

  it('accepts a length field shorter than the bytes (the rest is ignored)', () => {
    const b = base();
    b.writeUInt16BE(9, UdpField.LENGTH);
    const udp = ok(UdpDatagram.check(b));
    expect([udp.length, udp.payloadLength, udp.available]).toEqual([9, 1, 12]);
  });
});

describe('UdpDatagram fuzz', () => {
  it('check(), every accessor and parse() never throw on random bytes (10 000 cases)', () => {
    const r = rng(0x0d9);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const size = Math.floor(r() * 40);
      const b = randomBytes(r, size);
      if (size >= 6 && r() < 0.7) b.writeUInt16BE(Math.floor(r() * (size + 4)), 4);
      const offset = Math.floor(r() * 4) - 1;
      const length = Math.floor(r() * (size + 4)) - 2;
      for (const v of [UdpDatagram.check(b), UdpDatagram.check(b, offset, length)]) {
        if (v instanceof WireError) continue;
        accepted++;
        exercise(v);
        v.parse();
        v.verifyChecksum(0x1234);
        expect(v.payloadOffset + v.payloadLength).toBeLessThanOrEqual(b.length);
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});
