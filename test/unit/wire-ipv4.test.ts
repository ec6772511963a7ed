import { describe, it, expect } from 'vitest';
import { onesSum } from '../../src/packet/wire/checksum.js';
import { WireError } from '../../src/packet/wire/error.js';
import { EthernetFrame, EtherType } from '../../src/packet/wire/ethernet.js';
import {
  IPV4_MIN_HEADER_LEN,
  IpProtocol,
  Ipv4Field,
  Ipv4Packet,
  decrementTtl,
  emitIpv4,
  ipv4FromString,
  ipv4PseudoHeaderSum,
  ipv4ToString,
  isIpv4String,
} from '../../src/packet/wire/ipv4.js';
import { UdpDatagram } from '../../src/packet/wire/udp.js';
import { VXLAN_PORT_LINUX, VxlanHeader } from '../../src/packet/wire/vxlan.js';
import { listKernelFixtures, loadTcpdumpHex } from '../support/fixtures.js';
import { decapWithOuter, exercise, hex, ok, rng } from '../support/wire.js';
import { ICMP_PORT_UNREACHABLE, TCP_SYN } from '../support/kernel-frames.js';

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

function innerIpv4(frame: Buffer): Ipv4Packet {
  const { inner } = decapWithOuter(frame);
  expect(inner.etherType).toBe(EtherType.IPV4);
  return ok(Ipv4Packet.check(frame, inner.payloadOffset, inner.payloadLength));
}

describe('Ipv4Packet on kernel-captured packets', () => {
  it('decodes the outer header as tcpdump does', () => {
    const { outer } = decapWithOuter(ICMP_ECHO_REQUEST);
    expect(outer.version).toBe(4);
    expect(outer.headerLength).toBe(20);
    expect(outer.dscpEcn).toBe(0);
    expect(outer.totalLength).toBe(134);
    expect(outer.identification).toBe(60762);
    expect(outer.dontFragment).toBe(false);
    expect(outer.moreFragments).toBe(false);
    expect(outer.fragmentOffset).toBe(0);
    expect(outer.isFragment).toBe(false);
    expect(outer.ttl).toBe(64);
    expect(outer.protocol).toBe(IpProtocol.UDP);
    expect(ipv4ToString(outer.src)).toBe('198.18.0.1');
    expect(ipv4ToString(outer.dst)).toBe('198.18.0.2');
    expect(outer.verifyHeaderChecksum()).toBe(true);
  });

  it('decodes an inner ICMP echo request (DF set)', () => {
    const ip = innerIpv4(ICMP_ECHO_REQUEST);
    expect(ip.totalLength).toBe(84);
    expect(ip.payloadLength).toBe(64);
    expect(ip.identification).toBe(18956);
    expect(ip.dontFragment).toBe(true);
    expect(ip.isFragment).toBe(false);
    expect(ip.ttl).toBe(64);
    expect(ip.protocol).toBe(IpProtocol.ICMP);
    expect(ipv4ToString(ip.src)).toBe('10.244.1.0');
    expect(ipv4ToString(ip.dst)).toBe('10.244.2.7');
    expect(ip.srcBytes).toEqual(Buffer.from([10, 244, 1, 0]));
    expect(ip.dstBytes).toEqual(Buffer.from([10, 244, 2, 7]));
    expect(ip.payloadOffset).toBe(ip.offset + 20);
    expect(ip.headerChecksum).toBe(ICMP_ECHO_REQUEST.readUInt16BE(ip.offset + Ipv4Field.CHECKSUM));
    expect(ip.verifyHeaderChecksum()).toBe(true);
  });

  it('decodes tos 0xc0 of a kernel ICMP error and the datagram it quotes', () => {
    const ip = innerIpv4(ICMP_PORT_UNREACHABLE);
    expect(ip.dscpEcn).toBe(0xc0);
    expect(ip.identification).toBe(20266);
    expect(ip.dontFragment).toBe(false);
    expect(ip.protocol).toBe(IpProtocol.ICMP);
    expect(ip.totalLength).toBe(63);
    expect(ipv4ToString(ip.src)).toBe('10.244.2.0');
    expect(ipv4ToString(ip.dst)).toBe('10.244.1.0');
    expect(ip.verifyHeaderChecksum()).toBe(true);
    // The quoted datagram: IP (tos 0x0, ttl 64, id 58442, flags [DF], proto UDP (17), length 35)
    const quoted = ok(Ipv4Packet.check(ICMP_PORT_UNREACHABLE, ip.payloadOffset + 8, ip.payloadLength - 8));
    expect(quoted.identification).toBe(58442);
    expect(quoted.dontFragment).toBe(true);
    expect(quoted.protocol).toBe(IpProtocol.UDP);
    expect(quoted.totalLength).toBe(35);
    expect(ipv4ToString(quoted.dst)).toBe('10.244.2.0');
  });

  it('gives the pseudo-header sum that the addresses give', () => {
    const ip = innerIpv4(TCP_SYN);
    expect(ip.pseudoHeaderSum(IpProtocol.TCP, ip.payloadLength)).toBe(
      ipv4PseudoHeaderSum(ip.src, ip.dst, IpProtocol.TCP, ip.payloadLength),
    );
    // By hand: 0af4 + 0100 + 0af4 + 0200 + 0006 + 0028 (length 40)
    expect(ip.pseudoHeaderSum(IpProtocol.TCP, 40)).toBe(0x0af4 + 0x0100 + 0x0af4 + 0x0200 + 6 + 40);
  });

  it('parse() then emitIpv4() reproduces every captured header byte (poisoned buffer)', () => {
    for (const frame of [ICMP_ECHO_REQUEST, ICMP_PORT_UNREACHABLE, TCP_SYN]) {
      const { outer } = decapWithOuter(frame);
      for (const ip of [outer, innerIpv4(frame)]) {
        const out = Buffer.alloc(IPV4_MIN_HEADER_LEN + 8, 0xa5);
        expect(emitIpv4(ip.parse(), out, 4)).toBe(IPV4_MIN_HEADER_LEN);
        expect(out.subarray(4, 24)).toEqual(frame.subarray(ip.offset, ip.offset + 20));
        expect(out.subarray(0, 4)).toEqual(Buffer.alloc(4, 0xa5));
        expect(out.subarray(24)).toEqual(Buffer.alloc(4, 0xa5));
      }
    }
  });

  it('emits defaults for the optional fields', () => {
    const out = Buffer.alloc(28, 0xa5);
    emitIpv4({ src: 0x0af40100, dst: 0x0af40207, protocol: 1, ttl: 64, payloadLength: 8 }, out, 0);
    const ip = ok(Ipv4Packet.check(out));
    expect(ip.parse()).toEqual({
      src: 0x0af40100,
      dst: 0x0af40207,
      protocol: 1,
      ttl: 64,
      payloadLength: 8,
      dontFragment: false,
      identification: 0,
      dscpEcn: 0,
    });
    expect(ip.verifyHeaderChecksum()).toBe(true);
    expect(out.subarray(20)).toEqual(Buffer.alloc(8, 0xa5));
  });
});

/** A valid 20-byte-header packet with `payload` bytes after it. */
function packet(payload = 8): Buffer {
  const b = Buffer.alloc(20 + payload, 0);
  emitIpv4({ src: 0x0af40100, dst: 0x0af40200, protocol: IpProtocol.UDP, ttl: 64, payloadLength: payload }, b, 0);
  return b;
}

describe('Ipv4Packet.check refusals', () => {
  it('refuses every length below 20 as Truncated', () => {
    const b = packet();
    for (let len = 0; len < IPV4_MIN_HEADER_LEN; len++) expect(Ipv4Packet.check(b, 0, len)).toBe(WireError.Truncated);
    expect(Ipv4Packet.check(b.subarray(0, 19))).toBe(WireError.Truncated);
  });

  it('refuses a range that runs past the buffer, or a negative offset', () => {
    const b = packet();
    expect(Ipv4Packet.check(b, 1, b.length)).toBe(WireError.Truncated);
    expect(Ipv4Packet.check(b, -1, 20)).toBe(WireError.Truncated);
  });

  it('refuses a version other than 4', () => {
    for (const v of [0, 1, 5, 6, 15]) {
      const b = packet();
      b[0] = (v << 4) | 5;
      expect(Ipv4Packet.check(b)).toBe(WireError.BadVersion);
    }
  });

  it('refuses IHL < 5 and a header longer than the bytes', () => {
    for (let ihl = 0; ihl < 5; ihl++) {
      const b = packet();
      b[0] = 0x40 | ihl;
      expect(Ipv4Packet.check(b)).toBe(WireError.BadHeaderLength);
    }
    const b = packet(8); // 28 bytes: IHL 8 = 32 > 28
    b[0] = 0x48;
    expect(Ipv4Packet.check(b)).toBe(WireError.BadHeaderLength);
  });

  it('refuses totalLength below the header length or beyond the bytes', () => {
    const b = packet(8);
    b.writeUInt16BE(19, Ipv4Field.TOTAL_LENGTH);
    expect(Ipv4Packet.check(b)).toBe(WireError.BadTotalLength);
    b.writeUInt16BE(29, Ipv4Field.TOTAL_LENGTH);
    expect(Ipv4Packet.check(b)).toBe(WireError.BadTotalLength);
    b[0] = 0x46; // 24-byte header
    b.writeUInt16BE(22, Ipv4Field.TOTAL_LENGTH);
    expect(Ipv4Packet.check(b)).toBe(WireError.BadTotalLength);
  });

  it('accepts options and ignores padding past totalLength', () => {
    const b = Buffer.concat([packet(0), Buffer.alloc(26, 0)]); // 46 bytes, as Ethernet pads
    b[0] = 0x46;
    b.writeUInt16BE(28, Ipv4Field.TOTAL_LENGTH);
    const ip = ok(Ipv4Packet.check(b));
    expect(ip.headerLength).toBe(24);
    expect(ip.payloadOffset).toBe(24);
    expect(ip.payloadLength).toBe(4);
    expect(ip.length).toBe(46);
  });

  it('reads fragment fields', () => {
    const b = packet();
    b.writeUInt16BE(0x2000, Ipv4Field.FLAGS_FRAGMENT); // MF, offset 0: first fragment
    let ip = ok(Ipv4Packet.check(b));
    expect([ip.moreFragments, ip.fragmentOffset, ip.isFragment, ip.dontFragment]).toEqual([true, 0, true, false]);
    b.writeUInt16BE(0x00b9, Ipv4Field.FLAGS_FRAGMENT); // last fragment at 185 * 8
    ip = ok(Ipv4Packet.check(b));
    expect([ip.moreFragments, ip.fragmentOffset, ip.isFragment]).toEqual([false, 185, true]);
    b.writeUInt16BE(0x4000, Ipv4Field.FLAGS_FRAGMENT);
    ip = ok(Ipv4Packet.check(b));
    expect([ip.dontFragment, ip.isFragment]).toEqual([true, false]);
  });
});

describe('decrementTtl', () => {
  it('keeps the header checksum valid and equal to a full recompute (RFC 1624)', () => {
    const r = rng(4);
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(20);
      for (let j = 0; j < 20; j++) b[j] = Math.floor(r() * 256);
      b[0] = 0x45;
      b.writeUInt16BE(20, Ipv4Field.TOTAL_LENGTH);
      b[Ipv4Field.TTL] = 1 + Math.floor(r() * 255);
      b.writeUInt16BE(0, Ipv4Field.CHECKSUM);
      b.writeUInt16BE(~onesSum(b, 0, 20) & 0xffff, Ipv4Field.CHECKSUM);
      const ip = ok(Ipv4Packet.check(b));
      const ttl = ip.ttl;
      expect(decrementTtl(ip)).toBe(ttl - 1);
      expect(ip.ttl).toBe(ttl - 1);
      expect(ip.verifyHeaderChecksum()).toBe(true);
      const copy = Buffer.from(b);
      copy.writeUInt16BE(0, Ipv4Field.CHECKSUM);
      const full = ~onesSum(copy, 0, 20) & 0xffff;
      // Same ones'-complement value; RFC 1624 eqn. 3 may pick the other zero (0x0000 vs 0xffff) only if all else is 0.
      expect(ip.headerChecksum).toBe(full);
    }
  });

  it('leaves a TTL of 0 alone', () => {
    const b = packet();
    b[Ipv4Field.TTL] = 0;
    const before = Buffer.from(b);
    expect(decrementTtl(ok(Ipv4Packet.check(b)))).toBe(0);
    expect(b).toEqual(before);
  });

  it('decrements a captured packet as a router would', () => {
    const frame = Buffer.from(ICMP_ECHO_REQUEST);
    const ip = innerIpv4(frame);
    expect(decrementTtl(ip)).toBe(63);
    expect(ip.verifyHeaderChecksum()).toBe(true);
  });
});

describe('IPv4 address helpers', () => {
  it('round-trips', () => {
    for (const s of ['0.0.0.0', '10.244.2.0', '198.18.0.1', '255.255.255.255', '1.2.3.4', '192.0.2.100']) {
      expect(isIpv4String(s)).toBe(true);
      expect(ipv4ToString(ipv4FromString(s))).toBe(s);
    }
    expect(ipv4FromString('10.244.2.0')).toBe(0x0af40200);
    expect(ipv4FromString('255.255.255.255')).toBe(0xffffffff);
    const r = rng(1);
    for (let i = 0; i < 1000; i++) {
      const n = Math.floor(r() * 2 ** 32);
      expect(ipv4FromString(ipv4ToString(n))).toBe(n);
    }
  });

  it('refuses anything but canonical dotted-quad text', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-1', '01.2.3.4', '1.2.3.4 ', ' 1.2.3.4', '1..3.4', 'a.b.c.d', '1.2.3.4/24', '0x1.2.3.4', '1e2.1.1.1', '::1']) {
      expect(isIpv4String(s), s).toBe(false);
      expect(() => ipv4FromString(s)).toThrow();
    }
  });
});

describe('Ipv4Packet fuzz', () => {
  it('check(), every accessor and parse() never throw on random bytes (10 000 cases)', () => {
    const r = rng(0x1234);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const size = Math.floor(r() * 80);
      const b = Buffer.alloc(size);
      for (let j = 0; j < size; j++) b[j] = Math.floor(r() * 256);
      if (size > 4 && r() < 0.7) {
        // bias towards plausible headers so the accessors are reached
        b[0] = 0x40 | (5 + Math.floor(r() * 11));
        b.writeUInt16BE(Math.floor(r() * (size + 8)), 2);
      }
      const offset = Math.floor(r() * 4) - 1;
      const length = Math.floor(r() * (size + 4)) - 2;
      for (const v of [Ipv4Packet.check(b), Ipv4Packet.check(b, offset, length), Ipv4Packet.check(b, Math.max(0, offset))]) {
        if (v instanceof WireError) continue;
        accepted++;
        exercise(v);
        v.parse();
        v.pseudoHeaderSum(IpProtocol.TCP, v.payloadLength);
        expect(v.payloadOffset + v.payloadLength).toBeLessThanOrEqual(b.length);
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});

/** tcpdump's "IP (tos 0x0, ttl 64, id 38382, offset 0, flags [none], proto UDP (17), length 134)" lines, in order. */
function tcpdumpIpv4Lines(summary: string) {
  return [...summary.matchAll(/IP \(tos 0x([0-9a-f]+), ttl (\d+), id (\d+), offset (\d+), flags \[([^\]]*)\], proto \S+ \((\d+)\), length (\d+)\)/g)].map((m) => ({
    dscpEcn: parseInt(m[1]!, 16),
    ttl: Number(m[2]),
    identification: Number(m[3]),
    offset: Number(m[4]),
    flags: m[5]!,
    protocol: Number(m[6]),
    totalLength: Number(m[7]),
  }));
}

/** Every IPv4 header of a fixture frame, outermost first: outer, inner (VXLAN), quoted (ICMP error). */
function ipv4Chain(frame: Buffer): Ipv4Packet[] {
  const out: Ipv4Packet[] = [];
  const eth = ok(EthernetFrame.check(frame));
  let ip = ok(Ipv4Packet.check(frame, eth.payloadOffset, eth.payloadLength));
  out.push(ip);
  if (ip.protocol === IpProtocol.UDP) {
    const udp = ok(UdpDatagram.check(frame, ip.payloadOffset, ip.payloadLength));
    if (udp.dstPort !== VXLAN_PORT_LINUX) return out;
    const vx = ok(VxlanHeader.check(frame, udp.payloadOffset, udp.payloadLength));
    const inner = ok(EthernetFrame.check(frame, vx.payloadOffset, vx.payloadLength));
    if (inner.etherType !== EtherType.IPV4) return out;
    ip = ok(Ipv4Packet.check(frame, inner.payloadOffset, inner.payloadLength));
    out.push(ip);
  }
  if (ip.protocol === IpProtocol.ICMP && frame[ip.payloadOffset] === 3) {
    out.push(ok(Ipv4Packet.check(frame, ip.payloadOffset + 8, ip.payloadLength - 8)));
  }
  return out;
}

describe('Ipv4Packet on the kernel fixtures (test/fixtures/kernel)', () => {
  it('every IPv4 header of every fixture says what tcpdump printed', () => {
    let headers = 0;
    for (const name of listKernelFixtures()) {
      const fx = loadTcpdumpHex(name);
      const want = tcpdumpIpv4Lines(fx.summary);
      const chain = ipv4Chain(fx.bytes);
      expect(chain.length, name).toBe(want.length);
      chain.forEach((ip, i) => {
        const w = want[i]!;
        expect(ip.dscpEcn, name).toBe(w.dscpEcn);
        expect(ip.ttl, name).toBe(w.ttl);
        expect(ip.identification, name).toBe(w.identification);
        expect(ip.fragmentOffset * 8, name).toBe(w.offset);
        expect(ip.dontFragment, name).toBe(w.flags.includes('DF'));
        expect(ip.moreFragments, name).toBe(w.flags.includes('+'));
        expect(ip.protocol, name).toBe(w.protocol);
        expect(ip.totalLength, name).toBe(w.totalLength);
        expect(ip.verifyHeaderChecksum(), name).toBe(true);
        headers++;
      });
    }
    expect(headers).toBeGreaterThan(20);
  });

  it('vxlan-icmp-echo-request: outer 198.18.0.1 > 198.18.0.2, inner 10.244.1.0 > 10.244.2.0', () => {
    const [outer, inner] = ipv4Chain(loadTcpdumpHex('vxlan-icmp-echo-request').bytes);
    expect([ipv4ToString(outer!.src), ipv4ToString(outer!.dst)]).toEqual(['198.18.0.1', '198.18.0.2']);
    expect(outer!.dontFragment).toBe(false); // flannel.1 sends outer DF clear
    expect([ipv4ToString(inner!.src), ipv4ToString(inner!.dst)]).toEqual(['10.244.1.0', '10.244.2.0']);
    expect(inner!.payloadLength).toBe(64);
  });

  it('eth-ipv4-icmp-port-unreachable: tos 0xc0 and the quoted datagram', () => {
    const [ip, quoted] = ipv4Chain(loadTcpdumpHex('eth-ipv4-icmp-port-unreachable').bytes);
    expect(ip!.dscpEcn).toBe(0xc0);
    expect([ipv4ToString(ip!.src), ipv4ToString(ip!.dst)]).toEqual(['198.18.0.2', '198.18.0.1']);
    expect([ipv4ToString(quoted!.src), ipv4ToString(quoted!.dst), quoted!.protocol]).toEqual(['198.18.0.1', '198.18.0.2', 17]);
  });

  it('parse() then emitIpv4() reproduces every fixture IPv4 header byte (poisoned buffer)', () => {
    for (const name of listKernelFixtures()) {
      const fx = loadTcpdumpHex(name);
      for (const ip of ipv4Chain(fx.bytes)) {
        const out = Buffer.alloc(24, 0xa5);
        emitIpv4(ip.parse(), out, 2);
        expect(out.subarray(2, 22), name).toEqual(fx.bytes.subarray(ip.offset, ip.offset + 20));
        expect([out[0], out[1], out[22], out[23]]).toEqual([0xa5, 0xa5, 0xa5, 0xa5]);
      }
    }
  });
});
