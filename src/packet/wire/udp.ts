/**
 * UDP header (RFC 768), 8 bytes: source port | destination port | length | checksum.
 * The length field covers header + payload and must fit in the bytes given to check(); bytes
 * past it are ignored (as Linux's udp_rcv trims them). A zero checksum means "none" over IPv4.
 */
import { internetChecksum, onesSum } from './checksum.js';
import { WireError } from './error.js';
import { NO_BYTES } from './view.js';

/** Field offsets, in one table. */
export const UdpField = { SRC_PORT: 0, DST_PORT: 2, LENGTH: 4, CHECKSUM: 6 } as const;
export const UDP_HEADER_LEN = 8;

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payloadLength: number;
}

export class UdpDatagram {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    /** Bytes given to check(); `length` is the header's length field (≤ available). */
    readonly available: number,
  ) {}

  /** The only way to get a view: refuses a short header or a length field that does not fit. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset, reuse?: UdpDatagram): UdpDatagram | WireError {
    if (offset < 0 || length < UDP_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    const udpLength = buf.readUInt16BE(offset + UdpField.LENGTH);
    if (udpLength < UDP_HEADER_LEN || udpLength > length) return WireError.BadTotalLength;
    if (reuse === undefined) return new UdpDatagram(buf, offset, length);
    // As repoint (view.ts) does for the views whose third field is `length`.
    const v = reuse as unknown as { buf: Buffer; offset: number; available: number };
    v.buf = buf;
    v.offset = offset;
    v.available = length;
    return reuse;
  }

  /** A view for check(…, reuse) to re-point (see view.ts); nothing may be read through it before a check succeeds. */
  static scratch(): UdpDatagram {
    return new UdpDatagram(NO_BYTES, 0, 0);
  }

  get srcPort(): number {
    return this.buf.readUInt16BE(this.offset + UdpField.SRC_PORT);
  }
  get dstPort(): number {
    return this.buf.readUInt16BE(this.offset + UdpField.DST_PORT);
  }
  /** The length field: header + payload. */
  get length(): number {
    return this.buf.readUInt16BE(this.offset + UdpField.LENGTH);
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.offset + UdpField.CHECKSUM);
  }
  get payloadOffset(): number {
    return this.offset + UDP_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.length - UDP_HEADER_LEN;
  }
  /**
   * True when header + payload + pseudo-header sum to 0xffff. A zero checksum field ("none")
   * is the caller's policy: it does not verify here unless the data happen to sum that way.
   */
  verifyChecksum(pseudoSum: number): boolean {
    return onesSum(this.buf, this.offset, this.length, pseudoSum) === 0xffff;
  }

  parse(): UdpRepr {
    return { srcPort: this.srcPort, dstPort: this.dstPort, payloadLength: this.payloadLength };
  }
}

/**
 * Writes the 8-byte header; returns 8. With `pseudoSum` (the IP pseudo-header sum for length
 * 8 + payloadLength) it checksums header + the payload already in buf after it, storing 0xffff
 * for a computed 0; without, it writes checksum 0 ("none", IPv4 only).
 */
export function emitUdp(repr: UdpRepr, buf: Buffer, offset: number, pseudoSum?: number): number {
  const udpLength = UDP_HEADER_LEN + repr.payloadLength;
  buf.writeUInt16BE(repr.srcPort, offset + UdpField.SRC_PORT);
  buf.writeUInt16BE(repr.dstPort, offset + UdpField.DST_PORT);
  buf.writeUInt16BE(udpLength, offset + UdpField.LENGTH);
  buf.writeUInt16BE(0, offset + UdpField.CHECKSUM);
  if (pseudoSum !== undefined) {
    const c = internetChecksum(buf, offset, udpLength, pseudoSum);
    buf.writeUInt16BE(c === 0 ? 0xffff : c, offset + UdpField.CHECKSUM);
  }
  return UDP_HEADER_LEN;
}
