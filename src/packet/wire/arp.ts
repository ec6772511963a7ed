/**
 * ARP (RFC 826) for Ethernet/IPv4 only, 28 bytes:
 *   htype(16) = 1 | ptype(16) = 0x0800 | hlen(8) = 6 | plen(8) = 4 | operation(16)
 *   sender MAC(48) | sender IP(32) | target MAC(48) | target IP(32)
 * vxtun answers ARP requests for its own VTEP address; anything but Ethernet/IPv4 is refused
 * as Unsupported. Bytes past 28 (Ethernet padding) are ignored.
 */
import { WireError } from './error.js';
import { EtherType, MAC_LEN, type Mac } from './ethernet.js';

/** Field offsets, in one table. */
export const ArpField = {
  HTYPE: 0,
  PTYPE: 2,
  HLEN: 4,
  PLEN: 5,
  OPERATION: 6,
  SENDER_MAC: 8,
  SENDER_IP: 14,
  TARGET_MAC: 18,
  TARGET_IP: 24,
} as const;
export const ARP_LEN = 28;
export const ARP_HTYPE_ETHERNET = 1;
export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;

export interface ArpRepr {
  operation: number;
  senderMac: Mac;
  senderIp: number;
  targetMac: Mac;
  targetIp: number;
}

export class ArpPacket {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    readonly length: number,
  ) {}

  /** The only way to get a view: refuses short packets and any hardware/protocol but Ethernet/IPv4. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset): ArpPacket | WireError {
    if (offset < 0 || length < ARP_LEN || offset + length > buf.length) return WireError.Truncated;
    if (
      buf.readUInt16BE(offset + ArpField.HTYPE) !== ARP_HTYPE_ETHERNET ||
      buf.readUInt16BE(offset + ArpField.PTYPE) !== EtherType.IPV4 ||
      buf[offset + ArpField.HLEN] !== MAC_LEN ||
      buf[offset + ArpField.PLEN] !== 4
    ) {
      return WireError.Unsupported;
    }
    return new ArpPacket(buf, offset, length);
  }

  get operation(): number {
    return this.buf.readUInt16BE(this.offset + ArpField.OPERATION);
  }
  get senderMac(): Mac {
    const o = this.offset + ArpField.SENDER_MAC;
    return this.buf.subarray(o, o + MAC_LEN);
  }
  get senderIp(): number {
    return this.buf.readUInt32BE(this.offset + ArpField.SENDER_IP);
  }
  get targetMac(): Mac {
    const o = this.offset + ArpField.TARGET_MAC;
    return this.buf.subarray(o, o + MAC_LEN);
  }
  get targetIp(): number {
    return this.buf.readUInt32BE(this.offset + ArpField.TARGET_IP);
  }

  parse(): ArpRepr {
    return {
      operation: this.operation,
      senderMac: Buffer.from(this.senderMac),
      senderIp: this.senderIp,
      targetMac: Buffer.from(this.targetMac),
      targetIp: this.targetIp,
    };
  }
}

/** Writes the 28-byte Ethernet/IPv4 ARP packet; returns 28. */
export function emitArp(repr: ArpRepr, buf: Buffer, offset: number): number {
  buf.writeUInt16BE(ARP_HTYPE_ETHERNET, offset + ArpField.HTYPE);
  buf.writeUInt16BE(EtherType.IPV4, offset + ArpField.PTYPE);
  buf[offset + ArpField.HLEN] = MAC_LEN;
  buf[offset + ArpField.PLEN] = 4;
  buf.writeUInt16BE(repr.operation, offset + ArpField.OPERATION);
  repr.senderMac.copy(buf, offset + ArpField.SENDER_MAC, 0, MAC_LEN);
  buf.writeUInt32BE(repr.senderIp >>> 0, offset + ArpField.SENDER_IP);
  repr.targetMac.copy(buf, offset + ArpField.TARGET_MAC, 0, MAC_LEN);
  buf.writeUInt32BE(repr.targetIp >>> 0, offset + ArpField.TARGET_IP);
  return ARP_LEN;
}
