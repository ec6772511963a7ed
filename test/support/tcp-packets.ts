/**
 * TCP packets built by hand (headers byte by byte, checksums with the reference in
 * src/packet/wire/checksum.ts) for the segmentation and coalescing tests.
 */
import { onesSum, finish } from '../../src/packet/wire/checksum.js';

export const POISON = 0xa5;
export const FIN = 0x01;
export const PSH = 0x08;
export const ACK = 0x10;
export const ECE = 0x40;
export const CWR = 0x80;

export const SRC4 = Buffer.from([10, 244, 1, 5]);
export const DST4 = Buffer.from([10, 244, 2, 7]);
export const SRC6 = Buffer.from('fd000244000100000000000000000005', 'hex');
export const DST6 = Buffer.from('fd000244000200000000000000000007', 'hex');
/** nop, nop, timestamps (kind 8, len 10, TSval, TSecr): what Linux puts on every data segment. */
export const TS_OPTIONS = Buffer.from('0101080a3f0f8ad1344a7ef9', 'hex');

export interface Built {
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

export function payloadOf(n: number, seed = 7): Buffer {
  const p = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    p[i] = x >>> 24;
  }
  return p;
}

export interface TcpOpts {
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
export function build(o: TcpOpts): Built {
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

export function pseudo(ip: Buffer, v: 4 | 6, l4Length: number): number {
  return v === 4 ? onesSum(ip, 12, 8, 6 + l4Length) : onesSum(ip, 8, 32, 6 + l4Length);
}


/**
 * An IPv4 UDP datagram SRC4 -> DST4 (DF, TTL 64) from `srcPort` to 5201 with `len` payload bytes:
 * a valid header checksum, the UDP checksum left 0 for the caller to fill (finished, or partial).
 */
export function udp4(len: number, id: number, srcPort: number, seed: number): Buffer {
  const p = Buffer.alloc(28 + len);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(id & 0xffff, 4);
  p.writeUInt16BE(0x4000, 6);
  p[8] = 64;
  p[9] = 17;
  SRC4.copy(p, 12);
  DST4.copy(p, 16);
  p.writeUInt16BE(finish(onesSum(p, 0, 20)), 10);
  p.writeUInt16BE(srcPort, 20);
  p.writeUInt16BE(5201, 22);
  p.writeUInt16BE(8 + len, 24);
  payloadOf(len, seed).copy(p, 28);
  return p;
}

/** The UDP pseudo-header sum of the IPv4 datagram p (what a CHECKSUM_PARTIAL field holds). */
export function udp4Pseudo(p: Buffer): number {
  return onesSum(p, 12, 8, 17 + p.length - 20);
}

/** Fills in the IPv4 datagram p's UDP checksum (a computed 0 sent as 0xffff). */
export function finishUdp4(p: Buffer): Buffer {
  p.writeUInt16BE(0, 26);
  const c = finish(onesSum(p, 20, p.length - 20, udp4Pseudo(p)));
  p.writeUInt16BE(c === 0 ? 0xffff : c, 26);
  return p;
}
