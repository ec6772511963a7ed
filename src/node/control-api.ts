/**
 * The control socket's answers (src/control/socket.ts carries them), one shape for every mode:
 * `vxtun status` reads the same `info` from a static node as from one that joined through etcd.
 */
import type { Underlay } from '../control/host.js';
import type { CounterSnapshot } from '../packet/counters.js';
import type { StreamReply } from '../control/socket.js';
import type { LeaseStats } from './route-source.js';
import type { MemoryReport } from './memory.js';

export interface InfoReply {
  device: string;
  mtu: number;
  publicIp: string;
  underlay: Underlay;
  network: string;
  subnet: string;
  backend: 'vxlan' | 'udp';
  /** null on flannel's udp backend, which has no VNI. */
  vni: number | null;
  port: number;
  vtepMac: string;
  /** Where the routes come from: "static peers (config file)", "static (config file)", etcd's endpoints. */
  registry: string;
  /** The lease manager's counts; null for a node with static peers (no lease). */
  lease: LeaseStats | null;
  pid: number;
  /** This boot of the host (/proc/sys/kernel/random/boot_id): nodes with the same one share trace clocks. */
  bootId: string;
  datapath: 'native' | 'ts';
  /** What runs (not what was asked for): offloads, workers, express path, scheduling. */
  features: Record<string, boolean | number | string>;
  /** Packets each engine carried, the main thread's first. */
  engines: Array<{ txPackets: number; rxPackets: number }>;
  /** The UDP socket's, the TUN device's and the express path's own counters, summed over the engines. */
  datapathCounters: { udp: Record<string, number>; tun: Record<string, number>; express: Record<string, number> };
  /** The process's resident set and the main thread's V8 heap (src/node/memory.ts). */
  memory: MemoryReport;
  /** Dual-stack: the IPv6 side (flannel-v6.<VNI>'s counterpart), its own TUN device and engine. */
  ipv6?: { device: string; mtu: number; network: string; subnet: string; publicIpv6: string; vtepMac: string; txPackets: number; rxPackets: number };
}

/** The drops the VXLAN socket's counters hold, by the reason status and metrics name them. */
export function socketDropReasons(udp: Record<string, number> | undefined): Record<string, number> {
  return { 'udp-socket-full-or-not-peer': udp?.RecvOverflows ?? 0, 'queue-delay': udp?.CodelDrops ?? 0 };
}

/** direct: routed by a kernel route on the underlay (DirectRouting), not through the tunnel. */
export type RouteReply = Array<{ subnet: string; publicIp: string; port: number; vtepMac?: string; vni?: number; direct?: true }>;

export interface NodeControl {
  info(): InfoReply;
  counters(): CounterSnapshot;
  routes(): RouteReply;
  trace(request: { [k: string]: unknown }): StreamReply | { error: string };
}

/** The control socket's request handler over a node's typed API. */
export function controlHandler(node: NodeControl): (request: { cmd: string; [k: string]: unknown }) => unknown {
  return (req) => {
    switch (req.cmd) {
      case 'info':
        return node.info();
      case 'counters':
        return node.counters();
      case 'routes':
        return node.routes();
      case 'trace':
        return node.trace(req);
      default:
        return { error: `unknown command ${JSON.stringify(req.cmd)}` };
    }
  };
}
