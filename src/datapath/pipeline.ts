/**
 * What every packet pipeline shares (the VXLAN engine, flannel's udp backend): the route table
 * swapped atomically, counters, the ICMP responder, the observer, read buffers with headroom, and
 * the loop that drains the TUN a bounded number of batches per wake-up so the underlay side gets
 * its turn. A backend is the two stages: handleOutbound (TUN batch) and handleInbound (UDP batch).
 */
import type { Bind, Endpoint } from '../io/bind.js';
import { settleRefused, type TunDevice } from '../io/tun-device.js';
import type { Observer } from './observe.js';
import { VXLAN_HEADER_LEN } from '../packet/wire/vxlan.js';
import { ETHERNET_HEADER_LEN } from '../packet/wire/ethernet.js';
import { Counters, DropReason } from '../packet/counters.js';
import { RouteTable, type Vtep } from '../packet/routes.js';
import { IcmpResponder, type IcmpPerSourceLimit } from '../packet/icmp-errors.js';
import type { InboundScheduling } from './inbound-scheduling.js';

/** Room in front of every packet read from the TUN for the headers encap writes. */
export const HEADROOM = VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN;

const MAX_BATCHES_PER_WAKE = 8;

/** What sendToPeer handed the Bind for one peer, and how many it took; valid until the next call. */
export interface SentGroup {
  /** The first `count` entries (sendToPeer's) went to the Bind; the arrays may be longer. */
  bufs: Buffer[];
  sizes: number[];
  sent: number;
}

/** Run around every batch the pipeline handles (a worker thread publishes counters and observations after it). */
export interface BatchHooks {
  before(): void;
  after(): void;
}

export interface PipelineOptions {
  /** Largest packet the TUN device hands us (its MTU); sizes the read buffers. */
  tunMtu: number;
  batchHooks?: BatchHooks;
  batchSize?: number;
  /** ICMP errors per second we generate at most (Linux rate-limits too). */
  icmpRatePerSecond?: number;
  /** The per-source ICMP error limit (icmp-errors.ts; Linux's icmp_ratelimit by default), or false for none. */
  icmpPerSource?: IcmpPerSourceLimit | false;
  /** This thread's scheduling policy follows the inbound load (see inbound-scheduling.ts); only with SCHED_BATCH on. */
  inboundScheduling?: InboundScheduling;
}

export abstract class Pipeline {
  readonly counters = new Counters();
  protected routes: RouteTable = RouteTable.empty();
  protected readonly batchSize: number;
  private readonly batchHooks: BatchHooks | undefined;
  protected readonly inboundScheduling: InboundScheduling | undefined;
  protected readonly readBufs: Buffer[];
  /** Room for a packet in each read buffer, after the headroom. */
  protected readonly readRoom: number;
  protected readonly readSizes: number[];
  protected readonly icmp: IcmpResponder;
  protected running = false;
  protected stopped = false;
  /** Attached only while someone watches (vxtun trace, pcap): every call site checks for undefined first. */
  protected observer: Observer | undefined;

  constructor(
    protected readonly tun: TunDevice,
    protected readonly bind: Bind,
    opts: PipelineOptions,
  ) {
    this.batchSize = opts.batchSize ?? 64;
    this.batchHooks = opts.batchHooks;
    this.inboundScheduling = opts.inboundScheduling;
    this.readRoom = Math.max(opts.tunMtu, 1500) + 64;
    const room = HEADROOM + this.readRoom;
    // Views of one arena, so a batch call (encapBatch) can address every packet with typed arrays only.
    const arena = Buffer.alloc(room * this.batchSize);
    this.readBufs = Array.from({ length: this.batchSize }, (_, i) => arena.subarray(i * room, (i + 1) * room));
    this.readSizes = new Array<number>(this.batchSize).fill(0);
    this.icmp = new IcmpResponder(opts.icmpRatePerSecond ?? 1000, opts.icmpPerSource !== undefined ? { perSource: opts.icmpPerSource } : {});
  }

  /** Outbound stage for one batch read from the TUN; packets sit at HEADROOM in bufs[i]. */
  abstract handleOutbound(bufs: Buffer[], sizes: number[], count: number): void;
  /** Inbound stage for one batch of datagrams from the underlay. */
  abstract handleInbound(bufs: Buffer[], sizes: number[], srcs: Endpoint[], count: number): void;

  /** Swaps the whole table at once; batches already running finish on the table they started with. */
  setRoutes(table: RouteTable): void {
    this.routes = table;
  }

  /** Attach (or with undefined, detach) the observer that sees every stage of every packet. */
  setObserver(observer: Observer | undefined): void {
    this.observer = observer;
  }

  get routeTable(): RouteTable {
    return this.routes;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const hooks = this.batchHooks;
    const sched = this.inboundScheduling;
    this.bind.start((bufs, sizes, srcs, count) => {
      hooks?.before();
      // The device is going away: nothing more is written into it.
      if (!this.stopped) this.handleInbound(bufs, sizes, srcs, count);
      sched?.noteInbound(sizes, count);
      hooks?.after();
    });
    this.tun.start(() => {
      hooks?.before();
      this.pumpTun();
      hooks?.after();
    });
  }

  stop(): void {
    this.running = false;
    this.stopped = true;
    this.inboundScheduling?.stop();
    // pumpTun reads nothing from now on, and a level-triggered readiness left on would call it every turn.
    this.tun.stopReading?.();
  }

  /**
   * Writes packets that sit at `offset`; counts the ones the kernel refused as tun-write-failed.
   * `gsoSizes` marks TCP super-packets the device takes whole (only where tun.writesSuperPackets).
   * Afterwards `tunRefused[k]` (k < count) is 1 for each packet that did not go in: the device skips a
   * refused packet and goes on, so which ones failed is not "all after the written count".
   */
  protected writeTun(bufs: Buffer[], sizes: number[], offset: number = HEADROOM, gsoSizes?: number[], count: number = bufs.length): number {
    if (this.tunRefused.length < count) this.tunRefused = new Uint8Array(Math.max(count, 2 * this.tunRefused.length));
    const refused = this.tunRefused;
    refused.fill(0, 0, count);
    let written = 0;
    try {
      written = this.tun.write(bufs, sizes, offset, count, gsoSizes, refused);
    } catch {
      written = 0;
    }
    if (written < count) {
      this.counters.drop(DropReason.TunWriteFailed, count - written);
      settleRefused(refused, count, written);
    }
    return written;
  }
  /** Per packet of the last writeTun: 1 if it did not go in (see writeTun). */
  protected tunRefused = new Uint8Array(64);

  /**
   * Sends the packets bufs[idx[k]] (each at `offset`, sizes[idx[k]] bytes) to one peer in one call and
   * counts them: tx counts the inner packet, so `headerLength` (what encap put in front) is left out.
   */
  protected sendToPeer(peer: Vtep, idx: number[], bufs: Buffer[], sizes: number[], offset: number, headerLength: number, count: number = idx.length): SentGroup {
    // One result, reused: the caller reads it before the next call (no arrays per peer per batch).
    // Its arrays keep their length (see Engine's `groups`): the first `count` entries are this call's.
    const r = this.sentGroup;
    const gb = r.bufs;
    const gs = r.sizes;
    for (let k = 0; k < count; k++) {
      gb[k] = bufs[idx[k]!]!;
      gs[k] = sizes[idx[k]!]!;
    }
    const sent = this.bind.send(gb, gs, offset, count, peer.endpoint);
    const c = this.counters;
    c.txPackets += sent;
    for (let k = 0; k < sent; k++) c.txBytes += gs[k]! - headerLength;
    if (sent < count) c.drop(DropReason.SendFailed, count - sent);
    r.sent = sent;
    return r;
  }
  private readonly sentGroup: SentGroup = { bufs: [], sizes: [], sent: 0 };

  /** Our end of a datagram we send (for traces): the bound endpoint, or the flow-hashed source port it leaves from. */
  protected sentFrom(buf: Buffer, offset: number, length: number): Endpoint {
    return this.bind.sourceOf ? this.bind.sourceOf(buf, offset, length) : this.bind.local;
  }

  /** Drains the TUN, a bounded number of batches per wake-up so the underlay side gets its turn. */
  private pumpTun(): void {
    for (let round = 0; round < MAX_BATCHES_PER_WAKE && this.running; round++) {
      let n: number;
      try {
        n = this.tun.read(this.readBufs, this.readSizes, HEADROOM);
      } catch {
        return; // device gone (shutdown): the owner notices and stops us
      }
      if (n === 0) return;
      this.handleOutbound(this.readBufs, this.readSizes, n);
      if (n < this.batchSize) return;
    }
  }
}
