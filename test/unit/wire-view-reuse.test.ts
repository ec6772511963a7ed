// check(…, reuse): a hot path re-points one view per protocol instead of allocating one per
// packet (src/packet/wire/view.ts). A re-pointed view must read exactly what a fresh view of the same
// bytes reads, refuse exactly what check refuses, and be the very object it was given.
import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/packet/wire/error.js';
import { VxlanHeader } from '../../src/packet/wire/vxlan.js';
import { EthernetFrame } from '../../src/packet/wire/ethernet.js';
import { Ipv4Packet, emitIpv4, ipv4FromString, ipv4ToString } from '../../src/packet/wire/ipv4.js';
import { Ipv6Packet } from '../../src/packet/wire/ipv6.js';
import { TcpSegment } from '../../src/packet/wire/tcp.js';
import { UdpDatagram } from '../../src/packet/wire/udp.js';
import { mulberry32 } from '../support/random.js';

interface ViewKind<V> {
  name: string;
  check(buf: Buffer, offset: number, length: number, reuse?: V): V | WireError;
  scratch(): V;
  /** Everything the view can read, as plain values. */
  read(v: V): unknown[];
  /** Bytes that pass check more often than random ones do. */
  plausible(buf: Buffer, offset: number): void;
}

const kinds: ViewKind<never>[] = [
  {
    name: 'VxlanHeader',
    check: VxlanHeader.check,
    scratch: VxlanHeader.scratch,
    read: (v: VxlanHeader) => [v.offset, v.length, v.flags, v.vni, v.validate()?.reason, v.payloadOffset, v.payloadLength],
    plausible: (b: Buffer, o: number) => void (b[o] = 0x08),
  },
  {
    name: 'EthernetFrame',
    check: EthernetFrame.check,
    scratch: EthernetFrame.scratch,
    read: (v: EthernetFrame) => [v.offset, v.length, v.dst.toString('hex'), v.src.toString('hex'), v.etherType, v.dstIsBroadcast(), v.dstIs(v.src), v.payloadOffset, v.payloadLength],
    plausible: () => {},
  },
  {
    name: 'Ipv4Packet',
    check: Ipv4Packet.check,
    scratch: Ipv4Packet.scratch,
    read: (v: Ipv4Packet) => [v.offset, v.length, v.version, v.headerLength, v.totalLength, v.identification, v.dontFragment, v.isFragment, v.ttl, v.protocol, v.src, v.dst, v.payloadOffset, v.payloadLength],
    plausible: (b: Buffer, o: number) => {
      b[o] = 0x45;
      b.writeUInt16BE(20 + (b[o + 3]! % 40), o + 2);
    },
  },
  {
    name: 'Ipv6Packet',
    check: Ipv6Packet.check,
    scratch: Ipv6Packet.scratch,
    read: (v: Ipv6Packet) => [v.offset, v.length, v.payloadLength, v.nextHeader, v.hopLimit, v.src.toString('hex'), v.dst.toString('hex'), v.payloadOffset],
    plausible: (b: Buffer, o: number) => {
      b[o] = 0x60;
      b.writeUInt16BE(b[o + 5]! % 24, o + 4);
    },
  },
  {
    name: 'TcpSegment',
    check: TcpSegment.check,
    scratch: TcpSegment.scratch,
    read: (v: TcpSegment) => [v.offset, v.length, v.srcPort, v.dstPort, v.seq, v.ack, v.headerLength, v.flags, v.window, v.checksum, v.payloadOffset, v.payloadLength],
    plausible: (b: Buffer, o: number) => void (b[o + 12] = 0x50),
  },
  {
    name: 'UdpDatagram',
    check: UdpDatagram.check,
    scratch: UdpDatagram.scratch,
    read: (v: UdpDatagram) => [v.offset, v.available, v.srcPort, v.dstPort, v.length, v.checksum, v.payloadOffset, v.payloadLength],
    plausible: (b: Buffer, o: number) => b.writeUInt16BE(8 + (b[o + 5]! % 24), o + 4),
  },
] as unknown as ViewKind<never>[];

describe('check(…, reuse) re-points a view instead of allocating one', () => {
  for (const kind of kinds) {
    it(`${kind.name}: same object, same reads and same refusals as a fresh view, over 2000 random byte runs`, () => {
      const rand = mulberry32(0x5eed + kind.name.length);
      const reused = kind.scratch();
      let accepted = 0;
      for (let n = 0; n < 2000; n++) {
        const buf = Buffer.alloc(8 + Math.floor(rand() * 72));
        for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
        const offset = Math.floor(rand() * 8);
        const length = Math.floor(rand() * (buf.length - offset + 1));
        if (rand() < 0.7 && offset + 48 <= buf.length) kind.plausible(buf, offset);
        const fresh = kind.check(buf, offset, length);
        const again = kind.check(buf, offset, length, reused);
        if (fresh instanceof WireError) {
          expect(again).toBe(fresh);
          continue;
        }
        accepted++;
        expect(again).toBe(reused);
        expect(fresh).not.toBe(reused);
        expect(kind.read(again as never)).toEqual(kind.read(fresh));
      }
      // Both branches ran often enough to mean something.
      expect(accepted).toBeGreaterThan(100);
      expect(accepted).toBeLessThan(2000);
    });
  }

  it('a refused check leaves the reused view where it was', () => {
    const bytes = Buffer.alloc(28);
    emitIpv4({ src: ipv4FromString('10.10.1.2'), dst: ipv4FromString('10.10.2.2'), protocol: 17, ttl: 64, payloadLength: 8 }, bytes, 0);
    const view = Ipv4Packet.check(bytes, 0, 28, Ipv4Packet.scratch());
    if (view instanceof WireError) throw new Error(view.reason);
    expect(Ipv4Packet.check(Buffer.alloc(10), 0, 10, view)).toBe(WireError.Truncated);
    expect(view.buf).toBe(bytes);
    expect(ipv4ToString(view.dst)).toBe('10.10.2.2');
  });
});
