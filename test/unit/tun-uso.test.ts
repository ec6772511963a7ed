/**
 * UDP segmentation offload in the addon's TUN I/O (native/tun_offload.cc), on a FIFO standing in for
 * the TUN (one O_RDWR descriptor is reader and writer; no root): which runs of datagrams
 * tunWriteOffload coalesces into one UDP_L4 super-packet and which it must leave alone, the
 * virtio_net_hdr and headers it writes, and tunQueueRead splitting such a super-packet back into
 * the very datagrams it was made of, as the kernel does with USO.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { TunCoalesce, TunCounter } from '../../src/io/tun-linux.js';
import { TUN_COUNTER_COUNT } from '../../src/io/counter-layouts.js';
import { emitIpv4, ipv4FromString, ipv4PseudoHeaderSum } from '../../src/packet/wire/ipv4.js';
import { emitIpv6, ipv6FromString, ipv6PseudoHeaderSum } from '../../src/packet/wire/ipv6.js';
import { emitUdp } from '../../src/packet/wire/udp.js';
import { internetChecksum } from '../../src/packet/wire/checksum.js';
import { VirtioNetHdr, VirtioNetFlag, VirtioNetGso, VIRTIO_NET_HDR_LEN, emitVirtioNetHdr, type VirtioNetHdrRepr } from '../../src/packet/wire/virtio-net.js';

const native = requireNative();
const SRC4 = ipv4FromString('10.244.1.2');
const DST4 = ipv4FromString('10.244.2.2');
const SRC6 = ipv6FromString('fd00::1:2');
const DST6 = ipv6FromString('fd00::2:2');

interface Udp4 {
  id: number;
  size: number;
  srcPort?: number;
  dst?: number;
  tos?: number;
  ttl?: number;
  df?: boolean;
  checksum?: 'ok' | 'zero' | 'bad';
  /** Raw flags + fragment offset field (MF, offset); DF comes from `df`. */
  fragment?: number;
  /** 4 bytes of IPv4 options (NOPs). */
  options?: boolean;
}

function fill(b: Buffer, from: number, seed: number): void {
  for (let i = from; i < b.length; i++) b[i] = (seed * 31 + i * 7) & 0xff;
}

function udp4(o: Udp4): Buffer {
  const ihl = o.options ? 24 : 20;
  const b = Buffer.alloc(ihl + 8 + o.size);
  fill(b, ihl + 8, o.id);
  emitIpv4({ src: SRC4, dst: o.dst ?? DST4, protocol: 17, ttl: o.ttl ?? 64, payloadLength: 8 + o.size, dontFragment: o.df ?? true, identification: o.id, dscpEcn: o.tos ?? 0 }, b, 0);
  if (o.options) {
    b.copyWithin(0, 0, 20);
    b[0] = 0x46;
    b.writeUInt32BE(0x01010101, 20);
    b.writeUInt16BE(b.length, 2);
  }
  if (o.fragment !== undefined) b.writeUInt16BE(b.readUInt16BE(6) | o.fragment, 6);
  b.writeUInt16BE(0, 10);
  b.writeUInt16BE(internetChecksum(b, 0, ihl), 10);
  const pseudo = ipv4PseudoHeaderSum(SRC4, o.dst ?? DST4, 17, 8 + o.size);
  emitUdp({ srcPort: o.srcPort ?? 40000, dstPort: 6001, payloadLength: o.size }, b, ihl, o.checksum === 'zero' ? undefined : pseudo);
  if (o.checksum === 'bad') b.writeUInt16BE(b.readUInt16BE(ihl + 6) ^ 0x0101, ihl + 6);
  return b;
}

function udp6(seed: number, size: number): Buffer {
  const b = Buffer.alloc(40 + 8 + size);
  fill(b, 48, seed);
  emitIpv6({ src: SRC6, dst: DST6, nextHeader: 17, hopLimit: 64, payloadLength: 8 + size, flowLabel: 0x12345 }, b, 0);
  emitUdp({ srcPort: 40000, dstPort: 6001, payloadLength: size }, b, 40, ipv6PseudoHeaderSum(SRC6, DST6, 17, 8 + size));
  return b;
}

function badHeader(p: Buffer): Buffer {
  p.writeUInt16BE(p.readUInt16BE(10) ^ 0x0100, 10);
  return p;
}

/** A run of datagrams with consecutive ids: sizes[k] payload bytes each. */
const run4 = (firstId: number, sizes: number[], o: Partial<Udp4> = {}): Buffer[] => sizes.map((size, k) => udp4({ ...o, id: (firstId + k) & 0xffff, size }));

let dir: string;
let fd: number;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vxtun-uso-'));
  const fifo = join(dir, 'tun');
  execFileSync('mkfifo', [fifo]);
  fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
});
afterAll(() => {
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

interface Written {
  written: number;
  /** The buffers handed over, after the call. */
  bufs: Buffer[];
  records: Array<{ hdr: VirtioNetHdrRepr; pkt: Buffer }>;
  counters: Float64Array;
}

/** Writes copies of the packets and parses what reached the "TUN". */
function write(pkts: Buffer[], coalesce: number = TunCoalesce.Tcp | TunCoalesce.Udp): Written {
  const counters = new Float64Array(TUN_COUNTER_COUNT);
  const bufs = pkts.map((p) => Buffer.from(p));
  const written = native.tunWriteOffload(fd, bufs, Int32Array.from(bufs.map((b) => b.length)), 0, bufs.length, counters, coalesce);
  const chunks: Buffer[] = [];
  const rb = [Buffer.alloc(65536)];
  const rs = new Int32Array(1);
  while (native.readBatch(fd, rb, 0, rs) > 0) chunks.push(Buffer.from(rb[0]!.subarray(0, rs[0])));
  const bytes = Buffer.concat(chunks);
  const records: Written['records'] = [];
  for (let at = 0; at < bytes.length; ) {
    const hdr = (VirtioNetHdr.check(bytes, at) as VirtioNetHdr).parse();
    const ip = at + VIRTIO_NET_HDR_LEN;
    const len = bytes[ip]! >> 4 === 4 ? bytes.readUInt16BE(ip + 2) : 40 + bytes.readUInt16BE(ip + 4);
    records.push({ hdr, pkt: Buffer.from(bytes.subarray(ip, ip + len)) });
    at = ip + len;
  }
  return { written, bufs, records, counters };
}

/** Hands one record to tunQueueRead as the TUN would; returns the plain packets it makes. */
function read(hdr: VirtioNetHdrRepr, pkt: Buffer, slots = 64): { pkts: Buffer[]; counters: Float64Array; more: () => Buffer[] } {
  const h = Buffer.alloc(VIRTIO_NET_HDR_LEN);
  emitVirtioNetHdr(hdr, h, 0);
  writeSync(fd, Buffer.concat([h, pkt]));
  const counters = new Float64Array(TUN_COUNTER_COUNT);
  const queue = native.tunQueueOpen(fd, true);
  const bufs = Array.from({ length: slots }, () => Buffer.alloc(2048));
  const sizes = new Int32Array(slots);
  const call = (): Buffer[] => {
    const n = native.tunQueueRead(queue, bufs, 0, sizes, counters);
    return bufs.slice(0, n).map((b, i) => Buffer.from(b.subarray(0, sizes[i])));
  };
  return { pkts: call(), counters, more: call };
}

const NONE: VirtioNetHdrRepr = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };

describe('tunWriteOffload with USO: runs of one UDP flow as one UDP_L4 super-packet', () => {
  it('equal datagrams and a shorter last one (ids wrapping at 65535): one write, headers as the kernel needs them', () => {
    const pkts = run4(0xfffd, [1000, 1000, 1000, 1000, 1000, 700]);
    const w = write(pkts);
    expect(w.written).toBe(6);
    expect(w.records).toHaveLength(1);
    const { hdr, pkt } = w.records[0]!;
    expect(hdr).toEqual({ flags: VirtioNetFlag.NEEDS_CSUM, gsoType: VirtioNetGso.UDP_L4, hdrLen: 28, gsoSize: 1000, csumStart: 20, csumOffset: 6 });
    expect(pkt.length).toBe(28 + 5 * 1000 + 700);
    expect(pkt.readUInt16BE(2)).toBe(pkt.length); // IPv4 total length
    expect(pkt.readUInt16BE(4)).toBe(0xfffd); // the first datagram's id: the split numbers on from it
    expect(internetChecksum(pkt, 0, 20)).toBe(0); // header checksum redone
    expect(pkt.readUInt16BE(24)).toBe(pkt.length - 20); // UDP length
    expect(pkt.readUInt16BE(26)).toBe(ipv4PseudoHeaderSum(SRC4, DST4, 17, pkt.length - 20)); // CHECKSUM_PARTIAL
    expect(Buffer.compare(pkt.subarray(28), Buffer.concat(pkts.map((p) => p.subarray(28))))).toBe(0);
    expect(w.counters[TunCounter.UdpCoalescedWrites]).toBe(1);
    expect(w.counters[TunCounter.UdpCoalescedPackets]).toBe(6);
    expect(w.counters[TunCounter.CoalescedWrites]).toBe(0);
    expect(w.counters[TunCounter.Writes]).toBe(6);
    expect(w.bufs).toEqual(pkts); // the first packet's headers put back after the write (a trace shows them)

    // split as USO splits it: the same six datagrams, byte for byte
    const r = read(hdr, pkt);
    expect(r.pkts).toEqual(pkts);
    expect(r.counters[TunCounter.GsoPackets]).toBe(1);
    expect(r.counters[TunCounter.UdpGsoPackets]).toBe(1);
    expect(r.counters[TunCounter.GsoSegments]).toBe(6);
    expect(r.counters[TunCounter.BadVnetHdr]).toBe(0);
  });

  it('IPv6 (flow label kept): one super-packet that splits back into the same datagrams', () => {
    const pkts = [udp6(1, 1200), udp6(2, 1200), udp6(3, 1200), udp6(4, 10)];
    const w = write(pkts);
    expect(w.records).toHaveLength(1);
    const { hdr, pkt } = w.records[0]!;
    expect(hdr).toEqual({ flags: VirtioNetFlag.NEEDS_CSUM, gsoType: VirtioNetGso.UDP_L4, hdrLen: 48, gsoSize: 1200, csumStart: 40, csumOffset: 6 });
    expect(pkt.readUInt16BE(4)).toBe(8 + 3 * 1200 + 10);
    expect(pkt.readUInt16BE(44)).toBe(8 + 3 * 1200 + 10);
    expect(pkt.readUInt16BE(46)).toBe(ipv6PseudoHeaderSum(SRC6, DST6, 17, 8 + 3 * 1200 + 10));
    expect(read(hdr, pkt).pkts).toEqual(pkts);
  });

  it('at most 64 datagrams per super-packet', () => {
    const w = write(run4(7, Array<number>(70).fill(100)));
    expect(w.written).toBe(70);
    expect(w.records.map((r) => r.pkt.length)).toEqual([28 + 64 * 100, 28 + 6 * 100]);
  });

  // Each case: the packets, and the runs they must be written in (1 = alone, untouched).
  const refused: Array<[string, Buffer[], number[]]> = [
    ['different source ports', [udp4({ id: 1, size: 500 }), udp4({ id: 2, size: 500, srcPort: 40001 })], [1, 1]],
    ['different destination addresses', [udp4({ id: 1, size: 500 }), udp4({ id: 2, size: 500, dst: ipv4FromString('10.244.2.3') })], [1, 1]],
    ['a gap in the ids', [udp4({ id: 1, size: 500 }), udp4({ id: 3, size: 500 })], [1, 1]],
    ['equal ids (DF senders on unconnected sockets send id 0)', [udp4({ id: 0, size: 500 }), udp4({ id: 0, size: 500 })], [1, 1]],
    ['a size change mid-run: the shorter one ends it, a longer one never joins', run4(1, [500, 500, 400, 500, 600]), [3, 1, 1]],
    ['a zero checksum (the split would compute one)', [udp4({ id: 1, size: 500 }), udp4({ id: 2, size: 500, checksum: 'zero' }), udp4({ id: 3, size: 500, checksum: 'zero' })], [1, 1, 1]],
    ['a wrong checksum (the split would make it right)', [udp4({ id: 1, size: 500, checksum: 'bad' }), udp4({ id: 2, size: 500 }), udp4({ id: 3, size: 500 })], [1, 2]],
    ['a wrong IPv4 header checksum (the split would make it right)', [udp4({ id: 1, size: 500 }), badHeader(udp4({ id: 2, size: 500 })), udp4({ id: 3, size: 500 })], [1, 1, 1]],
    ['fragments', [udp4({ id: 1, size: 500, fragment: 0x2000 }), udp4({ id: 2, size: 500, fragment: 0x2000 })], [1, 1]],
    ['IPv4 options', [udp4({ id: 1, size: 500, options: true }), udp4({ id: 2, size: 500, options: true })], [1, 1]],
    ['different TOS', [udp4({ id: 1, size: 500 }), udp4({ id: 2, size: 500, tos: 0x10 })], [1, 1]],
    ['different TTL', [udp4({ id: 1, size: 500 }), udp4({ id: 2, size: 500, ttl: 63 })], [1, 1]],
    ['different DF', [udp4({ id: 1, size: 500 }), udp4({ id: 2, size: 500, df: false })], [1, 1]],
    ['IPv4 then IPv6', [udp4({ id: 1, size: 500 }), udp6(2, 500)], [1, 1]],
  ];
  for (const [what, pkts, runs] of refused) {
    it(`not coalesced: ${what}`, () => {
      const w = write(pkts);
      expect(w.written).toBe(pkts.length);
      expect(w.records.map((r) => (r.hdr.gsoType === VirtioNetGso.UDP_L4 ? Math.ceil((r.pkt.length - 28) / r.hdr.gsoSize) : 1))).toEqual(runs);
      let k = 0;
      for (const [i, r] of w.records.entries()) {
        if (runs[i] === 1) {
          expect(r.hdr).toEqual(NONE);
          expect(r.pkt).toEqual(pkts[k]); // written as it came
        }
        k += runs[i]!;
      }
    });
  }

  it('without the Udp bit (a device without USO) every datagram is written alone', () => {
    const w = write(run4(1, [500, 500, 500]), TunCoalesce.Tcp);
    expect(w.records.map((r) => r.hdr)).toEqual([NONE, NONE, NONE]);
    expect(w.counters[TunCounter.UdpCoalescedWrites]).toBe(0);
  });
});

describe('tunQueueRead: UDP super-packets (a local UDP_SEGMENT sender behind a USO device)', () => {
  /** What the kernel hands over for such a sender's message: headers of the whole, checksum partial. */
  function kernelSuper(pkts: Buffer[]): { hdr: VirtioNetHdrRepr; pkt: Buffer } {
    const payloads = Buffer.concat(pkts.map((p) => p.subarray(28)));
    const pkt = Buffer.concat([Buffer.from(pkts[0]!.subarray(0, 28)), payloads]);
    pkt.writeUInt16BE(pkt.length, 2);
    pkt.writeUInt16BE(0, 10);
    pkt.writeUInt16BE(internetChecksum(pkt, 0, 20), 10);
    pkt.writeUInt16BE(pkt.length - 20, 24);
    pkt.writeUInt16BE(ipv4PseudoHeaderSum(SRC4, DST4, 17, pkt.length - 20), 26);
    const gsoSize = pkts[0]!.length - 28;
    return { hdr: { flags: VirtioNetFlag.NEEDS_CSUM, gsoType: VirtioNetGso.UDP_L4, hdrLen: 28, gsoSize, csumStart: 20, csumOffset: 6 }, pkt };
  }

  it('splits one into its datagrams (lengths, ids, checksums), across calls when the buffers run out', () => {
    const pkts = run4(100, [1200, 1200, 1200, 1200, 1200, 333]);
    const { hdr, pkt } = kernelSuper(pkts);
    const r = read(hdr, pkt, 4);
    expect(r.pkts).toEqual(pkts.slice(0, 4));
    expect(r.more()).toEqual(pkts.slice(4));
    expect(r.counters[TunCounter.UdpGsoPackets]).toBe(1);
    expect(r.counters[TunCounter.GsoSegments]).toBe(6);
  });

  it('refuses a UDP_L4 header on a TCP packet, or without NEEDS_CSUM (counted BadVnetHdr)', () => {
    const { hdr, pkt } = kernelSuper(run4(1, [500, 500]));
    const tcp = Buffer.from(pkt);
    tcp[9] = 6;
    for (const [h, p] of [
      [hdr, tcp],
      [{ ...hdr, flags: 0 }, pkt],
    ] as const) {
      const r = read(h, p);
      expect(r.pkts).toEqual([]);
      expect(r.counters[TunCounter.BadVnetHdr]).toBe(1);
    }
  });
});
