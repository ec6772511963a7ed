/**
 * Layer-by-layer dissection for the web view: every field named, with its byte range, so the page
 * can highlight exactly the bytes a field occupies. Reads untrusted bytes defensively: a layer
 * that does not fit ends the dissection (the rest shows as "payload").
 */
import { ipv4ToString } from '../packet/wire/ipv4.js';
import { ipv6ToString } from '../packet/wire/ipv6.js';
import { macToString } from '../packet/wire/ethernet.js';
import { protocolName } from './packet.js';

export interface Field {
  name: string;
  value: string;
  /** Byte range [start, end) in the dissected buffer. */
  start: number;
  end: number;
}

export interface Layer {
  /** e.g. 'outer IPv4', 'UDP', 'VXLAN', 'inner Ethernet', 'inner IPv4', 'ICMP' */
  name: string;
  start: number;
  end: number;
  fields: Field[];
}

export type Start = 'outer-ipv4' | 'vxlan' | 'ip';

const ETHER_TYPES: Record<number, string> = { 0x0800: 'IPv4', 0x0806: 'ARP', 0x86dd: 'IPv6' };

/** Dissects `buf` starting at the given layer: the outer IPv4 header, the VXLAN header, or an inner IP packet. */
export function dissect(buf: Buffer, start: Start): Layer[] {
  const layers: Layer[] = [];
  const n = buf.length;
  let at = 0;
  const f = (name: string, value: string | number, s: number, len: number): Field => ({ name, value: String(value), start: s, end: s + len });

  const ipv4 = (prefix: string): number | undefined => {
    if (n - at < 20 || buf[at]! >> 4 !== 4) return undefined;
    const ihl = (buf[at]! & 15) * 4;
    if (ihl < 20 || n - at < ihl) return undefined;
    const flags = buf.readUInt16BE(at + 6);
    const proto = buf[at + 9]!;
    layers.push({
      name: `${prefix}IPv4`,
      start: at,
      end: at + ihl,
      fields: [
        f('version', 4, at, 1),
        f('header length', `${ihl} B`, at, 1),
        f('DSCP/ECN', `0x${buf[at + 1]!.toString(16).padStart(2, '0')}`, at + 1, 1),
        f('total length', buf.readUInt16BE(at + 2), at + 2, 2),
        f('identification', `0x${buf.readUInt16BE(at + 4).toString(16).padStart(4, '0')}`, at + 4, 2),
        f('flags', `${flags & 0x4000 ? 'DF ' : ''}${flags & 0x2000 ? 'MF' : ''}`.trim() || 'none', at + 6, 2),
        f('TTL', buf[at + 8]!, at + 8, 1),
        f('protocol', `${proto} (${protocolName(proto)})`, at + 9, 1),
        f('header checksum', `0x${buf.readUInt16BE(at + 10).toString(16).padStart(4, '0')}`, at + 10, 2),
        f('source', ipv4ToString(buf.readUInt32BE(at + 12)), at + 12, 4),
        f('destination', ipv4ToString(buf.readUInt32BE(at + 16)), at + 16, 4),
      ],
    });
    at += ihl;
    return proto;
  };

  const ipv6 = (prefix: string): number | undefined => {
    if (n - at < 40 || buf[at]! >> 4 !== 6) return undefined;
    const next = buf[at + 6]!;
    layers.push({
      name: `${prefix}IPv6`,
      start: at,
      end: at + 40,
      fields: [
        f('version / class / flow', `0x${buf.readUInt32BE(at).toString(16)}`, at, 4),
        f('payload length', buf.readUInt16BE(at + 4), at + 4, 2),
        f('next header', `${next} (${protocolName(next)})`, at + 6, 1),
        f('hop limit', buf[at + 7]!, at + 7, 1),
        f('source', ipv6ToString(buf.subarray(at + 8, at + 24)), at + 8, 16),
        f('destination', ipv6ToString(buf.subarray(at + 24, at + 40)), at + 24, 16),
      ],
    });
    at += 40;
    return next;
  };

  const l4 = (proto: number, prefix: string): void => {
    if ((proto === 1 || proto === 58) && n - at >= 8) {
      const type = buf[at]!;
      const names: Record<number, string> = proto === 1 ? { 0: 'echo reply', 3: 'destination unreachable', 8: 'echo request', 11: 'time exceeded' } : { 1: 'destination unreachable', 2: 'packet too big', 128: 'echo request', 129: 'echo reply' };
      layers.push({
        name: `${prefix}${proto === 1 ? 'ICMP' : 'ICMPv6'}`,
        start: at,
        end: n,
        fields: [
          f('type', `${type}${names[type] ? ` (${names[type]})` : ''}`, at, 1),
          f('code', buf[at + 1]!, at + 1, 1),
          f('checksum', `0x${buf.readUInt16BE(at + 2).toString(16).padStart(4, '0')}`, at + 2, 2),
          f('identifier', buf.readUInt16BE(at + 4), at + 4, 2),
          f('sequence', buf.readUInt16BE(at + 6), at + 6, 2),
          ...(n - at > 8 ? [f('data', `${n - at - 8} B`, at + 8, n - at - 8)] : []),
        ],
      });
    } else if (proto === 6 && n - at >= 20) {
      const off = (buf[at + 12]! >> 4) * 4;
      const fl = buf[at + 13]!;
      const flagNames = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'].filter((_, i) => fl & (1 << i)).join(' ');
      layers.push({
        name: `${prefix}TCP`,
        start: at,
        end: n,
        fields: [
          f('source port', buf.readUInt16BE(at), at, 2),
          f('destination port', buf.readUInt16BE(at + 2), at + 2, 2),
          f('sequence number', buf.readUInt32BE(at + 4), at + 4, 4),
          f('acknowledgment', buf.readUInt32BE(at + 8), at + 8, 4),
          f('header length', `${off} B`, at + 12, 1),
          f('flags', flagNames || 'none', at + 13, 1),
          f('window', buf.readUInt16BE(at + 14), at + 14, 2),
          f('checksum', `0x${buf.readUInt16BE(at + 16).toString(16).padStart(4, '0')}`, at + 16, 2),
          f('urgent pointer', buf.readUInt16BE(at + 18), at + 18, 2),
          ...(n - at > off ? [f('data', `${n - at - off} B`, at + Math.min(off, n - at), n - at - Math.min(off, n - at))] : []),
        ],
      });
    } else if (proto === 17 && n - at >= 8) {
      layers.push({
        name: `${prefix}UDP`,
        start: at,
        end: prefix ? n : at + 8,
        fields: [
          f('source port', buf.readUInt16BE(at), at, 2),
          f('destination port', buf.readUInt16BE(at + 2), at + 2, 2),
          f('length', buf.readUInt16BE(at + 4), at + 4, 2),
          f('checksum', `0x${buf.readUInt16BE(at + 6).toString(16).padStart(4, '0')}${buf.readUInt16BE(at + 6) === 0 ? ' (none)' : ''}`, at + 6, 2),
          ...(prefix && n - at > 8 ? [f('data', `${n - at - 8} B`, at + 8, n - at - 8)] : []),
        ],
      });
    }
  };

  const inner = (prefix: string): void => {
    const version = at < n ? buf[at]! >> 4 : 0;
    const proto = version === 4 ? ipv4(prefix) : version === 6 ? ipv6(prefix) : undefined;
    if (proto !== undefined) l4(proto, prefix);
  };

  const vxlan = (): void => {
    if (n - at < 8) return;
    const flags = buf[at]!;
    layers.push({
      name: 'VXLAN',
      start: at,
      end: at + 8,
      fields: [
        f('flags', `0x${flags.toString(16).padStart(2, '0')}${flags & 0x08 ? ' (I: VNI valid)' : ''}`, at, 1),
        f('reserved', `0x${buf.readUIntBE(at + 1, 3).toString(16).padStart(6, '0')}`, at + 1, 3),
        f('VNI', buf.readUIntBE(at + 4, 3), at + 4, 3),
        f('reserved', `0x${buf[at + 7]!.toString(16).padStart(2, '0')}`, at + 7, 1),
      ],
    });
    at += 8;
    if (n - at < 14) return;
    const type = buf.readUInt16BE(at + 12);
    layers.push({
      name: 'inner Ethernet',
      start: at,
      end: at + 14,
      fields: [
        f('destination MAC', macToString(buf.subarray(at, at + 6)), at, 6),
        f('source MAC', macToString(buf.subarray(at + 6, at + 12)), at + 6, 6),
        f('EtherType', `0x${type.toString(16).padStart(4, '0')} (${ETHER_TYPES[type] ?? '?'})`, at + 12, 2),
      ],
    });
    at += 14;
    if (type === 0x0806 && n - at >= 28) {
      const op = buf.readUInt16BE(at + 6);
      layers.push({
        name: 'inner ARP',
        start: at,
        end: at + 28,
        fields: [
          f('hardware / protocol', `${buf.readUInt16BE(at)} / 0x${buf.readUInt16BE(at + 2).toString(16)}`, at, 4),
          f('lengths', `${buf[at + 4]} / ${buf[at + 5]}`, at + 4, 2),
          f('operation', `${op} (${op === 1 ? 'request' : op === 2 ? 'reply' : '?'})`, at + 6, 2),
          f('sender MAC', macToString(buf.subarray(at + 8, at + 14)), at + 8, 6),
          f('sender IP', ipv4ToString(buf.readUInt32BE(at + 14)), at + 14, 4),
          f('target MAC', macToString(buf.subarray(at + 18, at + 24)), at + 18, 6),
          f('target IP', ipv4ToString(buf.readUInt32BE(at + 24)), at + 24, 4),
        ],
      });
    } else if (type === 0x0800 || type === 0x86dd) inner('inner ');
  };

  if (start === 'outer-ipv4') {
    const proto = ipv4('outer ');
    if (proto === 17 && n - at >= 8) {
      l4(17, '');
      at += 8;
      vxlan();
    }
  } else if (start === 'vxlan') vxlan();
  else inner('inner ');
  return layers;
}
