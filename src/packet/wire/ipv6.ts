/**
 * IPv6 fixed header (RFC 8200 §3), 40 bytes:
 *   ver(4) | traffic class(8) | flow label(20)
 *   payload length(16) | next header(8) | hop limit(8)
 *   source(128) | destination(128)
 * Extension headers are not walked: payloadOffset is the byte after the fixed header and
 * nextHeader is whatever follows it. Addresses are 16-byte Buffers.
 */
import { fold, onesSum } from './checksum.js';
import { WireError } from './error.js';
import { ipv4ToString, isIpv4String, ipv4FromString } from './ipv4.js';
import { NO_BYTES, repoint } from './view.js';

/** Field offsets, in one table. */
export const Ipv6Field = {
  VER_TC_FLOW: 0,
  PAYLOAD_LENGTH: 4,
  NEXT_HEADER: 6,
  HOP_LIMIT: 7,
  SRC: 8,
  DST: 24,
} as const;
export const IPV6_HEADER_LEN = 40;
export const IPV6_ADDR_LEN = 16;

export interface Ipv6Repr {
  src: Buffer;
  dst: Buffer;
  nextHeader: number;
  hopLimit: number;
  payloadLength: number;
  trafficClass?: number;
  flowLabel?: number;
}

export class Ipv6Packet {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    /** Bytes available from offset (may exceed 40 + payloadLength by link-layer padding). */
    readonly length: number,
  ) {}

  /** The only way to get a view: refuses bytes too short for the header or the stated payload. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset, reuse?: Ipv6Packet): Ipv6Packet | WireError {
    if (offset < 0 || length < IPV6_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    if (buf[offset]! >> 4 !== 6) return WireError.BadVersion;
    if (IPV6_HEADER_LEN + buf.readUInt16BE(offset + Ipv6Field.PAYLOAD_LENGTH) > length) return WireError.BadTotalLength;
    return reuse ? repoint(reuse, buf, offset, length) : new Ipv6Packet(buf, offset, length);
  }

  /** A view for check(…, reuse) to re-point (see view.ts); nothing may be read through it before a check succeeds. */
  static scratch(): Ipv6Packet {
    return new Ipv6Packet(NO_BYTES, 0, 0);
  }

  get version(): number {
    return this.buf[this.offset]! >> 4;
  }
  get trafficClass(): number {
    return (this.buf.readUInt16BE(this.offset) >> 4) & 0xff;
  }
  get flowLabel(): number {
    return this.buf.readUInt32BE(this.offset) & 0xfffff;
  }
  get payloadLength(): number {
    return this.buf.readUInt16BE(this.offset + Ipv6Field.PAYLOAD_LENGTH);
  }
  get nextHeader(): number {
    return this.buf[this.offset + Ipv6Field.NEXT_HEADER]!;
  }
  get hopLimit(): number {
    return this.buf[this.offset + Ipv6Field.HOP_LIMIT]!;
  }
  get src(): Buffer {
    return this.buf.subarray(this.offset + Ipv6Field.SRC, this.offset + Ipv6Field.SRC + IPV6_ADDR_LEN);
  }
  get dst(): Buffer {
    return this.buf.subarray(this.offset + Ipv6Field.DST, this.offset + Ipv6Field.DST + IPV6_ADDR_LEN);
  }
  /** Absolute offset in buf of the first byte after the fixed header. */
  get payloadOffset(): number {
    return this.offset + IPV6_HEADER_LEN;
  }
  /** 40 + payloadLength. */
  get totalLength(): number {
    return IPV6_HEADER_LEN + this.payloadLength;
  }
  /** Ones'-complement sum (folded, not complemented) of the RFC 8200 §8.1 pseudo-header. */
  pseudoHeaderSum(nextHeader: number, l4Length: number): number {
    return onesSum(this.buf, this.offset + Ipv6Field.SRC, 2 * IPV6_ADDR_LEN, lengthWords(l4Length) + nextHeader);
  }

  parse(): Ipv6Repr {
    return {
      src: Buffer.from(this.src),
      dst: Buffer.from(this.dst),
      nextHeader: this.nextHeader,
      hopLimit: this.hopLimit,
      payloadLength: this.payloadLength,
      trafficClass: this.trafficClass,
      flowLabel: this.flowLabel,
    };
  }
}

function lengthWords(l4Length: number): number {
  return Math.floor(l4Length / 0x10000) + (l4Length & 0xffff);
}

/** Pseudo-header sum from addresses, for packets not yet in a buffer. */
export function ipv6PseudoHeaderSum(src: Uint8Array, dst: Uint8Array, nextHeader: number, l4Length: number): number {
  return onesSum(dst, 0, IPV6_ADDR_LEN, onesSum(src, 0, IPV6_ADDR_LEN, fold(lengthWords(l4Length) + nextHeader)));
}

/** Writes the 40-byte fixed header; returns 40. */
export function emitIpv6(repr: Ipv6Repr, buf: Buffer, offset: number): number {
  const first = (6 << 28) | (((repr.trafficClass ?? 0) & 0xff) << 20) | ((repr.flowLabel ?? 0) & 0xfffff);
  buf.writeUInt32BE(first >>> 0, offset + Ipv6Field.VER_TC_FLOW);
  buf.writeUInt16BE(repr.payloadLength, offset + Ipv6Field.PAYLOAD_LENGTH);
  buf[offset + Ipv6Field.NEXT_HEADER] = repr.nextHeader & 0xff;
  buf[offset + Ipv6Field.HOP_LIMIT] = repr.hopLimit & 0xff;
  repr.src.copy(buf, offset + Ipv6Field.SRC, 0, IPV6_ADDR_LEN);
  repr.dst.copy(buf, offset + Ipv6Field.DST, 0, IPV6_ADDR_LEN);
  return IPV6_HEADER_LEN;
}

const HEX_GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

/** Parses RFC 4291 §2.2 text into 16 bytes, or undefined. No zone ("%eth0"), no prefix length. */
function parseIpv6(text: string): Buffer | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const dbl = text.indexOf('::');
  if (dbl !== -1 && text.indexOf('::', dbl + 1) !== -1) return undefined;
  let head: string[];
  let tail: string[];
  if (dbl === -1) {
    head = text.split(':');
    tail = [];
  } else {
    const h = text.slice(0, dbl);
    const t = text.slice(dbl + 2);
    head = h === '' ? [] : h.split(':');
    tail = t === '' ? [] : t.split(':');
  }
  // Only the very last group of the text may be a dotted IPv4 address.
  const last = dbl === -1 ? head : tail;
  const words: number[][] = [[], []];
  const groups = [head, tail];
  for (let g = 0; g < 2; g++) {
    const list = groups[g]!;
    for (let i = 0; i < list.length; i++) {
      const group = list[i]!;
      if (HEX_GROUP_RE.test(group)) {
        words[g]!.push(parseInt(group, 16));
      } else if (list === last && i === list.length - 1 && isIpv4String(group)) {
        const v4 = ipv4FromString(group);
        words[g]!.push(v4 >>> 16, v4 & 0xffff);
      } else {
        return undefined;
      }
    }
  }
  const headWords = words[0]!;
  const tailWords = words[1]!;
  const count = headWords.length + tailWords.length;
  if (dbl === -1 ? count !== 8 : count > 7) return undefined;
  const out = Buffer.alloc(IPV6_ADDR_LEN);
  headWords.forEach((w, i) => out.writeUInt16BE(w, 2 * i));
  const tailStart = 8 - tailWords.length;
  tailWords.forEach((w, i) => out.writeUInt16BE(w, 2 * (tailStart + i)));
  return out;
}

export function isIpv6String(text: string): boolean {
  return parseIpv6(text) !== undefined;
}

/** Parses any RFC 4291 text form ("::", "2001:db8::1", "::ffff:192.0.2.1"); throws on anything else. */
export function ipv6FromString(text: string): Buffer {
  const out = parseIpv6(text);
  if (out === undefined) throw new Error(`not an IPv6 address: ${JSON.stringify(text)}`);
  return out;
}

/**
 * RFC 5952 canonical text: lower case, no leading zeros, "::" for the longest run (the first on a
 * tie) of two or more zero groups, and mixed notation for IPv4-mapped addresses (::ffff:0:0/96, §5).
 */
export function ipv6ToString(addr: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(((addr[2 * i] ?? 0) << 8) | (addr[2 * i + 1] ?? 0));
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return `::ffff:${ipv4ToString(((w[6]! << 16) | w[7]!) >>> 0)}`;
  }
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never shortened (§4.2.2)
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((x) => x.toString(16)).join(':');
  if (bestStart === -1) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}
