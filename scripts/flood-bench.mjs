#!/usr/bin/env node
// Flood resilience (issue 16): the share of its unflooded pod-to-pod TCP rate a dataplane keeps while
// a host that is no peer floods the receiving node's VXLAN port from one core (bench/udp-flood,
// sendmmsg of VXLAN-looking datagrams with the network's VNI). vxtun and the kernel's VXLAN are each
// built once as a two-node cluster with a flooder on their underlay; every round measures each
// setup unflooded then flooded (iperf3, one stream), the setups' order flipped every round so a swing
// in the machine's load hits both alike. Prints each round, then per setup the median (min–max) of
// the per-round ratios, and vxtun's median ratio over the kernel's (>= 1: vxtun keeps at least as much).
// A benchmark, not a test: run it on a quiet machine.
// Usage (root, after npm run build): node scripts/flood-bench.mjs [rounds=5] [seconds=5] [size=1400] [--json] [--also CONFIG_JSON]
//   --also: a third setup, vxtun with CONFIG_JSON merged into its config (e.g. '{"datapath":{"workers":1}}'), interleaved with the others.
import { Topology, waitForOutput } from '../dist/src/tools/lab/netns.js';
import { Cluster } from '../dist/src/tools/lab/cluster.js';
import { startFlood, buildUdpFlood } from '../dist/src/tools/lab/udp-flood.js';
import { summarize } from '../dist/src/tools/bench/stats.js';
import { controlRequest } from '../dist/src/control/socket.js';

const argv = process.argv.slice(2);
const alsoAt = argv.indexOf('--also');
const also = alsoAt >= 0 ? JSON.parse(argv[alsoAt + 1] ?? 'null') : undefined;
if (alsoAt >= 0 && (also === null || typeof also !== 'object')) throw new Error(`--also needs a JSON object: ${argv[alsoAt + 1]}`);
const args = argv.filter((a, i) => a !== '--json' && (alsoAt < 0 || (i !== alsoAt && i !== alsoAt + 1)));
const json = process.argv.includes('--json');
const [rounds, seconds, size] = [0, 1, 2].map((i) => Number(args[i] ?? [5, 5, 1400][i]));
for (const [name, v] of Object.entries({ rounds, seconds, size })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer: ${v}`);
}
const FLOODER_IP = '198.18.0.99';
const PORT = '5999';
const num = (v, d) => (v === null || Number.isNaN(v) ? '?' : v.toFixed(d));
const say = (line) => {
  if (!json) process.stdout.write(`${line}\n`);
};

async function iperf(s) {
  const res = await s.client.pod.exec(['iperf3', '-c', s.server.podIp, '-p', PORT, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
  const j = JSON.parse(res.stdout || '{}');
  if (j.end?.sum_received === undefined) throw new Error(`${s.name}: iperf3 failed: ${j.error ?? res.stderr.trim()}`);
  return j.end.sum_received.bits_per_second / 1e9;
}

/** The flood runs from before the measurement starts until after it ends. */
async function flooded(s) {
  const flooder = await startFlood(s.flooder, { dst: s.server.publicIp, seconds: seconds + 3, size });
  const report = new Promise((resolve) => {
    let out = '';
    flooder.stdout.on('data', (d) => (out += d));
    flooder.once('exit', () => resolve(out.trim() ? JSON.parse(out.trim()) : undefined));
  });
  await new Promise((r) => setTimeout(r, 1000));
  try {
    return { gbits: await iperf(s), flood: await report };
  } finally {
    if (flooder.exitCode === null) flooder.kill();
  }
}

const setups = [
  { name: 'vxtun', kinds: ['vxtun', 'vxtun'] },
  { name: 'kernel', kinds: ['kernel', 'kernel'] },
  ...(also ? [{ name: `vxtun ${JSON.stringify(also)}`, kinds: ['vxtun', 'vxtun'], vxtunConfig: also }] : []),
];
await buildUdpFlood();
try {
  for (const s of setups) {
    s.topology = new Topology();
    s.cluster = await Cluster.build(s.topology, { kinds: s.kinds, logLevel: 'warn', ...(s.vxtunConfig ? { vxtunConfig: s.vxtunConfig } : {}) });
    [s.client, s.server] = [s.cluster.node(1), s.cluster.node(2)];
    s.flooder = await s.topology.netns('flood');
    await s.cluster.underlay.attach(s.flooder, FLOODER_IP);
    s.iperfServer = s.server.pod.spawn(['iperf3', '-s', '--forceflush', '-B', s.server.podIp, '-p', PORT]);
    await waitForOutput(s.iperfServer, /listening/, { timeoutMs: 10_000 });
    s.rounds = [];
  }
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 ? [...setups].reverse() : setups) {
      const clean = await iperf(s);
      const { gbits, flood } = await flooded(s);
      s.rounds.push({ clean, flooded: gbits, ratio: gbits / clean, floodPerSecond: flood?.perSecond ?? NaN });
      say(`${s.name} round ${r + 1}: ${clean.toFixed(3)} Gbit/s clean, ${gbits.toFixed(3)} flooded (×${(gbits / clean).toFixed(2)}), flood ${num(flood?.perSecond ?? NaN, 0)} datagrams/s`);
    }
  }
  const result = { rounds, seconds, size, setups: {} };
  for (const s of setups) {
    const ratio = summarize(s.rounds.map((x) => x.ratio));
    const entry = { ratio, clean: summarize(s.rounds.map((x) => x.clean)), flooded: summarize(s.rounds.map((x) => x.flooded)), floodPerSecond: summarize(s.rounds.map((x) => x.floodPerSecond)), rounds: s.rounds };
    if (s.server.vxtun) entry.serverUdpCounters = (await controlRequest(s.server.vxtun.controlSocket, { cmd: 'info' })).datapathCounters.udp;
    result.setups[s.name] = entry;
    say(`${s.name}: kept ×${num(ratio.median, 2)} (${num(ratio.min, 2)}–${num(ratio.max, 2)}) of ${num(entry.clean.median, 3)} Gbit/s under ${num(entry.floodPerSecond.median, 0)} datagrams/s, n=${s.rounds.length}`);
  }
  result.vxtunOverKernel = result.setups.vxtun.ratio.median / result.setups.kernel.ratio.median;
  say(`vxtun's share / the kernel's share: ×${num(result.vxtunOverKernel, 2)} (>= 1: vxtun keeps at least as much)`);
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  for (const s of setups) {
    s.iperfServer?.kill();
    await s.cluster?.destroy().catch(() => {});
    await s.topology?.destroy().catch(() => {});
  }
}
