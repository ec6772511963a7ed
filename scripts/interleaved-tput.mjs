#!/usr/bin/env node
// Interleaved A/B development check (not the benchmark harness): every setup's two-node cluster is
// built once, then iperf3 TCP rounds alternate between them, the order flipped every round, so a
// swing in the machine's load hits every setup alike. Prints per setup the median (min–max) Gbit/s
// and the dataplane CPU seconds (both nodes' processes) per GB carried, then ratios of medians.
// Usage (root, after npm run build): node scripts/interleaved-tput.mjs [rounds=5] [seconds=5] [streams=1] [setups=ts-off,ts,naive,kernel] [wire=veth|link]
//   ts: --datapath ts (TUN offloads in TypeScript); ts-off: the same with tunOffload false;
//   native: the defaults; w1/w2: one/two engines (datapath.workers); no-bulk-in, no-bulk-out, no-bulk: the defaults with VXTUN_NO_BULK_IN=1, VXTUN_NO_BULK_OUT=1, both; naive: the naive fs.read + dgram.send design; kernel: Linux's VXLAN.
import { readFileSync } from 'node:fs';
import { Topology, waitForOutput } from '../dist/src/tools/lab/netns.js';
import { Cluster } from '../dist/src/tools/lab/cluster.js';
import { summarize } from '../dist/src/tools/bench/stats.js';

const [rounds, seconds, streams] = [2, 3, 4].map((i, k) => Number(process.argv[i] ?? [5, 5, 1][k]));
const names = (process.argv[5] ?? 'ts-off,ts,naive,kernel').split(',');
const wire = process.argv[6] ?? 'veth';
if (wire !== 'veth' && wire !== 'link') throw new Error(`wire must be veth or link: ${wire}`);
const setups = {
  'ts-off': { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'ts', tunOffload: false } } },
  ts: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'ts' } } },
  native: { kinds: ['vxtun', 'vxtun'] },
  w1: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { workers: 1 } } },
  w2: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { workers: 2 } } },
  'no-bulk-in': { kinds: ['vxtun', 'vxtun'], env: { VXTUN_NO_BULK_IN: '1' } },
  'no-bulk-out': { kinds: ['vxtun', 'vxtun'], env: { VXTUN_NO_BULK_OUT: '1' } },
  'no-bulk': { kinds: ['vxtun', 'vxtun'], env: { VXTUN_NO_BULK_IN: '1', VXTUN_NO_BULK_OUT: '1' } },
  naive: { kinds: ['naive', 'naive'] },
  kernel: { kinds: ['kernel', 'kernel'] },
};

/** utime + stime of a process, seconds (threads included). */
const cpuOf = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const dataplaneCpu = (s) => (s.nodes.every((n) => n.vxtun) ? s.nodes.reduce((sum, n) => sum + cpuOf(n.vxtun.child.pid), 0) : NaN);
const fmt = (v, d = 3) => `${v.median.toFixed(d)} (${v.min.toFixed(d)}–${v.max.toFixed(d)})`;

const built = [];
try {
  for (const name of names) {
    if (!setups[name]) throw new Error(`unknown setup ${name}: one of ${Object.keys(setups).join(', ')}`);
    const topology = new Topology();
    const s = { name, topology, gbits: [], cpuPerGb: [] };
    built.push(s);
    // A setup's forcing switches reach its vxtun processes through the environment they start with.
    const { env = {}, ...setup } = setups[name];
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      s.cluster = await Cluster.build(topology, { ...setup, wire, logLevel: 'warn' });
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    s.nodes = [s.cluster.node(1), s.cluster.node(2)];
    s.server = s.nodes[1].pod.spawn(['iperf3', '-s', '--forceflush', '-B', s.nodes[1].podIp, '-p', '5999']);
    await waitForOutput(s.server, /listening/, { timeoutMs: 10_000 });
  }
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 ? [...built].reverse() : built) {
      const cpu0 = dataplaneCpu(s);
      const res = await s.nodes[0].pod.exec(['iperf3', '-c', s.nodes[1].podIp, '-p', '5999', '-t', String(seconds), '-P', String(streams), '-J'], { timeoutMs: (seconds + 30) * 1000 });
      const j = JSON.parse(res.stdout || '{}');
      if (j.end?.sum_received === undefined) {
        process.stdout.write(`${s.name} round ${r + 1}: failed (${j.error ?? res.stderr.trim()}), left out\n`);
        continue;
      }
      s.gbits.push(j.end.sum_received.bits_per_second / 1e9);
      s.cpuPerGb.push((dataplaneCpu(s) - cpu0) / (j.end.sum_received.bytes / 1e9));
      process.stdout.write(`${s.name} round ${r + 1}: ${s.gbits.at(-1).toFixed(3)} Gbit/s\n`);
    }
  }
  for (const s of built) {
    const cpu = s.cpuPerGb.every(Number.isFinite) ? `, dataplane CPU ${fmt(summarize(s.cpuPerGb), 1)} s/GB` : '';
    process.stdout.write(`${s.name}: ${fmt(summarize(s.gbits))} Gbit/s, n=${s.gbits.length}${cpu}\n`);
  }
  for (const [i, a] of built.entries()) {
    for (const b of built.slice(i + 1)) {
      process.stdout.write(`${a.name} / ${b.name}: ×${(summarize(a.gbits).median / summarize(b.gbits).median).toFixed(2)}\n`);
    }
  }
} finally {
  for (const s of built) {
    s.server?.kill();
    await s.cluster?.destroy().catch(() => {});
    await s.topology.destroy().catch(() => {});
  }
}
