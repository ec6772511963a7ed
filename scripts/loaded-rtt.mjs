#!/usr/bin/env node
// Interleaved development check (not the benchmark harness) of latency under load: every setup's
// two-node vxtun cluster is built once, then rounds alternate between them (order flipped every round).
// A round measures the idle ping RTT (40 pings 10 ms apart), then runs iperf3 pod to pod and pings
// every 10 ms from its second second to its end. Prints per setup the median (min–max) of the rounds'
// throughput (Gbit/s, or delivered kpps for udp), idle RTT p50, loaded RTT p50 and p90, in ms.
// With --hops (one setup, one round) it also captures the pings on both nodes' TUN devices, underlay
// interfaces and pod bridges and prints where each direction's time went.
// Usage (root, after npm run build):
//   node scripts/loaded-rtt.mjs [rounds=3] [seconds=5] [setups=native,tunq=16] [wire=veth|link] [load=4|1|udp] [--hops] [--cc=cubic|bbr|reno]
//   --cc: the pods' TCP congestion control (iperf3 -C); default the host's (net.ipv4.tcp_congestion_control).
//   setups: native (the defaults); tunq=N: datapath.tunQueueLength N; codel: datapath.codel true;
//   a JSON object: the datapath section itself.
import { execFileSync } from 'node:child_process';
import { Topology, waitForOutput } from '../dist/src/tools/lab/netns.js';
import { Cluster } from '../dist/src/tools/lab/cluster.js';
import { summarize } from '../dist/src/tools/bench/stats.js';
import { pingRtts } from '../dist/src/tools/bench/measure.js';

const args = process.argv.slice(2).filter((a) => a !== '--hops' && !a.startsWith('--cc='));
const cc = process.argv.find((a) => a.startsWith('--cc='))?.slice(5);
const hops = process.argv.includes('--hops');
const rounds = Number(args[0] ?? 3);
const seconds = Number(args[1] ?? 5);
const names = (args[2] ?? 'native,tunq=16').split(/,(?![^{]*})/);
const wire = args[3] ?? 'veth';
const load = args[4] ?? '4';
if (wire !== 'veth' && wire !== 'link') throw new Error(`wire must be veth or link: ${wire}`);
if (load !== 'udp' && !/^[1-9]\d*$/.test(load)) throw new Error(`load must be a number of TCP streams or udp: ${load}`);
if (!(rounds >= 1) || !(seconds >= 3)) throw new Error('rounds must be ≥ 1 and seconds ≥ 3');

const datapathOf = (name) => {
  if (name === 'native') return {};
  if (name === 'codel') return { codel: true };
  const q = /^tunq=(\d+)$/.exec(name);
  if (q) return { tunQueueLength: Number(q[1]) };
  if (name.startsWith('{')) return JSON.parse(name);
  throw new Error(`unknown setup ${name}: native, tunq=N, codel or a datapath JSON object`);
};
const fmt = (a, d = 2) => {
  const s = summarize(a);
  return `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
};
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];

/** Per hop of a ping's trip, from tcpdump stamps on node i's TUN (t), underlay (u) and pod bridge (p). */
async function startHopCaptures(nodes) {
  const caps = [];
  for (const [i, n] of nodes.entries()) {
    for (const [tag, dev] of [['t', 'vxtun0'], ['u', 'eth0'], ['p', 'cni0']]) {
      const file = `/tmp/loaded-rtt-${process.pid}-${i}${tag}.pcap`;
      // ICMP, plain or inside VXLAN (the inner IP protocol byte at udp[8 + 8 + 14 + 9])
      caps.push({ key: `${i}${tag}`, file, child: n.ns.spawn(['tcpdump', '-i', dev, '-n', '-U', '--time-stamp-precision=nano', '-w', file, 'icmp or (udp port 8472 and udp[39] = 1)']) });
    }
  }
  await new Promise((r) => setTimeout(r, 1500));
  return caps;
}

async function reportHops(caps) {
  for (const c of caps) c.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 1000));
  const seen = {};
  for (const c of caps) {
    const out = execFileSync('tshark', ['-r', c.file, '-d', 'udp.port==8472,vxlan', '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'icmp.type', '-e', 'icmp.seq'], { encoding: 'utf8' });
    for (const line of out.trim().split('\n')) {
      const [ts, type, seq] = line.split('\t');
      if (!seq) continue;
      (seen[`${type.split(',').pop()}:${seq.split(',').pop()}`] ??= {})[c.key] ??= Number(ts);
    }
    execFileSync('rm', ['-f', c.file]);
  }
  for (const [dir, type, s, r] of [['request', '8', '0', '1'], ['reply', '0', '1', '0']]) {
    const legs = [['pod → TUN', `${s}p`, `${s}t`], ['TUN ring + vxtun', `${s}t`, `${s}u`], ['wire', `${s}u`, `${r}u`], ['socket + vxtun', `${r}u`, `${r}t`], ['TUN → pod bridge', `${r}t`, `${r}p`]];
    for (const [name, a, b] of legs) {
      const d = Object.entries(seen).filter(([k]) => k.startsWith(`${type}:`)).map(([, v]) => (v[b] - v[a]) * 1000).filter(Number.isFinite).sort((x, y) => x - y);
      process.stdout.write(`  ${dir.padEnd(7)} ${name.padEnd(17)} p50 ${d.length ? quantile(d, 0.5).toFixed(3) : '-'} ms  p90 ${d.length ? quantile(d, 0.9).toFixed(3) : '-'} ms  (${d.length} pings)\n`);
    }
  }
}

const built = [];
try {
  for (const name of names) {
    const topology = new Topology();
    const s = { name, topology, rate: [], idle: [], p50: [], p90: [], lost: [] };
    built.push(s);
    s.cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'], wire, logLevel: 'warn', vxtunConfig: { datapath: datapathOf(name) } });
    s.nodes = [s.cluster.node(1), s.cluster.node(2)];
    s.server = s.nodes[1].pod.spawn(['iperf3', '-s', '--forceflush', '-B', s.nodes[1].podIp, '-p', '5999']);
    await waitForOutput(s.server, /listening/, { timeoutMs: 10_000 });
  }
  for (let round = 0; round < rounds; round++) {
    for (const s of round % 2 ? [...built].reverse() : built) {
      const [a, b] = s.nodes;
      const idle = await pingRtts(a.pod, b.podIp, 40, 10);
      const caps = hops ? await startHopCaptures(s.nodes) : [];
      const traffic = load === 'udp' ? ['-u', '-b', '0', '-l', '1350'] : ['-P', load, ...(cc ? ['-C', cc] : [])];
      const iperf = a.pod.exec(['iperf3', '-c', b.podIp, '-p', '5999', '-t', String(seconds), '-J', ...traffic], { timeoutMs: (seconds + 30) * 1000 });
      await new Promise((r) => setTimeout(r, 1500));
      const count = Math.floor((seconds - 2.5) * 100);
      const loaded = await pingRtts(a.pod, b.podIp, count, 10);
      const res = await iperf;
      let j;
      try {
        j = JSON.parse(res.stdout);
      } catch {
        process.stdout.write(`${s.name} round ${round + 1}: iperf3 failed (${res.stderr.trim().split('\n')[0] ?? ''}), left out\n`);
        continue;
      }
      if (hops) await reportHops(caps);
      const rtts = (loaded.ok ? loaded.value : []).sort((x, y) => x - y);
      s.rate.push(load === 'udp' ? (j.end.sum.packets * (1 - j.end.sum.lost_percent / 100)) / seconds / 1000 : j.end.sum_received.bits_per_second / 1e9);
      if (idle.ok) s.idle.push(summarize(idle.value).median);
      s.p50.push(rtts.length ? quantile(rtts, 0.5) : NaN);
      s.p90.push(rtts.length ? quantile(rtts, 0.9) : NaN);
      s.lost.push(count - rtts.length);
      process.stdout.write(`${s.name} round ${round + 1}: ${s.rate.at(-1).toFixed(2)} ${load === 'udp' ? 'kpps' : 'Gbit/s'}, idle p50 ${s.idle.at(-1)?.toFixed(3)} ms, loaded p50 ${s.p50.at(-1)} p90 ${s.p90.at(-1)} ms, ${s.lost.at(-1)} of ${count} pings lost\n`);
    }
  }
  for (const s of built) {
    if (s.rate.length === 0) continue;
    process.stdout.write(`${s.name}: ${fmt(s.rate)} ${load === 'udp' ? 'kpps delivered' : 'Gbit/s'}, idle RTT p50 ${fmt(s.idle, 3)} ms, loaded RTT p50 ${fmt(s.p50, 3)} p90 ${fmt(s.p90, 3)} ms, pings lost ${s.lost.join('/')}\n`);
  }
} finally {
  for (const s of built) {
    s.server?.kill();
    await s.cluster?.destroy().catch(() => {});
    await s.topology.destroy().catch(() => {});
  }
}
