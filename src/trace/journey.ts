/**
 * Observations -> journeys. The engine reports one packet's stages within one synchronous batch
 * call (tun-read, classify, encap ... udp-send; udp-recv, decap ... tun-write), so a collector
 * groups the observations of the current turn by the inner packet's fingerprint and hands the
 * finished journeys over on the next turn (a worker thread's observations arrive one whole batch per
 * message, engine/workers.ts, so the same holds for them). Everything in a journey is plain JSON: it
 * crosses the control socket as one line.
 */
import { createHash } from 'node:crypto';
import { monotonicMs } from '../util/clock.js';
import type { Observation, ObservationPoint, Observer } from '../datapath/observe.js';
import type { Endpoint } from '../packet/endpoint.js';
import { macToString } from '../packet/wire/ethernet.js';
import { innerFingerprint, observationStartsWithVxlan, summarizeInner, vxlanFields, type InnerSummary } from './packet.js';
import { compileInnerFilter, journeyMatches, type TraceFilter } from './filter.js';
import { isAnswer, outcomeOf, Outcome } from '../packet/counters.js';

/** What the node tells a trace client about itself (the `info` control command, trimmed). */
export interface NodeInfo {
  device: string;
  publicIp: string;
  port: number;
  vni: number;
  vtepMac: string;
  subnet: string;
  network?: string;
  mtu?: number;
  /** The host's boot id (util/clock.ts): two nodes' event times compare only when theirs are equal. */
  bootId?: string;
  /** Add to an event's `t` for epoch milliseconds (display only). */
  epochOffsetMs?: number;
}

export interface TraceEvent {
  point: ObservationPoint;
  verdict: string;
  /** CLOCK_MONOTONIC milliseconds of the node's host (util/clock.ts); + node.epochOffsetMs for wall-clock time. */
  t: number;
  /** Bytes at this point (the inner IP packet, or VXLAN + inner Ethernet + inner packet). */
  length: number;
  /** The bytes start with the VXLAN header (encap, udp-send, udp-recv, decap, ARP answers). */
  vxlan: boolean;
  route?: string;
  peer?: { address: string; port: number; vtepMac: string; vni: number };
  local?: Endpoint;
  remote?: Endpoint;
  fixes?: string[];
  /** classify of an answered packet: why it could not be forwarded. */
  cause?: string;
  /** VXLAN header and inner Ethernet, when the bytes start with VXLAN. */
  vx?: { flags: number; vni: number; innerSrc?: string; innerDst?: string; etherType?: number };
  /** Base64 of the bytes, when the subscriber asked for them (pcap, web view). */
  bytes?: string;
  /** The express path (native) forwarded the packet; these are its records, not the pipeline's stages. */
  express?: true;
}

export interface Journey {
  /** Unique within one node process. */
  id: number;
  node: NodeInfo;
  direction: 'out' | 'in';
  inner?: InnerSummary;
  events: TraceEvent[];
  /**
   * The packet's last verdict: 'sent' or 'forwarded' (forwarded), the answer kind (answered), the
   * drop reason (dropped), or 'ok' while its journey is incomplete.
   */
  verdict: string;
  /** forwarded / answered / dropped: the counter this packet went to (packet/counters.ts Outcome). */
  outcome?: Outcome;
  /** outcome === 'dropped'. */
  dropped: boolean;
  /** ARP reply / ICMP error this packet caused, if any. */
  answer?: string;
  /** Answered: why it could not be forwarded (no-route, too-big). */
  cause?: string;
  /** Peer underlay addresses and VTEP MACs involved (for the peer filter). */
  peers: string[];
  /**
   * sha256 (first 16 hex digits) of the UDP payload at udp-send or udp-recv: the same datagram seen
   * by the sender and the receiver has the same value, which is how a trace follows it across nodes.
   */
  wire?: string;
  /** Packets left untraced just before this one because the journey budget was spent (or the client was slow). */
  untraced?: number;
}


export function wireHash(buf: Buffer, offset: number, length: number): string {
  return createHash('sha256').update(buf.subarray(offset, offset + length)).digest('hex').slice(0, 16);
}

export interface CollectorOptions {
  filter?: TraceFilter;
  /** Include each point's bytes (base64) in the events. */
  bytes?: boolean;
  /** Called on the next turn with the journeys of this one that passed the filter. */
  emit: (j: Journey) => void;
  /** Journeys per second at most (default 2000); past it whole batches go unwatched and are counted. */
  maxJourneysPerSecond?: number;
}

export const DEFAULT_MAX_JOURNEYS_PER_SECOND = 2000;

let nextId = 1;

/** One subscriber's view: filters, groups and emits. `observer` is what to add to the engine's set. */
export class JourneyCollector {
  readonly observer: Observer;
  private pending = new Map<string, Journey>();
  private order: Journey[] = [];
  private last: Journey | undefined;
  private scheduled = false;
  private turnStarted = false;
  private muted = false;
  private windowStart = 0;
  private windowCount = 0;
  /** Packets not traced because the budget was spent; reported with the next journey. */
  private skipped = 0;
  private anon = 0;

  constructor(
    private readonly node: NodeInfo,
    private readonly opts: CollectorOptions,
  ) {
    const inner = opts.filter ? compileInnerFilter(opts.filter) : undefined;
    const keep: Observer = inner
      ? (o) => {
          // An answer belongs to the packet that caused it, which already passed (or not).
          if (o.point === 'answer' ? this.last !== undefined : inner(o)) this.add(o);
          else if (o.point !== 'answer') this.last = undefined;
        }
      : (o) => this.add(o);
    const max = opts.maxJourneysPerSecond ?? DEFAULT_MAX_JOURNEYS_PER_SECOND;
    // Watching must not take the dataplane down: past the budget, whole batches go unwatched
    // (a batch is one synchronous engine call, so no packet is ever traced half-way).
    this.observer = (o) => {
      // The express path forwarded these without being able to record them: never traced, so said.
      if (o.unrecorded) this.skipped += o.unrecorded;
      if (this.muted) {
        if (o.point === 'tun-read' || o.point === 'udp-recv') this.skipped++;
        return;
      }
      if (!this.scheduled && !this.turnStarted) {
        this.turnStarted = true;
        setImmediate(() => {
          this.turnStarted = false;
          this.muted = false;
        });
        const now = Date.now();
        if (now - this.windowStart >= 1000) {
          this.windowStart = now;
          this.windowCount = 0;
        }
        if (this.windowCount >= max) {
          this.muted = true;
          if (o.point === 'tun-read' || o.point === 'udp-recv') this.skipped++;
          return;
        }
      }
      keep(o);
    };
  }

  private add(o: Observation): void {
    const vxlan = observationStartsWithVxlan(o);
    const ev: TraceEvent = { point: o.point, verdict: o.verdict, t: o.at ?? monotonicMs(), length: o.length, vxlan };
    if (o.route !== undefined) ev.route = o.route;
    if (o.peer) ev.peer = { address: o.peer.endpoint.address, port: o.peer.endpoint.port, vtepMac: macToString(o.peer.vtepMac), vni: o.peer.vni };
    if (o.local) ev.local = { address: o.local.address, port: o.local.port };
    if (o.remote) ev.remote = { address: o.remote.address, port: o.remote.port };
    if (o.fixes) ev.fixes = [...o.fixes];
    if (o.cause !== undefined) ev.cause = o.cause;
    if (o.express) ev.express = true;
    if (vxlan) {
      const vx = vxlanFields(o.buf, o.offset, o.length);
      if (vx) ev.vx = vx;
    }
    if (this.opts.bytes) ev.bytes = o.buf.toString('base64', o.offset, o.offset + o.length);

    let j: Journey | undefined;
    if (o.point === 'answer') {
      j = this.last;
    } else {
      const fp = innerFingerprint(o.buf, o.offset, o.length, vxlan);
      // Unreadable bytes are their own journey unless they continue the one just seen (same point order).
      const key = `${o.direction}|${fp ?? (o.point === 'udp-recv' || o.point === 'tun-read' ? `raw${++this.anon}` : `raw${this.anon}`)}`;
      j = this.pending.get(key);
      if (j === undefined) {
        j = { id: nextId++, node: this.node, direction: o.direction, events: [], verdict: o.verdict, dropped: false, peers: [] };
        const inner = summarizeInner(o.buf, o.offset, o.length, vxlan);
        if (inner) j.inner = inner;
        this.pending.set(key, j);
        this.order.push(j);
      }
    }
    if (j === undefined) return;
    this.last = j;
    j.events.push(ev);
    if (o.point === 'answer' && isAnswer(o.verdict)) j.answer = o.verdict;
    if (o.cause !== undefined) j.cause = o.cause;
    // The last verdict is the packet's, an answer's included: answered, or dropped when the answer could not go out.
    j.verdict = o.verdict;
    const outcome = outcomeOf(o.verdict);
    if (outcome !== undefined) j.outcome = outcome;
    else delete j.outcome;
    j.dropped = outcome === Outcome.Dropped;
    for (const p of [ev.peer?.address, ev.peer?.vtepMac, o.point === 'answer' ? undefined : ev.remote?.address, ev.vx && o.direction === 'in' ? ev.vx.innerSrc : undefined]) {
      if (p !== undefined && !j.peers.includes(p)) j.peers.push(p);
    }
    if (o.point === 'udp-send' || o.point === 'udp-recv') j.wire = wireHash(o.buf, o.offset, o.length);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Emits what the last turn collected. */
  flush(): void {
    this.scheduled = false;
    const done = this.order;
    this.order = [];
    this.pending = new Map();
    this.last = undefined;
    for (const j of done) {
      if (this.opts.filter && !journeyMatches(this.opts.filter, j)) continue;
      this.windowCount++;
      if (this.skipped > 0) {
        j.untraced = this.skipped;
        this.skipped = 0;
      }
      this.opts.emit(j);
    }
  }
}
