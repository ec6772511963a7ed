import { describe, it, expect } from 'vitest';
import { WireError } from '../../src/packet/wire/error.js';
import { EtherType } from '../../src/packet/wire/ethernet.js';
import { IpProtocol, Ipv4Packet } from '../../src/packet/wire/ipv4.js';
import { Ipv6Packet } from '../../src/packet/wire/ipv6.js';
import { TCP_MIN_HEADER_LEN, TcpField, TcpFlags, TcpSegment, tcpFlagsToString } from '../../src/packet/wire/tcp.js';
import { loadTcpdumpHex } from '../support/fixtures.js';
import { decap, exercise, hex, ok, randomBytes, rng } from '../support/wire.js';
import { TCP6_SYN, TCP_SYN } from '../support/kernel-frames.js';

// Golden vectors: frames the Linux kernel's own VXLAN device (flannel.1, VNI 1, port 8472) sent
// over a veth underlay, captured with `tcpdump -xx` and printed with `tcpdump -vv`; the comment
// above each is tcpdump's decode of it.

/**
 * IP (tos 0x0, ttl 64, id 59766, offset 0, flags [none], proto UDP (17), length 110)
 * 198.18.0.2.45861 > 198.18.0.1.8472: [bad udp cksum 0x7952 -> 0xeecf!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto TCP (6), length 60)
 * 10.244.2.0.5201 > 10.244.1.0.36076: Flags [S.], cksum 0x1916 (incorrect -> 0x8e93), seq 1456821426, ack 4282064997, win 64308, options [mss 1410,sackOK,TS val 1931775033 ecr 4203233058,nop,wscale 10], length 0
 */
const TCP_SYN_ACK = hex(`
  5a4bf45689f72e5b2542472e08004500006ee9760000401104e1c6120002c6120001b3252118005a7952080000000000
  01000a580af401000a580af4020008004500003c00004000400621d50af402000af4010014518cec56d554b2ff3b2065
  a012fb3419160000020405820402080a73248c39fa883f220103030a
`);

/**
 * IP (tos 0x0, ttl 64, id 30831, offset 0, flags [none], proto UDP (17), length 113)
 * 198.18.0.1.35003 > 198.18.0.2.8472: [bad udp cksum 0xa3b9 -> 0xa5d2!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0x0, ttl 64, id 45374, offset 0, flags [DF], proto TCP (6), length 63)
 * 10.244.1.0.36076 > 10.244.2.0.5201: Flags [P.], cksum 0x1919 (incorrect -> 0x1b32), seq 1:12, ack 1, win 64, options [nop,nop,TS val 4203233058 ecr 1931775033], length 11
 */
const TCP_DATA = hex(`
  2e5b2542472e5a4bf45689f7080045000071786f0000401175e5c6120001c612000288bb2118005da3b9080000000000
  01000a580af402000a580af4010008004500003fb13e4000400670930af401000af402008cec1451ff3b206556d554b3
  80180040191900000101080afa883f2273248c3968656c6c6f20767874756e
`);

/** The TCP segment inside the inner IPv4/IPv6 packet, with its pseudo-header sum. */
function innerTcp(frame: Buffer): { tcp: TcpSegment; pseudo: number } {
  const eth = decap(frame);
  const ip =
    eth.etherType === EtherType.IPV4
      ? ok(Ipv4Packet.check(frame, eth.payloadOffset, eth.payloadLength))
      : ok(Ipv6Packet.check(frame, eth.payloadOffset, eth.payloadLength));
  const proto = ip instanceof Ipv4Packet ? ip.protocol : ip.nextHeader;
  expect(proto).toBe(IpProtocol.TCP);
  const tcp = ok(TcpSegment.check(frame, ip.payloadOffset, ip.payloadLength));
  return { tcp, pseudo: ip.pseudoHeaderSum(IpProtocol.TCP, ip.payloadLength) };
}

/** Fields of tcpdump's TCP line (with -n and absolute sequence numbers). */
function tcpdumpTcp(summary: string) {
  const m = /\.(\d+) > \S+\.(\d+): Flags \[([^\]]+)\], cksum 0x([0-9a-f]+) \((correct|incorrect -> 0x([0-9a-f]+))\), seq (\d+)(?::(\d+))?, (?:ack (\d+), )?win (\d+), .*length (\d+)/.exec(summary);
  if (!m) throw new Error(`no TCP line in ${summary}`);
  return {
    srcPort: Number(m[1]),
    dstPort: Number(m[2]),
    flags: m[3]!,
    checksum: parseInt(m[4]!, 16),
    correctChecksum: m[6] === undefined ? parseInt(m[4]!, 16) : parseInt(m[6], 16),
    seq: Number(m[7]),
    ack: m[9] === undefined ? undefined : Number(m[9]),
    window: Number(m[10]),
    length: Number(m[11]),
  };
}

describe('TcpSegment on kernel-captured packets', () => {
  it('decodes "Flags [S], seq 4282064996, win 64860, options [mss 1410,...]"', () => {
    const { tcp } = innerTcp(TCP_SYN);
    expect([tcp.srcPort, tcp.dstPort]).toEqual([36076, 5201]);
    expect(tcp.seq).toBe(4282064996);
    expect(tcp.ack).toBe(0);
    expect(tcp.flags).toBe(TcpFlags.SYN);
    expect(tcpFlagsToString(tcp.flags)).toBe('S');
    expect(tcp.window).toBe(64860);
    expect(tcp.headerLength).toBe(40);
    expect(tcp.payloadLength).toBe(0);
    expect(tcp.checksum).toBe(0x1916);
    expect(tcp.urgentPointer).toBe(0);
    // options start with MSS 1410
    expect(TCP_SYN.subarray(tcp.offset + 20, tcp.offset + 24)).toEqual(Buffer.from([2, 4, 0x05, 0x82]));
  });

  it('decodes the SYN-ACK and the data segment of the same connection', () => {
    const synAck = innerTcp(TCP_SYN_ACK).tcp;
    expect([synAck.srcPort, synAck.dstPort, synAck.seq, synAck.ack]).toEqual([5201, 36076, 1456821426, 4282064997]);
    expect(tcpFlagsToString(synAck.flags)).toBe('S.');
    expect(synAck.window).toBe(64308);
    const data = innerTcp(TCP_DATA).tcp;
    expect(tcpFlagsToString(data.flags)).toBe('P.');
    expect([data.seq, data.ack, data.window]).toEqual([4282064997, 1456821427, 64]);
    expect(data.headerLength).toBe(32);
    expect(data.payloadLength).toBe(11);
    expect(data.payloadOffset).toBe(data.offset + 32);
    expect(TCP_DATA.subarray(data.payloadOffset, data.payloadOffset + 11).toString()).toBe('hello vxtun');
  });

  it('decodes an IPv6 SYN "fd00:1::1.57208 > fd00:2::1.5202"', () => {
    const { tcp } = innerTcp(TCP6_SYN);
    expect(tcp.parse()).toEqual({
      srcPort: 57208,
      dstPort: 5202,
      seq: 32306759,
      ack: 0,
      flags: TcpFlags.SYN,
      window: 65330,
      headerLength: 40,
      payloadLength: 0,
    });
    expect(tcp.checksum).toBe(0xfa34);
  });

  it('verifyChecksum is false for these partial checksums (see wire-l4checksum)', () => {
    for (const frame of [TCP_SYN, TCP_SYN_ACK, TCP_DATA, TCP6_SYN]) {
      const { tcp, pseudo } = innerTcp(frame);
      expect(tcp.verifyChecksum(pseudo)).toBe(false);
    }
  });
});

describe('TcpSegment on the kernel fixtures (test/fixtures/kernel)', () => {
  for (const name of ['vxlan-tcp-syn', 'vxlan-tcp-data', 'vxlan-tcp-data-txcsum-off', 'vxlan-tcp-gso']) {
    it(`${name}: every field tcpdump printed`, () => {
      const fx = loadTcpdumpHex(name);
      const want = tcpdumpTcp(fx.summary);
      const { tcp, pseudo } = innerTcp(fx.bytes);
      expect(tcp.srcPort).toBe(want.srcPort);
      expect(tcp.dstPort).toBe(want.dstPort);
      expect(tcpFlagsToString(tcp.flags)).toBe(want.flags);
      expect(tcp.checksum).toBe(want.checksum);
      expect(tcp.seq).toBe(want.seq);
      expect(tcp.ack).toBe(want.ack ?? 0);
      expect(tcp.window).toBe(want.window);
      expect(tcp.payloadLength).toBe(want.length);
      expect(tcp.verifyChecksum(pseudo)).toBe(want.checksum === want.correctChecksum);
    });
  }

  it('vxlan-tcp-data carries the text the peer wrote', () => {
    const fx = loadTcpdumpHex('vxlan-tcp-data');
    const { tcp } = innerTcp(fx.bytes);
    expect(fx.bytes.subarray(tcp.payloadOffset, tcp.payloadOffset + tcp.payloadLength).toString()).toBe(
      'hello from a kernel vxlan peer\n',
    );
  });
});

describe('tcpFlagsToString', () => {
  it('uses tcpdump letters and order', () => {
    expect(tcpFlagsToString(0)).toBe('none');
    expect(tcpFlagsToString(TcpFlags.FIN | TcpFlags.PSH | TcpFlags.ACK)).toBe('FP.');
    expect(tcpFlagsToString(TcpFlags.RST | TcpFlags.ACK)).toBe('R.');
    expect(tcpFlagsToString(TcpFlags.SYN | TcpFlags.ECE | TcpFlags.CWR)).toBe('SEW');
    expect(tcpFlagsToString(0xff)).toBe('FSRP.UEW');
  });
});

describe('TcpSegment.check refusals', () => {
  const base = (): Buffer => {
    const { tcp } = innerTcp(TCP_DATA);
    return Buffer.from(TCP_DATA.subarray(tcp.offset, tcp.offset + tcp.length));
  };

  it('refuses every length below 20 as Truncated', () => {
    const b = base();
    for (let len = 0; len < TCP_MIN_HEADER_LEN; len++) expect(TcpSegment.check(b, 0, len)).toBe(WireError.Truncated);
    expect(TcpSegment.check(b, b.length - 19)).toBe(WireError.Truncated);
    expect(TcpSegment.check(b, 1, b.length)).toBe(WireError.Truncated);
    expect(TcpSegment.check(b, -1, 20)).toBe(WireError.Truncated);
  });

  it('refuses a data offset below 5 or past the segment', () => {
    for (let doff = 0; doff < 5; doff++) {
      const b = base();
      b[TcpField.DATA_OFFSET] = (doff << 4) | (b[TcpField.DATA_OFFSET]! & 0x0f);
      expect(TcpSegment.check(b)).toBe(WireError.BadHeaderLength);
    }
    const b = base(); // 43 bytes, data offset 8 (32 bytes)
    expect(TcpSegment.check(b, 0, 31)).toBe(WireError.BadHeaderLength);
    expect(ok(TcpSegment.check(b, 0, 32)).payloadLength).toBe(0);
    b[TcpField.DATA_OFFSET] = 0xf0; // 60 > 43
    expect(TcpSegment.check(b)).toBe(WireError.BadHeaderLength);
  });
});

describe('TcpSegment fuzz', () => {
  it('check(), every accessor and parse() never throw on random bytes (10 000 cases)', () => {
    const r = rng(0x7c9);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const size = Math.floor(r() * 72);
      const b = randomBytes(r, size);
      if (size > 12 && r() < 0.7) b[12] = (5 + Math.floor(r() * 11)) << 4;
      const offset = Math.floor(r() * 4) - 1;
      const length = Math.floor(r() * (size + 4)) - 2;
      for (const v of [TcpSegment.check(b), TcpSegment.check(b, offset, length)]) {
        if (v instanceof WireError) continue;
        accepted++;
        exercise(v);
        v.parse();
        v.verifyChecksum(0xabcd);
        tcpFlagsToString(v.flags);
        expect(v.payloadOffset + v.payloadLength).toBeLessThanOrEqual(b.length);
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});
