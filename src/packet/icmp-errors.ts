/**
 * ICMP errors vxtun writes back into the TUN device, as a router on the path would:
 * destination unreachable for pod subnets no peer owns, and fragmentation-needed /
 * packet-too-big for packets the underlay cannot carry, so path-MTU discovery works.
 *
 * The error's source is the original destination, not our own VTEP address: the kernel treats
 * a packet arriving on the TUN from one of its own addresses as martian and drops it, while the
 * destination is routed through the TUN, so reverse-path checks pass.
 * Like Linux we never answer an ICMP error, a non-first fragment or a multicast/broadcast source,
 * and we rate-limit (RFC 1812 §4.3.2.8; RFC 4443 §2.4) twice, as Linux does: all errors together
 * (icmp_msgs_per_sec), and per address the error goes to (icmp_ratelimit: one a second after a
 * burst of six), so one pod hammering unreachable subnets cannot take the whole budget. As in
 * Linux, errors that carry path-MTU discovery are exempt from the per-address limit.
 */
import { Ipv4Packet, IpProtocol, emitIpv4, IPV4_MIN_HEADER_LEN } from './wire/ipv4.js';
import { Ipv6Packet, emitIpv6, IPV6_HEADER_LEN } from './wire/ipv6.js';
import { Icmpv4Type, Icmpv4Code, emitIcmpv4 } from './wire/icmpv4.js';
import { Icmpv6Type, emitIcmpv6 } from './wire/icmpv6.js';
import { VXLAN_HEADER_LEN } from './wire/vxlan.js';
import { ETHERNET_HEADER_LEN } from './wire/ethernet.js';

const HEADROOM = VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN;
/** RFC 1812 §4.3.2.3: the error, with as much of the original as fits, is at most 576 bytes. */
const ICMPV4_MAX = 576;
/** RFC 4443 §2.4 (c): at most the minimum IPv6 MTU. */
const ICMPV6_MAX = 1280;
const ICMP_HEADER_LEN = 8;
const ICMP_TTL = 64;

export interface IcmpPerSourceLimit {
  /** One error per interval once the burst is spent (Linux icmp_ratelimit: 1000 ms). */
  intervalMs: number;
  /** Errors a source may get at once (Linux XRLIM_BURST_FACTOR: 6). */
  burst: number;
  /** Sources remembered at most; the oldest is forgotten first, so spoofed sources cannot grow the table. */
  maxSources: number;
}

export const ICMP_PER_SOURCE_DEFAULT: IcmpPerSourceLimit = { intervalMs: 1000, burst: 6, maxSources: 4096 };

/** Linux's inet_peer_xrlim_allow over a bounded table: a bucket of `burst` intervals per source. */
export class PerSourceRateLimit {
  private readonly buckets = new Map<number | string, { credit: number; last: number }>();

  constructor(private readonly limit: IcmpPerSourceLimit = ICMP_PER_SOURCE_DEFAULT) {}

  get sources(): number {
    return this.buckets.size;
  }

  /** Spends one error for `source` if it has credit. */
  allow(source: number | string, now: number): boolean {
    const full = this.limit.burst * this.limit.intervalMs;
    let b = this.buckets.get(source);
    if (b === undefined) {
      if (this.buckets.size >= this.limit.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
      b = { credit: full, last: now };
      this.buckets.set(source, b);
    } else {
      b.credit = Math.min(full, b.credit + Math.max(0, now - b.last));
      b.last = now;
    }
    if (b.credit < this.limit.intervalMs) return false;
    b.credit -= this.limit.intervalMs;
    return true;
  }
}

export class IcmpResponder {
  /** Returned instead of a packet when the rate limit said no. */
  static readonly RateLimited: Buffer = Buffer.alloc(0);
  private tokens: number;
  private last: number;
  private readonly perSource: PerSourceRateLimit | undefined;
  private readonly now: () => number;

  constructor(
    private readonly ratePerSecond: number,
    o: { perSource?: IcmpPerSourceLimit | false; now?: () => number } = {},
  ) {
    this.tokens = ratePerSecond;
    this.now = o.now ?? (() => Date.now());
    this.last = this.now();
    this.perSource = o.perSource === false ? undefined : new PerSourceRateLimit(o.perSource);
  }

  unreachable4(ip: Ipv4Packet): Buffer | undefined {
    return this.error4(ip, Icmpv4Type.DEST_UNREACHABLE, Icmpv4Code.NET_UNREACHABLE, undefined);
  }

  fragNeeded4(ip: Ipv4Packet, mtu: number): Buffer | undefined {
    return this.error4(ip, Icmpv4Type.DEST_UNREACHABLE, Icmpv4Code.FRAG_NEEDED, mtu);
  }

  unreachable6(ip: Ipv6Packet): Buffer | undefined {
    return this.error6(ip, Icmpv6Type.DEST_UNREACHABLE, 0, undefined);
  }

  packetTooBig6(ip: Ipv6Packet, mtu: number): Buffer | undefined {
    return this.error6(ip, Icmpv6Type.PACKET_TOO_BIG, 0, Math.max(1280, mtu));
  }

  /**
   * The global bucket is looked at first and spent last (as Linux since 6.11): a refused error costs
   * nothing, and new sources enter the table no faster than errors are allowed at all.
   * `source` undefined: exempt from the per-source limit (path-MTU discovery).
   */
  private allow(source: number | string | undefined): boolean {
    const now = this.now();
    this.tokens = Math.min(this.ratePerSecond, this.tokens + (Math.max(0, now - this.last) * this.ratePerSecond) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    if (source !== undefined && this.perSource && !this.perSource.allow(source, now)) return false;
    this.tokens -= 1;
    return true;
  }

  private error4(ip: Ipv4Packet, type: number, code: number, mtu: number | undefined): Buffer | undefined {
    if (ip.fragmentOffset !== 0) return undefined;
    const src = ip.src;
    if (src === 0 || src === 0xffffffff || src >>> 28 === 0xe) return undefined;
    if (ip.dst === 0xffffffff || ip.dst >>> 28 === 0xe) return undefined;
    if (ip.protocol === IpProtocol.ICMP && isIcmpv4Error(ip)) return undefined;
    if (!this.allow(mtu === undefined ? src : undefined)) return IcmpResponder.RateLimited;
    const invokingLength = Math.min(ip.totalLength, ICMPV4_MAX - IPV4_MIN_HEADER_LEN - ICMP_HEADER_LEN);
    const invoking = ip.buf.subarray(ip.offset, ip.offset + invokingLength);
    const icmpLength = ICMP_HEADER_LEN + invokingLength;
    const out = Buffer.alloc(HEADROOM + IPV4_MIN_HEADER_LEN + icmpLength);
    emitIpv4({ src: ip.dst, dst: src, protocol: IpProtocol.ICMP, ttl: ICMP_TTL, payloadLength: icmpLength }, out, HEADROOM);
    emitIcmpv4(
      mtu === undefined ? { kind: 'error', type, code, invoking } : { kind: 'error', type, code, nextHopMtu: mtu, invoking },
      out,
      HEADROOM + IPV4_MIN_HEADER_LEN,
    );
    return out;
  }

  private error6(ip: Ipv6Packet, type: number, code: number, mtu: number | undefined): Buffer | undefined {
    const src = ip.src;
    if (src[0] === 0xff || src.every((b) => b === 0)) return undefined;
    if (ip.dst[0] === 0xff) return undefined; // RFC 4443 §2.4 (e): not about multicast
    if (ip.nextHeader === IpProtocol.ICMPV6 && ip.payloadLength >= 1 && ip.buf[ip.payloadOffset]! < 128) return undefined;
    if (!this.allow(mtu === undefined ? src.toString('hex') : undefined)) return IcmpResponder.RateLimited;
    const total = IPV6_HEADER_LEN + ip.payloadLength;
    const invokingLength = Math.min(total, ICMPV6_MAX - IPV6_HEADER_LEN - ICMP_HEADER_LEN);
    const invoking = ip.buf.subarray(ip.offset, ip.offset + invokingLength);
    const icmpLength = ICMP_HEADER_LEN + invokingLength;
    const out = Buffer.alloc(HEADROOM + IPV6_HEADER_LEN + icmpLength);
    const from = Buffer.from(ip.dst);
    const to = Buffer.from(src);
    emitIpv6({ src: from, dst: to, nextHeader: IpProtocol.ICMPV6, hopLimit: ICMP_TTL, payloadLength: icmpLength }, out, HEADROOM);
    emitIcmpv6(
      mtu === undefined ? { kind: 'error', type, code, invoking } : { kind: 'error', type, code, mtu, invoking },
      out,
      HEADROOM + IPV6_HEADER_LEN,
      from,
      to,
    );
    return out;
  }
}

function isIcmpv4Error(ip: Ipv4Packet): boolean {
  if (ip.payloadLength < 1) return false;
  const type = ip.buf[ip.payloadOffset]!;
  return type !== Icmpv4Type.ECHO_REQUEST && type !== Icmpv4Type.ECHO_REPLY && type !== 13 && type !== 14;
}
