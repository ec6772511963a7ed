/**
 * `vxtun lab`: the main job on an embedded default. Two nodes in network namespaces — node 1
 * runs vxtun, node 2 the kernel's VXLAN set up as flanneld sets up flannel.1 — a pod on each,
 * a ping across both ways, one more traced along its whole path (vxtun's points and the kernel's
 * hops), then everything torn down.
 */
import { Topology } from '../tools/lab/netns.js';
import { Cluster } from '../tools/lab/cluster.js';
import { outcomeTotals } from '../packet/counters.js';
import { traceOnePing, type CapturePlace } from '../tools/lab/kernel-hops.js';
import { formatItem } from '../trace/printer.js';
import { WallClock } from '../trace/time.js';

export async function runLab(o: { keep?: boolean }): Promise<number> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    process.stderr.write('vxtun: vxtun lab must run as root (it creates network namespaces)\n');
    return 1;
  }
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const topology = new Topology();
  let cluster: Cluster | undefined;
  let code = 0;
  try {
    say(`vxtun lab ${topology.prefix}: building a two-node flannel-style cluster`);
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'kernel'], logLevel: 'warn', progress: (l) => say(`  ${l}`) });
    const [a, b] = [cluster.node(1), cluster.node(2)];
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      say(`\n$ ping -c 3 ${to.podIp}   (pod on node ${from.index} [${from.kind}] -> pod on node ${to.index} [${to.kind}])`);
      const r = await from.pod.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', to.podIp]);
      say(r.stdout.trimEnd().split('\n').map((l) => `  ${l}`).join('\n'));
      if (r.code !== 0) code = 1;
    }
    // One more ping, traced end to end: vxtun's points and the kernel's hops (packet sockets in every namespace).
    say(`\n$ ping -c 1 ${b.podIp}, traced: the whole path, kernel hops included`);
    const places = cluster.nodes.flatMap((n): CapturePlace[] => [
      { ns: n.pod.name, node: n.publicIp, place: 'pod' },
      { ns: n.ns.name, node: n.publicIp, place: 'node' },
    ]);
    const traced = await traceOnePing({ sockets: [a.vxtun!.controlSocket], places, fromPod: a.pod.name, to: b.podIp, onNoCapture: (why) => say(`  (the kernel's hops are not shown: ${why})`) });
    if (traced.ping.code !== 0) code = 1;
    const wall = new WallClock();
    for (const item of traced.items) say(`\n${formatItem(item, { wall })}`.replace(/\n/g, '\n  '));
    const counters = await a.vxtun!.counters();
    const totals = outcomeTotals(counters);
    say(`\nvxtun on node 1: forwarded ${totals.forwarded.out} out, ${totals.forwarded.in} in; answered ${totals.answered}; dropped ${totals.dropped}`);
    if (o.keep) {
      say(`\nlab kept running: namespaces ${topology.namespaces.map((n) => n.name).join(' ')}; Ctrl-C to tear down`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
  } catch (err) {
    process.stderr.write(`vxtun: lab failed: ${(err as Error).message}\n`);
    code = 1;
  } finally {
    await cluster?.destroy();
    await topology.destroy();
    say(`\nlab torn down: ${code === 0 ? 'ping crossed vxtun <-> kernel VXLAN both ways' : 'FAILED'}`);
  }
  return code;
}
