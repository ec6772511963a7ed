/**
 * Longest-prefix match from an inner destination to the peer VTEP that owns it.
 *
 * A RouteTable is immutable: the control side builds a new one and the engine swaps its
 * reference between batches, so a lookup never sees a half-updated table.
 * Lookup walks the distinct prefix lengths present, longest first, with one hash probe each:
 * a flannel cluster has one or two lengths (the subnet length, maybe a /32), so that is one or
 * two Map probes however many nodes there are.
 */
import { type Cidr, ipv4Mask, maskIpv6, cidrToString } from './cidr.js';
import { macToString, type Mac } from '../wire/ethernet.js';
import type { Endpoint } from '../conn/bind.js';

/** A peer VTEP: where the owner of a subnet receives VXLAN. */
export interface Vtep {
  /** Underlay address (the lease's PublicIP) and the UDP port the peer listens on. */
  endpoint: Endpoint;
  vtepMac: Mac;
  vni: number;
}

export interface Route<T = Vtep> {
  prefix: Cidr;
  target: T;
}

export class RouteTable<T = Vtep> {
  private readonly v4 = new Map<number, Map<number, T>>();
  private readonly v4Lengths: number[];
  private readonly v6 = new Map<number, Map<string, T>>();
  private readonly v6Lengths: number[];
  readonly routes: readonly Route<T>[];
  /** Prefix text by target, for traces: built once, so an attached trace costs a Map probe, not a scan. */
  private readonly prefixText = new Map<T, string>();

  constructor(routes: Iterable<Route<T>>) {
    const list: Route<T>[] = [];
    for (const r of routes) {
      list.push(r);
      if (!this.prefixText.has(r.target)) this.prefixText.set(r.target, cidrToString(r.prefix));
      if (r.prefix.family === 4) {
        let m = this.v4.get(r.prefix.prefixLen);
        if (!m) this.v4.set(r.prefix.prefixLen, (m = new Map()));
        m.set(r.prefix.addr, r.target);
      } else {
        let m = this.v6.get(r.prefix.prefixLen);
        if (!m) this.v6.set(r.prefix.prefixLen, (m = new Map()));
        m.set(r.prefix.addr.toString('latin1'), r.target);
      }
    }
    this.routes = list;
    this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a);
    this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a);
  }

  static empty<T = Vtep>(): RouteTable<T> {
    return new RouteTable<T>([]);
  }

  get size(): number {
    return this.routes.length;
  }

  /** IPv4 destination as an unsigned 32-bit number. */
  lookup4(dst: number): T | undefined {
    for (const len of this.v4Lengths) {
      const hit = this.v4.get(len)!.get((dst & ipv4Mask(len)) >>> 0);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** IPv6 destination as 16 bytes (any Uint8Array view). */
  lookup6(dst: Uint8Array): T | undefined {
    for (const len of this.v6Lengths) {
      const hit = this.v6.get(len)!.get(maskIpv6(dst, len).toString('latin1'));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** The table as `vxtun status` and the control socket show it; `vxlan: false` leaves out the VTEP fields (udp backend). */
  describe(this: RouteTable<Vtep>, vxlan = true): Array<{ subnet: string; publicIp: string; port: number; vtepMac?: string; vni?: number }> {
    return this.routes.map((r) => ({
      subnet: cidrToString(r.prefix),
      publicIp: r.target.endpoint.address,
      port: r.target.endpoint.port,
      ...(vxlan ? { vtepMac: macToString(r.target.vtepMac), vni: r.target.vni } : {}),
    }));
  }

  /** The route whose target is `target` (for traces and status). */
  prefixOf(target: T): string | undefined {
    return this.prefixText.get(target);
  }
}
