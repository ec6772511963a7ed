/**
 * virtio_net_hdr (<linux/virtio_net.h>), 10 bytes in front of every packet on a TUN opened with
 * IFF_VNET_HDR:
 *   flags(8) | gso_type(8) | hdr_len(16) | gso_size(16) | csum_start(16) | csum_offset(16)
 * The 16-bit fields are in the host's byte order (legacy header, TUNSETVNETLE not set).
 *
 * Written in front of a TCP super-packet (gso_type TCPV4/TCPV6, gso_size = payload bytes per
 * segment, NEEDS_CSUM with the TCP checksum field holding the pseudo-header sum), the kernel takes
 * the packet whole and segments it only where a device needs it: one write instead of dozens
 * (prepareTcpGso in src/packet/gso.ts builds that header).
 */
import { WireError } from './error.js';

export const VirtioNetField = { FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8 } as const;
export const VIRTIO_NET_HDR_LEN = 10;
export const VirtioNetFlag = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;
export const VirtioNetGso = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

/** The host's byte order, read from memory (this layer imports no Node I/O module). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface VirtioNetHdrRepr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

function read16(buf: Buffer, at: number): number {
  return LITTLE_ENDIAN ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
}

function write16(buf: Buffer, v: number, at: number): void {
  if (LITTLE_ENDIAN) buf.writeUInt16LE(v, at);
  else buf.writeUInt16BE(v, at);
}

export class VirtioNetHdr {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
  ) {}

  static check(buf: Buffer, offset = 0, length = buf.length - offset): VirtioNetHdr | WireError {
    if (offset < 0 || length < VIRTIO_NET_HDR_LEN || offset + length > buf.length) return WireError.Truncated;
    return new VirtioNetHdr(buf, offset);
  }

  get flags(): number {
    return this.buf[this.offset + VirtioNetField.FLAGS]!;
  }
  get gsoType(): number {
    return this.buf[this.offset + VirtioNetField.GSO_TYPE]!;
  }
  get hdrLen(): number {
    return read16(this.buf, this.offset + VirtioNetField.HDR_LEN);
  }
  get gsoSize(): number {
    return read16(this.buf, this.offset + VirtioNetField.GSO_SIZE);
  }
  get csumStart(): number {
    return read16(this.buf, this.offset + VirtioNetField.CSUM_START);
  }
  get csumOffset(): number {
    return read16(this.buf, this.offset + VirtioNetField.CSUM_OFFSET);
  }

  parse(): VirtioNetHdrRepr {
    return { flags: this.flags, gsoType: this.gsoType, hdrLen: this.hdrLen, gsoSize: this.gsoSize, csumStart: this.csumStart, csumOffset: this.csumOffset };
  }
}

export function emitVirtioNetHdr(repr: VirtioNetHdrRepr, buf: Buffer, offset: number): number {
  buf[offset + VirtioNetField.FLAGS] = repr.flags;
  buf[offset + VirtioNetField.GSO_TYPE] = repr.gsoType;
  write16(buf, repr.hdrLen, offset + VirtioNetField.HDR_LEN);
  write16(buf, repr.gsoSize, offset + VirtioNetField.GSO_SIZE);
  write16(buf, repr.csumStart, offset + VirtioNetField.CSUM_START);
  write16(buf, repr.csumOffset, offset + VirtioNetField.CSUM_OFFSET);
  return VIRTIO_NET_HDR_LEN;
}
