/**
 * ICMPv6 (RFC 4443), the messages vxtun sends and answers, plus a peek at neighbour discovery
 * (RFC 4861):
 *   type(8) | code(8) | checksum(16) | 4 type-specific bytes | data
 * Echo: identifier(16) sequence(16). Packet too big: MTU(32). Parameter problem: pointer(32).
 * Other errors: unused(32). Then as much of the invoking packet as fits in 1280 bytes.
 * The checksum covers an IPv6 pseudo-header (next header 58) and the whole message.
 */
import { internetChecksum, onesSum } from './checksum.js';
import { WireError } from './error.js';
import { IpProtocol } from './ipv4.js';
import { IPV6_ADDR_LEN, ipv6PseudoHeaderSum } from './ipv6.js';

/** Field offsets, in one table. */
export const Icmpv6Field = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  IDENTIFIER: 4,
  SEQUENCE: 6,
  MTU: 4,
  POINTER: 4,
  DATA: 8,
  /** Neighbour solicitation/advertisement: target address. */
  ND_TARGET: 8,
} as const;
export const ICMPV6_HEADER_LEN = 8;
/** NS/NA: 4 + 4 reserved/flags + 16-byte target. */
export const ICMPV6_ND_MIN_LEN = 24;
/** Most invoking bytes an error may quote so the reply fits the IPv6 minimum MTU: 1280 - 40 - 8. */
export const ICMPV6_ERROR_MAX_INVOKING = 1280 - 40 - ICMPV6_HEADER_LEN;

export const Icmpv6Type = {
  DEST_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
  ROUTER_SOLICIT: 133,
  ROUTER_ADVERT: 134,
  NEIGHBOR_SOLICIT: 135,
  NEIGHBOR_ADVERT: 136,
} as const;

/** Codes of DEST_UNREACHABLE (RFC 4443 §3.1). */
export const Icmpv6Code = {
  NO_ROUTE: 0,
  ADMIN_PROHIBITED: 1,
  BEYOND_SCOPE: 2,
  ADDRESS_UNREACHABLE: 3,
  PORT_UNREACHABLE: 4,
  SOURCE_POLICY_FAILED: 5,
  REJECT_ROUTE: 6,
} as const;

/** Codes of TIME_EXCEEDED. */
export const Icmpv6TimeExceededCode = { HOP_LIMIT_EXCEEDED: 0, REASSEMBLY_TIMEOUT: 1 } as const;

export type Icmpv6Repr =
  | {
      kind: 'echo';
      /** ECHO_REQUEST or ECHO_REPLY. */
      type: number;
      /** 0 on send; parse() reports what arrived. */
      code: number;
      identifier: number;
      sequence: number;
      data: Buffer;
    }
  | {
      kind: 'error';
      /** DEST_UNREACHABLE, PACKET_TOO_BIG, TIME_EXCEEDED or PARAMETER_PROBLEM (types < 128). */
      type: number;
      code: number;
      /** PACKET_TOO_BIG only: bytes 4–7. */
      mtu?: number;
      /** PARAMETER_PROBLEM only: bytes 4–7. */
      pointer?: number;
      /** The invoking packet's IPv6 header and first bytes. */
      invoking: Buffer;
    }
  | {
      /** Any other informational type (ND, MLD, …): bytes 4–7 kept as `rest`. */
      kind: 'other';
      type: number;
      code: number;
      rest: number;
      data: Buffer;
    };

export class Icmpv6Message {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    /** The whole message (the upper-layer payload). */
    readonly length: number,
  ) {}

  /** The only way to get a view: refuses a message shorter than the 8-byte header. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset): Icmpv6Message | WireError {
    if (offset < 0 || length < ICMPV6_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    return new Icmpv6Message(buf, offset, length);
  }

  get type(): number {
    return this.buf[this.offset + Icmpv6Field.TYPE]!;
  }
  get code(): number {
    return this.buf[this.offset + Icmpv6Field.CODE]!;
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.offset + Icmpv6Field.CHECKSUM);
  }
  get identifier(): number {
    return this.buf.readUInt16BE(this.offset + Icmpv6Field.IDENTIFIER);
  }
  get sequence(): number {
    return this.buf.readUInt16BE(this.offset + Icmpv6Field.SEQUENCE);
  }
  /** Packet too big: bytes 4–7. */
  get mtu(): number {
    return this.buf.readUInt32BE(this.offset + Icmpv6Field.MTU);
  }
  /** Parameter problem: bytes 4–7. */
  get pointer(): number {
    return this.buf.readUInt32BE(this.offset + Icmpv6Field.POINTER);
  }
  /** Bytes 4–7 as a uint32, whatever the type. */
  get rest(): number {
    return this.buf.readUInt32BE(this.offset + 4);
  }
  /** RFC 4443 §2.1: error messages have types 0–127. */
  get isError(): boolean {
    return this.type < 128;
  }
  get isEcho(): boolean {
    const t = this.type;
    return t === Icmpv6Type.ECHO_REQUEST || t === Icmpv6Type.ECHO_REPLY;
  }
  /**
   * Neighbour solicitation/advertisement target address (16-byte subarray), or undefined when
   * this is not NS/NA or too short to hold one.
   */
  get ndTarget(): Buffer | undefined {
    const t = this.type;
    if ((t !== Icmpv6Type.NEIGHBOR_SOLICIT && t !== Icmpv6Type.NEIGHBOR_ADVERT) || this.length < ICMPV6_ND_MIN_LEN) {
      return undefined;
    }
    const o = this.offset + Icmpv6Field.ND_TARGET;
    return this.buf.subarray(o, o + IPV6_ADDR_LEN);
  }
  get payloadOffset(): number {
    return this.offset + ICMPV6_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.length - ICMPV6_HEADER_LEN;
  }
  get payload(): Buffer {
    return this.buf.subarray(this.offset + ICMPV6_HEADER_LEN, this.offset + this.length);
  }
  /** Verifies the checksum over the pseudo-header (src, dst, length, 58) and the message. */
  verifyChecksum(src: Uint8Array, dst: Uint8Array): boolean {
    const pseudo = ipv6PseudoHeaderSum(src, dst, IpProtocol.ICMPV6, this.length);
    return onesSum(this.buf, this.offset, this.length, pseudo) === 0xffff;
  }

  parse(): Icmpv6Repr {
    const type = this.type;
    const code = this.code;
    const data = Buffer.from(this.payload);
    if (this.isEcho) {
      return { kind: 'echo', type, code, identifier: this.identifier, sequence: this.sequence, data };
    }
    if (this.isError) {
      const repr: Icmpv6Repr = { kind: 'error', type, code, invoking: data };
      if (type === Icmpv6Type.PACKET_TOO_BIG) repr.mtu = this.mtu;
      if (type === Icmpv6Type.PARAMETER_PROBLEM) repr.pointer = this.pointer;
      return repr;
    }
    return { kind: 'other', type, code, rest: this.rest, data };
  }
}

/** Length emitIcmpv6 writes for `repr`. */
export function icmpv6Length(repr: Icmpv6Repr): number {
  return ICMPV6_HEADER_LEN + (repr.kind === 'error' ? repr.invoking.length : repr.data.length);
}

/**
 * Writes the message with its checksum over the pseudo-header for `src` -> `dst`; returns its
 * length (the IPv6 payload length of the packet that carries it).
 */
export function emitIcmpv6(repr: Icmpv6Repr, buf: Buffer, offset: number, src: Uint8Array, dst: Uint8Array): number {
  buf[offset + Icmpv6Field.TYPE] = repr.type & 0xff;
  buf[offset + Icmpv6Field.CODE] = repr.code & 0xff;
  buf.writeUInt16BE(0, offset + Icmpv6Field.CHECKSUM);
  let body: Buffer;
  switch (repr.kind) {
    case 'echo':
      buf.writeUInt16BE(repr.identifier & 0xffff, offset + Icmpv6Field.IDENTIFIER);
      buf.writeUInt16BE(repr.sequence & 0xffff, offset + Icmpv6Field.SEQUENCE);
      body = repr.data;
      break;
    case 'error':
      buf.writeUInt32BE((repr.mtu ?? repr.pointer ?? 0) >>> 0, offset + 4);
      body = repr.invoking;
      break;
    case 'other':
      buf.writeUInt32BE(repr.rest >>> 0, offset + 4);
      body = repr.data;
      break;
  }
  body.copy(buf, offset + ICMPV6_HEADER_LEN);
  const length = ICMPV6_HEADER_LEN + body.length;
  const pseudo = ipv6PseudoHeaderSum(src, dst, IpProtocol.ICMPV6, length);
  buf.writeUInt16BE(internetChecksum(buf, offset, length, pseudo), offset + Icmpv6Field.CHECKSUM);
  return length;
}
