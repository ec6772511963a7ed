// segmentTcp: software TSO for the TCP super-packets kernel peers send whole. Packets are built by
// hand here (headers byte by byte, checksums with the reference in src/wire/checksum.ts) and every
// segment is checked field by field against the original.
import { describe, expect, it } from 'vitest';
import { segmentTcp } from '../../src/engine/gso.js';
import { onesSum, finish } from '../../src/wire/checksum.js';

const POISON = 0xa5;
const FIN = 0x01;
const PSH = 0x08;
const ACK = 0x10;
const ECE = 0x40;
const CWR = 0x80;

const SRC4 = Buffer.from([10, 244, 1, 5]);
const DST4 = Buffer.from([10, 244, 2, 7]);
const SRC6 = Buffer.from('fd000244000100000000000000000005', 'hex');
const DST6 = Buffer.from('fd000244000200000000000000000007', 'hex');
/** nop, nop, timestamps (kind 8, len 10, TSval, TSecr): what Linux puts on every data segment. */
const TS_OPTIONS = Buffer.from('0101080a3f0f8ad1344a7ef9', 'hex');

interface Built {
  /** The buffer the packet sits in (poison before, padding after). */
  buf: Buffer;
  ipOffset: number;
  ipLength: number;
  /** The packet alone (a copy). */
  pkt: Buffer;
  ipHeaderLength: number;
  tcpHeaderLength: number;
  payload: Buffer;
}

function payloadOf(n: number, seed = 7): Buffer {
  const p = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    p[i] = x >>> 24;
  }
  return p;
}

interface TcpOpts {
  version?: 4 | 6;
  payload: Buffer;
  flags?: number;
  seq?: number;
  ack?: number;
  id?: number;
  /** IPv4 flags+fragment-offset word (DF = 0x4000). */
  frag?: number;
  ipOptions?: Buffer;
  tcpOptions?: Buffer;
  protocol?: number;
  /** Bytes of poison before the packet and garbage after it in the buffer. */
  offset?: number;
  trailer?: number;
  urgent?: number;
}

/** An IPv4 or IPv6 TCP packet with valid checksums, inside a larger poisoned buffer. */
function build(o: TcpOpts): Built {
  const v = o.version ?? 4;
  const ipOptions = o.ipOptions ?? Buffer.alloc(0);
  const tcpOptions = o.tcpOptions ?? TS_OPTIONS;
  const ipHeaderLength = v === 4 ? 20 + ipOptions.length : 40;
  const tcpHeaderLength = 20 + tcpOptions.length;
  const total = ipHeaderLength + tcpHeaderLength + o.payload.length;
  const offset = o.offset ?? 22;
  const buf = Buffer.alloc(offset + total + (o.trailer ?? 10), POISON);
  const p = buf.subarray(offset, offset + total);
  const proto = o.protocol ?? 6;
  if (v === 4) {
    p[0] = 0x40 | (ipHeaderLength / 4);
    p[1] = 0x02; // ECT(0)
    p.writeUInt16BE(total, 2);
    p.writeUInt16BE(o.id ?? 0x1000, 4);
    p.writeUInt16BE(o.frag ?? 0x4000, 6);
    p[8] = 64;
    p[9] = proto;
    p.writeUInt16BE(0, 10);
    SRC4.copy(p, 12);
    DST4.copy(p, 16);
    ipOptions.copy(p, 20);
    p.writeUInt16BE(finish(onesSum(p, 0, ipHeaderLength)), 10);
  } else {
    p.writeUInt32BE(0x60071d84, 0); // traffic class 0, flow label 0x71d84
    p.writeUInt16BE(total - 40, 4);
    p[6] = proto;
    p[7] = 64;
    SRC6.copy(p, 8);
    DST6.copy(p, 24);
  }
  const t = p.subarray(ipHeaderLength);
  t.writeUInt16BE(48026, 0);
  t.writeUInt16BE(5201, 2);
  t.writeUInt32BE((o.seq ?? 730212006) >>> 0, 4);
  t.writeUInt32BE((o.ack ?? 936975940) >>> 0, 8);
  t[12] = (tcpHeaderLength / 4) << 4;
  t[13] = o.flags ?? (ACK | PSH);
  t.writeUInt16BE(64, 14);
  t.writeUInt16BE(0, 16);
  t.writeUInt16BE(o.urgent ?? 0, 18);
  tcpOptions.copy(t, 20);
  o.payload.copy(t, tcpHeaderLength);
  const l4 = tcpHeaderLength + o.payload.length;
  t.writeUInt16BE(finish(onesSum(t, 0, l4, pseudo(p, v, l4))), 16);
  return { buf, ipOffset: offset, ipLength: total, pkt: Buffer.from(p), ipHeaderLength, tcpHeaderLength, payload: o.payload };
}

function pseudo(ip: Buffer, v: 4 | 6, l4Length: number): number {
  return v === 4 ? onesSum(ip, 12, 8, 6 + l4Length) : onesSum(ip, 8, 32, 6 + l4Length);
}

/** Runs segmentTcp and checks every invariant of every segment; returns the IP packets. */
function segmentAndCheck(b: Built, mtu: number, headroom = 22): Buffer[] {
  const v = (b.pkt[0]! >> 4) as 4 | 6;
  const before = Buffer.from(b.buf);
  const out = segmentTcp(b.buf, b.ipOffset, b.ipLength, mtu, headroom);
  expect(out).toBeDefined();
  expect(b.buf.equals(before)).toBe(true); // the original is left alone
  const segs = out!.map((s) => {
    expect(s.length).toBeGreaterThan(headroom);
    return s.subarray(headroom);
  });
  const ihl = b.ipHeaderLength;
  const thl = b.tcpHeaderLength;
  const mss = mtu - ihl - thl;
  expect(segs.length).toBe(Math.ceil(b.payload.length / mss));
  const orig = b.pkt;
  const seq0 = orig.readUInt32BE(ihl + 4);
  const origFlags = orig[ihl + 13]!;
  const payloads: Buffer[] = [];
  segs.forEach((s, k) => {
    const last = k === segs.length - 1;
    expect(s.length).toBeLessThanOrEqual(mtu);
    if (!last) expect(s.length).toBe(mtu); // every segment but the last is full
    if (v === 4) {
      expect(s.readUInt16BE(2)).toBe(s.length);
      expect(s.readUInt16BE(4)).toBe((orig.readUInt16BE(4) + k) & 0xffff);
      expect(onesSum(s, 0, ihl)).toBe(0xffff);
      // version/IHL, TOS, flags/fragment, TTL, protocol, addresses, options unchanged
      expect(s.subarray(0, 2).equals(orig.subarray(0, 2))).toBe(true);
      expect(s.subarray(6, 10).equals(orig.subarray(6, 10))).toBe(true);
      expect(s.subarray(12, ihl).equals(orig.subarray(12, ihl))).toBe(true);
    } else {
      expect(s.readUInt16BE(4)).toBe(s.length - 40);
      expect(s.subarray(0, 4).equals(orig.subarray(0, 4))).toBe(true);
      expect(s.subarray(6, 40).equals(orig.subarray(6, 40))).toBe(true);
    }
    const t = s.subarray(ihl);
    // ports, ack, data offset, window, urgent pointer and options unchanged
    expect(t.subarray(0, 4).equals(orig.subarray(ihl, ihl + 4))).toBe(true);
    expect(t.subarray(8, 13).equals(orig.subarray(ihl + 8, ihl + 13))).toBe(true);
    expect(t.subarray(14, 16).equals(orig.subarray(ihl + 14, ihl + 16))).toBe(true);
    expect(t.subarray(20, thl).equals(orig.subarray(ihl + 20, ihl + thl))).toBe(true);
    expect(t.readUInt32BE(4)).toBe((seq0 + k * mss) >>> 0);
    let want = origFlags;
    if (!last) want &= ~(FIN | PSH);
    if (k !== 0) want &= ~CWR;
    expect(t[13], `flags of segment ${k}`).toBe(want);
    const l4 = s.length - ihl;
    expect(onesSum(t, 0, l4, pseudo(s, v, l4)), `TCP checksum of segment ${k}`).toBe(0xffff);
    const pl = t.subarray(thl);
    if (!last) expect(pl.length).toBe(mss);
    payloads.push(pl);
  });
  expect(Buffer.concat(payloads).equals(b.payload)).toBe(true);
  return segs;
}

describe('segmentTcp: IPv4', () => {
  it('timestamps option, CWR|ECE|PSH|FIN|ACK: sizes, sequence numbers, ids, flags, checksums, payload', () => {
    const b = build({ payload: payloadOf(5000), flags: CWR | ECE | ACK | PSH | FIN, id: 0x2000 });
    const segs = segmentAndCheck(b, 1500);
    expect(segs.length).toBe(4); // mss = 1500 - 20 - 32 = 1448
    expect(segs.map((s) => s.length)).toEqual([1500, 1500, 1500, 5000 - 3 * 1448 + 52]);
    expect(segs.map((s) => s[20 + 13])).toEqual([CWR | ECE | ACK, ECE | ACK, ECE | ACK, ECE | ACK | PSH | FIN]);
    expect(segs.map((s) => s.readUInt16BE(4))).toEqual([0x2000, 0x2001, 0x2002, 0x2003]);
  });

  it('the kernel fixture shape: 4000 bytes at MTU 1450 -> 1398 + 1398 + 1204', () => {
    const b = build({ payload: payloadOf(4000, 3), seq: 1314517288 });
    const segs = segmentAndCheck(b, 1450);
    expect(segs.map((s) => s.length - 52)).toEqual([1398, 1398, 1204]);
    expect(segs.map((s) => s.readUInt32BE(24))).toEqual([1314517288, 1314517288 + 1398, 1314517288 + 2796]);
  });

  it('the IPv4 id and the sequence number wrap', () => {
    const b = build({ payload: payloadOf(4000), id: 0xfffe, seq: 0xfffffc00 });
    const segs = segmentAndCheck(b, 1000);
    expect(segs.map((s) => s.readUInt16BE(4))).toEqual([0xfffe, 0xffff, 0x0000, 0x0001, 0x0002]);
    expect(segs[1]!.readUInt32BE(24)).toBe((0xfffffc00 + 948) >>> 0);
    expect(segs[2]!.readUInt32BE(24)).toBe((0xfffffc00 + 2 * 948) >>> 0);
  });

  it('IPv4 options (IHL 6) are carried into every segment and covered by the header checksum', () => {
    const b = build({ payload: payloadOf(3000), ipOptions: Buffer.from([0x01, 0x01, 0x01, 0x00]) });
    expect(b.ipHeaderLength).toBe(24);
    const segs = segmentAndCheck(b, 1400);
    for (const s of segs) expect(s[0]).toBe(0x46);
  });

  it('no TCP options, payload an exact multiple of the mss', () => {
    const b = build({ payload: payloadOf(3 * 1460), tcpOptions: Buffer.alloc(0) });
    const segs = segmentAndCheck(b, 1500);
    expect(segs.map((s) => s.length)).toEqual([1500, 1500, 1500]);
  });

  it('an mss of one byte', () => {
    const b = build({ payload: payloadOf(10), tcpOptions: Buffer.alloc(0), flags: ACK | PSH | FIN });
    const segs = segmentAndCheck(b, 41);
    expect(segs).toHaveLength(10);
  });

  it('headroom 0 and a packet at offset 0 with nothing after it', () => {
    const b = build({ payload: payloadOf(2000), offset: 0, trailer: 0 });
    segmentAndCheck(b, 1000, 0);
  });

  it('a DF-clear packet keeps its flags word; ECN bits in TOS are kept', () => {
    const b = build({ payload: payloadOf(2000), frag: 0x0000 });
    const segs = segmentAndCheck(b, 1000);
    for (const s of segs) {
      expect(s.readUInt16BE(6)).toBe(0);
      expect(s[1]).toBe(0x02);
    }
  });
});

describe('segmentTcp: IPv6', () => {
  it('timestamps option, CWR|PSH|FIN: sizes, sequence numbers, flags, checksums, payload', () => {
    const b = build({ version: 6, payload: payloadOf(6000), flags: CWR | ACK | PSH | FIN, seq: 0xffffff00 });
    const segs = segmentAndCheck(b, 1500); // mss = 1500 - 40 - 32 = 1428
    expect(segs.length).toBe(5);
    expect(segs.map((s) => s[40 + 13])).toEqual([CWR | ACK, ACK, ACK, ACK, ACK | PSH | FIN]);
    expect(segs.map((s) => s.readUInt16BE(4))).toEqual([1460, 1460, 1460, 1460, 6000 - 4 * 1428 + 32]);
  });

  it('the kernel GSO size of a 64 KB super-packet', () => {
    const b = build({ version: 6, payload: payloadOf(65535 - 40 - 32) });
    const segs = segmentAndCheck(b, 1430);
    expect(segs.length).toBe(Math.ceil((65535 - 72) / (1430 - 72)));
  });
});

describe('segmentTcp: returns undefined when it must not or need not segment', () => {
  const udp = (): Built => build({ payload: payloadOf(3000), protocol: 17 });
  it.each<[string, () => Built, number]>([
    ['UDP', udp, 1500],
    ['ICMP', () => build({ payload: payloadOf(3000), protocol: 1 }), 1500],
    ['an IPv4 first fragment (MF)', () => build({ payload: payloadOf(3000), frag: 0x2000 }), 1500],
    ['an IPv4 later fragment (offset)', () => build({ payload: payloadOf(3000), frag: 0x00b9 }), 1500],
    ['an IPv4 last fragment (offset, no MF, DF)', () => build({ payload: payloadOf(3000), frag: 0x4001 }), 1500],
    ['payload < mss', () => build({ payload: payloadOf(1000) }), 1500],
    ['payload == mss', () => build({ payload: payloadOf(1448) }), 1500],
    ['IPv6 payload == mss', () => build({ version: 6, payload: payloadOf(1428) }), 1500],
    ['IPv6 with an extension header (hop-by-hop)', () => build({ version: 6, payload: payloadOf(3000), protocol: 0 }), 1500],
    ['IPv6 UDP', () => build({ version: 6, payload: payloadOf(3000), protocol: 17 }), 1500],
    ['mtu no larger than the headers', () => build({ payload: payloadOf(3000) }), 52],
    ['mtu smaller than the headers', () => build({ payload: payloadOf(3000) }), 30],
  ])('%s', (_name, make, mtu) => {
    const b = make();
    const before = Buffer.from(b.buf);
    expect(segmentTcp(b.buf, b.ipOffset, b.ipLength, mtu, 22)).toBeUndefined();
    expect(b.buf.equals(before)).toBe(true);
  });

  it('malformed input: TCP data offset beyond the packet, bad version, truncated IPv4', () => {
    const b = build({ payload: payloadOf(10) });
    const bad = Buffer.from(b.buf);
    bad[b.ipOffset + 20 + 12] = 0xf0; // 60-byte TCP header in a 42-byte segment
    expect(segmentTcp(bad, b.ipOffset, b.ipLength, 30, 0)).toBeUndefined();
    const v5 = Buffer.from(b.buf);
    v5[b.ipOffset] = 0x55;
    expect(segmentTcp(v5, b.ipOffset, b.ipLength, 30, 0)).toBeUndefined();
    const big = build({ payload: payloadOf(3000) });
    expect(segmentTcp(big.buf, big.ipOffset, 100, 60, 0)).toBeUndefined(); // totalLength 3052 > 100
  });
});
