#!/usr/bin/env node
// A vxtun node's footprint: peak memory under full load, and the time from exec to ready.
//  1. Load: a two-node vxtun cluster (src/tools/lab/cluster.ts), pod to pod iperf3 TCP with 4 streams
//     for `seconds`, then UDP at unlimited rate (1350-byte datagrams) for `seconds`, while VmRSS of
//     each node's process is sampled every 100 ms from /proc/<pid>/status; at the end its VmHWM (the
//     kernel's own peak). Prints per node the RSS idle before load, after each phase, and the peak;
//     and the peak of RssAnon, the private part (the rest is mostly the node binary's pages, shared by
//     every Node process of the host but counted in each one's RSS).
//  2. Start-up: `starts` times, a vxtun node with one peer (one lease) is started in a namespace of its
//     own on an underlay, and the time from spawn to its "vxtun up" log line is taken; `node -e 0` in
//     the same namespace is timed alongside as the floor the machine sets.
// A benchmark, not a test: figures from a loaded machine are not worth keeping (the script prints
// the load average before and after).
// Usage (root, after npm run build):
//   node scripts/node-footprint.mjs [seconds=10] [starts=5] [--config '{"datapath":{"workers":2}}'] [--json]
// Environment variables (e.g. VXTUN_*) reach the nodes: they inherit this process's environment.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology, waitForOutput } from '../dist/src/tools/lab/netns.js';
import { Underlay } from '../dist/src/tools/lab/underlay.js';
import { Cluster, cliPath, nodeAddressing } from '../dist/src/tools/lab/cluster.js';
import { summarize } from '../dist/src/tools/bench/stats.js';
import { statusMiB } from '../dist/src/tools/bench/measure.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const configAt = argv.indexOf('--config');
const vxtunConfig = configAt >= 0 ? JSON.parse(argv[configAt + 1] ?? '{}') : {};
const positional = argv.filter((a, i) => !a.startsWith('--') && (configAt < 0 || i !== configAt + 1));
const [seconds, starts] = [0, 1].map((i) => Number(positional[i] ?? [10, 5][i]));
for (const [name, v] of Object.entries({ seconds, starts })) {
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer: ${positional.join(' ')}`);
}
const PORT = '5999';
const say = (line) => {
  if (!json) process.stdout.write(`${line}\n`);
};
const fmt = (s, d = 1) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;

/** VmRSS, VmHWM and RssAnon of a process in MiB, and its threads; undefined once it is gone. */
function memory(pid) {
  const rss = statusMiB(pid, 'VmRSS');
  if (rss === null) return undefined;
  let threads = NaN;
  try {
    threads = Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    // gone since
  }
  return { rss, hwm: statusMiB(pid, 'VmHWM') ?? NaN, anon: statusMiB(pid, 'RssAnon') ?? NaN, threads };
}

async function loadPhase() {
  const topology = new Topology();
  try {
    const cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'], logLevel: 'warn', vxtunConfig });
    const [client, server] = [cluster.node(1), cluster.node(2)];
    const nodes = [client, server].map((n) => ({ name: `node ${n.index}`, pid: n.vxtun.child.pid, peak: 0, peakAnon: 0, phases: {} }));
    const sample = () => {
      for (const n of nodes) {
        const m = memory(n.pid);
        if (m) n.peak = Math.max(n.peak, m.rss);
        if (m) n.peakAnon = Math.max(n.peakAnon, m.anon);
      }
    };
    const mark = (phase) => {
      for (const n of nodes) {
        const m = memory(n.pid);
        n.phases[phase] = m ? m.rss : NaN;
        n.threads = m?.threads;
      }
    };
    const iperfServer = server.pod.spawn(['iperf3', '-s', '--forceflush', '-B', server.podIp, '-p', PORT]);
    await waitForOutput(iperfServer, /listening/, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 500));
    mark('idle');
    const timer = setInterval(sample, 100);
    const rates = {};
    try {
      const run = async (name, extra) => {
        const res = await client.pod.exec(['iperf3', '-c', server.podIp, '-p', PORT, '-t', String(seconds), '-J', ...extra], { timeoutMs: (seconds + 30) * 1000 });
        const j = JSON.parse(res.stdout || '{}');
        const sum = j.end?.sum_received ?? j.end?.sum;
        if (sum === undefined) throw new Error(`iperf3 ${name} failed: ${j.error ?? res.stderr.trim()}`);
        rates[name] = extra.includes('-u') ? { kpps: sum.packets === undefined ? NaN : sum.packets / sum.seconds / 1000, lostPercent: sum.lost_percent } : { gbits: sum.bits_per_second / 1e9 };
        mark(name);
      };
      await run('tcp4', ['-P', '4']);
      await run('udp1350', ['-u', '-b', '0', '-l', '1350']);
    } finally {
      clearInterval(timer);
      iperfServer.kill();
    }
    sample();
    for (const n of nodes) {
      const m = memory(n.pid);
      n.hwm = m ? m.hwm : NaN;
    }
    await cluster.destroy();
    return { nodes, rates };
  } finally {
    await topology.destroy().catch(() => {});
  }
}

/** Milliseconds from spawn until `line` shows in the child's output (or it exits). */
async function timeTo(ns, cmd, line) {
  const t0 = process.hrtime.bigint();
  const child = ns.spawn(cmd);
  await new Promise((resolve, reject) => {
    let out = '';
    const onData = (d) => {
      out += d;
      if (line !== undefined && out.includes(line)) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => (line === undefined && code === 0 ? resolve() : reject(new Error(`exited with ${code} before ${JSON.stringify(line)}: ${out}`))));
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  return ms;
}

async function startPhase() {
  const topology = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-footprint-'));
  try {
    const underlay = await Underlay.create(topology, 'ul');
    const ns = await topology.netns('n1');
    const self = nodeAddressing(1);
    const peer = nodeAddressing(2);
    await underlay.attach(ns, self.publicIp);
    const configPath = join(dir, 'n1.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        publicIp: self.publicIp,
        network: '10.244.0.0/16',
        subnet: self.subnet,
        device: { name: 'vxtun0' },
        backend: { type: 'vxlan', vni: 1, port: 8472, vtepMac: self.vtepMac },
        peers: [{ subnet: peer.subnet, publicIp: peer.publicIp, vtepMac: peer.vtepMac }],
        controlSocket: join(dir, 'n1.sock'),
        ...vxtunConfig,
      }),
    );
    const ready = [];
    const floor = [];
    await timeTo(ns, [process.execPath, cliPath, 'up', '--config', configPath], 'vxtun up'); // warms the page cache
    for (let k = 0; k < starts; k++) {
      floor.push(await timeTo(ns, [process.execPath, '-e', '0']));
      ready.push(await timeTo(ns, [process.execPath, cliPath, 'up', '--config', configPath], 'vxtun up'));
    }
    return { readyMs: summarize(ready), nodeFloorMs: summarize(floor), samples: ready };
  } finally {
    await topology.destroy().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

const result = { seconds, starts, vxtunConfig, loadBefore: loadavg() };
say(`load average before: ${result.loadBefore.map((x) => x.toFixed(2)).join(' ')}`);
if (seconds > 0) {
  result.load = await loadPhase();
  const r = result.load.rates;
  say(`load: TCP 4 streams ${r.tcp4.gbits.toFixed(2)} Gbit/s, UDP 1350 B ${r.udp1350.kpps.toFixed(1)} kpps delivered (${r.udp1350.lostPercent.toFixed(0)} % lost), ${seconds} s each`);
  for (const n of result.load.nodes) {
    const p = n.phases;
    say(`  ${n.name}: RSS idle ${p.idle.toFixed(1)} MiB, after TCP ${p.tcp4.toFixed(1)}, after UDP ${p.udp1350.toFixed(1)}; peak sampled ${n.peak.toFixed(1)}, VmHWM ${n.hwm.toFixed(1)} MiB (of it private, RssAnon: peak ${n.peakAnon.toFixed(1)}); ${n.threads} threads`);
  }
}
if (starts > 0) {
  result.start = await startPhase();
  say(`exec -> "vxtun up", one peer: ${fmt(result.start.readyMs, 0)} ms over ${starts} starts; node -e 0: ${fmt(result.start.nodeFloorMs, 0)} ms`);
}
result.loadAfter = loadavg();
say(`load average after: ${result.loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
