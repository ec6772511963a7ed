/**
 * Every packet ends in exactly one place — forwarded, answered, or dropped under a named
 * reason — and each place has a counter. The names are the contract `vxtun status` and the
 * tests read; add a reason here, never invent one at a call site.
 */
export const DropReason = {
  // outbound: TUN -> underlay
  TunMalformed: 'tun-malformed',
  NoRoute: 'no-route',
  TooBig: 'too-big',
  IcmpRateLimited: 'icmp-rate-limited',
  SendFailed: 'send-failed',
  /** flannel udp backend: the inner TTL would reach 0 (flanneld drops these too). */
  TtlExpired: 'ttl-expired',
  // inbound: underlay -> TUN. First the sender (anti-spoofing, before any parsing) ...
  /** A datagram from an underlay address that is no peer of ours (no route names it). */
  UnknownPeer: 'unknown-peer',
  // ... then the order of Linux's vxlan_rcv checks
  ShortDatagram: 'short-datagram',
  BadFlags: 'bad-flags',
  ReservedBitsSet: 'reserved-bits-set',
  WrongVni: 'wrong-vni',
  TruncatedInner: 'truncated-inner',
  WrongDstMac: 'wrong-dst-mac',
  UnsupportedEtherType: 'unsupported-ethertype',
  MalformedInnerIpv4: 'malformed-inner-ipv4',
  MalformedInnerIpv6: 'malformed-inner-ipv6',
  /** Anti-spoofing: the inner source lies outside every subnet routed to the sending peer. */
  SpoofedSource: 'spoofed-source',
  /** Anti-spoofing: the inner destination is not this node's subnet (a node never relays between peers). */
  NotForThisNode: 'not-for-this-node',
  MalformedArp: 'malformed-arp',
  ArpNotForUs: 'arp-not-for-us',
  ArpIgnored: 'arp-ignored',
  TunWriteFailed: 'tun-write-failed',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export const Answer = {
  ArpReply: 'arp-reply',
  IcmpUnreachable: 'icmp-unreachable',
  IcmpTooBig: 'icmp-too-big',
} as const;
export type Answer = (typeof Answer)[keyof typeof Answer];

export const Fixup = {
  ChecksumCompleted: 'checksum-completed',
  GsoSegmented: 'gso-segmented',
  /** A kernel peer's TCP super-packet written whole, with a GSO header the TUN's kernel side cuts. */
  GsoPassedWhole: 'gso-passed-whole',
} as const;
export type Fixup = (typeof Fixup)[keyof typeof Fixup];

export interface CounterSnapshot {
  tx: { packets: number; bytes: number };
  rx: { packets: number; bytes: number };
  answered: Record<string, number>;
  dropped: Record<string, number>;
  fixed: Record<string, number>;
}

export class Counters {
  /** What the addon's express path counted for this engine (src/datapath/express.ts), folded into snapshot(). */
  express: Float64Array | undefined;
  txPackets = 0;
  txBytes = 0;
  rxPackets = 0;
  rxBytes = 0;
  private readonly answers = new Map<string, number>(Object.values(Answer).map((k) => [k, 0]));
  private readonly drops = new Map<string, number>(Object.values(DropReason).map((k) => [k, 0]));
  private readonly fixups = new Map<string, number>(Object.values(Fixup).map((k) => [k, 0]));

  drop(reason: DropReason, n = 1): void {
    this.drops.set(reason, this.drops.get(reason)! + n);
  }
  answer(kind: Answer): void {
    this.answers.set(kind, this.answers.get(kind)! + 1);
  }
  fix(kind: Fixup): void {
    this.fixups.set(kind, this.fixups.get(kind)! + 1);
  }
  dropped(reason: DropReason): number {
    return this.drops.get(reason)!;
  }
  answered(kind: Answer): number {
    return this.answers.get(kind)!;
  }
  fixed(kind: Fixup): number {
    return this.fixups.get(kind)!;
  }
  totalDropped(): number {
    let n = 0;
    for (const v of this.drops.values()) n += v;
    return n;
  }

  snapshot(): CounterSnapshot {
    const s: CounterSnapshot = {
      tx: { packets: this.txPackets, bytes: this.txBytes },
      rx: { packets: this.rxPackets, bytes: this.rxBytes },
      answered: Object.fromEntries(this.answers),
      dropped: Object.fromEntries(this.drops),
      fixed: Object.fromEntries(this.fixups),
    };
    return this.express ? addExpressCounters(s, this.express) : s;
  }
}

/** Index of each counter in an express counter block (the addon's express path, src/datapath/express.ts; mirrors ExpressCounter in native/express.cc). */
export const ExpressCounter = {
  TxPackets: 0,
  TxBytes: 1,
  RxPackets: 2,
  RxBytes: 3,
  /** A send the kernel refused: the engine's send-failed drop. */
  SendFailed: 4,
  /** A TUN write the kernel refused: the engine's tun-write-failed drop. */
  TunWriteFailed: 5,
  /** TUN wake-ups handed to the JS pipeline (a second packet, or one that is not the express path's). */
  OutHandedOver: 6,
  /** UDP batches handed to the JS pipeline. */
  InHandedOver: 7,
  /** Wake-ups the express thread served itself, the event loop left asleep (native/poll.cc). */
  ThreadPasses: 8,
  /** Times the express thread handed both descriptors to the event loop (traffic, or anything it does not take). */
  LoopHandovers: 9,
  /** Times the event loop handed them back (its last pass on each side needed no JS). */
  ThreadResumes: 10,
} as const;
export const EXPRESS_COUNTER_COUNT = 11;

/** Adds an express counter block to a snapshot (in place): packets it forwarded, and its drops. */
export function addExpressCounters(s: CounterSnapshot, block: Float64Array): CounterSnapshot {
  s.tx.packets += block[ExpressCounter.TxPackets]!;
  s.tx.bytes += block[ExpressCounter.TxBytes]!;
  s.rx.packets += block[ExpressCounter.RxPackets]!;
  s.rx.bytes += block[ExpressCounter.RxBytes]!;
  s.dropped[DropReason.SendFailed] = (s.dropped[DropReason.SendFailed] ?? 0) + block[ExpressCounter.SendFailed]!;
  s.dropped[DropReason.TunWriteFailed] = (s.dropped[DropReason.TunWriteFailed] ?? 0) + block[ExpressCounter.TunWriteFailed]!;
  return s;
}
