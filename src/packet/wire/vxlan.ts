/**
 * VXLAN header (RFC 7348 §5), 8 bytes after the outer UDP header:
 *   flags(8: I = 0x08) | reserved(24) | VNI(24) | reserved(8)
 * Linux (vxlan_rcv) drops frames with unknown flags or non-zero reserved bits unless extensions
 * are configured; so do we, and we send reserved bits as zero.
 */
import { WireError } from './error.js';
import { NO_BYTES, repoint } from './view.js';

export const VxlanField = { FLAGS: 0, RESERVED1: 1, VNI: 4, RESERVED2: 7 } as const;
export const VXLAN_HEADER_LEN = 8;
export const VXLAN_FLAG_I = 0x08;
export const VXLAN_VNI_MAX = 0xffffff;
/** Linux's and flannel's default; IANA's is 4789. */
export const VXLAN_PORT_LINUX = 8472;
export const VXLAN_PORT_IANA = 4789;

export interface VxlanRepr {
  vni: number;
}

export class VxlanHeader {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    readonly length: number,
  ) {}

  /** Checks the length only; flag and reserved-bit policy is validate()'s, so decap can count each apart. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset, reuse?: VxlanHeader): VxlanHeader | WireError {
    if (length < VXLAN_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    return reuse ? repoint(reuse, buf, offset, length) : new VxlanHeader(buf, offset, length);
  }

  /** A view for check(…, reuse) to re-point (see view.ts); nothing may be read through it before a check succeeds. */
  static scratch(): VxlanHeader {
    return new VxlanHeader(NO_BYTES, 0, 0);
  }

  get flags(): number {
    return this.buf[this.offset + VxlanField.FLAGS]!;
  }
  get vni(): number {
    return this.buf.readUIntBE(this.offset + VxlanField.VNI, 3);
  }
  /** True when any of the 24 + 8 reserved bits is set. */
  get reservedBitsSet(): boolean {
    const o = this.offset;
    const b = this.buf;
    return (b[o + 1]! | b[o + 2]! | b[o + 3]! | b[o + VxlanField.RESERVED2]!) !== 0;
  }
  /** RFC 7348: I must be set; Linux without extensions refuses any other flag or reserved bit. */
  validate(): WireError | undefined {
    if (this.flags !== VXLAN_FLAG_I) return WireError.BadFlags;
    if (this.reservedBitsSet) return WireError.ReservedBitsSet;
    return undefined;
  }
  get payloadOffset(): number {
    return this.offset + VXLAN_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.length - VXLAN_HEADER_LEN;
  }

  parse(): VxlanRepr {
    return { vni: this.vni };
  }
}

export function emitVxlan(repr: VxlanRepr, buf: Buffer, offset: number): number {
  buf.writeUInt32BE(VXLAN_FLAG_I << 24, offset);
  buf.writeUInt32BE(((repr.vni & VXLAN_VNI_MAX) << 8) >>> 0, offset + VxlanField.VNI);
  return VXLAN_HEADER_LEN;
}
