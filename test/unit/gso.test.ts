// segmentTcp: software TSO for the TCP super-packets kernel peers send whole. Packets are built by
// hand here (headers byte by byte, checksums with the reference in src/packet/wire/checksum.ts) and every
// segment is checked field by field against the original.
import { describe, expect, it } from 'vitest';
import { segmentTcp } from '../../src/packet/gso.js';
import { onesSum, finish } from '../../src/packet/wire/checksum.js';
import { POISON, FIN, PSH, ACK, ECE, CWR, SRC4, DST4, SRC6, DST6, TS_OPTIONS, type Built, payloadOf, type TcpOpts, build, pseudo } from '../support/tcp-packets.js';

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
