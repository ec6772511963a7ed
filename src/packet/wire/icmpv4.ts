/**
 * ICMP for IPv4 (RFC 792), the messages vxtun sends and answers:
 *   type(8) | code(8) | checksum(16) | 4 type-specific bytes | data
 * Echo: identifier(16) sequence(16), data echoed. Errors: unused(32) — or unused(16) next-hop
 * MTU(16) for "fragmentation needed" (RFC 1191), pointer(8) for parameter problem, gateway(32)
 * for redirect — then the invoking datagram's IP header and first bytes. The checksum covers the
 * whole message, no pseudo-header.
 */
import { internetChecksum, onesSum } from './checksum.js';
import { WireError } from './error.js';

/** Field offsets, in one table. */
export const Icmpv4Field = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  IDENTIFIER: 4,
  SEQUENCE: 6,
  POINTER: 4,
  GATEWAY: 4,
  NEXT_HOP_MTU: 6,
  DATA: 8,
} as const;
export const ICMPV4_HEADER_LEN = 8;
/**
 * Most invoking bytes an error should quote so the whole reply stays within 576 bytes
 * (RFC 1812 §4.3.2.3; Linux icmp_send does the same): 576 - 20 (IP) - 8 (ICMP).
 */
export const ICMPV4_ERROR_MAX_INVOKING = 576 - 20 - ICMPV4_HEADER_LEN;

export const Icmpv4Type = {
  ECHO_REPLY: 0,
  DEST_UNREACHABLE: 3,
  SOURCE_QUENCH: 4,
  REDIRECT: 5,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
  PARAMETER_PROBLEM: 12,
} as const;

/** Codes of DEST_UNREACHABLE (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1). */
export const Icmpv4Code = {
  NET_UNREACHABLE: 0,
  HOST_UNREACHABLE: 1,
  PROTOCOL_UNREACHABLE: 2,
  PORT_UNREACHABLE: 3,
  FRAG_NEEDED: 4,
  SOURCE_ROUTE_FAILED: 5,
  NET_UNKNOWN: 6,
  HOST_UNKNOWN: 7,
  NET_PROHIBITED: 9,
  HOST_PROHIBITED: 10,
  ADMIN_PROHIBITED: 13,
} as const;

/** Codes of TIME_EXCEEDED. */
export const Icmpv4TimeExceededCode = { TTL_EXCEEDED: 0, REASSEMBLY_TIMEOUT: 1 } as const;

export type Icmpv4Repr =
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
      /** DEST_UNREACHABLE, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED or PARAMETER_PROBLEM. */
      type: number;
      code: number;
      /** DEST_UNREACHABLE/FRAG_NEEDED only: bytes 6–7. */
      nextHopMtu?: number;
      /** PARAMETER_PROBLEM only: byte 4. */
      pointer?: number;
      /** REDIRECT only: bytes 4–7, uint32. */
      gateway?: number;
      /** The original datagram's IP header and first bytes. */
      invoking: Buffer;
    }
  | {
      /** Any other type (timestamp, router advertisement, …): bytes 4–7 kept as `rest`. */
      kind: 'other';
      type: number;
      code: number;
      rest: number;
      data: Buffer;
    };

export function isIcmpv4ErrorType(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

export class Icmpv4Message {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    /** The whole message (the IP payload). */
    readonly length: number,
  ) {}

  /** The only way to get a view: refuses a message shorter than the 8-byte header. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset): Icmpv4Message | WireError {
    if (offset < 0 || length < ICMPV4_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    return new Icmpv4Message(buf, offset, length);
  }

  get type(): number {
    return this.buf[this.offset + Icmpv4Field.TYPE]!;
  }
  get code(): number {
    return this.buf[this.offset + Icmpv4Field.CODE]!;
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.offset + Icmpv4Field.CHECKSUM);
  }
  /** Echo request/reply. */
  get identifier(): number {
    return this.buf.readUInt16BE(this.offset + Icmpv4Field.IDENTIFIER);
  }
  /** Echo request/reply. */
  get sequence(): number {
    return this.buf.readUInt16BE(this.offset + Icmpv4Field.SEQUENCE);
  }
  /** Destination unreachable / fragmentation needed (RFC 1191): bytes 6–7. */
  get nextHopMtu(): number {
    return this.buf.readUInt16BE(this.offset + Icmpv4Field.NEXT_HOP_MTU);
  }
  /** Parameter problem: byte 4. */
  get pointer(): number {
    return this.buf[this.offset + Icmpv4Field.POINTER]!;
  }
  /** Redirect: bytes 4–7. */
  get gateway(): number {
    return this.buf.readUInt32BE(this.offset + Icmpv4Field.GATEWAY);
  }
  /** Bytes 4–7 as a uint32, whatever the type. */
  get rest(): number {
    return this.buf.readUInt32BE(this.offset + 4);
  }
  get isError(): boolean {
    return isIcmpv4ErrorType(this.type);
  }
  get isEcho(): boolean {
    const t = this.type;
    return t === Icmpv4Type.ECHO_REQUEST || t === Icmpv4Type.ECHO_REPLY;
  }
  /** Echo data, or an error's invoking datagram. */
  get payloadOffset(): number {
    return this.offset + ICMPV4_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.length - ICMPV4_HEADER_LEN;
  }
  get payload(): Buffer {
    return this.buf.subarray(this.offset + ICMPV4_HEADER_LEN, this.offset + this.length);
  }
  verifyChecksum(): boolean {
    return onesSum(this.buf, this.offset, this.length) === 0xffff;
  }

  parse(): Icmpv4Repr {
    const type = this.type;
    const code = this.code;
    const data = Buffer.from(this.payload);
    if (this.isEcho) {
      return { kind: 'echo', type, code, identifier: this.identifier, sequence: this.sequence, data };
    }
    if (this.isError) {
      const repr: Icmpv4Repr = { kind: 'error', type, code, invoking: data };
      if (type === Icmpv4Type.DEST_UNREACHABLE && code === Icmpv4Code.FRAG_NEEDED) repr.nextHopMtu = this.nextHopMtu;
      if (type === Icmpv4Type.PARAMETER_PROBLEM) repr.pointer = this.pointer;
      if (type === Icmpv4Type.REDIRECT) repr.gateway = this.gateway;
      return repr;
    }
    return { kind: 'other', type, code, rest: this.rest, data };
  }
}

/** Length emitIcmpv4 writes for an error quoting `invoking`. */
export function icmpv4ErrorLength(invoking: Uint8Array): number {
  return ICMPV4_HEADER_LEN + invoking.length;
}

/** Length emitIcmpv4 writes for `repr`. */
export function icmpv4Length(repr: Icmpv4Repr): number {
  return ICMPV4_HEADER_LEN + (repr.kind === 'error' ? repr.invoking.length : repr.data.length);
}

/** Writes the message (header, then data or invoking bytes) with its checksum; returns its length. */
export function emitIcmpv4(repr: Icmpv4Repr, buf: Buffer, offset: number): number {
  buf[offset + Icmpv4Field.TYPE] = repr.type & 0xff;
  buf[offset + Icmpv4Field.CODE] = repr.code & 0xff;
  buf.writeUInt16BE(0, offset + Icmpv4Field.CHECKSUM);
  let body: Buffer;
  switch (repr.kind) {
    case 'echo':
      buf.writeUInt16BE(repr.identifier & 0xffff, offset + Icmpv4Field.IDENTIFIER);
      buf.writeUInt16BE(repr.sequence & 0xffff, offset + Icmpv4Field.SEQUENCE);
      body = repr.data;
      break;
    case 'error':
      buf.writeUInt32BE(0, offset + 4);
      if (repr.gateway !== undefined) buf.writeUInt32BE(repr.gateway >>> 0, offset + Icmpv4Field.GATEWAY);
      if (repr.pointer !== undefined) buf[offset + Icmpv4Field.POINTER] = repr.pointer & 0xff;
      if (repr.nextHopMtu !== undefined) buf.writeUInt16BE(repr.nextHopMtu & 0xffff, offset + Icmpv4Field.NEXT_HOP_MTU);
      body = repr.invoking;
      break;
    case 'other':
      buf.writeUInt32BE(repr.rest >>> 0, offset + 4);
      body = repr.data;
      break;
  }
  body.copy(buf, offset + ICMPV4_HEADER_LEN);
  const length = ICMPV4_HEADER_LEN + body.length;
  buf.writeUInt16BE(internetChecksum(buf, offset, length), offset + Icmpv4Field.CHECKSUM);
  return length;
}
