import { describe, it, expect } from 'vitest';
import { WireError } from '../../src/packet/wire/error.js';
import { EthernetFrame, EtherType } from '../../src/packet/wire/ethernet.js';
import {
  ICMPV4_ERROR_MAX_INVOKING,
  ICMPV4_HEADER_LEN,
  Icmpv4Code,
  Icmpv4Field,
  Icmpv4Message,
  Icmpv4TimeExceededCode,
  Icmpv4Type,
  emitIcmpv4,
  icmpv4ErrorLength,
  icmpv4Length,
  type Icmpv4Repr,
} from '../../src/packet/wire/icmpv4.js';
import { IpProtocol, Ipv4Field, Ipv4Packet, emitIpv4, ipv4ToString } from '../../src/packet/wire/ipv4.js';
import { UdpDatagram } from '../../src/packet/wire/udp.js';
import { loadTcpdumpHex } from '../support/fixtures.js';
import { decap, exercise, hex, ok, randomBytes, rng } from '../support/wire.js';
import { ICMP_PORT_UNREACHABLE } from '../support/kernel-frames.js';

// Golden vectors: frames the Linux kernel's own VXLAN device (flannel.1, VNI 1, port 8472) sent
// over a veth underlay, captured with `tcpdump -xx` and printed with `tcpdump -vv`; the comment
// above each is tcpdump's decode of it.

/**
 * IP (tos 0x0, ttl 64, id 60762, offset 0, flags [none], proto UDP (17), length 134)
 * 198.18.0.1.48974 > 198.18.0.2.8472: [bad udp cksum 0x8cab -> 0x53e3!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0x0, ttl 64, id 18956, offset 0, flags [DF], proto ICMP (1), length 84)
 * 10.244.1.0 > 10.244.2.7: ICMP echo request, id 9496, seq 1, length 64
 */
const ICMP_ECHO_REQUEST = hex(`
  3e1b6ca911926a315ae6cf81080045000086ed5a0000401100e5c6120001c6120002bf4e211800728cab080000000000
  01000a580af402000a580af401000800450000544a0c40004001d7ae0af401000af402070800a36d251800013a4d036b
  0000000029ee090000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233
  34353637
`);

/**
 * IP (tos 0x0, ttl 64, id 27244, offset 0, flags [none], proto UDP (17), length 134)
 * 198.18.0.2.48974 > 198.18.0.1.8472: [bad udp cksum 0x8cab -> 0x53e3!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0x0, ttl 64, id 53258, offset 0, flags [none], proto ICMP (1), length 84)
 * 10.244.2.7 > 10.244.1.0: ICMP echo reply, id 9496, seq 1, length 64
 */
const ICMP_ECHO_REPLY = hex(`
  6a315ae6cf813e1b6ca911920800450000866a6c0000401183d3c6120002c6120001bf4e211800728cab080000000000
  01000a580af401000a580af40200080045000054d00a0000400191b00af402070af401000000ab6d251800013a4d036b
  0000000029ee090000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233
  34353637
`);

/**
 * IP (tos 0x0, ttl 64, id 27287, offset 0, flags [none], proto UDP (17), length 626)
 * 198.18.0.2.49946 > 198.18.0.1.8472: [bad udp cksum 0x8e97 -> 0x4c3f!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0xc0, ttl 64, id 20270, offset 0, flags [none], proto ICMP (1), length 576)
 * 10.244.2.0 > 10.244.1.0: ICMP 10.244.9.1 unreachable - need to frag (mtu 1280), length 556
 * IP (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto ICMP (1), length 1328)
 * 10.244.1.0 > 10.244.9.1: ICMP echo request, id 9540, seq 1, length 1308
 */
const ICMP_FRAG_NEEDED = hex(`
  6a315ae6cf813e1b6ca911920800450002726a970000401181bcc6120002c6120001c31a2118025e8e97080000000000
  01000a580af401000a580af40200080045c002404f2e000040010fe80af402000af401000304870f0000050045000530
  00004000400115e50af401000af4090108008486254400013b4d036b000000002b190100000000001011121314151617
  18191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041424344454647
  48494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f7071727374757677
  78797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7
  a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7
  d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304050607
  08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637
  38393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364656667
  68696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f9091929394959697
  98999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7
  c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7
  f8f9fafbfcfdfeff0001020304050607
`);

/**
 * IP (tos 0x0, ttl 64, id 27288, offset 0, flags [none], proto UDP (17), length 162)
 * 198.18.0.2.49946 > 198.18.0.1.8472: [bad udp cksum 0x8cc7 -> 0x4fdf!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0xc0, ttl 64, id 20271, offset 0, flags [none], proto ICMP (1), length 112)
 * 10.244.2.0 > 10.244.1.0: ICMP time exceeded in-transit, length 92
 * IP (tos 0x0, ttl 1, id 60133, offset 0, flags [DF], proto ICMP (1), length 84)
 * 10.244.1.0 > 10.244.9.1: ICMP echo request, id 9541, seq 1, length 64
 */
const ICMP_TIME_EXCEEDED = hex(`
  6a315ae6cf813e1b6ca911920800450000a26a9800004011838bc6120002c6120001c31a2118008e8cc7080000000000
  01000a580af401000a580af40200080045c000704f2f0000400111b70af402000af401000b00f4ff0000000045000054
  eae5400001016edb0af401000af409010800a409254500013b4d036b0000000030250100000000001011121314151617
  18191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637
`);

function icmpOf(frame: Buffer): { ip: Ipv4Packet; icmp: Icmpv4Message } {
  const eth = decap(frame);
  expect(eth.etherType).toBe(EtherType.IPV4);
  const ip = ok(Ipv4Packet.check(frame, eth.payloadOffset, eth.payloadLength));
  expect(ip.protocol).toBe(IpProtocol.ICMP);
  return { ip, icmp: ok(Icmpv4Message.check(frame, ip.payloadOffset, ip.payloadLength)) };
}

const ALL = [ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_PORT_UNREACHABLE, ICMP_FRAG_NEEDED, ICMP_TIME_EXCEEDED];

describe('Icmpv4Message on kernel-captured packets', () => {
  it('every captured message has a valid checksum', () => {
    for (const frame of ALL) expect(icmpOf(frame).icmp.verifyChecksum()).toBe(true);
  });

  it('decodes "ICMP echo request, id 9496, seq 1, length 64" and its reply', () => {
    const { icmp } = icmpOf(ICMP_ECHO_REQUEST);
    expect(icmp.type).toBe(Icmpv4Type.ECHO_REQUEST);
    expect(icmp.code).toBe(0);
    expect(icmp.identifier).toBe(9496);
    expect(icmp.sequence).toBe(1);
    expect(icmp.length).toBe(64);
    expect(icmp.payloadLength).toBe(56);
    expect(icmp.isEcho).toBe(true);
    expect(icmp.isError).toBe(false);
    const reply = icmpOf(ICMP_ECHO_REPLY).icmp;
    expect(reply.type).toBe(Icmpv4Type.ECHO_REPLY);
    expect([reply.identifier, reply.sequence]).toEqual([9496, 1]);
    expect(reply.payload).toEqual(icmp.payload);
  });

  it('decodes "udp port 9 unreachable" and the datagram it quotes', () => {
    const { icmp } = icmpOf(ICMP_PORT_UNREACHABLE);
    expect(icmp.type).toBe(Icmpv4Type.DEST_UNREACHABLE);
    expect(icmp.code).toBe(Icmpv4Code.PORT_UNREACHABLE);
    expect(icmp.isError).toBe(true);
    expect(icmp.length).toBe(43);
    const repr = icmp.parse();
    expect(repr.kind).toBe('error');
    if (repr.kind !== 'error') return;
    expect(repr.nextHopMtu).toBeUndefined();
    const quoted = ok(Ipv4Packet.check(repr.invoking));
    expect(ipv4ToString(quoted.src)).toBe('10.244.1.0');
    expect(ipv4ToString(quoted.dst)).toBe('10.244.2.0');
    expect(quoted.totalLength).toBe(35);
    const udp = ok(UdpDatagram.check(repr.invoking, quoted.payloadOffset, quoted.payloadLength));
    expect([udp.srcPort, udp.dstPort, udp.payloadLength]).toEqual([45844, 9, 7]);
  });

  it('decodes "unreachable - need to frag (mtu 1280), length 556", quoting 548 bytes as Linux does', () => {
    const { ip, icmp } = icmpOf(ICMP_FRAG_NEEDED);
    expect(ip.totalLength).toBe(576);
    expect(icmp.type).toBe(Icmpv4Type.DEST_UNREACHABLE);
    expect(icmp.code).toBe(Icmpv4Code.FRAG_NEEDED);
    expect(icmp.nextHopMtu).toBe(1280);
    expect(icmp.payloadLength).toBe(ICMPV4_ERROR_MAX_INVOKING);
    const repr = icmp.parse();
    expect(repr).toMatchObject({ kind: 'error', type: 3, code: 4, nextHopMtu: 1280 });
    // The quoted header still says 1328 bytes, more than is quoted: check() refuses it as a packet.
    const quoted = icmp.payload;
    expect(quoted.readUInt16BE(Ipv4Field.TOTAL_LENGTH)).toBe(1328);
    expect(Ipv4Packet.check(quoted)).toBe(WireError.BadTotalLength);
  });

  it('decodes "time exceeded in-transit"', () => {
    const { icmp } = icmpOf(ICMP_TIME_EXCEEDED);
    expect(icmp.type).toBe(Icmpv4Type.TIME_EXCEEDED);
    expect(icmp.code).toBe(Icmpv4TimeExceededCode.TTL_EXCEEDED);
    expect(icmp.isError).toBe(true);
    expect(icmp.length).toBe(92);
    const quoted = ok(Ipv4Packet.check(icmp.payload));
    expect(quoted.ttl).toBe(1);
    expect(quoted.identification).toBe(60133);
  });

  it('parse() then emitIcmpv4() reproduces every captured message byte (poisoned buffer)', () => {
    for (const frame of ALL) {
      const { icmp } = icmpOf(frame);
      const repr = icmp.parse();
      expect(icmpv4Length(repr)).toBe(icmp.length);
      const out = Buffer.alloc(icmp.length + 10, 0xa5);
      expect(emitIcmpv4(repr, out, 5)).toBe(icmp.length);
      expect(out.subarray(5, 5 + icmp.length)).toEqual(frame.subarray(icmp.offset, icmp.offset + icmp.length));
      expect(out.subarray(0, 5)).toEqual(Buffer.alloc(5, 0xa5));
      expect(out.subarray(5 + icmp.length)).toEqual(Buffer.alloc(5, 0xa5));
    }
  });

  it('builds the frag-needed error the kernel built, from the datagram it refused', () => {
    const captured = icmpOf(ICMP_FRAG_NEEDED);
    const invoking = Buffer.from(captured.icmp.payload); // the first 548 bytes of the echo request
    const repr: Icmpv4Repr = { kind: 'error', type: Icmpv4Type.DEST_UNREACHABLE, code: Icmpv4Code.FRAG_NEEDED, nextHopMtu: 1280, invoking };
    const len = icmpv4ErrorLength(invoking);
    expect(len).toBe(556);
    const out = Buffer.alloc(20 + len, 0xa5);
    emitIpv4(
      { src: captured.ip.src, dst: captured.ip.dst, protocol: IpProtocol.ICMP, ttl: 64, payloadLength: len, identification: 20270, dscpEcn: 0xc0 },
      out,
      0,
    );
    expect(emitIcmpv4(repr, out, 20)).toBe(len);
    expect(out).toEqual(ICMP_FRAG_NEEDED.subarray(captured.ip.offset, captured.ip.offset + 576));
  });
});

describe('Icmpv4 emit', () => {
  it('writes echo, error and other kinds with a valid checksum', () => {
    const reprs: Icmpv4Repr[] = [
      { kind: 'echo', type: Icmpv4Type.ECHO_REPLY, code: 0, identifier: 0xbeef, sequence: 7, data: Buffer.from('abc') },
      { kind: 'error', type: Icmpv4Type.DEST_UNREACHABLE, code: Icmpv4Code.NET_UNREACHABLE, invoking: Buffer.alloc(28, 0x45) },
      { kind: 'error', type: Icmpv4Type.PARAMETER_PROBLEM, code: 0, pointer: 9, invoking: Buffer.alloc(28, 1) },
      { kind: 'error', type: Icmpv4Type.REDIRECT, code: 1, gateway: 0x0af40201, invoking: Buffer.alloc(28, 2) },
      { kind: 'other', type: 13, code: 0, rest: 0x12345678, data: Buffer.alloc(12, 3) },
    ];
    for (const repr of reprs) {
      const out = Buffer.alloc(64, 0xa5);
      const n = emitIcmpv4(repr, out, 0);
      const m = ok(Icmpv4Message.check(out, 0, n));
      expect(m.verifyChecksum()).toBe(true);
      expect(m.parse()).toEqual(repr);
      expect(out.subarray(n)).toEqual(Buffer.alloc(64 - n, 0xa5));
    }
  });

  it('zeroes the unused bytes of an error', () => {
    const out = Buffer.alloc(8 + 4, 0xa5);
    emitIcmpv4({ kind: 'error', type: 11, code: 0, invoking: Buffer.alloc(4) }, out, 0);
    expect(out.readUInt32BE(4)).toBe(0);
  });
});

describe('Icmpv4Message.check refusals', () => {
  it('refuses every length below 8 as Truncated, never throws', () => {
    const b = Buffer.from(icmpOf(ICMP_ECHO_REQUEST).icmp.payload);
    for (let len = 0; len < ICMPV4_HEADER_LEN; len++) expect(Icmpv4Message.check(b, 0, len)).toBe(WireError.Truncated);
    expect(Icmpv4Message.check(b, b.length - 7)).toBe(WireError.Truncated);
    expect(Icmpv4Message.check(b, 1, b.length)).toBe(WireError.Truncated);
    expect(Icmpv4Message.check(b, -1, 8)).toBe(WireError.Truncated);
    const m = ok(Icmpv4Message.check(b, 0, 8));
    expect(m.payloadLength).toBe(0);
    expect(m.payload.length).toBe(0);
    expect(b.readUInt16BE(Icmpv4Field.CHECKSUM)).toBe(m.checksum);
  });

  it('classifies error types as RFC 792 does', () => {
    const b = Buffer.alloc(8);
    const errors = [3, 4, 5, 11, 12];
    for (let t = 0; t < 256; t++) {
      b[0] = t;
      expect(ok(Icmpv4Message.check(b)).isError).toBe(errors.includes(t));
    }
  });
});

describe('Icmpv4Message fuzz', () => {
  it('check(), every accessor and parse() never throw on random bytes (10 000 cases)', () => {
    const r = rng(0x1c3);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const size = Math.floor(r() * 40);
      const b = randomBytes(r, size);
      if (size > 0 && r() < 0.6) b[0] = [0, 3, 4, 5, 8, 11, 12, 13][Math.floor(r() * 8)]!;
      const offset = Math.floor(r() * 4) - 1;
      const length = Math.floor(r() * (size + 4)) - 2;
      for (const v of [Icmpv4Message.check(b), Icmpv4Message.check(b, offset, length)]) {
        if (v instanceof WireError) continue;
        accepted++;
        exercise(v);
        const repr = v.parse();
        const out = Buffer.alloc(icmpv4Length(repr));
        emitIcmpv4(repr, out, 0);
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});

/** The ICMP message of a fixture: inner (VXLAN) or, for eth-* fixtures, directly on the underlay. */
function fixtureIcmp(name: string): { frame: Buffer; summary: string; icmp: Icmpv4Message } {
  const fx = loadTcpdumpHex(name);
  if (name.startsWith('vxlan-')) return { frame: fx.bytes, summary: fx.summary, icmp: icmpOf(fx.bytes).icmp };
  const eth = ok(EthernetFrame.check(fx.bytes));
  const ip = ok(Ipv4Packet.check(fx.bytes, eth.payloadOffset, eth.payloadLength));
  return { frame: fx.bytes, summary: fx.summary, icmp: ok(Icmpv4Message.check(fx.bytes, ip.payloadOffset, ip.payloadLength)) };
}

describe('Icmpv4Message on the kernel fixtures (test/fixtures/kernel)', () => {
  const names = ['vxlan-icmp-echo-request', 'vxlan-icmp-echo-reply', 'eth-ipv4-icmp-echo-request', 'eth-ipv4-icmp-port-unreachable'];

  it('echo requests and replies: id, seq and length as tcpdump printed them', () => {
    for (const name of names.slice(0, 3)) {
      const { summary, icmp } = fixtureIcmp(name);
      const m = /ICMP echo (request|reply), id (\d+), seq (\d+), length (\d+)/.exec(summary)!;
      expect(icmp.type, name).toBe(m[1] === 'request' ? Icmpv4Type.ECHO_REQUEST : Icmpv4Type.ECHO_REPLY);
      expect(icmp.code).toBe(0);
      expect(icmp.identifier, name).toBe(Number(m[2]));
      expect(icmp.sequence, name).toBe(Number(m[3]));
      expect(icmp.length, name).toBe(Number(m[4]));
      // ping's pattern "vxtun" (767874756e) fills the data after its 16-byte timestamp
      expect(icmp.payload.subarray(16).toString('latin1'), name).toContain('vxtunvxtun');
    }
  });

  it('eth-ipv4-icmp-port-unreachable: "udp port 9999 unreachable, length 54"', () => {
    const { icmp } = fixtureIcmp('eth-ipv4-icmp-port-unreachable');
    expect([icmp.type, icmp.code, icmp.length]).toEqual([Icmpv4Type.DEST_UNREACHABLE, Icmpv4Code.PORT_UNREACHABLE, 54]);
    const repr = icmp.parse();
    if (repr.kind !== 'error') throw new Error(repr.kind);
    const quoted = ok(Ipv4Packet.check(repr.invoking));
    const udp = ok(UdpDatagram.check(repr.invoking, quoted.payloadOffset, quoted.payloadLength));
    expect(udp.dstPort).toBe(9999);
  });

  it('every fixture message verifies, and parse() then emitIcmpv4() reproduces it (poisoned buffer)', () => {
    for (const name of names) {
      const { frame, icmp } = fixtureIcmp(name);
      expect(icmp.verifyChecksum(), name).toBe(true);
      const out = Buffer.alloc(icmp.length + 2, 0xa5);
      expect(emitIcmpv4(icmp.parse(), out, 1)).toBe(icmp.length);
      expect(out.subarray(1, 1 + icmp.length), name).toEqual(frame.subarray(icmp.offset, icmp.offset + icmp.length));
      expect([out[0], out[icmp.length + 1]]).toEqual([0xa5, 0xa5]);
    }
  });
});
