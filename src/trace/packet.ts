/**
 * What a trace needs to know about the packet at an observation point, read straight from the
 * bytes without trusting them: where the inner IP packet starts, its addresses, protocol and
 * ports, and a fingerprint that stays the same at every point of one node's handling of it.
 * Nothing here throws on malformed input: an unreadable packet has no inner summary.
 */
import type { Observation, ObservationPoint } from '../datapath/observe.js';
import { ipv4ToString } from '../packet/wire/ipv4.js';
import { ipv6ToString } from '../packet/wire/ipv6.js';
import { macToString } from '../packet/wire/ethernet.js';

/** Offsets inside a VXLAN payload: VXLAN (8) + inner Ethernet (14), then the inner packet. */
export const VXLAN_LEN = 8;
export const INNER_ETH_LEN = 14;
export const INNER_IP_IN_VXLAN = VXLAN_LEN + INNER_ETH_LEN;

/** Points whose bytes start with the VXLAN header; the others start with the inner IP packet. */
export function startsWithVxlan(point: ObservationPoint, direction: 'in' | 'out'): boolean {
  return point === 'encap' || point === 'udp-send' || point === 'udp-recv' || point === 'decap' || (point === 'answer' && direction === 'out');
}

export function observationStartsWithVxlan(o: Observation): boolean {
  return startsWithVxlan(o.point, o.direction);
}

export interface InnerSummary {
  /** 4, 6, or 'arp' */
  family: 4 | 6 | 'arp';
  src: string;
  dst: string;
  /** 'icmp', 'icmpv6', 'tcp', 'udp', 'arp' or the protocol number as text. */
  protocol: string;
  sport?: number;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  icmpSeq?: number;
  /** ARP: 1 request, 2 reply. */
  arpOp?: number;
  ttl?: number;
  /** Inner IP length (header + payload). */
  length: number;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

export function protocolName(n: number): string {
  return PROTO_NAMES[n] ?? String(n);
}

/** Where the inner L3 packet starts and what it is; undefined when the bytes do not hold one. */
export function locateInner(buf: Buffer, offset: number, length: number, vxlan: boolean): { at: number; end: number; kind: 4 | 6 | 'arp' } | undefined {
  let at = offset;
  const end = offset + length;
  if (end > buf.length || length <= 0) return undefined;
  if (vxlan) {
    if (length < INNER_IP_IN_VXLAN + 1) return undefined;
    const etherType = buf.readUInt16BE(offset + VXLAN_LEN + 12);
    at = offset + INNER_IP_IN_VXLAN;
    if (etherType === 0x0806) return end - at >= 28 ? { at, end, kind: 'arp' } : undefined;
    if (etherType !== 0x0800 && etherType !== 0x86dd) return undefined;
  }
  const version = buf[at]! >> 4;
  if (version === 4 && end - at >= 20) return { at, end, kind: 4 };
  if (version === 6 && end - at >= 40) return { at, end, kind: 6 };
  return undefined;
}

/** The inner packet's addresses, protocol and ports (or ICMP type/id/seq, or ARP addresses). */
export function summarizeInner(buf: Buffer, offset: number, length: number, vxlan: boolean): InnerSummary | undefined {
  const loc = locateInner(buf, offset, length, vxlan);
  if (!loc) return undefined;
  const { at, end } = loc;
  if (loc.kind === 'arp') {
    return {
      family: 'arp',
      protocol: 'arp',
      arpOp: buf.readUInt16BE(at + 6),
      src: ipv4ToString(buf.readUInt32BE(at + 14)),
      dst: ipv4ToString(buf.readUInt32BE(at + 24)),
      length: 28,
    };
  }
  let l4: number;
  let proto: number;
  let s: InnerSummary;
  if (loc.kind === 4) {
    const ihl = (buf[at]! & 0x0f) * 4;
    proto = buf[at + 9]!;
    l4 = at + ihl;
    s = {
      family: 4,
      src: ipv4ToString(buf.readUInt32BE(at + 12)),
      dst: ipv4ToString(buf.readUInt32BE(at + 16)),
      protocol: protocolName(proto),
      ttl: buf[at + 8]!,
      length: buf.readUInt16BE(at + 2),
    };
  } else {
    proto = buf[at + 6]!;
    l4 = at + 40;
    s = {
      family: 6,
      src: ipv6ToString(buf.subarray(at + 8, at + 24)),
      dst: ipv6ToString(buf.subarray(at + 24, at + 40)),
      protocol: protocolName(proto),
      ttl: buf[at + 7]!,
      length: 40 + buf.readUInt16BE(at + 4),
    };
  }
  if ((proto === 6 || proto === 17) && end - l4 >= 4) {
    s.sport = buf.readUInt16BE(l4);
    s.dport = buf.readUInt16BE(l4 + 2);
  } else if ((proto === 1 || proto === 58) && end - l4 >= 8) {
    s.icmpType = buf[l4]!;
    s.icmpCode = buf[l4 + 1]!;
    s.icmpId = buf.readUInt16BE(l4 + 4);
    s.icmpSeq = buf.readUInt16BE(l4 + 6);
  }
  return s;
}

/**
 * A key that is equal for the same inner packet at every point of one node: addresses, protocol,
 * IPv4 id / IPv6 flow, length and the first L4 bytes — but not the TTL, the header checksum or the
 * UDP/TCP checksum, which the path may legitimately change (CHECKSUM_PARTIAL completion).
 */
export function innerFingerprint(buf: Buffer, offset: number, length: number, vxlan: boolean): string | undefined {
  const loc = locateInner(buf, offset, length, vxlan);
  if (!loc) return undefined;
  const { at, end } = loc;
  if (loc.kind === 'arp') return `arp:${buf.toString('hex', at + 6, Math.min(end, at + 28))}`;
  let l4: number;
  let proto: number;
  let head: string;
  if (loc.kind === 4) {
    const ihl = (buf[at]! & 0x0f) * 4;
    proto = buf[at + 9]!;
    l4 = at + ihl;
    // total length, id, flags/fragment offset; protocol; src, dst
    head = `4:${buf.toString('hex', at + 2, at + 8)}${proto.toString(16)}${buf.toString('hex', at + 12, at + 20)}`;
  } else {
    proto = buf[at + 6]!;
    l4 = at + 40;
    head = `6:${buf.toString('hex', at, at + 6)}${buf.toString('hex', at + 8, at + 40)}`;
  }
  const l4Bytes = proto === 17 ? 4 : 8; // UDP: ports only (then length, checksum)
  return `${head}:${buf.toString('hex', l4, Math.min(end, l4 + l4Bytes))}`;
}

export function vxlanFields(buf: Buffer, offset: number, length: number): { flags: number; vni: number; innerSrc?: string; innerDst?: string; etherType?: number } | undefined {
  if (length < VXLAN_LEN || offset + length > buf.length) return undefined;
  const out: { flags: number; vni: number; innerSrc?: string; innerDst?: string; etherType?: number } = {
    flags: buf[offset]!,
    vni: buf.readUIntBE(offset + 4, 3),
  };
  if (length >= INNER_IP_IN_VXLAN) {
    out.innerDst = macToString(buf.subarray(offset + 8, offset + 14));
    out.innerSrc = macToString(buf.subarray(offset + 14, offset + 20));
    out.etherType = buf.readUInt16BE(offset + 20);
  }
  return out;
}
