/**
 * The whole path of a traced packet: vxtun's own observation points merged with the kernel's hops —
 * the pod's eth0, the node's veth end, the cni0 bridge, the TUN device, flannel.1 and the underlay
 * eth0, each seen by a packet socket in the lab's namespaces (tools/lab/kernel-hops.ts) — in time
 * order on one clock: CLOCK_MONOTONIC of the host, which vxtun's events carry already and the
 * capturer maps the kernel's CLOCK_REALTIME packet stamps onto. A kernel hop belongs to a journey
 * when it carries the same inner packet (innerFingerprint: addresses, IP id, length, protocol, ICMP
 * id/seq or ports; not the TTL or checksums, which each router hop changes).
 */
import { innerFingerprint } from './packet.js';
import type { Journey } from './journey.js';

/** What a kernel hop's device is on the path. */
export type HopRole = 'pod' | 'veth' | 'bridge' | 'tun' | 'vxlan' | 'underlay' | 'other';

export interface KernelHop {
  /** The underlay address of the node (of the pod's node, for a hop inside a pod). */
  node: string;
  place: 'pod' | 'node';
  device: string;
  role: HopRole;
  /** Sent from the device (out) or received on it (in). */
  direction: 'in' | 'out';
  /** CLOCK_MONOTONIC milliseconds of the host, as TraceEvent.t. */
  t: number;
  /** The IP length at this hop: the outer datagram's on the underlay, the inner packet's elsewhere. */
  length: number;
  fingerprint: string;
}

/** One step of the whole path: a kernel hop or one of vxtun's observation points. */
export interface Hop {
  by: 'kernel' | 'vxtun';
  node: string;
  /** CLOCK_MONOTONIC milliseconds of the host. */
  t: number;
  /** vxtun: the observation point; kernel: the device. */
  point: string;
  length: number;
  place?: 'pod' | 'node';
  role?: HopRole;
  direction?: 'in' | 'out';
  verdict?: string;
  express?: true;
}

export const VXLAN_PORT = 8472;

/**
 * The fingerprint of the inner packet in an IPv4 packet as the kernel handles it: the packet itself,
 * or, for a VXLAN datagram to or from `vxlanPort`, the packet inside it.
 */
export function fingerprintOfIpv4(buf: Buffer, vxlanPort = VXLAN_PORT): { fingerprint: string; outer: boolean } | undefined {
  if (buf.length < 20 || buf[0]! >> 4 !== 4) return undefined;
  const ihl = (buf[0]! & 0x0f) * 4;
  if (buf[9] === 17 && buf.length >= ihl + 8 && (buf.readUInt16BE(ihl) === vxlanPort || buf.readUInt16BE(ihl + 2) === vxlanPort)) {
    const fp = innerFingerprint(buf, ihl + 8, buf.length - ihl - 8, true);
    return fp === undefined ? undefined : { fingerprint: fp, outer: true };
  }
  const fp = innerFingerprint(buf, 0, buf.length, false);
  return fp === undefined ? undefined : { fingerprint: fp, outer: false };
}

/** The fingerprint of the packet a journey followed (needs the events' bytes: trace with bytes). */
export function journeyFingerprint(j: Journey): string | undefined {
  for (const e of j.events) {
    if (e.bytes === undefined) continue;
    const buf = Buffer.from(e.bytes, 'base64');
    const fp = innerFingerprint(buf, 0, buf.length, e.vxlan);
    if (fp !== undefined) return fp;
  }
  return undefined;
}

/** vxtun's events of the journeys and the kernel's hops, one list in time order (ties keep path order: vxtun's own order, kernel hops first). */
export function mergeHops(journeys: Journey[], kernel: KernelHop[]): Hop[] {
  const hops: Hop[] = kernel.map((k) => ({ by: 'kernel', node: k.node, t: k.t, point: k.device, length: k.length, place: k.place, role: k.role, direction: k.direction }));
  for (const j of journeys) {
    for (const e of j.events) hops.push({ by: 'vxtun', node: j.node.publicIp, t: e.t, point: e.point, length: e.length, verdict: e.verdict, ...(e.express ? { express: true as const } : {}) });
  }
  return hops.map((h, i) => ({ h, i })).sort((a, b) => a.h.t - b.h.t || a.i - b.i).map((x) => x.h);
}

/**
 * Kernel hops as they arrive, kept a while for the journeys they belong to (a journey is reported
 * after its packet crossed, so its hops are already here or about to be).
 */
export class KernelHopPool {
  private hops: KernelHop[] = [];

  constructor(
    private readonly keepMs = 10_000,
    /** Bulk traffic the trace does not follow must not grow it without end: past this the oldest go. */
    private readonly maxHops = 50_000,
  ) {}

  add(h: KernelHop): void {
    this.hops.push(h);
    const horizon = h.t - this.keepMs;
    if (this.hops[0]!.t < horizon) this.hops = this.hops.filter((x) => x.t >= horizon);
    if (this.hops.length > this.maxHops) this.hops = this.hops.slice(this.hops.length - Math.floor((this.maxHops * 3) / 4));
  }

  /** Takes (removes) the hops of this packet seen between `from` and `to` (monotonic ms). */
  take(fingerprint: string, from: number, to: number): KernelHop[] {
    const mine: KernelHop[] = [];
    const rest: KernelHop[] = [];
    for (const h of this.hops) (h.fingerprint === fingerprint && h.t >= from && h.t <= to ? mine : rest).push(h);
    this.hops = rest;
    return mine;
  }
}

/** A trace item (printer.ts TraceItem) as far as merging needs it. */
type HopsOf = ({ kind: 'journey'; journey: Journey } | { kind: 'story'; sender: Journey; receiver: Journey }) & { hops?: Hop[] };

/** The item with the kernel's hops of its packet merged in (`hops`), or as it was when none were seen or its bytes are unknown. */
export function withKernelHops<T extends HopsOf>(item: T, pool: KernelHopPool, marginMs = 500): T {
  const journeys = item.kind === 'journey' ? [item.journey] : [item.sender, item.receiver];
  const fp = journeys.map(journeyFingerprint).find((f) => f !== undefined);
  if (fp === undefined) return item;
  const times = journeys.flatMap((j) => j.events.map((e) => e.t));
  const kernel = pool.take(fp, Math.min(...times) - marginMs, Math.max(...times) + marginMs);
  if (kernel.length === 0) return item;
  return { ...item, hops: mergeHops(journeys, kernel) };
}
