/**
 * The dataplane pipeline. One event-loop turn handles one batch; every packet ends in exactly
 * one place — forwarded, answered, or dropped under a named, counted reason — and nothing that
 * arrives from the TUN or the underlay can throw out of a stage.
 *
 *  outbound  tun.read(batch, HEADROOM)
 *            -> classify: LPM(inner dst) -> peer VTEP | no-route -> ICMP unreachable
 *                         | larger than the tunnel carries -> ICMP frag-needed / packet-too-big
 *            -> encap: VXLAN(I, VNI) + inner Ethernet(dst = peer VTEP MAC, src = ours) into the headroom
 *            -> bind.send: one call per peer per batch
 *  inbound   bind batch -> decap: length, flags, reserved bits, VNI, inner Ethernet length,
 *                                 ARP for our VTEP address? -> answer over VXLAN
 *                                 dst MAC, inner IP checks, CHECKSUM_PARTIAL completed (counted)
 *            -> tun.write(batch)
 * What happens to each packet is decided by src/packet/policy.ts (classifyOutbound, checkInbound);
 * this file acts on those verdicts: groups, encaps, sends, answers, fixes up, writes, counts, observes.
 */
import type { Bind, Endpoint } from '../io/bind.js';
import type { TunDevice } from '../io/tun-device.js';
import { emitEthernet, EtherType, ETHERNET_HEADER_LEN, type EthernetRepr, type Mac } from '../packet/wire/ethernet.js';
import { VXLAN_HEADER_LEN, emitVxlan } from '../packet/wire/vxlan.js';
import { NO_BYTES } from '../packet/wire/view.js';
import { ArpOp, ARP_LEN, emitArp, type ArpPacket } from '../packet/wire/arp.js';
import { completePartialL4Checksum } from '../packet/wire/l4checksum.js';
import { classifyOutbound, checkInbound, InboundFix, InboundVerdict, OutboundVerdict, Verdict, ANTI_SPOOFING_ON, localSubnetTable, type AntiSpoofing, type InboundParams, type OutboundParams } from '../packet/policy.js';
import type { Cidr } from '../packet/cidr.js';
import { segmentTcp, tcpSegmentSize } from '../packet/gso.js';
import { DropReason, Answer, Fixup } from '../packet/counters.js';
import type { RouteTable, Vtep } from '../packet/routes.js';
import { IcmpResponder, type IcmpPerSourceLimit } from '../packet/icmp-errors.js';
import { Pipeline, HEADROOM, type BatchHooks } from './pipeline.js';
import type { InboundScheduling } from './inbound-scheduling.js';
import { onesSum, type OnesSumFn } from '../packet/wire/checksum.js';
import { BatchEncap, writeEncapTemplate, type EncapBatchFn } from '../packet/encap.js';
import { addExpressCounters, bulkInWanted, bulkOutWanted, compileExpressRoutes, compileExpressGuard, EXPRESS_COUNTER_COUNT, ExpressCounter, expressThreadWanted } from './express.js';
import { ExpressTap } from './express-tap.js';
import type { ExpressHandle, NativeAddon } from '../io/addon.js';
import { expressBindOf, expressTunOf } from '../io/express-sides.js';
import type { Observer } from './observe.js';
import { monotonicMs } from '../util/clock.js';

export { HEADROOM };
/** Offset of the inner IP packet inside a VXLAN payload. */
const INNER_IP = HEADROOM;

export interface EngineOptions {
  vni: number;
  /** Run around every batch (see Pipeline); worker threads publish their counters in `after`. */
  batchHooks?: BatchHooks;
  /** This thread's scheduling policy follows the inbound load (see Pipeline, inbound-scheduling.ts). */
  inboundScheduling?: InboundScheduling;
  /** Our VTEP MAC: the inner source on send, the only unicast inner destination we accept. */
  vtepMac: Mac;
  /** Our VTEP address (the subnet's .0) as a uint32: the ARP target we answer for. */
  vtepIp: number;
  /** This node's subnets: the inner destinations it accepts from peers (anti-spoofing, policy.ts). */
  localSubnets: readonly Cidr[];
  /** Which anti-spoofing checks run (policy.ts); all by default. */
  antiSpoofing?: AntiSpoofing;
  /** UDP port peers listen on when a reply must go to a host we have no route entry for. */
  port: number;
  /** Largest inner packet the underlay carries without fragmenting the outer datagram. */
  maxInnerSize: number;
  /** Largest packet the TUN device hands us (its MTU); sizes the read buffers. */
  tunMtu: number;
  batchSize?: number;
  /** ICMP errors per second we generate at most (Linux rate-limits too). */
  icmpRatePerSecond?: number;
  /** The per-source ICMP error limit, or false for none (tests that compare two engines). */
  icmpPerSource?: IcmpPerSourceLimit | false;
  /** Ones'-complement sum for per-packet checksum work (the addon's on the native path); TS reference by default. */
  onesSum?: OnesSumFn;
  /** Batch encap (the addon's on the native path): one call writes every header of a batch; per-packet TS emit by default. */
  encapBatch?: EncapBatchFn;
  /**
   * The addon's express path for lone packets (src/datapath/express.ts), opened at start when the TUN
   * device and the bind both take part. `counters`: where it counts (a worker's is shared with the
   * main thread); `gate`: a flag someone else sets while a trace watches (a worker's is the pool's),
   * else the engine keeps its own, set by setObserver; while it is set the addon records what it
   * forwards and the engine's tap reports it (express-tap.ts). `thread`: wait on a thread of the
   * addon's own while idle (default: expressThreadWanted()).
   */
  express?: { native: Pick<NativeAddon, 'expressOpen' | 'expressRoutes' | 'expressStop' | 'expressRecords'>; counters?: Float64Array; gate?: Int32Array; thread?: boolean };
}

/** An ICMP error on its way back into the TUN, and what it answers. */
interface Reply {
  buf: Buffer;
  answer: Answer;
  /** Why the packet it answers was not forwarded, and that packet (observed once the reply's fate is known). */
  cause: DropReason;
  packet: Buffer;
  size: number;
}

/** One peer's packets in the batch being handled: their indices, idx[0..count). */
interface PeerGroup {
  readonly peer: Vtep;
  readonly idx: number[];
  count: number;
}

export class Engine extends Pipeline {
  private readonly sum16: OnesSumFn;

  constructor(
    tun: TunDevice,
    bind: Bind,
    private readonly opts: EngineOptions,
  ) {
    super(tun, bind, opts);
    this.sum16 = opts.onesSum ?? onesSum;
    this.expressGate = opts.express?.gate ?? new Int32Array(1);
    this.ethernetRepr = { dst: opts.vtepMac, src: opts.vtepMac, etherType: 0 };
    this.outParams = { routes: this.routes, maxInnerSize: opts.maxInnerSize };
    this.inParams = { ...opts, routes: this.routes, local: localSubnetTable(opts.localSubnets), antiSpoofing: opts.antiSpoofing ?? ANTI_SPOOFING_ON };
  }

  /** gate[0] != 0: a trace watches, the express path records; set here unless the caller owns it (a worker's pool). */
  private readonly expressGate: Int32Array;
  /** Reports what the express path forwarded while watched (express-tap.ts). */
  private expressTap: ExpressTap | undefined;

  /** The addon's express path for lone packets, opened at start when asked for and both devices take part. */
  private expressHandle: ExpressHandle | undefined;

  /** Why the express path was asked for but does not run (expressOpen refused), if so. */
  expressError: string | undefined;

  /** Whether the express path, when it runs, waits on its own thread while idle (EngineOptions.express.thread). */
  get expressThread(): boolean {
    return this.opts.express?.thread ?? expressThreadWanted();
  }

  /** Whether the addon's express path runs for this engine (see EngineOptions.express). */
  get expressActive(): boolean {
    return this.expressHandle !== undefined && !this.stopped;
  }

  override start(): void {
    const x = this.opts.express;
    if (x !== undefined && this.expressHandle === undefined && !this.running) {
      const tunX = expressTunOf(this.tun);
      const bindX = expressBindOf(this.bind);
      const tunSide = tunX?.expressSide();
      const udpSide = bindX?.expressSide();
      if (tunSide !== undefined && udpSide !== undefined) {
        const counters = x.counters ?? new Float64Array(EXPRESS_COUNTER_COUNT);
        try {
          this.expressHandle = x.native.expressOpen({
            ...tunSide,
            ...udpSide,
            vni: this.opts.vni,
            vtepMac: Uint8Array.from(this.opts.vtepMac),
            maxInnerSize: this.opts.maxInnerSize,
            readRoom: this.readRoom,
            tunMtu: this.opts.tunMtu,
            counters,
            gate: this.expressGate,
            thread: this.expressThread,
            bulkIn: bulkInWanted(),
            bulkOut: bulkOutWanted(),
            ...(this.inboundScheduling !== undefined ? { inScheduling: this.inboundScheduling.shared } : {}),
          });
          this.inboundScheduling?.watchNative(() => counters[ExpressCounter.InBusyBatches]!);
          this.compileExpress();
          tunX!.useExpress(this.expressHandle);
          bindX!.useExpress(this.expressHandle);
          this.counters.attachExpress(counters, addExpressCounters);
          const handle = this.expressHandle;
          const hooks = this.opts.batchHooks;
          this.expressTap = new ExpressTap(
            () => x.native.expressRecords(handle),
            { routes: () => this.routes, sentFrom: (buf, offset, length) => this.sentFrom(buf, offset, length), local: () => this.bind.local },
            // A timer's drain is a batch of its own (a worker posts its observations after one).
            (drain) => {
              hooks?.before();
              drain();
              hooks?.after();
            },
          );
          this.expressTap.watch(this.observer);
        } catch (e) {
          // Parameters outside what the addon takes (e.g. an MTU past 65535): everything takes the
          // pipeline, as with express off; expressActive says so, expressError why (logged by up).
          this.expressHandle = undefined;
          this.expressError = (e as Error).message;
        }
      }
    }
    super.start();
  }

  override stop(): void {
    super.stop();
    this.expressTap?.watch(undefined);
    if (this.expressHandle !== undefined) this.opts.express!.native.expressStop(this.expressHandle);
  }

  override setRoutes(table: RouteTable): void {
    super.setRoutes(table);
    if (this.expressHandle !== undefined) this.compileExpress();
  }

  override setObserver(observer: Observer | undefined): void {
    super.setObserver(observer);
    // Before the next wake-up the addon sees it: from then on it records every packet it forwards.
    if (this.opts.express?.gate === undefined) this.expressGate[0] = observer !== undefined ? 1 : 0;
    this.expressTap?.watch(observer);
  }

  private compileExpress(): void {
    const { trie, peers } = compileExpressRoutes(this.routes, this.opts.vtepMac);
    const guard = compileExpressGuard(this.inParams.antiSpoofing, this.opts.vtepIp, this.opts.localSubnets);
    this.opts.express!.native.expressRoutes(this.expressHandle!, trie, peers, guard);
  }

  /**
   * Per peer: the indices of its packets in the batch, idx[0..count). Per-batch arrays here keep
   * their length and carry a count: `length = 0` drops V8's backing store, and refilling it
   * reallocated ~1 KiB per 64-packet batch (most of what the data path left for the GC).
   */
  private readonly groups = new Map<Vtep, PeerGroup>();
  /** The table `groups` was keyed by: a new one may have dropped peers, whose groups then go. */
  private groupsTable: RouteTable | undefined;
  /**
   * The groups with packets in this batch, [0..batchGroupCount), in order of first packet: the
   * batch's loops (and the next batch's reset) visit these, not every peer the node ever sent to.
   */
  private readonly batchGroups: PeerGroup[] = [];
  private batchGroupCount = 0;

  /** The TS path's per-packet Ethernet header, filled in place (dst and type change per packet). */
  private readonly ethernetRepr: EthernetRepr;

  /** The policy's verdicts, one object per direction refilled for every packet (see policy.ts). */
  private readonly outVerdict = new OutboundVerdict();
  private readonly inVerdict = new InboundVerdict();
  /** classifyOutbound's parameters: each batch classifies against the table it started with. */
  private readonly outParams: OutboundParams;
  /** checkInbound's parameters, likewise. */
  private readonly inParams: InboundParams;

  /** encapBatch's per-batch state; undefined on the TS path. */
  private batchEncap: BatchEncap | undefined;

  /** Outbound stage for one batch read from the TUN; packets sit at HEADROOM in bufs[i]. */
  override handleOutbound(bufs: Buffer[], sizes: number[], count: number): void {
    const routes = this.routes;
    this.outParams.routes = routes;
    const c = this.counters;
    // Packet indices per peer, reused from batch to batch (emptied here; see setRoutes).
    // (Not cleared in setRoutes: a swap may come while a batch is being sent.)
    const groups = this.groups;
    const batchGroups = this.batchGroups;
    for (let p = 0; p < this.batchGroupCount; p++) batchGroups[p]!.count = 0;
    this.batchGroupCount = 0;
    let groupCount = 0;
    if (this.groupsTable !== routes) {
      groups.clear();
      this.groupsTable = routes;
    }
    let forwarded = 0;
    let replies: Reply[] | undefined;
    const obs = this.observer;
    // What the express path forwarded before this batch is reported before it.
    if (obs) this.expressTap?.drain();
    // Native path: headers are queued per packet and written by one call after the loop.
    const batch = this.opts.encapBatch ? (this.batchEncap ??= new BatchEncap(this.opts.encapBatch)) : undefined;
    batch?.begin(bufs[0], count);
    let queued = 0;
    for (let i = 0; i < count; i++) {
      const buf = bufs[i]!;
      const size = sizes[i]!;
      if (obs) obs({ point: 'tun-read', direction: 'out', buf, offset: HEADROOM, length: size, verdict: 'ok' });
      const cls = this.outVerdict;
      const verdict = classifyOutbound(buf, HEADROOM, size, this.outParams, cls);
      if (verdict === Verdict.Drop) {
        this.dropOut(cls.reason, buf, size);
        continue;
      }
      if (verdict === Verdict.Answer) {
        this.answerOrDrop(this.icmpAnswer(cls), cls.answer, cls.reason, (replies ??= []), buf, size);
        continue;
      }
      const peer = cls.peer!;
      const etherType = cls.etherType;
      if (obs) obs({ point: 'classify', direction: 'out', buf, offset: HEADROOM, length: size, verdict: 'ok', peer, route: routes.prefixOf(peer) });
      let g = groups.get(peer);
      if (g === undefined) groups.set(peer, (g = { peer, idx: [], count: 0 }));
      if (g.count === 0) {
        batchGroups[groupCount++] = g;
        this.batchGroupCount = groupCount;
        // A peer's template lives in the slot of its first packet in the batch.
        if (batch) writeEncapTemplate(batch.templates, i, peer, this.opts.vtepMac);
      }
      g.idx[g.count++] = i;
      forwarded++;
      sizes[i] = size + HEADROOM;
      if (batch?.add(i, buf, g.idx[0]!)) {
        queued++;
        continue;
      }
      // Reprs reused, not allocated per packet (a Vtep is a VxlanRepr: it has the vni).
      const eth = this.ethernetRepr;
      eth.dst = peer.vtepMac;
      eth.etherType = etherType;
      emitVxlan(peer, buf, 0);
      emitEthernet(eth, buf, VXLAN_HEADER_LEN);
      if (obs) obs({ point: 'encap', direction: 'out', buf, offset: 0, length: size + HEADROOM, verdict: 'ok', peer });
    }
    if (batch && queued > 0) {
      // One call for the batch; each packet still shows its encap point (after every classify of the batch).
      batch.run(count);
      if (obs) {
        for (let p = 0; p < groupCount; p++) {
          const { peer, idx, count: n } = batchGroups[p]!;
          for (let k = 0; k < n; k++) {
            const i = idx[k]!;
            if (batch.slots[i]! >= 0) obs({ point: 'encap', direction: 'out', buf: bufs[i]!, offset: 0, length: sizes[i]!, verdict: 'ok', peer });
          }
        }
      }
    }
    if (forwarded > 0) {
      for (let p = 0; p < groupCount; p++) {
        const { peer, idx, count: n } = batchGroups[p]!;
        // Stamped before the send: the receiver may read the datagram before the send call returns.
        const handedOver = obs ? monotonicMs() : 0;
        const { bufs: gb, sizes: gs, sent } = this.sendToPeer(peer, idx, bufs, sizes, 0, HEADROOM, n);
        if (obs) {
          for (let k = 0; k < n; k++) {
            obs({ point: 'udp-send', direction: 'out', buf: gb[k]!, offset: 0, length: gs[k]!, verdict: k < sent ? 'sent' : DropReason.SendFailed, peer, local: this.sentFrom(gb[k]!, 0, gs[k]!), remote: peer.endpoint, at: handedOver });
          }
        }
      }
    }
    if (replies && replies.length > 0) {
      // Counted as answered only once the TUN took them: a refused reply is a tun-write-failed drop.
      this.writeTun(replies.map((r) => r.buf), replies.map((r) => r.buf.length - HEADROOM));
      const refused = this.tunRefused;
      for (let k = 0; k < replies.length; k++) {
        const r = replies[k]!;
        if (refused[k] === 0) c.answer(r.answer);
        // Observed now, when trace and counters can agree on the outcome (the packet's journey is found by its bytes).
        if (obs) {
          obs({ point: 'classify', direction: 'out', buf: r.packet, offset: HEADROOM, length: r.size, verdict: r.answer, cause: r.cause });
          obs({ point: 'answer', direction: 'in', buf: r.buf, offset: HEADROOM, length: r.buf.length - HEADROOM, verdict: refused[k] === 0 ? r.answer : DropReason.TunWriteFailed });
        }
      }
    }
  }

  /** The ICMP error an Answer verdict asks for: a buffer, undefined (none may be built), or IcmpResponder.RateLimited. */
  private icmpAnswer(v: OutboundVerdict): Buffer | undefined {
    if (v.answer === Answer.IcmpUnreachable) return v.family === 4 ? this.icmp.unreachable4(v.ipv4) : this.icmp.unreachable6(v.ipv6);
    return v.family === 4 ? this.icmp.fragNeeded4(v.ipv4, this.opts.maxInnerSize) : this.icmp.packetTooBig6(v.ipv6, this.opts.maxInnerSize);
  }

  private dropOut(reason: DropReason, buf: Buffer, size: number): void {
    this.counters.drop(reason);
    if (this.observer) this.observer({ point: 'classify', direction: 'out', buf, offset: HEADROOM, length: size, verdict: reason });
  }

  /** An outbound packet we cannot forward: answered with an ICMP error if allowed, else dropped. */
  private answerOrDrop(reply: Buffer | undefined, answer: Answer, reason: DropReason, out: Reply[], buf: Buffer, size: number): void {
    if (reply === undefined || reply === IcmpResponder.RateLimited) {
      this.dropOut(reply === undefined ? reason : DropReason.IcmpRateLimited, buf, size);
      return;
    }
    out.push({ buf: reply, answer, cause: reason, packet: buf, size });
  }

  /** Inbound stage for one batch of datagrams; each buffer starts with the VXLAN header. */
  override handleInbound(bufs: Buffer[], sizes: number[], srcs: Endpoint[], count: number): void {
    const c = this.counters;
    const obs = this.observer;
    if (obs) this.expressTap?.drain();
    this.inParams.routes = this.routes;
    // Reused from batch to batch (the TUN write and the observer are done with them before the next).
    const outBufs = this.outBufs;
    const outSizes = this.outSizes;
    // Per written packet: the segment size of a super-packet the TUN takes whole, else 0.
    const outGso = this.outGso;
    // outBufs[0..n): the arrays keep their length from batch to batch (see `groups`).
    let n = 0;
    let anyWhole = false;
    const whole = this.tun.writesSuperPackets === true;
    for (let i = 0; i < count; i++) {
      const buf = bufs[i]!;
      const size = sizes[i]!;
      const src = srcs[i]!;
      if (obs) obs({ point: 'udp-recv', direction: 'in', buf, offset: 0, length: size, verdict: 'ok', local: this.bind.local, remote: src });
      const chk = this.inVerdict;
      const verdict = checkInbound(buf, size, src.address, this.inParams, this.sum16, chk);
      if (verdict === Verdict.Drop) {
        this.dropIn(chk.reason, buf, size, src);
        continue;
      }
      if (verdict === Verdict.Arp) {
        this.answerArp(buf, size, chk.arp!, src);
        continue;
      }
      const innerLength = chk.length;
      let completed = false;
      if (chk.fix === InboundFix.Checksum) {
        buf.writeUInt16BE(chk.checksum.value, chk.checksum.at);
        completed = true;
      } else if (chk.fix === InboundFix.Oversize) {
        // A kernel peer's GSO super-packet (see gso.ts): a TUN with virtio_net_hdr takes it whole
        // (the kernel segments it where needed); else segment it as the absent NIC would have.
        const mss = whole ? tcpSegmentSize(buf, INNER_IP, innerLength, this.opts.tunMtu) : undefined;
        if (mss !== undefined) {
          c.fix(Fixup.GsoPassedWhole);
          if (obs) obs({ point: 'decap', direction: 'in', buf, offset: 0, length: size, verdict: 'ok', remote: src, fixes: [Fixup.GsoPassedWhole] });
          outBufs[n] = buf;
          outSizes[n] = innerLength;
          outGso[n++] = mss;
          anyWhole = true;
          continue;
        }
        // With `whole`, tcpSegmentSize already said segmentTcp would refuse it (same parse, same test).
        const segments = whole ? undefined : segmentTcp(buf, INNER_IP, innerLength, this.opts.tunMtu, HEADROOM, this.sum16);
        if (segments !== undefined) {
          c.fix(Fixup.GsoSegmented);
          if (obs) obs({ point: 'decap', direction: 'in', buf, offset: 0, length: size, verdict: 'ok', remote: src, fixes: [Fixup.GsoSegmented] });
          for (const seg of segments) {
            outBufs[n] = seg;
            outSizes[n] = seg.length - HEADROOM;
            outGso[n++] = 0;
          }
          continue;
        }
        // Neither: written as it is, its checksum completed as any packet's (see checkInbound).
        completed = completePartialL4Checksum(buf, INNER_IP, innerLength, this.sum16);
      }
      if (completed) c.fix(Fixup.ChecksumCompleted);
      if (obs) obs({ point: 'decap', direction: 'in', buf, offset: 0, length: size, verdict: 'ok', remote: src, ...(completed ? { fixes: [Fixup.ChecksumCompleted] } : {}) });
      outBufs[n] = buf;
      outSizes[n] = innerLength;
      outGso[n++] = 0;
    }
    if (n > 0) {
      const written = this.writeTun(outBufs, outSizes, HEADROOM, anyWhole ? outGso : undefined, n);
      const refused = this.tunRefused;
      c.rxPackets += written;
      for (let k = 0; k < n; k++) if (refused[k] === 0) c.rxBytes += outSizes[k]!;
      if (obs) {
        for (let k = 0; k < n; k++) {
          obs({ point: 'tun-write', direction: 'in', buf: outBufs[k]!, offset: HEADROOM, length: outSizes[k]!, verdict: refused[k] === 0 ? 'forwarded' : DropReason.TunWriteFailed });
        }
      }
    }
    // Let this batch's buffers go (segments of a super-packet, a dgram message) without giving up
    // the array's room: a slot past a later, smaller batch's count would keep them alive.
    outBufs.fill(NO_BYTES, 0, n);
  }

  private readonly outBufs: Buffer[] = [];
  private readonly outSizes: number[] = [];
  private readonly outGso: number[] = [];

  private dropIn(reason: DropReason, buf: Buffer, size: number, src: Endpoint): void {
    this.counters.drop(reason);
    if (this.observer) this.observer({ point: 'decap', direction: 'in', buf, offset: 0, length: size, verdict: reason, remote: src });
  }

  /** Answers an ARP request for our VTEP address (checkInbound's Arp verdict) over VXLAN. */
  private answerArp(buf: Buffer, size: number, arp: ArpPacket, src: Endpoint): void {
    const c = this.counters;
    const requesterMac = Buffer.from(arp.senderMac);
    const reply = Buffer.alloc(VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN + ARP_LEN);
    emitVxlan({ vni: this.opts.vni }, reply, 0);
    emitEthernet({ dst: requesterMac, src: this.opts.vtepMac, etherType: EtherType.ARP }, reply, VXLAN_HEADER_LEN);
    emitArp(
      { operation: ArpOp.REPLY, senderMac: this.opts.vtepMac, senderIp: this.opts.vtepIp, targetMac: requesterMac, targetIp: arp.senderIp },
      reply,
      INNER_IP,
    );
    // The requester listens on the VXLAN port, not on the ephemeral port it sent from.
    const dst = this.peerByAddress(src.address) ?? { address: src.address, port: this.opts.port };
    const sent = this.bind.send([reply], [reply.length], 0, 1, dst) === 1;
    if (sent) c.answer(Answer.ArpReply);
    else c.drop(DropReason.SendFailed);
    const obs = this.observer;
    if (obs) {
      obs({ point: 'decap', direction: 'in', buf, offset: 0, length: size, verdict: 'ok', remote: src });
      obs({ point: 'answer', direction: 'out', buf: reply, offset: 0, length: reply.length, verdict: sent ? Answer.ArpReply : DropReason.SendFailed, local: this.sentFrom(reply, 0, reply.length), remote: dst });
    }
  }

  private peerByAddress(address: string): Endpoint | undefined {
    for (const r of this.routes.routes) if (r.target.endpoint.address === address) return r.target.endpoint;
    return undefined;
  }
}
