/**
 * TCP header (RFC 9293 §3.1), just enough for checksum work and tracing:
 *   source port | destination port | sequence | acknowledgement
 *   data offset(4) reserved(4) | flags(8) | window | checksum | urgent pointer | options
 */
import { onesSum } from './checksum.js';
import { WireError } from './error.js';
import { NO_BYTES, repoint } from './view.js';

/** Field offsets, in one table. */
export const TcpField = {
  SRC_PORT: 0,
  DST_PORT: 2,
  SEQ: 4,
  ACK: 8,
  DATA_OFFSET: 12,
  FLAGS: 13,
  WINDOW: 14,
  CHECKSUM: 16,
  URGENT: 18,
} as const;
export const TCP_MIN_HEADER_LEN = 20;
export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  headerLength: number;
  payloadLength: number;
}

export class TcpSegment {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    /** The whole segment (header + payload), as given by the IP layer. */
    readonly length: number,
  ) {}

  /** The only way to get a view: refuses a short header or a data offset outside the segment. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset, reuse?: TcpSegment): TcpSegment | WireError {
    if (offset < 0 || length < TCP_MIN_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    const headerLength = (buf[offset + TcpField.DATA_OFFSET]! >> 4) * 4;
    if (headerLength < TCP_MIN_HEADER_LEN || headerLength > length) return WireError.BadHeaderLength;
    return reuse ? repoint(reuse, buf, offset, length) : new TcpSegment(buf, offset, length);
  }

  /** A view for check(…, reuse) to re-point (see view.ts); nothing may be read through it before a check succeeds. */
  static scratch(): TcpSegment {
    return new TcpSegment(NO_BYTES, 0, 0);
  }

  get srcPort(): number {
    return this.buf.readUInt16BE(this.offset + TcpField.SRC_PORT);
  }
  get dstPort(): number {
    return this.buf.readUInt16BE(this.offset + TcpField.DST_PORT);
  }
  get seq(): number {
    return this.buf.readUInt32BE(this.offset + TcpField.SEQ);
  }
  get ack(): number {
    return this.buf.readUInt32BE(this.offset + TcpField.ACK);
  }
  /** Header length in bytes (data offset * 4), options included. */
  get headerLength(): number {
    return (this.buf[this.offset + TcpField.DATA_OFFSET]! >> 4) * 4;
  }
  /** The eight flag bits of byte 13 (see TcpFlags). */
  get flags(): number {
    return this.buf[this.offset + TcpField.FLAGS]!;
  }
  get window(): number {
    return this.buf.readUInt16BE(this.offset + TcpField.WINDOW);
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.offset + TcpField.CHECKSUM);
  }
  get urgentPointer(): number {
    return this.buf.readUInt16BE(this.offset + TcpField.URGENT);
  }
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
  get payloadLength(): number {
    return this.length - this.headerLength;
  }
  /** True when the segment plus the pseudo-header sum (for this.length) sums to 0xffff. */
  verifyChecksum(pseudoSum: number): boolean {
    return onesSum(this.buf, this.offset, this.length, pseudoSum) === 0xffff;
  }

  parse(): TcpRepr {
    return {
      srcPort: this.srcPort,
      dstPort: this.dstPort,
      seq: this.seq,
      ack: this.ack,
      flags: this.flags,
      window: this.window,
      headerLength: this.headerLength,
      payloadLength: this.payloadLength,
    };
  }
}

/** tcpdump's flag letters, in its order (F S R P . U E W): "S", "S.", "P.", "FP."; "none" when 0. */
export function tcpFlagsToString(flags: number): string {
  let s = '';
  for (const [bit, letter] of FLAG_LETTERS) if (flags & bit) s += letter;
  return s === '' ? 'none' : s;
}
const FLAG_LETTERS: readonly (readonly [number, string])[] = [
  [TcpFlags.FIN, 'F'],
  [TcpFlags.SYN, 'S'],
  [TcpFlags.RST, 'R'],
  [TcpFlags.PSH, 'P'],
  [TcpFlags.ACK, '.'],
  [TcpFlags.URG, 'U'],
  [TcpFlags.ECE, 'E'],
  [TcpFlags.CWR, 'W'],
];
