/**
 * Observation points: where the pipeline lets someone watch a packet. The engine calls an
 * observer only when one is attached (one `undefined` check per stage otherwise), so watching
 * costs nothing when nobody listens. Consumers (trace printer, pcapng writer, web view) filter
 * and copy what they keep: the bytes are valid only during the call.
 */
import type { Endpoint } from '../io/bind.js';
import type { Vtep } from '../packet/routes.js';

export type ObservationPoint =
  | 'tun-read' // an IP packet the kernel routed into the TUN
  | 'classify' // route lookup: the peer chosen, or why not (verdict = drop reason)
  | 'encap' // VXLAN + inner Ethernet written in front of the packet
  | 'udp-send' // the datagram handed to the underlay socket
  | 'udp-recv' // a datagram from the underlay
  | 'decap' // checks passed (verdict 'ok') or the drop reason
  | 'tun-write' // the inner IP packet written into the TUN
  | 'answer'; // an ARP reply or ICMP error we generated (verdict = answer kind)

export interface Observation {
  point: ObservationPoint;
  /** The bytes at this point: buf[offset, offset + length). Copy what you keep. */
  buf: Buffer;
  offset: number;
  length: number;
  /** Which way the packet goes: out = TUN -> underlay, in = underlay -> TUN. */
  direction: 'out' | 'in';
  /**
   * 'ok' (on its way), 'sent' (udp-send), 'forwarded' (tun-write), a drop reason, or an answer kind
   * (see packet/counters.ts). classify of a packet answered instead of forwarded carries the answer
   * kind and `cause`; the answer point carries the answer kind, or the drop reason when the answer
   * itself could not be delivered (then the counters count that drop, not an answer).
   */
  verdict: string;
  /** classify of an answered packet: why it could not be forwarded (no-route, too-big). */
  cause?: string;
  /** classify/encap/udp-send: the peer VTEP and the route prefix that chose it. */
  peer?: Vtep;
  route?: string;
  /** udp-send/udp-recv/answer over the underlay: our socket and the other end. */
  local?: Endpoint;
  remote?: Endpoint;
  /** decap: fixes applied on the way (checksum-completed, gso-segmented). */
  fixes?: string[];
  /**
   * When it was seen (CLOCK_MONOTONIC ms, util/clock.ts monotonicMs), set where the observation is reported later than it was
   * made (another thread, datapath/workers.ts; the express path's records) so it keeps its own time;
   * otherwise the consumer's clock is now.
   */
  at?: number;
  /** Forwarded by the express path (native/express.cc), reported after the fact from its records (express-tap.ts). */
  express?: boolean;
  /**
   * Packets the express path forwarded just before this one but could not record (its record log
   * was full until the tap drained it): counted, so a trace says how many it did not see.
   */
  unrecorded?: number;
}

export type Observer = (o: Observation) => void;

/** Fans one observation out to several observers (trace clients, pcap writers). */
export class ObserverSet {
  private readonly observers = new Set<Observer>();

  add(o: Observer): () => void {
    this.observers.add(o);
    return () => this.observers.delete(o);
  }

  get size(): number {
    return this.observers.size;
  }

  /** The observer to attach to the engine: undefined when nobody listens. */
  get dispatch(): Observer | undefined {
    if (this.observers.size === 0) return undefined;
    return (o) => {
      for (const fn of this.observers) {
        try {
          fn(o);
        } catch {
          // a faulty listener must not stop the dataplane
        }
      }
    };
  }
}
