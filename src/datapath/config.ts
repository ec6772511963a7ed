/**
 * The `datapath` section of the node config: which packet path runs and which offloads it may use.
 * Every switch here forces a fallback a test (or an operator on a strange kernel) may need.
 *
 *   "datapath": { "kind": "auto" | "native" | "ts", "gso": true, "gro": true, "tunOffload": true, "tunUso": true, "express": true, "batchScheduling": true,
 *                 "peerFilter": true, "codel": false | true | { "targetUs": 250, "intervalUs": 2500 }, "tunQueueLength": N, "nice": 0, "sourcePorts": "fixed" | { "min": 32768, "max": 60999, "sockets": 16 }, "workers": N }
 *
 * kind: auto = the native fast path when the addon loaded, else the TypeScript reference path;
 * native = the fast path or refuse to start; ts = the TypeScript reference path (Node's dgram,
 * TS checksums). gso: use UDP GSO on send when the kernel has it (default true). gro: on the native path,
 * turn on UDP GRO for receive when the kernel has it, on every worker's socket (default true;
 * VXTUN_NO_UDP_GRO=1 also forces it off). tunOffload: open the
 * TUN with IFF_VNET_HDR + TSO/CSUM offloads when the kernel takes them (default true; on the ts path the
 * segmenting and coalescing they ask for is TypeScript, src/io/tun-offload.ts).
 * tunUso: with tunOffload, on the native path, ask for UDP segmentation offload too (Linux 6.2+), so runs
 * of one UDP flow's datagrams go into the TUN as one write (default true; VXTUN_NO_TUN_USO=1 also forces it off).
 * express: on the native path with tunOffload, a lone packet (idle traffic: a ping, a handshake, a
 * request) is forwarded by the addon inside its poll callback without running JavaScript, which cuts
 * the round trip at idle by more than half (src/datapath/express.ts); anything else, and any packet while
 * a trace watches, takes the JS pipeline as before (default true; VXTUN_NO_EXPRESS=1 also forces it off).
 * batchScheduling: the process's threads run SCHED_BATCH, so a wake-up does not preempt the task that
 * caused it and a packet's trip through the pod, vxtun and the peer's vxtun stays on one CPU at idle
 * (native/sched.cc; default true; VXTUN_NO_SCHED_BATCH=1 also forces it off).
 * nice: the priority of the process's threads (−20..19; −10 is what ovs-ctl gives ovs-vswitchd), so the
 * work the kernel's VXLAN does in softirq, ahead of every task, need not wait behind the pods' busy
 * processes (src/datapath/priority.ts); default 0: the priority vxtun was started with.
 * peerFilter: on the native path, the VXLAN socket keeps only datagrams whose source address is a
 * peer's (a route's endpoint): the kernel drops the rest (a socket filter) before they take room in the
 * receive buffer or any CPU of vxtun's, so a flood from a host that is no peer costs little; counted
 * with the socket's other drops (RecvOverflows). Off for peers whose datagrams arrive from another
 * address than the one they registered (behind NAT). Default true.
 * codel: on the native path, CoDel (RFC 8289) on the VXLAN socket's receive queue (src/packet/codel.ts):
 * once datagrams have waited there longer than targetUs for intervalUs, one is dropped, then more
 * often, until the queue falls below the target, so pods' TCP backs off before megabytes queue up and
 * a ping behind a transfer waits a fraction of a millisecond, not several. Drops are counted
 * (queue-delay). Needs the kernel's arrival stamps (SO_TIMESTAMPNS): without them it stays off.
 * Default off (measured on a 2-core machine it did not lower the RTT under load, which waits for CPU
 * there, not in this queue: docs/performance.md); true = 250 µs / 2.5 ms.
 * tunQueueLength: the TUN device's transmit queue (txqueuelen): the packets the kernel holds for vxtun
 * to read, each up to a 64 KB super-packet with tunOffload, beyond which it drops. It is where a pod's
 * TCP queues when vxtun is the bottleneck: shorter, a ping behind a transfer waits less (on the 2-core
 * test VM, 4 TCP streams: RTT p50 6.2 ms at the kernel's 500, 2.7 ms at 16, TCP unchanged) but
 * bursts of small packets are dropped sooner (UDP 1350 B: −20 % delivered at 16). Default: the
 * kernel's (500), docs/operations.md.
 * sourcePorts: RFC 7348 §5 outer source ports from a hash of the inner flow (native path; the ts path
 * always sends from the VXLAN port); default Linux's range 32768-60999 over 16 sockets, "fixed" = every
 * datagram from the VXLAN port (what a firewall that only opens 8472 both ways may need). Peers do not
 * care: Linux's VXLAN device and vxtun accept any source port. A pool of sockets bound to ports spread
 * over the range carries the hash: the kernel's own UDP stack (and UDP GSO) stays in use, at the price
 * of `sockets` distinct ports rather than every port of the range (a raw socket would give all of them
 * but no GSO). A trace names the pool port each datagram left from.
 * workers: engines on their own threads, each with a TUN queue (IFF_MULTI_QUEUE) and a SO_REUSEPORT
 * socket (native path; `vxtun up --workers` overrides; default one per core up to a cap, see
 * defaultWorkers in engine/workers.ts).
 */
import { z } from 'zod';
import type { AntiSpoofing } from '../packet/policy.js';
import { CODEL_DEFAULTS } from '../packet/codel.js';

export const DATAPATH_KINDS = ['auto', 'native', 'ts'] as const;
export type DatapathKind = (typeof DATAPATH_KINDS)[number];

export const DatapathSchema = z
  .strictObject({
    kind: z.enum(DATAPATH_KINDS).optional(),
    gso: z.boolean().optional(),
    gro: z.boolean().optional(),
    tunOffload: z.boolean().optional(),
    tunUso: z.boolean().optional(),
    express: z.boolean().optional(),
    batchScheduling: z.boolean().optional(),
    peerFilter: z.boolean().optional(),
    codel: z
      .union([z.boolean(), z.strictObject({ targetUs: z.number().int().min(1).max(1_000_000).optional(), intervalUs: z.number().int().min(1).max(10_000_000).optional() })])
      .optional(),
    tunQueueLength: z.number().int().min(1).max(10_000).optional(),
    nice: z.number().int().min(-20).max(19).optional(),
    workers: z.number().int().min(1).max(64).optional(),
    sourcePorts: z
      .union([
        z.literal('fixed'),
        z
          .strictObject({
            min: z.number().int().min(1).max(65535).optional(),
            max: z.number().int().min(1).max(65535).optional(),
            sockets: z.number().int().min(1).max(256).optional(),
          })
          .refine((r) => (r.min ?? SOURCE_PORT_MIN) <= (r.max ?? SOURCE_PORT_MAX), { message: 'has min above max' }),
      ])
      .optional(),
  })
  .optional();

/** Linux's default net.ipv4.ip_local_port_range, which its VXLAN device maps flow hashes into. */
export const SOURCE_PORT_MIN = 32768;
export const SOURCE_PORT_MAX = 60999;
export const SOURCE_PORT_SOCKETS = 16;
/** The priority vxtun was started with: −10 measured no faster here (CHANGELOG.md). */
export const DEFAULT_NICE = 0;

export interface DatapathConfig {
  kind: DatapathKind;
  gso: boolean;
  gro: boolean;
  tunOffload: boolean;
  /** With tunOffload: USO on the TUN when the kernel takes it. */
  tunUso: boolean;
  /** The addon forwards lone packets itself (native path). */
  express: boolean;
  /** SCHED_BATCH for the process's threads (native path). */
  batchScheduling: boolean;
  /** The native VXLAN socket drops datagrams from non-peers in the kernel. */
  peerFilter: boolean;
  /** CoDel on the native VXLAN socket's receive queue (microseconds); false: off. */
  codel: false | { targetUs: number; intervalUs: number };
  /** The TUN device's txqueuelen; undefined: the kernel's default. */
  tunQueueLength: number | undefined;
  /** Priority (nice) of the process's threads. */
  nice: number;
  /** Engines (TUN queues + SO_REUSEPORT sockets), native path only; undefined = defaultWorkers(). */
  workers: number | undefined;
  /** 'fixed': send from the VXLAN port; else a pool of `sockets` source ports spread over [min, max]. */
  sourcePorts: 'fixed' | { min: number; max: number; sockets: number };
}

function codelDefaults(raw: boolean | { targetUs?: number; intervalUs?: number } | undefined): DatapathConfig['codel'] {
  if (raw === undefined || raw === false) return false;
  const o = typeof raw === 'object' ? raw : {};
  return { targetUs: o.targetUs ?? CODEL_DEFAULTS.targetUs, intervalUs: o.intervalUs ?? CODEL_DEFAULTS.intervalUs };
}

export function datapathDefaults(raw: z.infer<typeof DatapathSchema>): DatapathConfig {
  const sp = raw?.sourcePorts;
  return {
    kind: raw?.kind ?? 'auto',
    gso: raw?.gso ?? true,
    gro: raw?.gro ?? true,
    tunOffload: raw?.tunOffload ?? true,
    tunUso: raw?.tunUso ?? true,
    express: raw?.express ?? true,
    batchScheduling: raw?.batchScheduling ?? true,
    peerFilter: raw?.peerFilter ?? true,
    codel: codelDefaults(raw?.codel),
    tunQueueLength: raw?.tunQueueLength,
    nice: raw?.nice ?? DEFAULT_NICE,
    workers: raw?.workers,
    sourcePorts: sp === 'fixed' ? 'fixed' : { min: sp?.min ?? SOURCE_PORT_MIN, max: sp?.max ?? SOURCE_PORT_MAX, sockets: sp?.sockets ?? SOURCE_PORT_SOCKETS },
  };
}

/**
 * The `security` section (static and flannel node configs alike):
 *
 *   "security": { "antiSpoofing": true | false | { "unknownPeer": true, "spoofedSource": true, "notForThisNode": true } }
 *
 * antiSpoofing (default: every check on; see src/packet/policy.ts and docs/operations.md): unknownPeer
 * drops VXLAN / flannel-udp datagrams from underlay addresses that are no peer; spoofedSource drops
 * inner packets whose source is not in the sending peer's subnet; notForThisNode drops inner packets
 * not addressed to this node's subnet (no relaying between peers). false turns all three off.
 */
export const SecuritySchema = z
  .strictObject({
    antiSpoofing: z
      .union([z.boolean(), z.strictObject({ unknownPeer: z.boolean().optional(), spoofedSource: z.boolean().optional(), notForThisNode: z.boolean().optional() })])
      .optional(),
  })
  .optional();

export interface SecurityConfig {
  antiSpoofing: AntiSpoofing;
}

export function securityDefaults(raw: z.infer<typeof SecuritySchema>): SecurityConfig {
  const a = raw?.antiSpoofing ?? true;
  if (typeof a === 'boolean') return { antiSpoofing: { unknownPeer: a, spoofedSource: a, notForThisNode: a } };
  return { antiSpoofing: { unknownPeer: a.unknownPeer ?? true, spoofedSource: a.spoofedSource ?? true, notForThisNode: a.notForThisNode ?? true } };
}
