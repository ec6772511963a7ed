/**
 * flannel's udp backend, on the wire exactly as flanneld's proxy (backend/udp/proxy_amd64.c) speaks it:
 * the UDP payload is the raw inner IPv4 packet, no header; both ends listen on one port (8285);
 * each hop decrements the inner TTL with an incremental checksum patch (RFC 1624) and drops what
 * reaches 0; a destination no lease covers gets ICMP net-unreachable. The outer DF bit is Linux's
 * default for UDP sockets (IP_PMTUDISC_WANT), and the TUN MTU (underlay − 28) keeps every datagram
 * within the path MTU.
 *
 *  outbound  tun.read -> check IPv4 -> LPM(dst) -> peer | no-route (ICMP) -> TTL-1 -> bind.send per peer
 *  inbound   bind batch -> known peer? -> check IPv4 -> anti-spoofing (policy.ts) -> TTL-1 -> tun.write
 * Shares RouteTable, Counters and IcmpResponder with the VXLAN engine; nothing off the wire can throw.
 */
import type { Bind, Endpoint } from '../io/bind.js';
import type { TunDevice } from '../io/tun-device.js';
import { Ipv4Packet, decrementTtl } from '../packet/wire/ipv4.js';
import { WireError } from '../packet/wire/error.js';
import { DropReason, Answer } from '../packet/counters.js';
import type { Vtep } from '../packet/routes.js';
import { IcmpResponder } from '../packet/icmp-errors.js';
import { Pipeline, HEADROOM, type PipelineOptions } from './pipeline.js';
import { ANTI_SPOOFING_ON, localSubnetTable, spoofCheck4, unknownSender, type AntiSpoofing, type SenderParams } from '../packet/policy.js';
import type { Cidr } from '../packet/cidr.js';

/** IPv4 20 + UDP 8: what flannel0's MTU leaves for the underlay. */
export const FLANNEL_UDP_OVERHEAD = 28;
export const FLANNEL_UDP_PORT = 8285;

export type FlannelUdpOptions = Pick<PipelineOptions, 'tunMtu' | 'batchSize' | 'icmpRatePerSecond' | 'inboundScheduling'> & {
  /** This node's address on flannel0 (the subnet's .0) and its subnets: the inner destinations accepted. */
  vtepIp: number;
  localSubnets: readonly Cidr[];
  /** Which anti-spoofing checks run (policy.ts); all by default. */
  antiSpoofing?: AntiSpoofing;
};

export class FlannelUdpEngine extends Pipeline {
  private readonly senders: SenderParams;

  constructor(tun: TunDevice, bind: Bind, opts: FlannelUdpOptions) {
    // Packets sit at HEADROOM like in the VXLAN engine, so IcmpResponder's replies (built with that headroom) fit the same writes.
    super(tun, bind, opts);
    this.senders = { routes: this.routes, local: localSubnetTable(opts.localSubnets), vtepIp: opts.vtepIp, antiSpoofing: opts.antiSpoofing ?? ANTI_SPOOFING_ON };
  }

  /** Packets at HEADROOM in bufs[i]; sent from there (the headroom is not on the wire). */
  override handleOutbound(bufs: Buffer[], sizes: number[], count: number): void {
    const routes = this.routes;
    const c = this.counters;
    let groups: Map<Vtep, number[]> | undefined;
    let replies: Buffer[] | undefined;
    for (let i = 0; i < count; i++) {
      const buf = bufs[i]!;
      const size = sizes[i]!;
      // flanneld's udp backend carries IPv4 only.
      const ip = size > 0 && buf[HEADROOM]! >> 4 === 4 ? Ipv4Packet.check(buf, HEADROOM, size) : WireError.Truncated;
      if (ip instanceof WireError) {
        c.drop(DropReason.TunMalformed);
        continue;
      }
      const peer = routes.lookup4(ip.dst);
      if (peer === undefined) {
        const reply = this.icmp.unreachable4(ip);
        if (reply === undefined || reply === IcmpResponder.RateLimited) c.drop(reply === undefined ? DropReason.NoRoute : DropReason.IcmpRateLimited);
        else (replies ??= []).push(reply);
        continue;
      }
      if (decrementTtl(ip) === 0) {
        c.drop(DropReason.TtlExpired);
        continue;
      }
      groups ??= new Map();
      const g = groups.get(peer);
      if (g) g.push(i);
      else groups.set(peer, [i]);
    }
    if (groups) {
      for (const [peer, idx] of groups) this.sendToPeer(peer, idx, bufs, sizes, HEADROOM, 0);
    }
    if (replies) {
      // Counted as answered only once the TUN took them (a refused one is tun-write-failed).
      this.writeTun(replies, replies.map((r) => r.length - HEADROOM));
      for (let k = 0; k < replies.length; k++) if (this.tunRefused[k] === 0) c.answer(Answer.IcmpUnreachable);
    }
  }

  /** Each datagram is a whole inner IPv4 packet at offset 0. */
  handleInbound(bufs: Buffer[], sizes: number[], srcs: Endpoint[], count: number): void {
    const c = this.counters;
    const outBufs: Buffer[] = [];
    const outSizes: number[] = [];
    const senders = this.senders;
    senders.routes = this.routes;
    for (let i = 0; i < count; i++) {
      const buf = bufs[i]!;
      const size = sizes[i]!;
      const from = srcs[i]!.address;
      if (unknownSender(from, senders)) {
        c.drop(DropReason.UnknownPeer);
        continue;
      }
      const ip = size > 0 && buf[0]! >> 4 === 4 ? Ipv4Packet.check(buf, 0, size) : WireError.Truncated;
      if (ip instanceof WireError) {
        c.drop(DropReason.MalformedInnerIpv4);
        continue;
      }
      const spoofed = spoofCheck4(ip.src, ip.dst, from, senders);
      if (spoofed !== undefined) {
        c.drop(spoofed);
        continue;
      }
      if (decrementTtl(ip) === 0) {
        c.drop(DropReason.TtlExpired);
        continue;
      }
      outBufs.push(buf);
      outSizes.push(ip.totalLength);
    }
    if (outBufs.length > 0) {
      const written = this.writeTun(outBufs, outSizes, 0);
      c.rxPackets += written;
      for (let k = 0; k < outBufs.length; k++) if (this.tunRefused[k] === 0) c.rxBytes += outSizes[k]!;
    }
  }
}
