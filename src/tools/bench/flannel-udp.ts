/**
 * Benchmark: TCP throughput between pods over flannel's udp backend as vxtun runs it, and over
 * vxtun's VXLAN backend, each as a ratio to the kernel's VXLAN measured in the same run (these
 * machines are noisy: rounds alternate, medians with min–max are reported). Nodes join through a
 * real etcd; pods are made by the CNI bridge plugin from subnet.env.
 *
 *   node dist/src/tools/bench/flannel-udp.js [--rounds 3] [--seconds 4] [--chart out.svg]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Topology, type Netns } from '../lab/netns.js';
import { Underlay } from '../lab/underlay.js';
import { createKernelFlannelNode, addKernelPeer } from '../lab/kernel-flannel.js';
import { addPod } from '../lab/pods.js';
import { sleep } from '../lab/exec.js';
import { VxtunProcess } from '../lab/cluster.js';
import { EtcdServer } from '../lab/etcd.js';
import { cniAddPod } from '../lab/cni.js';
import { startIperfServer, iperfTcp } from './measure.js';
import { median as medianOrNull } from './stats.js';

const median = (xs: number[]): number => medianOrNull(xs) ?? NaN;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const say = (s: string): void => void process.stderr.write(`${s}\n`);

/** Single-stream TCP in Gbit/s through the harness's own iperf3 helpers; a failed run is an Error. */
async function iperf(client: Netns, server: Netns, ip: string, seconds: number): Promise<number> {
  const srv = await startIperfServer(server, ip);
  try {
    const r = await iperfTcp(client, ip, 1, seconds);
    if (!r.ok) throw new Error(r.error);
    return r.value.gbps;
  } finally {
    srv.kill('SIGTERM');
  }
}

function chart(rows: Array<{ label: string; med: number; min: number; max: number }>): string {
  const w = 560;
  const barH = 28;
  const top = 40;
  const left = 190;
  const scale = (w - left - 60) / Math.max(1, ...rows.map((r) => r.max));
  const bars = rows
    .map((r, i) => {
      const y = top + i * (barH + 14);
      return (
        `<text x="${left - 8}" y="${y + 19}" text-anchor="end" font-size="13">${r.label}</text>` +
        `<rect x="${left}" y="${y}" width="${(r.med * scale).toFixed(1)}" height="${barH}" fill="#4a7fb0"/>` +
        `<line x1="${left + r.min * scale}" x2="${left + r.max * scale}" y1="${y + barH / 2}" y2="${y + barH / 2}" stroke="#222" stroke-width="2"/>` +
        `<text x="${left + r.max * scale + 6}" y="${y + 19}" font-size="12">${r.med.toFixed(2)}×</text>`
      );
    })
    .join('');
  const h = top + rows.length * (barH + 14) + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif"><text x="10" y="22" font-size="15">TCP throughput relative to the kernel's VXLAN (median, min–max)</text>${bars}</svg>\n`;
}

async function main(): Promise<void> {
  const rounds = Number(arg('rounds', '3'));
  const seconds = Number(arg('seconds', '4'));
  const chartPath = arg('chart', '');
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-bench-'));
  const nodes: VxtunProcess[] = [];
  let etcd: EtcdServer | undefined;
  try {
    const ul = await Underlay.create(topo);
    const ens = await topo.netns('etcd');
    await ul.attach(ens, '198.18.0.250');
    etcd = await EtcdServer.start(ens, '198.18.0.250', join(dir, 'etcd'));
    say('etcd up on 198.18.0.250');
    const pairs: Record<string, [Netns, Netns, string]> = {};
    for (const [type, prefix, base] of [['udp', '/bench-udp/network', 1], ['vxlan', '/bench-vxlan/network', 3]] as const) {
      await etcd.etcdctl(['put', `${prefix}/config`, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: type } })]);
      const pods = [];
      for (const i of [base, base + 1]) {
        const ns = await topo.netns(`n${i}`);
        await ul.attach(ns, `198.18.0.${i}`);
        const env = join(dir, `n${i}.env`);
        const v = VxtunProcess.start(ns, { publicIp: `198.18.0.${i}`, registry: { type: 'etcd', endpoints: [etcd.endpoint], prefix }, subnetEnv: env }, dir, 'warn');
        nodes.push(v);
        await v.ready(30_000);
        pods.push(await cniAddPod(ns, await topo.netns(`p${i}`), env, join(dir, `ipam${i}`)));
      }
      pairs[`vxtun ${type}`] = [pods[0]!.ns, pods[1]!.ns, pods[1]!.ip];
      say(`vxtun ${type} pair up`);
    }
    const kpods: Netns[] = [];
    for (const i of [11, 12]) {
      const ns = await topo.netns(`k${i}`);
      await ul.attach(ns, `198.18.0.${i}`);
      await createKernelFlannelNode(ns, { publicIp: `198.18.0.${i}`, subnet: `10.244.${i}.0/24`, vtepMac: `0a:58:0a:f4:${i}:00` });
      const o = i === 11 ? 12 : 11;
      await addKernelPeer(ns, { subnet: `10.244.${o}.0/24`, publicIp: `198.18.0.${o}`, vtepMac: `0a:58:0a:f4:${o}:00` });
      kpods.push(await addPod(ns, { name: `kp${i}`, gatewayCidr: `10.244.${i}.1/24`, podIp: `10.244.${i}.2/24` }));
    }
    say('kernel VXLAN pair up');
    const ratios: Record<string, number[]> = { 'vxtun udp': [], 'vxtun vxlan': [] };
    const kernel: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const k = await iperf(kpods[0]!, kpods[1]!, '10.244.12.2', seconds);
      kernel.push(k);
      for (const [name, [c, s, ip]] of Object.entries(pairs)) {
        const g = await iperf(c, s, ip, seconds);
        ratios[name]!.push(g / k);
        say(`round ${r + 1}/${rounds}: kernel ${k.toFixed(2)} Gbit/s, ${name} ${g.toFixed(2)} Gbit/s (${(g / k).toFixed(3)}×)`);
      }
    }
    const rows = Object.entries(ratios).map(([label, xs]) => ({ label, med: median(xs), min: Math.min(...xs), max: Math.max(...xs) }));
    process.stdout.write(`${JSON.stringify({ kernelGbit: { median: median(kernel), min: Math.min(...kernel), max: Math.max(...kernel) }, ratios: rows })}\n`);
    if (chartPath) {
      writeFileSync(chartPath, chart([{ label: 'kernel VXLAN', med: 1, min: 1, max: 1 }, ...rows]));
      say(`chart: ${chartPath}`);
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await etcd?.stop();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
