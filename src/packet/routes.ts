/**
 * Longest-prefix match from an inner destination to the peer VTEP that owns it.
 *
 * A RouteTable is immutable: the control side builds a new one and the engine swaps its
 * reference between batches, so a lookup never sees a half-updated table.
 *
 * IPv4 (every outbound packet): a multibit trie of four 8-bit strides in one Int32Array, so a lookup
 * is at most four array reads however many routes and prefix lengths there are. Prefixes are
 * expanded to their stride's boundary and inserted shortest first, so a longer prefix overwrites the
 * entries it covers. Memory: 1 KiB per 256-entry chunk, at most three chunks per route (flannel's
 * /24s from one /16 need three chunks in all).
 * IPv6: the distinct prefix lengths present, longest first, with one Map probe each.
 */
import { type Cidr, ipv4Mask, maskIpv6, cidrToString } from './cidr.js';
import { macToString, type Mac } from './wire/ethernet.js';
import type { Endpoint } from './endpoint.js';

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
  /** Chunks of 256 entries, chunk 0 the root; an entry is 0 (no route), k > 0 (v4Targets[k - 1]) or ~c < 0 (go to chunk c). */
  private readonly v4Trie: Int32Array;
  private readonly v4Targets: T[] = [];
  /** Per prefix length (longest first): masked prefixes bucketed by hashPrefix6, so a lookup allocates nothing. */
  private readonly v6: Array<{ prefixLen: number; buckets: Map<number, Array<{ addr: Buffer; target: T }>> }> = [];
  readonly routes: readonly Route<T>[];
  /** Prefix text by target, for traces: built once, so an attached trace costs a Map probe, not a scan. */
  private readonly prefixText = new Map<T, string>();

  constructor(routes: Iterable<Route<T>>) {
    const list: Route<T>[] = [];
    const v4: Array<{ addr: number; prefixLen: number; target: T }> = [];
    for (const r of routes) {
      list.push(r);
      if (!this.prefixText.has(r.target)) this.prefixText.set(r.target, cidrToString(r.prefix));
      if (r.prefix.family === 4) {
        v4.push({ addr: r.prefix.addr, prefixLen: r.prefix.prefixLen, target: r.target });
      } else {
        const len = r.prefix.prefixLen;
        let level = this.v6.find((l) => l.prefixLen === len);
        if (!level) this.v6.push((level = { prefixLen: len, buckets: new Map() }));
        const addr = maskIpv6(r.prefix.addr, len);
        const h = hashPrefix6(addr, len);
        let bucket = level.buckets.get(h);
        if (!bucket) level.buckets.set(h, (bucket = []));
        // Of two equal prefixes the later one wins.
        const same = bucket.find((e) => e.addr.equals(addr));
        if (same) same.target = r.target;
        else bucket.push({ addr, target: r.target });
      }
    }
    this.routes = list;
    // Shortest first (stable: of two equal prefixes the later one wins).
    v4.sort((a, b) => a.prefixLen - b.prefixLen);
    this.v4Trie = buildTrie4(v4, this.v4Targets);
    this.v6.sort((a, b) => b.prefixLen - a.prefixLen);
  }

  static empty<T = Vtep>(): RouteTable<T> {
    return new RouteTable<T>([]);
  }

  get size(): number {
    return this.routes.length;
  }

  /** IPv4 destination as an unsigned 32-bit number. */
  lookup4(dst: number): T | undefined {
    const t = this.v4Trie;
    let e = t[dst >>> 24]!;
    if (e < 0) {
      e = t[(~e << 8) | ((dst >>> 16) & 0xff)]!;
      if (e < 0) {
        e = t[(~e << 8) | ((dst >>> 8) & 0xff)]!;
        if (e < 0) e = t[(~e << 8) | (dst & 0xff)]!;
      }
    }
    return e === 0 ? undefined : this.v4Targets[e - 1];
  }

  /**
   * The IPv4 trie and its targets as they are (entry k > 0 is targets[k - 1]), for the addon's express
   * path to run the same lookup (src/datapath/express.ts). Read-only: the table is immutable.
   */
  compiled4(): { trie: Int32Array; targets: readonly T[] } {
    return { trie: this.v4Trie, targets: this.v4Targets };
  }

  /** IPv6 destination as 16 bytes (any Uint8Array view). */
  lookup6(dst: Uint8Array): T | undefined {
    for (const level of this.v6) {
      const bucket = level.buckets.get(hashPrefix6(dst, level.prefixLen));
      if (bucket === undefined) continue;
      for (const e of bucket) if (prefixMatches6(e.addr, dst, level.prefixLen)) return e.target;
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

/** FNV-1a (30 bits) over the first `prefixLen` bits of `addr` (the bits past it count as zero): no masked copy. */
function hashPrefix6(addr: Uint8Array, prefixLen: number): number {
  let h = 0x811c9dc5;
  const whole = prefixLen >>> 3;
  for (let i = 0; i < whole; i++) h = Math.imul(h ^ addr[i]!, 0x01000193);
  const rest = prefixLen & 7;
  if (rest !== 0) h = Math.imul(h ^ (addr[whole]! & (0xff << (8 - rest)) & 0xff), 0x01000193);
  // Kept within V8's small integers, so the Map key needs no heap number.
  return h & 0x3fffffff;
}

/** Whether `addr` lies in the masked prefix `prefix`/`prefixLen`. */
function prefixMatches6(prefix: Uint8Array, addr: Uint8Array, prefixLen: number): boolean {
  const whole = prefixLen >>> 3;
  for (let i = 0; i < whole; i++) if (prefix[i] !== addr[i]) return false;
  const rest = prefixLen & 7;
  return rest === 0 || prefix[whole] === (addr[whole]! & (0xff << (8 - rest)) & 0xff);
}

/** The IPv4 trie (see the top of this file) of `routes`, sorted shortest prefix first; fills `targets`. */
function buildTrie4<T>(routes: ReadonlyArray<{ addr: number; prefixLen: number; target: T }>, targets: T[]): Int32Array {
  let nodes = new Int32Array(256 * Math.min(1 + 3 * routes.length, 64));
  let used = 1;
  for (const r of routes) {
    targets.push(r.target);
    const value = targets.length;
    const addr = (r.addr & ipv4Mask(r.prefixLen)) >>> 0;
    let chunk = 0;
    for (let level = 0; ; level++) {
      const idx = (addr >>> (24 - 8 * level)) & 0xff;
      const covered = 8 * (level + 1);
      if (r.prefixLen <= covered) {
        // Longer prefixes come later, so nothing here points to a chunk yet.
        const at = chunk * 256 + idx;
        nodes.fill(value, at, at + (1 << (covered - r.prefixLen)));
        break;
      }
      const at = chunk * 256 + idx;
      const e = nodes[at]!;
      if (e < 0) {
        chunk = ~e;
        continue;
      }
      if ((used + 1) * 256 > nodes.length) {
        const grown = new Int32Array(nodes.length * 2);
        grown.set(nodes);
        nodes = grown;
      }
      // A new chunk starts as what the shorter prefix above it said.
      nodes.fill(e, used * 256, used * 256 + 256);
      nodes[at] = ~used;
      chunk = used++;
    }
  }
  return nodes.slice(0, used * 256);
}
