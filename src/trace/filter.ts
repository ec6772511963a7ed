/**
 * Trace filters: host, subnet, protocol, port, peer, verdict. The first four look only at the
 * inner packet's bytes and run at every observation before anything is decoded or copied, so a
 * trace that filters most traffic out stays cheap; peer and verdict are judged on the assembled
 * journey (a packet's peer is known only from the classify step on, its verdict only at the end).
 */
import { parseCidr, ipv4Mask, maskIpv6, type Cidr } from '../packet/cidr.js';
import { ipv4FromString, isIpv4String } from '../packet/wire/ipv4.js';
import { ipv6FromString, isIpv6String } from '../packet/wire/ipv6.js';
import { isMacString } from '../packet/wire/ethernet.js';
import { DropReason, Answer, Outcome } from '../packet/counters.js';
import { locateInner, observationStartsWithVxlan } from './packet.js';
import type { Observation } from '../datapath/observe.js';

export interface TraceFilter {
  /** Inner source or destination address. */
  host?: string;
  /** Inner source or destination inside this prefix. */
  subnet?: string;
  protocol?: string;
  /** Inner TCP/UDP source or destination port. */
  port?: number;
  /** The peer's underlay address or VTEP MAC. */
  peer?: string;
  /**
   * An outcome ('forwarded', 'answered', 'dropped'; 'drop' = 'dropped', 'ok' = not dropped) or one
   * verdict name ('sent', a drop reason, an answer kind).
   */
  verdict?: string;
}

export class FilterError extends Error {}

export const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, arp: -1 };
const VERDICTS = new Set<string>(['drop', 'ok', 'sent', ...Object.values(Outcome), ...Object.values(DropReason), ...Object.values(Answer)]);

/** Checks a filter from the command line or the socket; throws FilterError naming the field and value. */
export function validateFilter(f: TraceFilter): TraceFilter {
  const out: TraceFilter = {};
  if (f.host !== undefined) {
    if (!isIpv4String(f.host) && !isIpv6String(f.host)) throw new FilterError(`host: "${f.host}" is not an IPv4 or IPv6 address`);
    out.host = f.host;
  }
  if (f.subnet !== undefined) {
    const c = parseCidr(f.subnet);
    if (typeof c === 'string') throw new FilterError(`subnet: "${f.subnet}": ${c}`);
    out.subnet = f.subnet;
  }
  if (f.protocol !== undefined) {
    const p = f.protocol.toLowerCase();
    if (!(p in PROTOCOLS)) throw new FilterError(`protocol: "${f.protocol}" is not one of ${Object.keys(PROTOCOLS).join(', ')}`);
    out.protocol = p;
  }
  if (f.port !== undefined) {
    const n = Number(f.port);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new FilterError(`port: "${String(f.port)}" is not a port number (0-65535)`);
    out.port = n;
  }
  if (f.peer !== undefined) {
    if (!isIpv4String(f.peer) && !isIpv6String(f.peer) && !isMacString(f.peer)) throw new FilterError(`peer: "${f.peer}" is neither an underlay address nor a VTEP MAC`);
    out.peer = f.peer.toLowerCase();
  }
  if (f.verdict !== undefined) {
    if (!VERDICTS.has(f.verdict)) throw new FilterError(`verdict: "${f.verdict}" is forwarded, answered, dropped (drop), ok, sent, an answer kind or a drop reason`);
    out.verdict = f.verdict;
  }
  return out;
}

const FILTER_NAMES = ['host', 'subnet', 'protocol', 'port', 'peer', 'verdict'] as const;

/**
 * `vxtun trace`'s filter flags written as one line, for the web view's filter box:
 * "host 10.244.2.2 protocol icmp verdict dropped" (a name may keep its "--", as on the command line).
 */
export function parseFilterText(text: string): TraceFilter {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const f: Record<string, string> = {};
  for (let i = 0; i < words.length; i += 2) {
    const name = words[i]!.replace(/^--/, '').replace(/=.*$/, '');
    const inline = words[i]!.includes('=') ? words[i]!.slice(words[i]!.indexOf('=') + 1) : undefined;
    if (!(FILTER_NAMES as readonly string[]).includes(name)) throw new FilterError(`"${words[i]}" is not a filter: use ${FILTER_NAMES.join(', ')} followed by a value`);
    if (inline !== undefined) {
      f[name] = inline;
      i--;
      continue;
    }
    const value = words[i + 1];
    if (value === undefined) throw new FilterError(`${name}: a value is missing`);
    f[name] = value;
  }
  const filter: TraceFilter = { ...f, ...(f.port !== undefined ? { port: /^\d+$/.test(f.port) ? Number(f.port) : (f.port as unknown as number) } : {}) };
  return validateFilter(filter);
}

/**
 * The per-observation test on the inner packet's bytes; undefined when no such filter is set.
 * Runs on every observation while a trace is attached, so it reads bytes in place and allocates nothing.
 */
export function compileInnerFilter(f: TraceFilter): ((o: Observation) => boolean) | undefined {
  const tests: Array<(buf: Buffer, at: number, end: number, kind: 4 | 6 | 'arp') => boolean> = [];
  const addrTest = (match4: (a: number) => boolean, match6: (b: Buffer, at: number) => boolean) =>
    (buf: Buffer, at: number, _end: number, kind: 4 | 6 | 'arp'): boolean => {
      if (kind === 4) return match4(buf.readUInt32BE(at + 12)) || match4(buf.readUInt32BE(at + 16));
      if (kind === 6) return match6(buf, at + 8) || match6(buf, at + 24);
      return match4(buf.readUInt32BE(at + 14)) || match4(buf.readUInt32BE(at + 24));
    };
  if (f.host !== undefined) {
    if (isIpv4String(f.host)) {
      const h = ipv4FromString(f.host);
      tests.push(addrTest((a) => a === h, () => false));
    } else {
      const h = ipv6FromString(f.host);
      tests.push(addrTest(() => false, (b, at) => b.compare(h, 0, 16, at, at + 16) === 0));
    }
  }
  if (f.subnet !== undefined) {
    const c = parseCidr(f.subnet) as Cidr;
    if (c.family === 4) {
      const mask = ipv4Mask(c.prefixLen);
      tests.push(addrTest((a) => ((a & mask) >>> 0) === c.addr, () => false));
    } else {
      tests.push(addrTest(() => false, (b, at) => maskIpv6(b.subarray(at, at + 16), c.prefixLen).equals(c.addr)));
    }
  }
  if (f.protocol !== undefined) {
    const want = PROTOCOLS[f.protocol]!;
    tests.push((buf, at, _end, kind) => (kind === 'arp' ? want === -1 : kind === 4 ? buf[at + 9] === want : buf[at + 6] === want));
  }
  if (f.port !== undefined) {
    const port = f.port;
    tests.push((buf, at, end, kind) => {
      if (kind === 'arp') return false;
      const proto = kind === 4 ? buf[at + 9]! : buf[at + 6]!;
      if (proto !== 6 && proto !== 17) return false;
      const l4 = kind === 4 ? at + (buf[at]! & 0x0f) * 4 : at + 40;
      if (end - l4 < 4) return false;
      return buf.readUInt16BE(l4) === port || buf.readUInt16BE(l4 + 2) === port;
    });
  }
  if (tests.length === 0) return undefined;
  return (o) => {
    const loc = locateInner(o.buf, o.offset, o.length, observationStartsWithVxlan(o));
    if (!loc) return false;
    for (const t of tests) if (!t(o.buf, loc.at, loc.end, loc.kind)) return false;
    return true;
  };
}

/** The journey-level tests: peer and verdict (or outcome). */
export function journeyMatches(f: TraceFilter, j: { verdict: string; outcome?: Outcome; peers: string[] }): boolean {
  if (f.verdict !== undefined) {
    const dropped = j.outcome === Outcome.Dropped;
    if (f.verdict === 'drop' || f.verdict === Outcome.Dropped) {
      if (!dropped) return false;
    } else if (f.verdict === 'ok') {
      if (dropped) return false;
    } else if (f.verdict === Outcome.Forwarded || f.verdict === Outcome.Answered) {
      if (j.outcome !== f.verdict) return false;
    } else if (j.verdict !== f.verdict) return false;
  }
  if (f.peer !== undefined && !j.peers.includes(f.peer)) return false;
  return true;
}
