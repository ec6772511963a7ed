/**
 * The per-packet policy: what happens to one packet, as pure functions over its bytes that return a
 * verdict. The engine (src/datapath/engine.ts) acts on these verdicts — sends, answers, writes, counts —
 * and the addon's express path (native/express_rules.cc) is their twin, held to them by
 * test/unit/express-twin.test.ts: it forwards only what these functions forward unchanged, and hands
 * everything else to the engine.
 *
 *  outbound  classifyOutbound(IP packet from the TUN)
 *            -> forward(peer) | answer(ICMP unreachable / frag-needed / packet-too-big) | drop(reason)
 *  inbound   checkInbound(VXLAN datagram, sender's underlay address): first the sender (a known peer?),
 *            then in the order of Linux's vxlan_rcv: length, flags, reserved bits, VNI, inner Ethernet,
 *            ARP for our VTEP address, destination MAC, inner IP; then anti-spoofing (inner source in
 *            the sender's subnets, inner destination in ours)
 *            -> forward(range, fix-up: none | checksum completion | oversize) | arp(request) | drop(reason)
 *
 * Verdicts and drop reasons travel to and from C++ as numbers: Verdict's values, and a reason's index in
 * DROP_REASON_CODES. The addon exports its own lists (expressVerdicts, expressReasons) and the twin test
 * checks them against these, so a code added or moved on one side only fails there.
 * Results are written into a caller-owned object (one per engine), so a packet allocates nothing.
 */
import { DropReason, Answer } from './counters.js';
import { RouteTable, type Vtep } from './routes.js';
import type { Cidr } from './cidr.js';
import { VxlanHeader, VXLAN_HEADER_LEN } from './wire/vxlan.js';
import { EthernetFrame, EtherType, ETHERNET_HEADER_LEN, type Mac } from './wire/ethernet.js';
import { Ipv4Packet } from './wire/ipv4.js';
import { Ipv6Packet } from './wire/ipv6.js';
import { ArpPacket, ArpOp } from './wire/arp.js';
import { WireError } from './wire/error.js';
import { findPartialL4Checksum, type ChecksumFix } from './wire/l4checksum.js';
import type { OnesSumFn } from './wire/checksum.js';

/** What happens to a packet. HandOver is the native twin's only: "not decided here, the engine's". */
export const Verdict = { Forward: 0, Drop: 1, Answer: 2, Arp: 3, HandOver: 4 } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];
/** Verdict names by code, as the addon exports them (expressVerdicts). */
export const VERDICT_NAMES: readonly string[] = ['forward', 'drop', 'answer', 'arp', 'hand-over'];

/** Drop reasons by code (a reason's code is its index), as the addon's express rules number them. */
export const DROP_REASON_CODES: readonly DropReason[] = Object.values(DropReason);

/** Offset of the inner IP packet in a VXLAN datagram (VXLAN header, inner Ethernet header). */
export const INNER_IP_OFFSET = VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN;

export interface OutboundParams {
  routes: RouteTable<Vtep>;
  /** Largest inner packet the underlay carries without fragmenting the outer datagram. */
  maxInnerSize: number;
}

/** classifyOutbound's result; only the fields of the returned verdict are meaningful. */
export class OutboundVerdict {
  verdict: Verdict = Verdict.Drop;
  /** Forward: the peer VTEP and the inner EtherType. */
  peer: Vtep | undefined;
  etherType = 0;
  /** Drop: why. Answer: what is dropped instead when no answer may go (rate limit, no DF). */
  reason: DropReason = DropReason.TunMalformed;
  /** Answer: which ICMP error, built from `ipv4` or `ipv6` (the one of the packet's family). */
  answer: Answer = Answer.IcmpUnreachable;
  family: 4 | 6 = 4;
  readonly ipv4 = Ipv4Packet.scratch();
  readonly ipv6 = Ipv6Packet.scratch();

  private drop(reason: DropReason): Verdict {
    this.reason = reason;
    return (this.verdict = Verdict.Drop);
  }
  private answerWith(answer: Answer, reason: DropReason): Verdict {
    this.answer = answer;
    this.reason = reason;
    return (this.verdict = Verdict.Answer);
  }
  private forward(peer: Vtep, etherType: number): Verdict {
    this.peer = peer;
    this.etherType = etherType;
    return (this.verdict = Verdict.Forward);
  }

  /** The rules; see classifyOutbound. */
  classify(buf: Buffer, offset: number, size: number, p: OutboundParams): Verdict {
    const version = size > 0 ? buf[offset]! >> 4 : 0;
    let peer: Vtep | undefined;
    /** Whether a packet too big is answered: IPv4 only with DF (else dropped), IPv6 always (it never fragments on the way). */
    let answerTooBig: boolean;
    if (version === 4) {
      const ip = Ipv4Packet.check(buf, offset, size, this.ipv4);
      if (ip instanceof WireError) return this.drop(DropReason.TunMalformed);
      this.family = 4;
      peer = p.routes.lookup4(ip.dst);
      answerTooBig = ip.dontFragment;
    } else if (version === 6) {
      const ip = Ipv6Packet.check(buf, offset, size, this.ipv6);
      if (ip instanceof WireError) return this.drop(DropReason.TunMalformed);
      this.family = 6;
      peer = p.routes.lookup6(ip.dst);
      answerTooBig = true;
    } else {
      return this.drop(DropReason.TunMalformed);
    }
    if (peer === undefined) return this.answerWith(Answer.IcmpUnreachable, DropReason.NoRoute);
    // VTEPs must not fragment VXLAN (RFC 7348 §4.3); the sender learns the path MTU instead.
    if (size > p.maxInnerSize) return answerTooBig ? this.answerWith(Answer.IcmpTooBig, DropReason.TooBig) : this.drop(DropReason.TooBig);
    return this.forward(peer, this.family === 4 ? EtherType.IPV4 : EtherType.IPV6);
  }
}

/** The IP packet buf[offset, +size) read from the TUN: to which peer, or what instead. */
export function classifyOutbound(buf: Buffer, offset: number, size: number, params: OutboundParams, out: OutboundVerdict): Verdict {
  return out.classify(buf, offset, size, params);
}

/**
 * Anti-spoofing (all on by default; each can be turned off for networks that need it, see
 * docs/operations.md). A peer is an underlay address some route names; its subnets are the prefixes
 * routed to it, so the question "is this inner source the sender's" is a route lookup whose target
 * must have the sender's address — the same lookup the express twin makes in its trie.
 */
export interface AntiSpoofing {
  /** Drop datagrams from an underlay address no route names, before anything else is read. */
  unknownPeer: boolean;
  /** Drop inner packets whose source is not routed to the sending peer. */
  spoofedSource: boolean;
  /** Drop inner packets whose destination is not in this node's subnets (or its VTEP address). */
  notForThisNode: boolean;
}
export const ANTI_SPOOFING_ON: AntiSpoofing = Object.freeze({ unknownPeer: true, spoofedSource: true, notForThisNode: true });

/** This node's subnets as a lookup table (inner destinations we accept). */
export function localSubnetTable(subnets: readonly Cidr[]): RouteTable<true> {
  return new RouteTable(subnets.map((prefix) => ({ prefix, target: true as const })));
}

/** The underlay addresses of a table's peers, built once per table (tables are immutable). */
const peerAddressCache = new WeakMap<RouteTable<Vtep>, ReadonlySet<string>>();
export function peerAddresses(routes: RouteTable<Vtep>): ReadonlySet<string> {
  let set = peerAddressCache.get(routes);
  if (set === undefined) peerAddressCache.set(routes, (set = new Set(routes.routes.map((r) => r.target.endpoint.address))));
  return set;
}

/** Who may send what: the part of InboundParams the anti-spoofing rules read (flannel-udp's too). */
export interface SenderParams {
  /** The peers: the senders we accept, and which inner sources each may use. */
  routes: RouteTable<Vtep>;
  /** This node's subnets: the inner destinations we accept (with vtepIp). */
  local: RouteTable<true>;
  /** Our VTEP address as a uint32 (also accepted as an inner destination). */
  vtepIp: number;
  antiSpoofing: AntiSpoofing;
}

/** unknown-peer: whether a datagram from the underlay address `from` is dropped before anything is read. */
export function unknownSender(from: string, p: SenderParams): boolean {
  return p.antiSpoofing.unknownPeer && !peerAddresses(p.routes).has(from);
}

/** spoofed-source / not-for-this-node for an inner IPv4 packet (src, dst) the peer at `from` sent, or undefined: it may pass. */
export function spoofCheck4(src: number, dst: number, from: string, p: SenderParams): DropReason | undefined {
  if (p.antiSpoofing.spoofedSource && p.routes.lookup4(src)?.endpoint.address !== from) return DropReason.SpoofedSource;
  if (p.antiSpoofing.notForThisNode && dst !== p.vtepIp && p.local.lookup4(dst) === undefined) return DropReason.NotForThisNode;
  return undefined;
}

export interface InboundParams extends SenderParams {
  vni: number;
  /** Our VTEP MAC: the only unicast inner destination we accept. */
  vtepMac: Mac;
  /** The TUN's MTU: a longer inner packet is a peer's GSO super-packet. */
  tunMtu: number;
}

/** What a forwarded inbound packet needs before the TUN may take it. */
export const InboundFix = {
  None: 0,
  /** A kernel peer's CHECKSUM_PARTIAL: store `checksum.value` at `checksum.at`. */
  Checksum: 1,
  /** Longer than the TUN's MTU: passed whole with a GSO header, or segmented (the engine's choice, gso.ts). */
  Oversize: 2,
} as const;
export type InboundFix = (typeof InboundFix)[keyof typeof InboundFix];

/** checkInbound's result; only the fields of the returned verdict are meaningful. */
export class InboundVerdict {
  verdict: Verdict = Verdict.Drop;
  reason: DropReason = DropReason.ShortDatagram;
  /** Forward: the inner IP packet is datagram[offset, offset + length) (Ethernet padding left out). */
  offset = INNER_IP_OFFSET;
  length = 0;
  fix: InboundFix = InboundFix.None;
  readonly checksum: ChecksumFix = { at: 0, value: 0 };
  /** Arp: the request to answer (its sender is the requester). */
  arp: ArpPacket | undefined;
  private readonly vxlan = VxlanHeader.scratch();
  private readonly ethernet = EthernetFrame.scratch();
  private readonly ipv4 = Ipv4Packet.scratch();
  private readonly ipv6 = Ipv6Packet.scratch();

  private drop(reason: DropReason): Verdict {
    this.reason = reason;
    return (this.verdict = Verdict.Drop);
  }

  /** The rules; see checkInbound. */
  check(buf: Buffer, size: number, from: string, p: InboundParams, sum16: OnesSumFn): Verdict {
    if (unknownSender(from, p)) return this.drop(DropReason.UnknownPeer);
    const vx = VxlanHeader.check(buf, 0, size, this.vxlan);
    if (vx instanceof WireError) return this.drop(DropReason.ShortDatagram);
    const bad = vx.validate();
    if (bad !== undefined) return this.drop(bad === WireError.BadFlags ? DropReason.BadFlags : DropReason.ReservedBitsSet);
    if (vx.vni !== p.vni) return this.drop(DropReason.WrongVni);
    const eth = EthernetFrame.check(buf, VXLAN_HEADER_LEN, size - VXLAN_HEADER_LEN, this.ethernet);
    if (eth instanceof WireError) return this.drop(DropReason.TruncatedInner);
    const etherType = eth.etherType;
    if (etherType === EtherType.ARP) return this.checkArp(buf, size, eth, p);
    if (!eth.dstIs(p.vtepMac)) return this.drop(DropReason.WrongDstMac);
    let innerLength: number;
    if (etherType === EtherType.IPV4) {
      const ip = Ipv4Packet.check(buf, INNER_IP_OFFSET, size - INNER_IP_OFFSET, this.ipv4);
      if (ip instanceof WireError) return this.drop(DropReason.MalformedInnerIpv4);
      const spoofed = spoofCheck4(ip.src, ip.dst, from, p);
      if (spoofed !== undefined) return this.drop(spoofed);
      innerLength = ip.totalLength;
    } else if (etherType === EtherType.IPV6) {
      const ip = Ipv6Packet.check(buf, INNER_IP_OFFSET, size - INNER_IP_OFFSET, this.ipv6);
      if (ip instanceof WireError) return this.drop(DropReason.MalformedInnerIpv6);
      const guard = p.antiSpoofing;
      if (guard.spoofedSource && p.routes.lookup6(ip.src)?.endpoint.address !== from) return this.drop(DropReason.SpoofedSource);
      if (guard.notForThisNode && p.local.lookup6(ip.dst) === undefined) return this.drop(DropReason.NotForThisNode);
      innerLength = 40 + ip.payloadLength;
    } else {
      return this.drop(DropReason.UnsupportedEtherType);
    }
    this.offset = INNER_IP_OFFSET;
    this.length = innerLength;
    // An oversize packet's checksum is judged after the engine's GSO choice (a whole pass leaves it partial).
    if (innerLength > p.tunMtu) this.fix = InboundFix.Oversize;
    // A kernel peer on a virtual link may leave TCP/UDP checksums for hardware that is not
    // there (CHECKSUM_PARTIAL); the receiving stack would drop our TUN write.
    else this.fix = findPartialL4Checksum(buf, INNER_IP_OFFSET, innerLength, sum16, this.checksum) ? InboundFix.Checksum : InboundFix.None;
    return (this.verdict = Verdict.Forward);
  }

  /** ARP over VXLAN: kernel peers that lost their neighbour entry ask for our VTEP address. */
  private checkArp(buf: Buffer, size: number, eth: EthernetFrame, p: InboundParams): Verdict {
    const arp = ArpPacket.check(buf, INNER_IP_OFFSET, size - INNER_IP_OFFSET);
    if (arp instanceof WireError) return this.drop(DropReason.MalformedArp);
    if (!eth.dstIsBroadcast() && !eth.dstIs(p.vtepMac)) return this.drop(DropReason.WrongDstMac);
    if (arp.operation !== ArpOp.REQUEST) return this.drop(DropReason.ArpIgnored);
    if (arp.targetIp !== p.vtepIp) return this.drop(DropReason.ArpNotForUs);
    this.arp = arp;
    return (this.verdict = Verdict.Arp);
  }
}

/**
 * The VXLAN datagram buf[0, size) from the underlay address `from`: which inner bytes go to the TUN
 * and what they need first, or what instead.
 */
export function checkInbound(buf: Buffer, size: number, from: string, params: InboundParams, sum16: OnesSumFn, out: InboundVerdict): Verdict {
  return out.check(buf, size, from, params, sum16);
}
