// TUN offloads in TypeScript (src/io/tun-offload.ts): the reader cuts the kernel's TCP super-packets and
// finishes unfinished checksums, the writer puts a virtio_net_hdr in front of every packet and
// coalesces runs of one TCP flow. Checked on raw bytes (golden), by their rules one by one, against
// malformed headers (counted, never thrown), and side by side with the addon's tunQueueRead /
// tunWriteOffload on a FIFO: the same input must give the same bytes and the same counters.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { TunCounter, TunOffloadReader, TunOffloadWriter, TUN_COUNTER_COUNT, type RawRead, type RawWrite } from '../../src/io/tun-offload.js';
import { TunCoalesce } from '../../src/io/tun-linux.js';
import { prepareTcpGso, segmentTcp } from '../../src/packet/gso.js';
import { emitVirtioNetHdr, VirtioNetFlag, VirtioNetGso, VIRTIO_NET_HDR_LEN, type VirtioNetHdrRepr } from '../../src/packet/wire/virtio-net.js';
import { onesSum, finish } from '../../src/packet/wire/checksum.js';
import { ACK, CWR, FIN, PSH, build, payloadOf, pseudo, type TcpOpts } from '../support/tcp-packets.js';
import { mulberry32 } from '../support/random.js';

const native = requireNative();
const SYN = 0x02;
const RST = 0x04;
const URG = 0x20;
const HEADROOM = 22;
const ROOM = HEADROOM + 1500 + 64; // what the engine's batch buffers hold

/** A TCP packet alone (no poison around it). */
function tcp(o: TcpOpts): Buffer {
  return build({ ...o, offset: 0, trailer: 0 }).pkt;
}

/** A raw TUN read of the kernel's super-packet `p` (a copy) to be cut at `mss`: header + packet, checksum partial. */
function superRead(p: Buffer, mss: number): Buffer {
  const pkt = Buffer.from(p);
  const repr = prepareTcpGso(pkt, 0, pkt.length, mss);
  if (repr === undefined) throw new Error('not a super-packet');
  return withHeader(repr, pkt);
}

function withHeader(repr: VirtioNetHdrRepr, pkt: Buffer): Buffer {
  const h = Buffer.alloc(VIRTIO_NET_HDR_LEN);
  emitVirtioNetHdr(repr, h, 0);
  return Buffer.concat([h, pkt]);
}

const PLAIN: VirtioNetHdrRepr = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };

/** A raw read source over a queue of raw packets (as the device would hand them over). */
function rawQueue(queue: Buffer[]): RawRead {
  return (bufs, offset, sizes) => {
    let n = 0;
    while (n < bufs.length && queue.length > 0) {
      const p = queue.shift()!;
      const take = Math.min(p.length, bufs[n]!.length - offset);
      p.copy(bufs[n]!, offset, 0, take);
      sizes[n++] = take;
    }
    return n;
  };
}

function batch(n: number, room = ROOM): { bufs: Buffer[]; sizes: Int32Array } {
  return { bufs: Array.from({ length: n }, () => Buffer.alloc(room, 0xee)), sizes: new Int32Array(n) };
}

/** Reads until nothing is pending and the queue is empty; returns the IP packets. */
function readAll(reader: TunOffloadReader, width = 64): Buffer[] {
  const out: Buffer[] = [];
  for (;;) {
    const { bufs, sizes } = batch(width);
    const n = reader.read(bufs, sizes, HEADROOM);
    for (let i = 0; i < n; i++) out.push(Buffer.from(bufs[i]!.subarray(HEADROOM, HEADROOM + sizes[i]!)));
    if (n === 0 && !reader.pending) return out;
  }
}

function counters(): Float64Array {
  return new Float64Array(TUN_COUNTER_COUNT);
}

/**
 * A raw write sink keeping copies of what was written (header + packet), by writeBatch's rules: an
 * entry `refuse` picks is skipped as the kernel's EINVAL would have it, and once `accept` entries
 * went the device is full (EAGAIN: the rest of every call is left).
 */
function rawSink(into: Buffer[], accept = Infinity, refuse: (entry: Buffer) => boolean = () => false, marks = true): RawWrite {
  let room = accept;
  return (bufs, sizes, offset, count, refused) => {
    let n = 0;
    let i = 0;
    for (; i < count && room > 0; i++) {
      const entry = bufs[i]!.subarray(offset, offset + sizes[i]!);
      if (refuse(entry)) {
        if (marks && refused) refused[i] = 1;
        continue;
      }
      into.push(Buffer.from(entry));
      room--;
      n++;
    }
    // Marks, as writeBatch sets them (or none: a raw write that only counts).
    if (marks && refused) refused.fill(1, i, count);
    return n;
  };
}

/** The packets at HEADROOM in buffers of the engine's shape, with poison in the headroom. */
function atHeadroom(pkts: Buffer[], offset = HEADROOM): { bufs: Buffer[]; sizes: number[] } {
  return {
    bufs: pkts.map((p) => {
      const b = Buffer.alloc(offset + p.length + 8, 0xa5);
      p.copy(b, offset);
      return b;
    }),
    sizes: pkts.map((p) => p.length),
  };
}

/** A flow's consecutive MSS-sized segments starting at seq, as the engine would decap them. */
function flow(count: number, mss: number, o: Partial<TcpOpts> & { lastLength?: number } = {}): Buffer[] {
  const seq0 = o.seq ?? 1000;
  const out: Buffer[] = [];
  let seq = seq0;
  for (let k = 0; k < count; k++) {
    const len = k === count - 1 && o.lastLength !== undefined ? o.lastLength : mss;
    out.push(tcp({ ...o, payload: payloadOf(len, k + 1), seq, id: (o.id ?? 0x1000) + k, flags: o.flags ?? ACK }));
    seq += len;
  }
  return out;
}

const ok = (p: Buffer): boolean => {
  const v = (p[0]! >> 4) as 4 | 6;
  const ihl = v === 4 ? (p[0]! & 15) * 4 : 40;
  return onesSum(p, ihl, p.length - ihl, pseudo(p, v, p.length - ihl)) === 0xffff && (v === 6 || onesSum(p, 0, ihl) === 0xffff);
};

describe('TunOffloadReader', () => {
  it('cuts a super-packet at gso_size: golden bytes of each segment (IPv4, FIN|PSH on the last only, CWR on the first only)', () => {
    const sp = tcp({ payload: Buffer.from('abcdefghij'), seq: 0x01020304, id: 0xfffe, flags: ACK | PSH | FIN | CWR, tcpOptions: Buffer.alloc(0) });
    const c = counters();
    const got = readAll(new TunOffloadReader(rawQueue([superRead(sp, 4)]), c));
    // IPv4: ver/ihl+tos, length, id+DF, ttl+proto, checksum, src, dst; TCP: ports, seq, ack, offset, flags, window, checksum, urgent; payload
    expect(got.map((p) => p.toString('hex'))).toEqual([
      '4502' + '002c' + 'fffe4000' + '4006' + '21d8' + '0af40105' + '0af40207' + 'bb9a1451' + '01020304' + '37d91e44' + '50' + '90' + '0040' + 'a747' + '0000' + '61626364',
      '4502' + '002c' + 'ffff4000' + '4006' + '21d7' + '0af40105' + '0af40207' + 'bb9a1451' + '01020308' + '37d91e44' + '50' + '10' + '0040' + '9fbb' + '0000' + '65666768',
      '4502' + '002a' + '00004000' + '4006' + '21d9' + '0af40105' + '0af40207' + 'bb9a1451' + '0102030c' + '37d91e44' + '50' + '19' + '0040' + '0315' + '0000' + '696a',
    ]);
    for (const p of got) expect(ok(p)).toBe(true);
    expect(c[TunCounter.Reads]).toBe(1);
    expect(c[TunCounter.GsoPackets]).toBe(1);
    expect(c[TunCounter.GsoSegments]).toBe(3);
  });

  it('the segments are what segmentTcp makes of the same packet (IPv4 with options, IPv6)', () => {
    for (const o of [{ ipOptions: Buffer.from('01010101', 'hex') }, { version: 6 as const }]) {
      const sp = tcp({ ...o, payload: payloadOf(9000), flags: ACK | PSH });
      const mss = 1400;
      const headerLength = o.version === 6 ? 40 + 32 : 24 + 32;
      const want = segmentTcp(sp, 0, sp.length, headerLength + mss, 0)!.map((b) => b.toString('hex'));
      expect(readAll(new TunOffloadReader(rawQueue([superRead(sp, mss)]), counters())).map((p) => p.toString('hex'))).toEqual(want);
    }
  });

  it('carries what does not fit to the next call, in order, and says so (pending)', () => {
    const sp = tcp({ payload: payloadOf(5 * 100), flags: ACK });
    const plain = tcp({ payload: Buffer.from('after'), seq: 99 });
    const c = counters();
    const reader = new TunOffloadReader(rawQueue([superRead(sp, 100), withHeader(PLAIN, plain)]), c);
    const sizesOf = (n: number): number[] => {
      const { bufs, sizes } = batch(n);
      const got = reader.read(bufs, sizes, HEADROOM);
      return [...sizes.subarray(0, got)];
    };
    expect(sizesOf(2)).toEqual([152, 152]);
    expect(reader.pending).toBe(true);
    expect(sizesOf(2)).toEqual([152, 152]);
    expect(sizesOf(4)).toEqual([152, plain.length]);
    expect(reader.pending).toBe(false);
    expect(sizesOf(4)).toEqual([]);
    expect([...c]).toEqual([2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('finishes NEEDS_CSUM packets (TCP; UDP stores a computed 0 as 0xffff) and copies plain ones as they are', () => {
    const t = tcp({ payload: payloadOf(300) });
    const want = Buffer.from(t);
    t.writeUInt16BE(pseudo(t, 4, t.length - 20), 20 + 16);
    // A UDP datagram whose checksum comes out 0: payload chosen so the sum is 0xffff.
    const udp = Buffer.from('450000200000400040110000' + '0af401050af40207' + '30390035000c0000' + '00000000', 'hex');
    udp.writeUInt16BE(finish(onesSum(udp, 0, 20)), 10);
    const udpPseudo = onesSum(udp, 12, 8, 17 + 12);
    udp.writeUInt16BE(0xffff - onesSum(udp, 20, 12, udpPseudo), 28); // the last word makes the sum 0xffff
    const udpPartial = Buffer.from(udp);
    udpPartial.writeUInt16BE(udpPseudo, 26);
    const needs = (csumStart: number, csumOffset: number): VirtioNetHdrRepr => ({ ...PLAIN, flags: VirtioNetFlag.NEEDS_CSUM, csumStart, csumOffset });
    const c = counters();
    const got = readAll(new TunOffloadReader(rawQueue([withHeader(needs(20, 16), t), withHeader(needs(20, 6), udpPartial), withHeader(PLAIN, want)]), c));
    expect(got[0]!.equals(want)).toBe(true);
    expect(got[1]!.readUInt16BE(26)).toBe(0xffff);
    expect(got[2]!.equals(want)).toBe(true);
    expect(c[TunCounter.ChecksumCompleted]).toBe(2);
  });

  it('truncates a plain packet to the room left, as a plain TUN read would', () => {
    const p = tcp({ payload: payloadOf(200) });
    const { bufs, sizes } = batch(1, HEADROOM + 100);
    expect(new TunOffloadReader(rawQueue([withHeader(PLAIN, p)]), counters()).read(bufs, sizes, HEADROOM)).toBe(1);
    expect(sizes[0]).toBe(100);
    expect(bufs[0]!.subarray(HEADROOM).equals(p.subarray(0, 100))).toBe(true);
  });

  it('malformed virtio headers: each counted in BadVnetHdr and dropped, never thrown; good packets around them pass', () => {
    const sp = tcp({ payload: payloadOf(3000), flags: ACK });
    const good = withHeader(PLAIN, tcp({ payload: Buffer.from('ok') }));
    const mutate = (f: (raw: Buffer) => void, base = superRead(sp, 1000)): Buffer => {
      f(base);
      return base;
    };
    const udp = tcp({ payload: payloadOf(3000), protocol: 17 });
    const bad = [
      Buffer.alloc(10), // header only
      Buffer.alloc(4), // not even a header
      mutate((r) => (r[1] = VirtioNetGso.UDP)), // a GSO type we do not take
      mutate((r) => (r[1] = VirtioNetGso.TCPV6)), // TCPV6 on an IPv4 packet
      mutate((r) => r.writeUInt16LE(0, 4)), // gso_size 0
      mutate((r) => r.writeUInt16LE(3100, 6)), // csum_start past the end
      mutate((r) => r.writeUInt16LE(24, 6)), // csum_start not where the IPv4 header ends
      mutate((r) => (r[10 + 20 + 12] = 0x40)), // TCP data offset 16 bytes
      mutate((r) => (r[10 + 20 + 12] = 0xf0), withHeader({ flags: 1, gsoType: 1, hdrLen: 0, gsoSize: 1000, csumStart: 20, csumOffset: 16 }, Buffer.from(sp.subarray(0, 60)))), // TCP header past the end
      withHeader({ flags: 1, gsoType: 1, hdrLen: 52, gsoSize: 1000, csumStart: 20, csumOffset: 16 }, udp), // UDP under a TCP type
      withHeader({ ...PLAIN, flags: VirtioNetFlag.NEEDS_CSUM, csumStart: 20, csumOffset: 3000 }, tcp({ payload: payloadOf(10) })), // checksum field past the end
      superRead(sp, 1600), // gso_size larger than the buffers' room
    ];
    const c = counters();
    const queue = bad.flatMap((b) => [b, good]);
    const got = readAll(new TunOffloadReader(rawQueue(queue), c));
    expect(got).toHaveLength(bad.length);
    for (const p of got) expect(p.equals(good.subarray(10))).toBe(true);
    expect(c[TunCounter.BadVnetHdr]).toBe(bad.length);
    expect(c[TunCounter.Reads]).toBe(2 * bad.length);
  });

  it('random bytes behind random headers: no throw, every packet counted, nothing past the room', () => {
    const rnd = mulberry32(3);
    const byte = (): number => Math.floor(rnd() * 256);
    const queue: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const sp = tcp({ payload: payloadOf(2000 + Math.floor(rnd() * 2000), i), version: rnd() < 0.5 ? 4 : 6 });
      const raw = rnd() < 0.5 ? superRead(sp, 200 + Math.floor(rnd() * 1400)) : withHeader(PLAIN, sp);
      for (let k = Math.floor(rnd() * 6); k > 0; k--) raw[Math.floor(rnd() * Math.min(raw.length, 80))] = byte();
      queue.push(raw.subarray(0, rnd() < 0.1 ? Math.floor(rnd() * raw.length) : raw.length));
    }
    const n = queue.length;
    const c = counters();
    const reader = new TunOffloadReader(rawQueue(queue), c);
    for (;;) {
      const { bufs, sizes } = batch(7);
      const got = reader.read(bufs, sizes, HEADROOM);
      for (let i = 0; i < got; i++) expect(sizes[i]! <= ROOM - HEADROOM).toBe(true);
      if (got === 0 && !reader.pending) break;
    }
    expect(c[TunCounter.Reads]).toBe(n);
    expect(c[TunCounter.BadVnetHdr]).toBeGreaterThan(0);
  });

  it('a read error after packets hands those over; on the first read it throws', () => {
    let calls = 0;
    const failing: RawRead = (bufs, offset, sizes) => {
      if (calls++ === 0) {
        const n = rawQueue(Array.from({ length: 16 }, () => withHeader(PLAIN, tcp({ payload: Buffer.from('x') }))))(bufs, offset, sizes);
        return n;
      }
      throw new Error('read fd 9: EIO');
    };
    const reader = new TunOffloadReader(failing, counters());
    const { bufs, sizes } = batch(64);
    expect(reader.read(bufs, sizes, HEADROOM)).toBe(16);
    expect(() => reader.read(bufs, sizes, HEADROOM)).toThrow('EIO');
  });
});

describe('TunOffloadWriter', () => {
  const coalesced = (
    pkts: Buffer[],
    o: { offset?: number; gsoSizes?: number[]; accept?: number; refuse?: (entry: Buffer) => boolean; coalesce?: boolean; rawMarks?: boolean } = {},
  ): { out: Buffer[]; written: number; c: Float64Array; bufs: Buffer[]; refused: number[] } => {
    const out: Buffer[] = [];
    const c = counters();
    const { bufs, sizes } = atHeadroom(pkts, o.offset);
    // Poisoned past the batch: the writer must touch none of it.
    const refused = new Uint8Array(bufs.length + 4).fill(7, bufs.length).fill(0, 0, bufs.length);
    const written = new TunOffloadWriter(rawSink(out, o.accept, o.refuse, o.rawMarks ?? true), c, o.coalesce ?? true).write(bufs, sizes, o.offset ?? HEADROOM, bufs.length, o.gsoSizes, refused);
    expect([...refused.subarray(bufs.length)]).toEqual([7, 7, 7, 7]);
    return { out, written, c, bufs, refused: [...refused.subarray(0, bufs.length)] };
  };

  it('one flow of ACK segments, PSH on the last: one super-packet with a GSO header (golden header, lengths, partial checksum)', () => {
    const segs = flow(4, 1000, { lastLength: 300 });
    segs[3] = tcp({ payload: payloadOf(300, 4), seq: 1000 + 3000, id: 0x1003, flags: ACK | PSH });
    const { out, written, c, bufs } = coalesced(segs);
    expect(written).toBe(4);
    expect(out).toHaveLength(1);
    const hdrLen = 20 + 32;
    //                                           flags gso  hdr_len  gso_size csum_start csum_offset
    expect(out[0]!.subarray(0, 10).toString('hex')).toBe('01' + '01' + '3400' + 'e803' + '1400' + '1000');
    const p = out[0]!.subarray(10);
    expect(p.length).toBe(hdrLen + 3300);
    expect(p.readUInt16BE(2)).toBe(hdrLen + 3300);
    expect(onesSum(p, 0, 20)).toBe(0xffff);
    expect(p.readUInt16BE(4)).toBe(0x1000); // the first packet's id
    expect(p[20 + 13]).toBe(ACK | PSH);
    expect(p.readUInt16BE(20 + 16)).toBe(pseudo(p, 4, p.length - 20));
    expect(p.subarray(hdrLen).equals(Buffer.concat(segs.map((s) => s.subarray(hdrLen))))).toBe(true);
    expect([...c]).toEqual([0, 0, 0, 0, 0, 4, 1, 4, 0, 0, 0, 0]);
    for (let i = 0; i < 4; i++) expect(bufs[i]!.subarray(HEADROOM, HEADROOM + segs[i]!.length).equals(segs[i]!)).toBe(true); // the caller's packets untouched
  });

  it('IPv6 too (payload length of the whole, TCPV6)', () => {
    const { out } = coalesced(flow(3, 1200, { version: 6 }));
    expect(out).toHaveLength(1);
    expect(out[0]!.subarray(0, 10).toString('hex')).toBe('01' + '04' + '4800' + 'b004' + '2800' + '1000');
    expect(out[0]!.readUInt16BE(10 + 4)).toBe(32 + 3600);
  });

  it('everything else goes alone behind a zero header, bytes as they were', () => {
    const one = tcp({ payload: payloadOf(100) });
    const { out, c } = coalesced([one]);
    expect(out.map((b) => b.toString('hex'))).toEqual(['00'.repeat(10) + one.toString('hex')]);
    expect([...c]).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  });

  const runs = (pkts: Buffer[]): number[] => {
    const { out } = coalesced(pkts);
    return out.map((b) => (b[1] === 0 ? 1 : Math.ceil((b.length - 10 - b.readUInt16LE(2)) / b.readUInt16LE(4))));
  };

  it('coalesces only what the kernel could have cut from one super-packet', () => {
    const base = flow(3, 1000);
    const alter = (k: number, f: (p: Buffer) => void, fixSum = true): Buffer[] => {
      const pkts = base.map((p) => Buffer.from(p));
      f(pkts[k]!);
      if (fixSum) {
        pkts[k]!.writeUInt16BE(0, 10);
        pkts[k]!.writeUInt16BE(finish(onesSum(pkts[k]!, 0, 20)), 10);
        pkts[k]!.writeUInt16BE(0, 36);
        pkts[k]!.writeUInt16BE(finish(onesSum(pkts[k]!, 20, pkts[k]!.length - 20, pseudo(pkts[k]!, 4, pkts[k]!.length - 20))), 36);
      }
      return pkts;
    };
    expect(runs(base)).toEqual([3]);
    for (const flag of [SYN, FIN, RST, URG, PSH, CWR]) expect(runs(alter(0, (p) => (p[33] = ACK | flag)))).toEqual([1, 2]); // the first: ACK only
    for (const flag of [SYN, FIN, RST, URG, CWR]) expect(runs(alter(1, (p) => (p[33] = ACK | flag)))).toEqual([1, 1, 1]);
    expect(runs(alter(1, (p) => (p[33] = PSH)))).toEqual([1, 1, 1]); // a follower without ACK
    expect(runs(alter(1, (p) => (p[33] = ACK | PSH)))).toEqual([2, 1]); // PSH ends the run
    expect(runs(alter(1, (p) => p.writeUInt16BE(p.readUInt16BE(36) ^ 1, 36), false))).toEqual([1, 1, 1]); // a checksum that fails
    expect(runs(alter(2, (p) => p.writeUInt32BE(p.readUInt32BE(24) + 1, 24)))).toEqual([2, 1]); // a sequence gap
    expect(runs(alter(2, (p) => p.writeUInt16BE(5202, 22)))).toEqual([2, 1]); // another flow
    expect(runs(alter(2, (p) => p.writeUInt32BE(p.readUInt32BE(28) + 1, 28)))).toEqual([2, 1]); // another ack
    expect(runs(alter(2, (p) => p.writeUInt16BE(65, 34)))).toEqual([2, 1]); // another window
    expect(runs(alter(2, (p) => (p[8] = 63)))).toEqual([2, 1]); // another TTL
    expect(runs(alter(2, (p) => (p[1] = 0)))).toEqual([2, 1]); // another TOS
    expect(runs(alter(2, (p) => (p[20 + 32 - 1]! ^= 1)))).toEqual([2, 1]); // other TCP options
    // what a segmenting kernel changes anyway: IP id and checksum, urgent pointer (URG unset)
    expect(runs(alter(1, (p) => p.writeUInt16BE(0x7777, 4)))).toEqual([3]);
    expect(runs(alter(1, (p) => p.writeUInt16BE(0x1234, 10), false))).toEqual([1, 1, 1]); // a corrupt IPv4 header checksum: never repaired by coalescing
    expect(runs(alter(1, (p) => p.writeUInt16BE(9, 38)))).toEqual([3]);
    expect(runs(alter(1, (p) => p.writeUInt16BE(0x2000, 6)))).toEqual([1, 1, 1]); // a fragment (MF)
    expect(runs([base[0]!, base[1]!, tcp({ payload: payloadOf(1001), seq: 3000 })])).toEqual([2, 1]); // larger than the first
    expect(runs([...flow(2, 1000, { lastLength: 500 }), tcp({ payload: payloadOf(1000), seq: 2500 })])).toEqual([2, 1]); // after a short one
    expect(runs([tcp({ payload: Buffer.alloc(0), seq: 1000 }), ...flow(2, 1000)])).toEqual([1, 2]); // a pure ACK
    expect(runs(flow(70, 500))).toEqual([64, 6]); // 64 segments at most
    expect(runs(flow(50, 1400))).toEqual([46, 4]); // and 64 KB
    expect(runs([...flow(2, 1000), ...flow(2, 1000, { version: 6 })])).toEqual([2, 2]);
  });

  it('a packet marked with a gso size goes whole behind its own header, never coalesced', () => {
    const big = tcp({ payload: payloadOf(4000), seq: 1000, flags: ACK });
    const after = tcp({ payload: payloadOf(1000), seq: 5000 });
    const { out, written, c } = coalesced([big, after], { gsoSizes: [1398, 0] });
    expect(written).toBe(2);
    expect(out).toHaveLength(2);
    expect(out[0]!.subarray(0, 10).toString('hex')).toBe('01' + '01' + '3400' + '7605' + '1400' + '1000');
    expect(out[1]!.subarray(0, 10).every((x) => x === 0)).toBe(true);
    expect([...c]).toEqual([0, 0, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0]);
  });

  it('without headroom for the header the packets are copied: same bytes', () => {
    const pkts = [...flow(3, 1000), tcp({ payload: payloadOf(10), seq: 9, flags: ACK | SYN })];
    expect(coalesced(pkts, { offset: 4 }).out.map((b) => b.toString('hex'))).toEqual(coalesced(pkts).out.map((b) => b.toString('hex')));
  });

  it('counts the packets of the entries the device took (a super-packet counts its segments)', () => {
    const pkts = [...flow(3, 1000), tcp({ payload: payloadOf(10), seq: 1, flags: ACK | SYN }), tcp({ payload: payloadOf(10), seq: 2, flags: ACK | SYN })];
    expect(coalesced(pkts, { accept: 2 }).written).toBe(4);
    expect(coalesced(pkts, { accept: 0 }).written).toBe(0);
    expect(coalesced(pkts, { coalesce: false }).out).toHaveLength(5);
  });

  /** Whether a raw entry carries a GSO header (a super-packet, coalesced or given). */
  const isSuper = (entry: Buffer): boolean => entry[1] !== VirtioNetGso.NONE;
  const plainEntry = (p: Buffer): string => '00'.repeat(10) + p.toString('hex');

  it('a refused coalesced super-packet is rewritten packet by packet, coalescing off for the rest of the batch (as native)', () => {
    const a = flow(3, 1000);
    const big = tcp({ payload: payloadOf(4000), seq: 9000, flags: ACK });
    const b = flow(2, 1000, { seq: 20_000 });
    const pkts = [...a, big, ...b];
    const gsoSizes = [0, 0, 0, 1398, 0, 0];
    let refusals = 0;
    const { out, written, c } = coalesced(pkts, { gsoSizes, refuse: (e) => isSuper(e) && refusals++ === 0 });
    expect(refusals).toBe(2); // the first super-packet refused, the given one after it taken
    expect(out.map((e) => (isSuper(e) ? 'super' : e.toString('hex')))).toEqual([...a.map(plainEntry), 'super', ...b.map(plainEntry)]);
    expect(written).toBe(6);
    expect([...c]).toEqual([0, 0, 0, 0, 0, 6, 0, 0, 1, 0, 0, 0]);
    // A kernel refusing every super-packet: the given one is skipped (nothing to cut it into), the runs go plain.
    const none = coalesced(pkts, { gsoSizes, refuse: isSuper });
    expect(none.out.map((e) => e.toString('hex'))).toEqual([...a, ...b].map(plainEntry));
    expect(none.written).toBe(5);
    expect(none.refused).toEqual([0, 0, 0, 1, 0, 0]); // which one, not only how many
    expect([...none.c]).toEqual([0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0]);
  });

  it('a refused packet is left out of the count without shifting the entries after it onto the counters', () => {
    const refused = tcp({ payload: payloadOf(10), seq: 1, flags: ACK | SYN });
    const pkts = [...flow(2, 1000, { seq: 20_000 }), refused, tcp({ payload: payloadOf(4000), seq: 9000, flags: ACK }), ...flow(3, 1000)];
    const gsoSizes = [0, 0, 0, 1398, 0, 0, 0];
    const r = coalesced(pkts, { gsoSizes, refuse: (e) => e.subarray(10).equals(refused) });
    const all = coalesced(pkts, { gsoSizes });
    expect(all.refused).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(r.out.map((e) => e.toString('hex'))).toEqual(all.out.map((e) => e.toString('hex')).filter((e) => e !== plainEntry(refused)));
    expect(r.written).toBe(6);
    expect([...r.c]).toEqual([0, 0, 0, 0, 0, 6, 2, 5, 1, 0, 0, 0]);
    // The refused packet is the third, between a coalesced run and a given super-packet.
    expect(r.refused).toEqual([0, 0, 1, 0, 0, 0, 0]);
  });

  it('marks which packets did not go: refused plain ones among plain ones, and what a full device left', () => {
    const bad = tcp({ payload: payloadOf(10), seq: 1, flags: ACK | SYN });
    const syn = (seq: number): Buffer => tcp({ payload: payloadOf(10), seq, flags: ACK | SYN }); // never coalesced
    const pkts = [syn(100), bad, syn(200), syn(300)];
    expect(coalesced(pkts, { refuse: (e) => e.subarray(10).equals(bad) }).refused).toEqual([0, 1, 0, 0]);
    // Full after two entries: the last two did not go.
    const full = coalesced(pkts, { accept: 2 });
    expect(full.written).toBe(2);
    expect(full.refused).toEqual([0, 0, 1, 1]);
    // A raw write that only counts (no marks): the writer takes the first ones as those that went.
    const counted = coalesced(pkts, { accept: 3, rawMarks: false });
    expect(counted.refused).toEqual([0, 0, 0, 1]);
  });

  it('an error after packets went ends the batch with those counted; before any went it is thrown', () => {
    const bad = tcp({ payload: payloadOf(10), seq: 1, flags: ACK | SYN });
    const pkts = [...flow(3, 1000), bad, tcp({ payload: payloadOf(10), seq: 2, flags: ACK | SYN })];
    const failOn = (into: Buffer[]): RawWrite => (bufs, sizes, offset, count) => {
      // as writeBatch: an error on the first entry of a call is thrown, a later one ends the call
      for (let i = 0; i < count; i++) {
        const entry = bufs[i]!.subarray(offset, offset + sizes[i]!);
        if (entry.subarray(10).equals(bad)) {
          if (i === 0) throw new Error('write fd 9: EBADFD');
          return i;
        }
        into.push(Buffer.from(entry));
      }
      return count;
    };
    const c = counters();
    const out: Buffer[] = [];
    const after = atHeadroom(pkts);
    const refused = new Uint8Array(pkts.length);
    expect(new TunOffloadWriter(failOn(out), c, true).write(after.bufs, after.sizes, HEADROOM, pkts.length, undefined, refused)).toBe(3);
    expect(out).toHaveLength(1);
    expect([...refused]).toEqual([0, 0, 0, 1, 1]); // the error ended the batch at the fourth
    expect([...c]).toEqual([0, 0, 0, 0, 0, 3, 1, 3, 0, 0, 0, 0]);
    const before = atHeadroom([bad, ...flow(3, 1000)]);
    expect(() => new TunOffloadWriter(failOn([]), counters(), true).write(before.bufs, before.sizes, HEADROOM, 4)).toThrow('EBADFD');
  });
});

describe('side by side with the addon (tunQueueRead / tunWriteOffload on a FIFO)', () => {
  let dir: string;
  let fd = -1;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vxtun-offload-'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    fd = openSync(join(dir, 'fifo'), constants.O_RDWR | constants.O_NONBLOCK);
  });
  afterAll(() => {
    if (fd >= 0) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });

  function drain(): Buffer {
    const parts: Buffer[] = [];
    const b = Buffer.alloc(1 << 16);
    for (;;) {
      let n = 0;
      try {
        n = readSync(fd, b, 0, b.length, null);
      } catch {
        break; // EAGAIN
      }
      if (n === 0) break;
      parts.push(Buffer.from(b.subarray(0, n)));
    }
    return Buffer.concat(parts);
  }

  /** One raw TUN read through the addon and through TypeScript: packets and counters. */
  function readBoth(raw: Buffer, width: number): { native: string[]; ts: string[]; nc: number[]; tc: number[] } {
    const nc = counters();
    const tc = counters();
    writeSync(fd, raw);
    const queue = native.tunQueueOpen(fd, true);
    const nat: string[] = [];
    do {
      const { bufs, sizes } = batch(width);
      const n = native.tunQueueRead(queue, bufs, HEADROOM, sizes, nc);
      for (let i = 0; i < n; i++) nat.push(bufs[i]!.subarray(HEADROOM, HEADROOM + sizes[i]!).toString('hex'));
    } while (native.tunQueuePending(queue));
    const ts = readAll(new TunOffloadReader(rawQueue([raw]), tc), width).map((p) => p.toString('hex'));
    return { native: nat, ts, nc: [...nc], tc: [...tc] };
  }

  it('reader: random super-packets (IPv4/IPv6, options, flags, ECN type) and NEEDS_CSUM packets give the same bytes and counters', () => {
    const rnd = mulberry32(11);
    for (let i = 0; i < 300; i++) {
      const version = rnd() < 0.6 ? 4 : 6;
      const flags = [ACK, ACK | PSH, ACK | FIN | PSH, ACK | CWR, ACK | CWR | PSH][Math.floor(rnd() * 5)]!;
      const o: TcpOpts = {
        version,
        payload: payloadOf(1 + Math.floor(rnd() * 60000), i),
        flags,
        seq: Math.floor(rnd() * 2 ** 32),
        id: Math.floor(rnd() * 0x10000),
        ...(version === 4 && rnd() < 0.2 ? { ipOptions: Buffer.from('01010101', 'hex') } : {}),
        ...(rnd() < 0.3 ? { tcpOptions: Buffer.alloc(0) } : {}),
      };
      const p = tcp(o);
      const mss = 100 + Math.floor(rnd() * 1400);
      let raw: Buffer;
      if (o.payload.length > mss && rnd() < 0.8) {
        raw = superRead(p, mss);
        if ((flags & CWR) !== 0) raw[1] = raw[1]! | VirtioNetGso.ECN;
        if (rnd() < 0.2) raw[0] = 0; // no NEEDS_CSUM: TCP found from the IP header
      } else {
        const ihl = version === 4 ? 20 + (o.ipOptions?.length ?? 0) : 40;
        p.writeUInt16BE(pseudo(p, version, p.length - ihl), ihl + 16);
        raw = withHeader({ ...PLAIN, flags: VirtioNetFlag.NEEDS_CSUM, csumStart: ihl, csumOffset: 16 }, p);
      }
      const r = readBoth(raw, 1 + Math.floor(rnd() * 64));
      expect(r.ts).toEqual(r.native);
      expect(r.tc).toEqual(r.nc);
    }
  });

  it('reader: malformed headers are dropped and counted alike', () => {
    const sp = tcp({ payload: payloadOf(3000), flags: ACK });
    const cases = [Buffer.alloc(10), superRead(sp, 1000), superRead(sp, 1600), superRead(sp, 1000), superRead(sp, 1000)];
    cases[1]![1] = VirtioNetGso.UDP;
    cases[3]![VIRTIO_NET_HDR_LEN] = 0x55; // TCPV4 on a packet whose version nibble says 5
    cases[4]!.writeUInt16LE(24, 6); // IPv4 csum_start past the 20-byte header it has
    for (const raw of cases) {
      const r = readBoth(raw, 8);
      expect(r.ts).toEqual(r.native);
      expect(r.tc).toEqual(r.nc);
      expect(r.tc[TunCounter.BadVnetHdr]).toBe(1);
    }
  });

  /** The FIFO's byte stream cut into header + IP packet (its length from the IP header). */
  function split(stream: Buffer): string[] {
    const out: string[] = [];
    let at = 0;
    while (at < stream.length) {
      const ip = at + 10;
      const len = stream[ip]! >> 4 === 4 ? stream.readUInt16BE(ip + 2) : 40 + stream.readUInt16BE(ip + 4);
      out.push(stream.subarray(at, ip + len).toString('hex'));
      at = ip + len;
    }
    return out;
  }

  it('writer: random batches of interleaved flows give the same super-packets and counters', () => {
    const rnd = mulberry32(5);
    for (let round = 0; round < 200; round++) {
      // two flows (one IPv6 at times), runs of a few segments each, with the odd PSH, short one, SYN, bad checksum
      const pkts: Buffer[] = [];
      const seqs = [1000, 50_000];
      const v6 = rnd() < 0.3;
      let total = 0;
      while (pkts.length < 40 && total < 40_000) {
        const f = rnd() < 0.7 ? 0 : 1;
        const mss = 1000 + f * 200;
        const len = rnd() < 0.1 ? Math.floor(rnd() * mss) : mss;
        const flags = rnd() < 0.1 ? ACK | PSH : rnd() < 0.03 ? ACK | SYN : ACK;
        const p = tcp({ version: f === 1 && v6 ? 6 : 4, payload: payloadOf(len, pkts.length), seq: seqs[f]!, flags, id: pkts.length });
        if (rnd() < 0.03) p[p.length - 1] = p[p.length - 1]! ^ 0xff;
        if (rnd() < 0.05) seqs[f] = seqs[f]! + 7;
        seqs[f] = seqs[f]! + len;
        pkts.push(p);
        total += p.length + 10;
      }
      const nc = counters();
      const tc = counters();
      const n = atHeadroom(pkts);
      const nativeWritten = native.tunWriteOffload(fd, n.bufs, Int32Array.from(n.sizes), HEADROOM, pkts.length, nc, TunCoalesce.Tcp);
      const nat = split(drain());
      const ts: Buffer[] = [];
      const t = atHeadroom(pkts);
      const tsWritten = new TunOffloadWriter(rawSink(ts), tc, true).write(t.bufs, t.sizes, HEADROOM, pkts.length);
      expect(ts.map((b) => b.toString('hex'))).toEqual(nat);
      expect(tsWritten).toBe(nativeWritten);
      expect([...tc]).toEqual([...nc]);
    }
  });

  it('writer: super-packets marked with a gso size, between segments, as the engine hands them over', () => {
    const big = tcp({ payload: payloadOf(8000), seq: 1, flags: ACK });
    const pkts = [...flow(3, 1000, { seq: 9001 }), big, ...flow(2, 1000, { seq: 12001 })];
    const gsoSizes = [0, 0, 0, 1398, 0, 0];
    const nc = counters();
    const tc = counters();
    const n = atHeadroom(pkts);
    const headers = Buffer.alloc(pkts.length * 10);
    emitVirtioNetHdr(prepareTcpGso(n.bufs[3]!, HEADROOM, n.sizes[3]!, 1398)!, headers, 30);
    native.tunWriteOffload(fd, n.bufs, Int32Array.from(n.sizes), HEADROOM, pkts.length, nc, TunCoalesce.Tcp, headers);
    const nat = split(drain());
    const ts: Buffer[] = [];
    const t = atHeadroom(pkts);
    new TunOffloadWriter(rawSink(ts), tc, true).write(t.bufs, t.sizes, HEADROOM, pkts.length, gsoSizes);
    expect(ts.map((b) => b.toString('hex'))).toEqual(nat);
    expect([...tc]).toEqual([...nc]);
    expect(tc[TunCounter.SuperWrites]).toBe(1);
    expect(tc[TunCounter.CoalescedWrites]).toBe(2);
  });
});
