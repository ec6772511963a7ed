/**
 * IPv4 header (RFC 791), the inner packet vxtun carries and the one it answers with ICMP.
 *   ver(4) ihl(4) | dscp/ecn(8) | total length(16)
 *   identification(16) | flags(3: -, DF, MF) fragment offset(13, in 8-byte units)
 *   ttl(8) | protocol(8) | header checksum(16)
 *   source(32) | destination(32) | options (ihl*4 - 20 bytes)
 * check() verifies every length the accessors rely on; bytes past totalLength (Ethernet padding)
 * are ignored. Addresses are uint32 numbers (network order read as big-endian).
 */
import { checksumUpdate, fold, internetChecksum, onesSum } from './checksum.js';
import { WireError } from './error.js';
import { NO_BYTES, repoint } from './view.js';

/** Field offsets, in one table. */
export const Ipv4Field = {
  VER_IHL: 0,
  DSCP_ECN: 1,
  TOTAL_LENGTH: 2,
  IDENTIFICATION: 4,
  FLAGS_FRAGMENT: 6,
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
} as const;
export const IPV4_MIN_HEADER_LEN = 20;
export const IPV4_ADDR_LEN = 4;
/** IP protocol numbers (IPv4 protocol field, IPv6 next header). */
export const IpProtocol = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;

export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  /** Bytes after the header; totalLength = 20 + payloadLength. */
  payloadLength: number;
  dontFragment?: boolean;
  identification?: number;
  dscpEcn?: number;
}

export class Ipv4Packet {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    /** Bytes available from offset (may exceed totalLength by link-layer padding). */
    readonly length: number,
  ) {}

  /** The only way to get a view: refuses bytes whose version or lengths do not hold together. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset, reuse?: Ipv4Packet): Ipv4Packet | WireError {
    if (offset < 0 || length < IPV4_MIN_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    const verIhl = buf[offset]!;
    if (verIhl >> 4 !== 4) return WireError.BadVersion;
    const headerLength = (verIhl & 0x0f) * 4;
    if (headerLength < IPV4_MIN_HEADER_LEN || headerLength > length) return WireError.BadHeaderLength;
    const totalLength = buf.readUInt16BE(offset + Ipv4Field.TOTAL_LENGTH);
    if (totalLength < headerLength || totalLength > length) return WireError.BadTotalLength;
    return reuse ? repoint(reuse, buf, offset, length) : new Ipv4Packet(buf, offset, length);
  }

  /** A view for check(…, reuse) to re-point (see view.ts); nothing may be read through it before a check succeeds. */
  static scratch(): Ipv4Packet {
    return new Ipv4Packet(NO_BYTES, 0, 0);
  }

  get version(): number {
    return this.buf[this.offset + Ipv4Field.VER_IHL]! >> 4;
  }
  /** Header length in bytes (IHL * 4), options included. */
  get headerLength(): number {
    return (this.buf[this.offset + Ipv4Field.VER_IHL]! & 0x0f) * 4;
  }
  get dscpEcn(): number {
    return this.buf[this.offset + Ipv4Field.DSCP_ECN]!;
  }
  get totalLength(): number {
    return this.buf.readUInt16BE(this.offset + Ipv4Field.TOTAL_LENGTH);
  }
  get identification(): number {
    return this.buf.readUInt16BE(this.offset + Ipv4Field.IDENTIFICATION);
  }
  private get flagsFragment(): number {
    return this.buf.readUInt16BE(this.offset + Ipv4Field.FLAGS_FRAGMENT);
  }
  get dontFragment(): boolean {
    return (this.flagsFragment & FLAG_DF) !== 0;
  }
  get moreFragments(): boolean {
    return (this.flagsFragment & FLAG_MF) !== 0;
  }
  /** In 8-byte units. */
  get fragmentOffset(): number {
    return this.flagsFragment & FRAGMENT_OFFSET_MASK;
  }
  /** True for any fragment (first, middle or last) of a fragmented datagram. */
  get isFragment(): boolean {
    return (this.flagsFragment & (FLAG_MF | FRAGMENT_OFFSET_MASK)) !== 0;
  }
  get ttl(): number {
    return this.buf[this.offset + Ipv4Field.TTL]!;
  }
  get protocol(): number {
    return this.buf[this.offset + Ipv4Field.PROTOCOL]!;
  }
  get headerChecksum(): number {
    return this.buf.readUInt16BE(this.offset + Ipv4Field.CHECKSUM);
  }
  get src(): number {
    return this.buf.readUInt32BE(this.offset + Ipv4Field.SRC);
  }
  get dst(): number {
    return this.buf.readUInt32BE(this.offset + Ipv4Field.DST);
  }
  get srcBytes(): Buffer {
    return this.buf.subarray(this.offset + Ipv4Field.SRC, this.offset + Ipv4Field.SRC + IPV4_ADDR_LEN);
  }
  get dstBytes(): Buffer {
    return this.buf.subarray(this.offset + Ipv4Field.DST, this.offset + Ipv4Field.DST + IPV4_ADDR_LEN);
  }
  /** Absolute offset in buf of the first byte after the header (options included). */
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
  get payloadLength(): number {
    return this.totalLength - this.headerLength;
  }
  /** True when the header (options included) sums to 0xffff. */
  verifyHeaderChecksum(): boolean {
    return onesSum(this.buf, this.offset, this.headerLength) === 0xffff;
  }
  /** Ones'-complement sum (folded, not complemented) of the pseudo-header for an upper layer. */
  pseudoHeaderSum(protocol: number, l4Length: number): number {
    return onesSum(this.buf, this.offset + Ipv4Field.SRC, 2 * IPV4_ADDR_LEN, protocol + l4Length);
  }

  parse(): Ipv4Repr {
    return {
      src: this.src,
      dst: this.dst,
      protocol: this.protocol,
      ttl: this.ttl,
      payloadLength: this.payloadLength,
      dontFragment: this.dontFragment,
      identification: this.identification,
      dscpEcn: this.dscpEcn,
    };
  }
}

/** Pseudo-header sum from addresses, for packets not yet in a buffer. */
export function ipv4PseudoHeaderSum(src: number, dst: number, protocol: number, l4Length: number): number {
  const s = src >>> 0;
  const d = dst >>> 0;
  return fold((s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + protocol + l4Length);
}

/** Writes a 20-byte header (no options, not a fragment) with its checksum; returns 20. */
export function emitIpv4(repr: Ipv4Repr, buf: Buffer, offset: number): number {
  buf[offset + Ipv4Field.VER_IHL] = 0x45;
  buf[offset + Ipv4Field.DSCP_ECN] = (repr.dscpEcn ?? 0) & 0xff;
  buf.writeUInt16BE(IPV4_MIN_HEADER_LEN + repr.payloadLength, offset + Ipv4Field.TOTAL_LENGTH);
  buf.writeUInt16BE((repr.identification ?? 0) & 0xffff, offset + Ipv4Field.IDENTIFICATION);
  buf.writeUInt16BE(repr.dontFragment ? FLAG_DF : 0, offset + Ipv4Field.FLAGS_FRAGMENT);
  buf[offset + Ipv4Field.TTL] = repr.ttl & 0xff;
  buf[offset + Ipv4Field.PROTOCOL] = repr.protocol & 0xff;
  buf.writeUInt16BE(0, offset + Ipv4Field.CHECKSUM);
  buf.writeUInt32BE(repr.src >>> 0, offset + Ipv4Field.SRC);
  buf.writeUInt32BE(repr.dst >>> 0, offset + Ipv4Field.DST);
  buf.writeUInt16BE(internetChecksum(buf, offset, IPV4_MIN_HEADER_LEN), offset + Ipv4Field.CHECKSUM);
  return IPV4_MIN_HEADER_LEN;
}

/**
 * Decrements the TTL in place and patches the header checksum incrementally (RFC 1624), as a
 * router does. Returns the new TTL; a TTL already 0 is left alone (the caller answers with
 * ICMP time-exceeded before forwarding a packet whose TTL would reach 0).
 */
export function decrementTtl(pkt: Ipv4Packet): number {
  const o = pkt.offset + Ipv4Field.TTL;
  const buf = pkt.buf;
  const ttl = buf[o]!;
  if (ttl === 0) return 0;
  const oldWord = buf.readUInt16BE(o);
  const newWord = oldWord - 0x100;
  buf[o] = ttl - 1;
  const c = pkt.offset + Ipv4Field.CHECKSUM;
  buf.writeUInt16BE(checksumUpdate(buf.readUInt16BE(c), oldWord, newWord), c);
  return ttl - 1;
}

const OCTET_RE = /^(0|[1-9][0-9]{0,2})$/;

/** True for dotted-quad text "a.b.c.d" (decimal, 0..255, no leading zeros). */
export function isIpv4String(text: string): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (!OCTET_RE.test(p) || Number(p) > 255) return false;
  }
  return true;
}

/** Parses dotted-quad text to a uint32; throws on anything else (config input, never wire input). */
export function ipv4FromString(text: string): number {
  if (!isIpv4String(text)) throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
  const p = text.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function ipv4ToString(addr: number): string {
  const n = addr >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}
