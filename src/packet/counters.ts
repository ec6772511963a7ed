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

/**
 * Where a packet ended, in the three words the trace, `vxtun status` and the counters share:
 * forwarded (tx: sent to a peer, rx: written into the TUN), answered (an Answer counter), dropped
 * (a DropReason counter).
 */
export const Outcome = {
  Forwarded: 'forwarded',
  Answered: 'answered',
  Dropped: 'dropped',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

const DROP_REASONS = new Set<string>(Object.values(DropReason));
const ANSWERS = new Set<string>(Object.values(Answer));

export function isDropReason(verdict: string): verdict is DropReason {
  return DROP_REASONS.has(verdict);
}

export function isAnswer(verdict: string): verdict is Answer {
  return ANSWERS.has(verdict);
}

/** The outcome a final verdict means ('sent' and 'forwarded' are forwarded); undefined for 'ok' (still on its way). */
export function outcomeOf(verdict: string): Outcome | undefined {
  if (verdict === 'sent' || verdict === 'forwarded') return Outcome.Forwarded;
  if (isAnswer(verdict)) return Outcome.Answered;
  if (isDropReason(verdict)) return Outcome.Dropped;
  return undefined;
}

/** A snapshot's totals per outcome (what `vxtun status` prints first). */
export function outcomeTotals(s: CounterSnapshot): { forwarded: { out: number; in: number }; answered: number; dropped: number } {
  const sum = (r: Record<string, number>): number => Object.values(r).reduce((x, y) => x + y, 0);
  return { forwarded: { out: s.tx.packets, in: s.rx.packets }, answered: sum(s.answered), dropped: sum(s.dropped) };
}

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
  private expressBlock: Float64Array | undefined;
  private expressFold: ((s: CounterSnapshot, block: Float64Array) => CounterSnapshot) | undefined;
  txPackets = 0;
  txBytes = 0;
  rxPackets = 0;
  rxBytes = 0;
  private readonly answers = new Map<string, number>(Object.values(Answer).map((k) => [k, 0]));
  private readonly drops = new Map<string, number>(Object.values(DropReason).map((k) => [k, 0]));
  private readonly fixups = new Map<string, number>(Object.values(Fixup).map((k) => [k, 0]));

  /** What the addon's express path counted for this engine, if it runs (see attachExpress). */
  get express(): Float64Array | undefined {
    return this.expressBlock;
  }

  /**
   * Counts what the express path counts in `block` as this engine's: snapshot() adds it through `fold`
   * (addExpressCounters, src/datapath/express.ts — the block's layout is the addon's, which packet/ does not load).
   */
  attachExpress(block: Float64Array, fold: (s: CounterSnapshot, block: Float64Array) => CounterSnapshot): void {
    this.expressBlock = block;
    this.expressFold = fold;
  }

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
    return this.expressBlock && this.expressFold ? this.expressFold(s, this.expressBlock) : s;
  }
}
