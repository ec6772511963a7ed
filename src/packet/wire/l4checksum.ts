/**
 * TCP/UDP checksums of inner packets, and the CHECKSUM_PARTIAL state a kernel peer may leave.
 *
 * When Linux hands a TCP or UDP packet to a device that offloads checksums (veth, virtio, a
 * VXLAN device over them), it does not compute the checksum: it stores the pseudo-header sum and
 * leaves the rest to "hardware" (skb->ip_summed = CHECKSUM_PARTIAL, csum_start/csum_offset):
 *
 *   __tcp_v4_send_check:  th->check = ~tcp_v4_check(skb->len, saddr, daddr, 0);
 *   udp4_hwcsum:          uh->check = ~csum_tcpudp_magic(src, dst, len, IPPROTO_UDP, 0);
 *   __tcp_v6_send_check:  th->check = ~tcp_v6_check(skb->len, saddr, daddr, 0);
 *   udp6_hwcsum_outgoing: uh->check = ~csum_ipv6_magic(saddr, daddr, len, IPPROTO_UDP, 0);
 *
 * tcp_v4_check/csum_tcpudp_magic/csum_ipv6_magic return csum_fold(pseudo-header sum), and
 * csum_fold complements, so the stored field is the folded, un-complemented ones'-complement
 * sum of the pseudo-header (addresses, protocol, L4 length): exactly pseudoHeaderSum() here.
 * (GSO segmentation keeps that invariant: tcp_gso_segment rewrites th->check with the segment's
 * length delta.) Over a real NIC the hardware finishes it; over veth nobody does, and a receiver
 * that writes the packet into a TUN device sees it dropped by its own TCP.
 *
 * Rule implemented: a TCP/UDP checksum that does not verify, whose field equals the pseudo-header
 * sum for the packet's addresses, protocol and L4 length, is 'partial'. The one other
 * representation of the same ones'-complement value (0x0000 for a sum of 0xffff) counts too
 * for TCP; for UDP a zero field means "no checksum" (IPv4) or is invalid (IPv6, RFC 8200 §8.1).
 */
import { fold, internetChecksum, onesSum, type OnesSumFn } from './checksum.js';
import { Ipv4Packet, IpProtocol } from './ipv4.js';
import { Ipv6Packet } from './ipv6.js';
import { TcpField, TcpSegment } from './tcp.js';
import { UdpDatagram, UdpField } from './udp.js';
import { isWireError } from './error.js';

export type L4ChecksumState = 'valid' | 'partial' | 'invalid' | 'none' | 'not-applicable';

/** Where a TCP/UDP checksum lives and what it covers; filled by locate() (no allocation). */
interface L4Location {
  protocol: number;
  ipv6: boolean;
  l4Offset: number;
  l4Length: number;
  /** Absolute offset of the checksum field. */
  checksumOffset: number;
  /** Pseudo-header sum, folded, not complemented. */
  pseudo: number;
}
const loc: L4Location = { protocol: 0, ipv6: false, l4Offset: 0, l4Length: 0, checksumOffset: 0, pseudo: 0 };
// The views locate() re-points for every packet (decap calls it per packet; see view.ts).
const views = { ipv4: Ipv4Packet.scratch(), ipv6: Ipv6Packet.scratch(), tcp: TcpSegment.scratch(), udp: UdpDatagram.scratch() };

/** Finds the TCP/UDP checksum of the IP packet at buf[ipOffset, ipOffset+ipLength); false if none. */
function locate(buf: Buffer, ipOffset: number, ipLength: number): boolean {
  if (!(ipOffset >= 0) || !(ipLength >= 1) || ipOffset + ipLength > buf.length) return false;
  const version = buf[ipOffset]! >> 4;
  let protocol: number;
  let payloadOffset: number;
  let payloadLength: number;
  let ip: Ipv4Packet | Ipv6Packet;
  if (version === 4) {
    const p = Ipv4Packet.check(buf, ipOffset, ipLength, views.ipv4);
    if (isWireError(p) || p.isFragment) return false;
    ip = p;
    protocol = p.protocol;
    payloadOffset = p.payloadOffset;
    payloadLength = p.payloadLength;
  } else if (version === 6) {
    const p = Ipv6Packet.check(buf, ipOffset, ipLength, views.ipv6);
    if (isWireError(p)) return false;
    ip = p;
    protocol = p.nextHeader;
    payloadOffset = p.payloadOffset;
    payloadLength = p.payloadLength;
  } else {
    return false;
  }
  let l4Length: number;
  let checksumOffset: number;
  if (protocol === IpProtocol.TCP) {
    if (isWireError(TcpSegment.check(buf, payloadOffset, payloadLength, views.tcp))) return false;
    l4Length = payloadLength;
    checksumOffset = payloadOffset + TcpField.CHECKSUM;
  } else if (protocol === IpProtocol.UDP) {
    const u = UdpDatagram.check(buf, payloadOffset, payloadLength, views.udp);
    if (isWireError(u)) return false;
    l4Length = u.length; // what the checksum and the pseudo-header cover (udp_rcv trims the rest)
    checksumOffset = payloadOffset + UdpField.CHECKSUM;
  } else {
    return false;
  }
  loc.protocol = protocol;
  loc.ipv6 = version === 6;
  loc.l4Offset = payloadOffset;
  loc.l4Length = l4Length;
  loc.checksumOffset = checksumOffset;
  loc.pseudo = ip.pseudoHeaderSum(protocol, l4Length);
  return true;
}

/** State of the location found last (UDP zero field handled before); `sum` covers pseudo + segment. */
function classify(field: number, sum: number): L4ChecksumState {
  if (sum === 0xffff) return 'valid';
  if (field === loc.pseudo) return 'partial';
  if (field === 0 && loc.pseudo === 0xffff) return 'partial'; // TCP only: UDP 0 handled above
  return 'invalid';
}

/**
 * The state of the TCP/UDP checksum of the IPv4 or IPv6 packet at buf[ipOffset, +ipLength):
 * 'valid' verifies; 'none' is UDP over IPv4 without a checksum; 'partial' is a kernel peer's
 * CHECKSUM_PARTIAL (the field holds only the pseudo-header sum); 'invalid' is anything else;
 * 'not-applicable' for other protocols, IPv4 fragments, IPv6 extension headers and malformed
 * headers. Never throws.
 */
export function l4ChecksumState(buf: Buffer, ipOffset: number, ipLength: number): L4ChecksumState {
  if (!locate(buf, ipOffset, ipLength)) return 'not-applicable';
  const field = buf.readUInt16BE(loc.checksumOffset);
  if (loc.protocol === IpProtocol.UDP && field === 0) return loc.ipv6 ? 'invalid' : 'none';
  return classify(field, onesSum(buf, loc.l4Offset, loc.l4Length, loc.pseudo));
}

/** The full checksum for the located segment, given the sum over it with `field` in place. */
function completedChecksum(field: number, sum: number): number {
  // sum - field in ones'-complement arithmetic = sum of everything but the checksum field.
  const c = ~fold(sum + (~field & 0xffff)) & 0xffff;
  return loc.protocol === IpProtocol.UDP && c === 0 ? 0xffff : c;
}

/**
 * Rewrites the TCP/UDP checksum field with the correct full checksum (UDP: a computed 0 is
 * stored as 0xffff). Returns false, touching nothing, when l4ChecksumState would say
 * 'not-applicable'.
 */
export function completeL4Checksum(buf: Buffer, ipOffset: number, ipLength: number): boolean {
  if (!locate(buf, ipOffset, ipLength)) return false;
  buf.writeUInt16BE(0, loc.checksumOffset);
  const c = internetChecksum(buf, loc.l4Offset, loc.l4Length, loc.pseudo);
  buf.writeUInt16BE(loc.protocol === IpProtocol.UDP && c === 0 ? 0xffff : c, loc.checksumOffset);
  return true;
}

/**
 * The receive path in one pass: classifies like l4ChecksumState and, when the state is
 * 'partial', completes the checksum in place. Returns the state found (before the repair).
 * `sum16` computes the ones'-complement sum (the native addon's on the fast path; same result).
 */
export function repairPartialL4Checksum(buf: Buffer, ipOffset: number, ipLength: number, sum16: OnesSumFn = onesSum): L4ChecksumState {
  if (!locate(buf, ipOffset, ipLength)) return 'not-applicable';
  const field = buf.readUInt16BE(loc.checksumOffset);
  if (loc.protocol === IpProtocol.UDP && field === 0) return loc.ipv6 ? 'invalid' : 'none';
  return repairLocated(buf, field, sum16);
}

/** Sums the located segment, classifies it, and completes the field in place when 'partial'. */
function repairLocated(buf: Buffer, field: number, sum16: OnesSumFn): L4ChecksumState {
  const sum = sum16(buf, loc.l4Offset, loc.l4Length, loc.pseudo);
  const state = classify(field, sum);
  if (state === 'partial') buf.writeUInt16BE(completedChecksum(field, sum), loc.checksumOffset);
  return state;
}

/** Where a partial TCP/UDP checksum sits and what completes it (findPartialL4Checksum fills it). */
export interface ChecksumFix {
  /** Absolute offset of the checksum field. */
  at: number;
  /** The full checksum to store there. */
  value: number;
}

/**
 * What the decap path needs of repairPartialL4Checksum, without a pass over every payload and
 * without writing: only a field that holds the pseudo-header sum (or TCP's 0 when that sum is
 * 0xffff) can be partial, so only then is the segment summed (it may still verify: the field
 * matched by chance). Any other field, valid or not, needs nothing. True, with `fix` filled, when
 * the checksum is partial. (Summing every segment here, on top of the TUN writer's own check before
 * it coalesces, was ~6 % of the receiving node's CPU under a UDP flood.)
 */
export function findPartialL4Checksum(buf: Buffer, ipOffset: number, ipLength: number, sum16: OnesSumFn, fix: ChecksumFix): boolean {
  if (!locate(buf, ipOffset, ipLength)) return false;
  const field = buf.readUInt16BE(loc.checksumOffset);
  if (loc.protocol === IpProtocol.UDP && field === 0) return false;
  if (field !== loc.pseudo && !(field === 0 && loc.pseudo === 0xffff)) return false;
  const sum = sum16(buf, loc.l4Offset, loc.l4Length, loc.pseudo);
  if (classify(field, sum) !== 'partial') return false;
  fix.at = loc.checksumOffset;
  fix.value = completedChecksum(field, sum);
  return true;
}

const pendingFix: ChecksumFix = { at: 0, value: 0 };

/** findPartialL4Checksum, and the fix written in place: true when it completed a partial checksum. */
export function completePartialL4Checksum(buf: Buffer, ipOffset: number, ipLength: number, sum16: OnesSumFn = onesSum): boolean {
  if (!findPartialL4Checksum(buf, ipOffset, ipLength, sum16, pendingFix)) return false;
  buf.writeUInt16BE(pendingFix.value, pendingFix.at);
  return true;
}

/**
 * Does what the kernel does for CHECKSUM_PARTIAL: stores the folded, un-complemented
 * pseudo-header sum in the TCP/UDP checksum field. For tests and for emulating offload.
 * Returns false when not applicable.
 */
export function setPartialL4Checksum(buf: Buffer, ipOffset: number, ipLength: number): boolean {
  if (!locate(buf, ipOffset, ipLength)) return false;
  buf.writeUInt16BE(loc.pseudo, loc.checksumOffset);
  return true;
}
