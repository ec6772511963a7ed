#!/usr/bin/env node
// Quick UDP check while developing TUN offloads (not the benchmark harness): `iperf3 -u -b 0 -l N`
// pod to pod on three lab clusters built side by side — kernel VXLAN ↔ kernel VXLAN, vxtun ↔ vxtun
// with USO off (datapath.tunUso false), vxtun ↔ vxtun with its defaults — measured in turn, round
// after round (order reversed every other round), so load swings hit all three. Prints packets/s
// delivered, loss, each vxtun's ratio to the kernel in its round (median, min–max), and the
// receiving vxtun's CPU time per packet it wrote into its TUN. Other setups: w1 / w2, the defaults
// with one / two engines (datapath.workers); the kernel is always measured.
// Usage (root, after npm run build):
//   node scripts/quick-udp.mjs [rounds=4] [seconds=5] [length=1350] [setups=uso-off,uso-on] [wire=veth|link]
import { readFileSync } from 'node:fs';
import { Topology, waitForOutput } from '../dist/src/tools/lab/netns.js';
import { Cluster } from '../dist/src/tools/lab/cluster.js';
import { controlRequest } from '../dist/src/control/socket.js';
import { median } from '../dist/src/tools/bench/stats.js';

const rounds = Number(process.argv[2] ?? 4);
const seconds = Number(process.argv[3] ?? 5);
const length = process.argv[4] ?? '1350';
const known = {
  'uso-off': { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', tunUso: false } } },
  'uso-on': { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native' } } },
  w1: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', workers: 1 } } },
  w2: { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', workers: 2 } } },
};
const vxtunSetups = (process.argv[5] ?? 'uso-off,uso-on').split(',');
for (const name of vxtunSetups) if (!known[name]) throw new Error(`unknown setup ${name}: one of ${Object.keys(known).join(', ')}`);
const wire = process.argv[6] ?? 'veth';
if (wire !== 'veth' && wire !== 'link') throw new Error(`wire must be veth or link: ${wire}`);
const setups = { kernel: { kinds: ['kernel', 'kernel'] }, ...Object.fromEntries(vxtunSetups.map((n) => [n, known[n]])) };

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const range = (xs, digits) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

const topologies = [];
const clusters = {};
const kpps = {}, loss = {}, ratio = {}, usPerPacket = {};
for (const name of Object.keys(setups)) [kpps[name], loss[name], ratio[name], usPerPacket[name]] = [[], [], [], []];
try {
  for (const [name, setup] of Object.entries(setups)) {
    const topology = new Topology();
    topologies.push(topology);
    const cluster = await Cluster.build(topology, { ...setup, wire, logLevel: 'warn' });
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const server = b.pod.spawn(['iperf3', '-s', '--forceflush', '-B', b.podIp, '-p', '5999']);
    await waitForOutput(server, /listening/, { timeoutMs: 10_000 });
    const receiverPid = b.vxtun ? (await controlRequest(b.vxtun.controlSocket, { cmd: 'info' })).pid : undefined;
    clusters[name] = { cluster, a, b, receiverPid };
    await a.pod.exec(['iperf3', '-c', b.podIp, '-p', '5999', '-u', '-b', '0', '-l', length, '-t', '1']); // warm-up
  }
  for (let r = 0; r < rounds; r++) {
    const order = Object.keys(setups);
    if (r % 2 === 1) order.reverse();
    const round = {};
    for (const name of order) {
      const { a, b, receiverPid } = clusters[name];
      const cpu0 = receiverPid ? cpuSeconds(receiverPid) : 0;
      const rx0 = b.vxtun ? (await b.vxtun.counters()).rx.packets : 0;
      const res = await a.pod.exec(['iperf3', '-c', b.podIp, '-p', '5999', '-u', '-b', '0', '-l', length, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
      const sum = JSON.parse(res.stdout).end.sum;
      round[name] = (sum.packets - sum.lost_packets) / sum.seconds / 1000;
      kpps[name].push(round[name]);
      loss[name].push(sum.lost_percent);
      if (receiverPid) usPerPacket[name].push(((cpuSeconds(receiverPid) - cpu0) / ((await b.vxtun.counters()).rx.packets - rx0)) * 1e6);
    }
    for (const name of vxtunSetups) ratio[name].push(round[name] / round.kernel);
    process.stdout.write(`round ${r + 1}: ${Object.keys(setups).map((n) => `${n} ${round[n].toFixed(1)} kpps`).join(', ')}\n`);
  }
  for (const name of Object.keys(setups)) process.stdout.write(`${name}: ${range(kpps[name], 1)} kpps delivered, loss ${range(loss[name], 1)} %\n`);
  for (const name of vxtunSetups) {
    process.stdout.write(`${name} / kernel: ×${range(ratio[name], 3)}; receiving vxtun ${range(usPerPacket[name], 2)} µs CPU per packet\n`);
  }
  const [first, second] = vxtunSetups;
  if (second) process.stdout.write(`${second} / ${first} per round: ×${range(kpps[second].map((x, i) => x / kpps[first][i]), 3)}\n`);
} finally {
  for (const { cluster } of Object.values(clusters)) await cluster.destroy(); // vxtun nodes stop on SIGTERM
  for (const topology of topologies) await topology.destroy(); // also one whose cluster never came up
}
