/**
 * Ethernet II (the inner frame of VXLAN, RFC 7348 §5). A view over bytes: check() before
 * reading, parse() to a small value, emit() from one.
 */
import { WireError } from './error.js';
import { NO_BYTES, repoint } from './view.js';

/** Field offsets, in one table. */
export const EthernetField = { DST: 0, SRC: 6, ETHERTYPE: 12 } as const;
export const ETHERNET_HEADER_LEN = 14;
export const EtherType = { IPV4: 0x0800, ARP: 0x0806, IPV6: 0x86dd } as const;

/** A MAC address is six bytes. */
export type Mac = Buffer;
export const MAC_LEN = 6;
export const BROADCAST_MAC: Mac = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export interface EthernetRepr {
  dst: Mac;
  src: Mac;
  etherType: number;
}

export class EthernetFrame {
  private constructor(
    readonly buf: Buffer,
    readonly offset: number,
    readonly length: number,
  ) {}

  /** The only way to get a view: refuses a frame too short for its header. */
  static check(buf: Buffer, offset = 0, length = buf.length - offset, reuse?: EthernetFrame): EthernetFrame | WireError {
    if (length < ETHERNET_HEADER_LEN || offset + length > buf.length) return WireError.Truncated;
    return reuse ? repoint(reuse, buf, offset, length) : new EthernetFrame(buf, offset, length);
  }

  /** A view for check(…, reuse) to re-point (see view.ts); nothing may be read through it before a check succeeds. */
  static scratch(): EthernetFrame {
    return new EthernetFrame(NO_BYTES, 0, 0);
  }

  get dst(): Mac {
    return this.buf.subarray(this.offset + EthernetField.DST, this.offset + EthernetField.DST + MAC_LEN);
  }
  get src(): Mac {
    return this.buf.subarray(this.offset + EthernetField.SRC, this.offset + EthernetField.SRC + MAC_LEN);
  }
  get etherType(): number {
    return this.buf.readUInt16BE(this.offset + EthernetField.ETHERTYPE);
  }
  /** True when the destination is `mac`; compares in place without allocating. */
  dstIs(mac: Mac): boolean {
    // Byte by byte: Buffer.compare with offsets allocated ~90 bytes per call (decap calls it per packet).
    const b = this.buf;
    const o = this.offset;
    for (let i = 0; i < MAC_LEN; i++) if (b[o + i] !== mac[i]) return false;
    return true;
  }
  dstIsBroadcast(): boolean {
    return this.dstIs(BROADCAST_MAC);
  }
  get payloadOffset(): number {
    return this.offset + ETHERNET_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.length - ETHERNET_HEADER_LEN;
  }

  parse(): EthernetRepr {
    return { dst: Buffer.from(this.dst), src: Buffer.from(this.src), etherType: this.etherType };
  }
}

/** Writes the header at buf[offset]; returns the header length. */
export function emitEthernet(repr: EthernetRepr, buf: Buffer, offset: number): number {
  repr.dst.copy(buf, offset + EthernetField.DST, 0, MAC_LEN);
  repr.src.copy(buf, offset + EthernetField.SRC, 0, MAC_LEN);
  buf.writeUInt16BE(repr.etherType, offset + EthernetField.ETHERTYPE);
  return ETHERNET_HEADER_LEN;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function isMacString(text: string): boolean {
  return MAC_RE.test(text);
}

/** Parses "0a:58:0a:f4:02:00"; throws on anything else (config input, never wire input). */
export function macFromString(text: string): Mac {
  if (!isMacString(text)) throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}

export function macToString(mac: Uint8Array): string {
  return Array.from(mac.subarray(0, MAC_LEN), (b) => b.toString(16).padStart(2, '0')).join(':');
}
