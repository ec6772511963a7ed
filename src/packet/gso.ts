/**
 * Segmentation of TCP super-packets that kernel peers send whole.
 *
 * A kernel VXLAN device over veth hands the underlay one GSO skb of up to 64 KB (the veth
 * advertises tx-udp_tnl-segmentation, so nobody segments it), and a UDP socket receives it as
 * one datagram: an inner TCP packet far larger than any MTU on our side. Written into the TUN
 * as it is, the kernel forwards it to a pod link it does not fit and drops it (ICMP frag-needed
 * back to a peer that never sent such a packet). So we do what the missing hardware would have
 * done (TSO): cut the payload at the TUN MTU, give each piece the header with its own sequence
 * number, IPv4 id, length and flags, and a full checksum.
 */
import { onesSum, finish, type OnesSumFn } from './wire/checksum.js';
import { Ipv4Packet, IpProtocol, Ipv4Field } from './wire/ipv4.js';
import { Ipv6Packet, Ipv6Field, IPV6_HEADER_LEN } from './wire/ipv6.js';
import { TcpSegment, TcpField, TcpFlags } from './wire/tcp.js';
import { WireError } from './wire/error.js';
import { VirtioNetFlag, VirtioNetGso, type VirtioNetHdrRepr } from './wire/virtio-net.js';

interface TcpPacket {
  ip4: Ipv4Packet | undefined;
  ip6: Ipv6Packet | undefined;
  ipHeaderLength: number;
  tcp: TcpSegment;
  /** IP + TCP headers. */
  headerLength: number;
}

/** TCP over IPv4 (not a fragment) or IPv6 (no extension headers), else undefined. */
function parseTcp(buf: Buffer, ipOffset: number, ipLength: number): TcpPacket | undefined {
  const version = buf[ipOffset]! >> 4;
  let ipHeaderLength: number;
  let ip4: Ipv4Packet | undefined;
  let ip6: Ipv6Packet | undefined;
  if (version === 4) {
    const p = Ipv4Packet.check(buf, ipOffset, ipLength);
    if (p instanceof WireError || p.isFragment || p.protocol !== IpProtocol.TCP) return undefined;
    ip4 = p;
    ipHeaderLength = p.headerLength;
  } else if (version === 6) {
    const p = Ipv6Packet.check(buf, ipOffset, ipLength);
    if (p instanceof WireError || p.nextHeader !== IpProtocol.TCP) return undefined;
    ip6 = p;
    ipHeaderLength = 40;
  } else {
    return undefined;
  }
  const tcp = TcpSegment.check(buf, ipOffset + ipHeaderLength, ipLength - ipHeaderLength);
  if (tcp instanceof WireError) return undefined;
  return { ip4, ip6, ipHeaderLength, tcp, headerLength: ipHeaderLength + tcp.headerLength };
}

/**
 * The payload bytes per segment (MSS) that make each piece of the TCP packet at
 * buf[ipOffset, ipOffset + ipLength) exactly `mtu` long, when the packet is one segmentTcp
 * would split; else undefined. A TUN that takes super-packets whole (virtio_net_hdr) cuts there.
 */
export function tcpSegmentSize(buf: Buffer, ipOffset: number, ipLength: number, mtu: number): number | undefined {
  const t = parseTcp(buf, ipOffset, ipLength);
  if (t === undefined) return undefined;
  const mss = mtu - t.headerLength;
  return mss > 0 && t.tcp.payloadLength > mss ? mss : undefined;
}

/**
 * Readies the TCP packet at buf[ipOffset, +ipLength) to be written whole into a TUN with
 * IFF_VNET_HDR, cut by the kernel at `gsoSize` payload bytes: stores the pseudo-header sum in the
 * TCP checksum field (CHECKSUM_PARTIAL, as the kernel's own TCP leaves it; the kernel finishes it per
 * segment) and returns the virtio_net_hdr to put in front. Undefined, touching nothing, when the
 * packet is not one segmentTcp would take or has no more payload than one segment.
 */
export function prepareTcpGso(buf: Buffer, ipOffset: number, ipLength: number, gsoSize: number): VirtioNetHdrRepr | undefined {
  const t = gsoSize > 0 && gsoSize <= 0xffff ? parseTcp(buf, ipOffset, ipLength) : undefined;
  if (t === undefined || t.tcp.payloadLength <= gsoSize) return undefined;
  const l4Length = ipLength - t.ipHeaderLength;
  const pseudo = t.ip4 ? t.ip4.pseudoHeaderSum(IpProtocol.TCP, l4Length) : t.ip6!.pseudoHeaderSum(IpProtocol.TCP, l4Length);
  buf.writeUInt16BE(pseudo, ipOffset + t.ipHeaderLength + TcpField.CHECKSUM);
  // A CWR the sender set belongs to the first segment only: the ECN type tells the kernel so.
  const ecn = (t.tcp.flags & TcpFlags.CWR) !== 0 ? VirtioNetGso.ECN : 0;
  return {
    flags: VirtioNetFlag.NEEDS_CSUM,
    gsoType: (t.ip4 ? VirtioNetGso.TCPV4 : VirtioNetGso.TCPV6) | ecn,
    hdrLen: t.headerLength,
    gsoSize,
    csumStart: t.ipHeaderLength,
    csumOffset: TcpField.CHECKSUM,
  };
}

/**
 * Splits the TCP packet at buf[ipOffset, ipOffset + ipLength) into packets of at most `mtu`
 * bytes, each at `headroom` in a new buffer. Returns undefined when the packet is not TCP over
 * IPv4/IPv6 without options that forbid it (fragments, IPv6 extension headers) or cannot be split.
 * `sum16` sums the payloads (the addon's checksum on the fast path; same result).
 */
export function segmentTcp(buf: Buffer, ipOffset: number, ipLength: number, mtu: number, headroom: number, sum16: OnesSumFn = onesSum): Buffer[] | undefined {
  const t = parseTcp(buf, ipOffset, ipLength);
  if (t === undefined) return undefined;
  const { ip4, ipHeaderLength, tcp, headerLength } = t;
  const mss = mtu - headerLength;
  const payloadLength = tcp.payloadLength;
  if (mss <= 0 || payloadLength <= mss) return undefined;

  const sp: TcpSuperPacket = { ipOffset, ipHeaderLength, headerLength, payloadLength, mss, count: Math.ceil(payloadLength / mss), v6: ip4 === undefined };
  const out: Buffer[] = new Array(sp.count);
  for (let k = 0; k < sp.count; k++) {
    const seg = Buffer.allocUnsafe(headroom + headerLength + Math.min(mss, payloadLength - k * mss));
    writeTcpSegment(buf, sp, k, seg, headroom, sum16);
    out[k] = seg;
  }
  return out;
}

/** A TCP super-packet's layout, as segmentTcp or a virtio_net_hdr (src/io/tun-offload.ts) describes it. */
export interface TcpSuperPacket {
  /** Where the IP header starts in the buffer holding the super-packet. */
  ipOffset: number;
  /** IP header with any IPv6 extension headers: where TCP starts. */
  ipHeaderLength: number;
  /** IP + TCP headers, copied in front of every segment. */
  headerLength: number;
  payloadLength: number;
  /** Payload bytes per segment. */
  mss: number;
  /** ceil(payloadLength / mss). */
  count: number;
  v6: boolean;
}

/**
 * Writes segment k of the super-packet in `src` at out[o, ...): the headers with this segment's
 * sequence number, IPv4 id (+k), length and flags (FIN/PSH on the last only, CWR on the first only),
 * a fresh IPv4 header checksum and a full TCP checksum. Returns the segment's length.
 */
export function writeTcpSegment(src: Buffer, sp: TcpSuperPacket, k: number, out: Buffer, o: number, sum16: OnesSumFn = onesSum): number {
  const { ipOffset, ipHeaderLength, headerLength } = sp;
  const start = k * sp.mss;
  const chunk = Math.min(sp.mss, sp.payloadLength - start);
  src.copy(out, o, ipOffset, ipOffset + headerLength);
  src.copy(out, o + headerLength, ipOffset + headerLength + start, ipOffset + headerLength + start + chunk);
  const total = headerLength + chunk;
  const l4Length = total - ipHeaderLength;
  let pseudo: number;
  if (!sp.v6) {
    out.writeUInt16BE(total, o + Ipv4Field.TOTAL_LENGTH);
    out.writeUInt16BE((src.readUInt16BE(ipOffset + Ipv4Field.IDENTIFICATION) + k) & 0xffff, o + Ipv4Field.IDENTIFICATION);
    out.writeUInt16BE(0, o + Ipv4Field.CHECKSUM);
    out.writeUInt16BE(finish(onesSum(out, o, ipHeaderLength)), o + Ipv4Field.CHECKSUM);
    pseudo = onesSum(out, o + Ipv4Field.SRC, 8, IpProtocol.TCP + l4Length);
  } else {
    out.writeUInt16BE(total - IPV6_HEADER_LEN, o + Ipv6Field.PAYLOAD_LENGTH);
    pseudo = onesSum(out, o + Ipv6Field.SRC, 32, IpProtocol.TCP + l4Length);
  }
  const t = o + ipHeaderLength;
  out.writeUInt32BE((src.readUInt32BE(ipOffset + ipHeaderLength + TcpField.SEQ) + start) >>> 0, t + TcpField.SEQ);
  let f = out[t + TcpField.FLAGS]!;
  if (k !== sp.count - 1) f &= ~(TcpFlags.FIN | TcpFlags.PSH);
  if (k !== 0) f &= ~TcpFlags.CWR;
  out[t + TcpField.FLAGS] = f;
  out.writeUInt16BE(0, t + TcpField.CHECKSUM);
  out.writeUInt16BE(finish(sum16(out, t, l4Length, pseudo)), t + TcpField.CHECKSUM);
  return total;
}
