#!/usr/bin/env node
// Quick single-stream TCP throughput check while developing the fast path (not the benchmark
// harness): for each pair, build a two-node cluster in fresh namespaces, run `iperf3 -c` from
// pod 1 to pod 2 for a few seconds, several times, and print median and min–max in Gbit/s and
// as a ratio to kernel<->kernel measured in the same run.
// Usage (root, after npm run build): node scripts/quick-tput.mjs [runs=3] [seconds=5] [pairs=kk,nn,tt,nk] [streams=1]
//   streams: parallel TCP streams per run (iperf3 -P); several flows are what spreads over workers.
//   pairs: kk kernel<->kernel, nn vxtun(native)<->vxtun(native), tt vxtun(ts)<->vxtun(ts), nk vxtun(native)->kernel,
//          kn kernel->vxtun, ng native without UDP GSO, n1/n2 native with one/two workers, nh hashed source ports,
//          nf native with the fixed source port (nn: the defaults, one worker per core and hashed ports)
import { Topology, waitForOutput } from '../dist/src/tools/lab/netns.js';
import { Cluster } from '../dist/src/tools/lab/cluster.js';

const runs = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 5);
const pairs = (process.argv[4] ?? 'kk,nn,tt,nk').split(',');
const streams = Number(process.argv[5] ?? 1);
const setups = {
  kk: { kinds: ['kernel', 'kernel'] },
  nn: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native' } } },
  tt: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'ts' } } },
  nk: { kinds: ['vxtun', 'kernel'], vxtunConfig: { datapath: { kind: 'native' } } },
  kn: { kinds: ['kernel', 'vxtun'], vxtunConfig: { datapath: { kind: 'native' } } },
  ng: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', gso: false } } },
  n1: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', workers: 1 } } },
  n2: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', workers: 2 } } },
  nh: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', sourcePorts: {} } } },
  nf: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', sourcePorts: 'fixed' } } },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {};
const rtt = {};
for (const p of pairs) {
  const topo = new Topology();
  try {
    const cluster = await Cluster.build(topo, { ...setups[p], logLevel: 'warn' });
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const server = b.pod.spawn(['iperf3', '-s', '--forceflush', '-B', b.podIp, '-p', '5999']);
    await waitForOutput(server, /listening/, { timeoutMs: 10000 });
    const gbits = [];
    for (let r = 0; r < runs; r++) {
      const res = await a.pod.exec(['iperf3', '-c', b.podIp, '-p', '5999', '-t', String(seconds), '-P', String(streams), '-J'], { timeoutMs: (seconds + 30) * 1000 });
      const j = JSON.parse(res.stdout || '{}');
      if (j.end?.sum_received === undefined) {
        process.stdout.write(`${p}: run ${r + 1} failed (${j.error ?? res.stderr.trim()}), left out\n`);
        continue;
      }
      gbits.push(j.end.sum_received.bits_per_second / 1e9);
    }
    results[p] = gbits;
    // ping RTT p50 pod to pod (after the TCP runs, so ARP/neighbour state is warm)


    const pp = await a.pod.exec(['ping', '-c', '30', '-i', '0.05', b.podIp]);
    const rtts = [...pp.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    rtt[p] = median(rtts);

    process.stdout.write(`${p}: ping RTT p50 ${rtt[p]} ms over ${rtts.length} echoes\n`);
    const m = median(gbits);
    process.stdout.write(`${p}: median ${m.toFixed(3)} Gbit/s (min ${Math.min(...gbits).toFixed(3)}, max ${Math.max(...gbits).toFixed(3)}) runs ${gbits.map((g) => g.toFixed(3)).join(' ')}\n`);
    await cluster.destroy();
  } finally {
    await topo.destroy();
  }
}
if (results.kk) {
  const k = median(results.kk);
  for (const [p, g] of Object.entries(results)) {
    if (p === 'kk') continue;
    const rs = g.map((x) => x / k);
    process.stdout.write(`${p}/kk: RTT p50 ${(rtt[p] / rtt.kk).toFixed(2)}x the kernel's\n`);
    process.stdout.write(`${p}/kk: median ${(median(g) / k * 100).toFixed(1)} % (min ${(Math.min(...rs) * 100).toFixed(1)}, max ${(Math.max(...rs) * 100).toFixed(1)})\n`);
  }
}
