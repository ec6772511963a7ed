/**
 * A kernel peer's TCP super-packet written whole: the virtio_net_hdr built for it (golden bytes,
 * on the super-packet the kernel's own VXLAN sent in test/fixtures/kernel/vxlan-tcp-gso), the
 * CHECKSUM_PARTIAL field restored to the kernel's own value, and the engine handing such a packet
 * to a TUN that takes super-packets as one write with its segment size (and segmenting it for one
 * that does not), in batch order.
 */
import { describe, expect, it } from 'vitest';
import { prepareTcpGso, tcpSegmentSize } from '../../src/packet/gso.js';
import { Engine, HEADROOM } from '../../src/datapath/engine.js';
import { RouteTable } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { FakeNetwork } from '../../src/io/bind-fake.js';
import type { TunDevice } from '../../src/io/tun-device.js';
import { VirtioNetHdr, emitVirtioNetHdr, VIRTIO_NET_HDR_LEN } from '../../src/packet/wire/virtio-net.js';
import { isWireError } from '../../src/packet/wire/error.js';
import { emitIpv6, ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { loadTcpdumpHex } from '../support/fixtures.js';

/** The kernel's super-packet: inner IPv4 4052 bytes (20 IP + 32 TCP with timestamps + 4000), TCP checksum partial. */
function kernelSuper(): { vxlan: Buffer; inner: Buffer } {
  const b = loadTcpdumpHex('vxlan-tcp-gso').bytes;
  const vxlan = Buffer.from(b.subarray(14 + 20 + 8));
  return { vxlan, inner: Buffer.from(vxlan.subarray(HEADROOM, HEADROOM + vxlan.readUInt16BE(HEADROOM + 2))) };
}

function headerBytes(repr: Parameters<typeof emitVirtioNetHdr>[0]): string {
  const h = Buffer.alloc(VIRTIO_NET_HDR_LEN);
  emitVirtioNetHdr(repr, h, 0);
  return h.toString('hex');
}

describe('prepareTcpGso: the virtio_net_hdr of a super-packet', () => {
  it('kernel super-packet, TUN MTU 1450: TCPV4, hdr_len 52, gso_size 1398, NEEDS_CSUM at 20+16 (golden bytes, little-endian host)', () => {
    const { inner } = kernelSuper();
    expect(inner.length).toBe(4052);
    const kernelField = inner.readUInt16BE(20 + 16);
    const mss = tcpSegmentSize(inner, 0, inner.length, 1450);
    expect(mss).toBe(1398);
    inner.writeUInt16BE(0x1234, 20 + 16); // whatever the field held: it leaves as the kernel's partial sum
    const repr = prepareTcpGso(inner, 0, inner.length, mss!)!;
    //                              flags gso   hdr_len gso_size csum_start csum_offset
    expect(headerBytes(repr)).toBe('01' + '01' + '3400' + '7605' + '1400' + '1000');
    expect(inner.readUInt16BE(20 + 16)).toBe(kernelField);
    // 0x0af4 + 0x0100 + 0x0af4 + 0x0200 (10.244.1.0 → 10.244.2.0) + 6 (TCP) + 4032 (L4 length)
    expect(kernelField).toBe(0x28ae);
  });

  it('IPv6: TCPV6, hdr_len 40 + TCP header, csum_start 40; CWR set adds the ECN bit', () => {
    const tcpLen = 20;
    const payload = 3000;
    const p = Buffer.alloc(40 + tcpLen + payload, 0x5a);
    emitIpv6({ src: ipv6FromString('fd00:244:1::5'), dst: ipv6FromString('fd00:244:2::7'), nextHeader: 6, hopLimit: 64, payloadLength: tcpLen + payload }, p, 0);
    p[40 + 12] = (tcpLen / 4) << 4;
    p[40 + 13] = 0x10;
    const mss = tcpSegmentSize(p, 0, p.length, 1450)!;
    expect(mss).toBe(1450 - 60);
    expect(headerBytes(prepareTcpGso(p, 0, p.length, mss)!)).toBe('01' + '04' + '3c00' + '6e05' + '2800' + '1000');
    // pseudo-header: addresses, next header 6, length 3020 = 0x0bcc
    const sum = [0xfd00, 0x0244, 0x0001, 0, 0, 0, 0, 5, 0xfd00, 0x0244, 0x0002, 0, 0, 0, 0, 7, 6, 0x0bcc].reduce((a, b) => a + b, 0);
    expect(p.readUInt16BE(40 + 16)).toBe((sum & 0xffff) + (sum >>> 16));
    p[40 + 13] = 0x90; // CWR|ACK
    expect(prepareTcpGso(p, 0, p.length, mss)!.gsoType).toBe(0x84);
  });

  it('refuses, touching nothing, what is not a TCP super-packet', () => {
    const { inner } = kernelSuper();
    const before = Buffer.from(inner);
    expect(prepareTcpGso(inner, 0, inner.length, 4000)).toBeUndefined(); // one segment's worth
    expect(prepareTcpGso(inner, 0, inner.length, 0)).toBeUndefined();
    const udp = Buffer.from(inner);
    udp[9] = 17;
    expect(prepareTcpGso(udp, 0, udp.length, 1398)).toBeUndefined();
    expect(tcpSegmentSize(udp, 0, udp.length, 1450)).toBeUndefined();
    const frag = Buffer.from(inner);
    frag.writeUInt16BE(0x2000, 6); // more fragments
    expect(prepareTcpGso(frag, 0, frag.length, 1398)).toBeUndefined();
    expect(tcpSegmentSize(inner, 0, inner.length, 4052)).toBeUndefined(); // fits the MTU as it is
    expect(inner.equals(before)).toBe(true);
  });

  it('VirtioNetHdr parses what emitVirtioNetHdr wrote; a short buffer is Truncated', () => {
    const repr = { flags: 1, gsoType: 0x81, hdrLen: 52, gsoSize: 1398, csumStart: 20, csumOffset: 16 };
    const b = Buffer.alloc(12);
    expect(emitVirtioNetHdr(repr, b, 2)).toBe(10);
    const h = VirtioNetHdr.check(b, 2);
    if (isWireError(h)) throw new Error(String(h));
    expect(h.parse()).toEqual(repr);
    expect(isWireError(VirtioNetHdr.check(b, 3))).toBe(true);
  });
});

/** A TUN that takes super-packets whole (or not), recording each write's packets and gso sizes. */
class SuperTun implements TunDevice {
  readonly name = 'super0';
  readonly mtu = 1450;
  readonly writes: Array<{ packets: Buffer[]; gso: number[] | undefined }> = [];
  constructor(readonly writesSuperPackets: boolean) {}
  read(): number {
    return 0;
  }
  write(bufs: Buffer[], sizes: number[], offset: number, count: number, gsoSizes?: readonly number[]): number {
    this.writes.push({ packets: bufs.slice(0, count).map((b, i) => Buffer.from(b.subarray(offset, offset + sizes[i]!))), gso: gsoSizes ? gsoSizes.slice(0, count) : undefined });
    return count;
  }
  start(): void {}
  close(): void {}
}

function engineWith(tun: SuperTun): Engine {
  const bind = new FakeNetwork().bind('198.18.0.2', 8472);
  const engine = new Engine(tun, bind, {
    vni: 1,
    vtepMac: macFromString('0a:58:0a:f4:02:00'),
    vtepIp: ipv4FromString('10.244.2.0'),
    localSubnets: [{ family: 4, addr: ipv4FromString('10.244.2.0'), prefixLen: 24 }],
    port: 8472,
    maxInnerSize: 1450,
    tunMtu: 1450,
  });
  engine.setRoutes(new RouteTable([{ prefix: parseCidr('10.244.1.0/24') as Cidr, target: { endpoint: { address: '198.18.0.1', port: 8472 }, vtepMac: macFromString('0a:58:0a:f4:01:00'), vni: 1 } }]));
  return engine;
}

describe('engine: kernel super-packets to a TUN that takes them whole', () => {
  /** small packet, the super-packet, small packet: the order a flow's packets must keep. */
  function batch(): { bufs: Buffer[]; small: Buffer } {
    const { vxlan } = kernelSuper();
    const small = loadTcpdumpHex('vxlan-tcp-data-txcsum-off').bytes.subarray(14 + 20 + 8);
    return { bufs: [Buffer.from(small), Buffer.from(vxlan), Buffer.from(small)], small: Buffer.from(small.subarray(HEADROOM)) };
  }

  it('one write, the super-packet unchanged with its segment size, neighbours in order; counted gso-passed-whole', () => {
    const tun = new SuperTun(true);
    const engine = engineWith(tun);
    const { bufs, small } = batch();
    const { inner } = kernelSuper();
    engine.handleInbound(bufs, bufs.map((b) => b.length), bufs.map(() => ({ address: '198.18.0.1', port: 40000 })), 3);
    expect(tun.writes.length).toBe(1);
    const w = tun.writes[0]!;
    expect(w.gso).toEqual([0, 1398, 0]);
    expect(w.packets[1]!.equals(inner)).toBe(true);
    expect(w.packets[0]!.equals(small)).toBe(true);
    const s = engine.counters.snapshot();
    expect(s.fixed['gso-passed-whole']).toBe(1);
    expect(s.fixed['gso-segmented']).toBe(0);
    expect(s.rx.packets).toBe(3);
  });

  it('a TUN without virtio_net_hdr gets the segments instead, and no gso sizes', () => {
    const tun = new SuperTun(false);
    const engine = engineWith(tun);
    const { bufs } = batch();
    engine.handleInbound(bufs, bufs.map((b) => b.length), bufs.map(() => ({ address: '198.18.0.1', port: 40000 })), 3);
    expect(tun.writes.length).toBe(1);
    expect(tun.writes[0]!.gso).toBeUndefined();
    expect(tun.writes[0]!.packets.map((p) => p.length)).toEqual([tun.writes[0]!.packets[0]!.length, 1450, 1450, 52 + 1204, tun.writes[0]!.packets[4]!.length]);
    const s = engine.counters.snapshot();
    expect(s.fixed['gso-passed-whole']).toBe(0);
    expect(s.fixed['gso-segmented']).toBe(1);
  });
});
