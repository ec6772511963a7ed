/** `vxtun status`: a running node's counters and route table, read over its control socket. */
import { controlRequest } from '../control/socket.js';
import { defaultControlSocket } from '../control/socket-path.js';
import { outcomeTotals, type CounterSnapshot } from '../packet/counters.js';
import { describeSourcePorts } from '../datapath/select.js';
import { socketDropReasons, type InfoReply, type RouteReply } from '../node/control-api.js';

/** The offloads a node runs with, from its `info.features`: "udp-gso udp-gro tun-tso tun-uso", or "-". */
export function describeOffloads(features: Record<string, unknown>): string {
  const names: Array<[string, string]> = [
    ['udpGso', 'udp-gso'],
    ['udpGro', 'udp-gro'],
    ['tunOffload', 'tun-tso'],
    ['tunUso', 'tun-uso'],
  ];
  return names.filter(([key]) => features[key] === true).map(([, name]) => name).join(' ') || '-';
}

export async function runStatus(o: { device: string; controlSocket?: string; json?: boolean }): Promise<number> {
  const path = o.controlSocket ?? defaultControlSocket(o.device);
  try {
    // A vxtun node answers every field; the naive dataplane of the benchmarks answers a few of them.
    const info = (await controlRequest(path, { cmd: 'info' })) as Partial<InfoReply> & { starting?: boolean; error?: string };
    if (info.starting === true) {
      process.stdout.write(o.json ? `${JSON.stringify({ starting: true })}\n` : `${path}: ${info.error ?? 'starting'}\n`);
      return 1;
    }
    const counters = (await controlRequest(path, { cmd: 'counters' })) as CounterSnapshot;
    const routes = (await controlRequest(path, { cmd: 'routes' })) as RouteReply;
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ info, counters, outcomes: outcomeTotals(counters), routes })}\n`);
      return 0;
    }
    const lines: string[] = [];
    lines.push(`${String(info.device)}  subnet ${String(info.subnet)}  vtep ${String(info.vtepMac)}  vni ${info.vni === null ? '-' : String(info.vni)}  udp ${String(info.publicIp)}:${String(info.port)}  mtu ${String(info.mtu)}`);
    const features = info.features ?? {};
    if (info.datapath !== undefined) {
      const queue = features.tunQueueLength === undefined ? '' : `  tun queue ${String(features.tunQueueLength)}`;
      lines.push(`datapath ${String(info.datapath)}  workers ${String(features.workers ?? 1)}  source ports ${describeSourcePorts(features, Number(info.port))}${queue}`);
      lines.push(`offloads ${describeOffloads(features)}`);
      const x = info.datapathCounters?.express;
      // Packets the addon forwarded without JS (lone ones and its bulk batches), and the wake-ups it handed to the pipeline.
      if (features.express === true && x !== undefined) {
        lines.push(`express tx ${x.TxPackets ?? 0} rx ${x.RxPackets ?? 0} packets   handed over ${x.OutHandedOver ?? 0} out ${x.InHandedOver ?? 0} in`);
        // Idle wake-ups served on the express thread, and the descriptors' trips to the event loop and back.
        lines.push(features.expressThread === true ? `express thread ${x.ThreadPasses ?? 0} wake-ups   to the event loop ${x.LoopHandovers ?? 0}   back ${x.ThreadResumes ?? 0}` : 'express thread off');
        // Busy traffic the addon carried in batches, no JavaScript run: inbound written into the TUN, outbound sent.
        const bulkIn = features.bulkIn === true ? `in ${x.InBatches ?? 0} batches ${x.InBatchPackets ?? 0} packets` : 'in off';
        const bulkOut = features.bulkOut === true ? `out ${x.OutBatches ?? 0} batches ${x.OutBatchPackets ?? 0} packets` : 'out off';
        lines.push(`express bulk ${bulkIn}   ${bulkOut}`);
      } else {
        lines.push('express off');
      }
    }
    // The trace's words: every packet ends forwarded, answered or dropped.
    const totals = outcomeTotals(counters);
    const nonzero = (r: Record<string, number>): string =>
      Object.entries(r)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || '-';
    lines.push(`forwarded out ${totals.forwarded.out} packets ${counters.tx.bytes} bytes   in ${totals.forwarded.in} packets ${counters.rx.bytes} bytes`);
    lines.push(`answered  ${totals.answered}  ${nonzero(counters.answered)}`);
    // Datagrams dropped at the socket before the engine saw them are drops too: by the kernel (its
    // receive buffer was full, or the peer filter refused a non-peer), or by CoDel as they left a queue
    // that had stood too long.
    const socketDrops = socketDropReasons(info.datapathCounters?.udp);
    const socketTotal = Object.values(socketDrops).reduce((a, b) => a + b, 0);
    lines.push(`dropped   ${totals.dropped + socketTotal}  ${nonzero({ ...counters.dropped, ...socketDrops })}`);
    lines.push(`fixed     ${nonzero(counters.fixed)}`);
    lines.push('routes:');
    for (const r of routes) lines.push(`  ${String(r.subnet)} -> ${String(r.publicIp)}:${String(r.port)} vtep ${String(r.vtepMac)} vni ${String(r.vni)}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`vxtun: ${noNodeHint(err as NodeJS.ErrnoException, path)}\n`);
    return 1;
  }
}

/** What to say when the control socket does not answer: which socket was tried, and how to name another. */
export function noNodeHint(err: NodeJS.ErrnoException, path: string): string {
  const other = 'name another with --device NAME (its socket /run/vxtun/netns-<inode>/NAME.sock) or --control-socket PATH';
  if (err.code === 'ENOENT') return `no node is running with control socket ${path} (no such socket); is vxtun up running? ${other}`;
  if (err.code === 'ECONNREFUSED') return `no node answers on control socket ${path} (a stale socket: the node that made it has stopped); ${other}`;
  if (err.code === 'EACCES') return `control socket ${path}: permission denied (run as root)`;
  return err.message;
}
