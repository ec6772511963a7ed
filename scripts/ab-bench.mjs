#!/usr/bin/env node
// Interleaved A/B of two builds with `vxtun bench` (development check, root): each round runs the
// kernel + vxtun-fast cases once from build A, then from B (the order flipped every round), so a swing
// in the machine's load hits both alike. Every bench run measures the kernel's VXLAN too, so each
// figure is also a ratio to the kernel in its own run. Prints per build and wire (veth, link) the
// median (min–max) of TCP 1 and 4 streams, idle and loaded RTT p50, UDP 1350 delivered and the peak
// RSS, their ratios, and whether the medians lie within each other's min–max.
// Usage: node scripts/ab-bench.mjs A=/path/to/old/dist/src/cli/main.js B=/path/to/new/dist/src/cli/main.js [rounds=4] [seconds=3] [out=/tmp/ab]
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=')));
const builds = { A: args.A, B: args.B };
const rounds = Number(args.rounds ?? 4);
const seconds = String(args.seconds ?? 3);
const out = args.out ?? '/tmp/ab';
mkdirSync(out, { recursive: true });
const metrics = { tcp1Gbps: 'TCP 1 stream Gbit/s', tcpNGbps: 'TCP 4 streams Gbit/s', rttIdleP50Ms: 'RTT idle p50 ms', rttLoadP50Ms: 'RTT p50 under load ms', udp1350Kpps: 'UDP 1350 kpps', peakRssMiB: 'peak RSS MiB' };
const samples = { A: [], B: [] };
for (let r = 0; r < rounds; r++) {
  for (const name of r % 2 === 0 ? ['A', 'B'] : ['B', 'A']) {
    const json = join(out, `${name}-${r}.json`);
    execFileSync(process.execPath, [builds[name], 'bench', '--cases', 'vxtun-fast', '--runs', '1', '--seconds', seconds, '--json', json], { stdio: ['ignore', 'ignore', 'inherit'] });
    const res = JSON.parse(readFileSync(json, 'utf8'));
    const row = {};
    for (const w of res.wires) {
      const c = w.cases.find((x) => x.id === 'vxtun-fast');
      const k = w.cases.find((x) => x.id === 'kernel');
      for (const m of Object.keys(metrics)) row[`${w.wire} ${m}`] = { v: c.summary[m]?.median, kernel: k.summary[m]?.median, ratio: c.summary[m]?.ratio };
    }
    samples[name].push(row);
    console.error(`round ${r + 1} ${name}: ${Object.keys(row).map((m) => `${m} ${row[m].v?.toFixed(3)} (x${row[m].ratio?.toFixed(2)})`).join('  ')}`);
  }
}
const med = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stat = (xs) => ({ median: med(xs), min: Math.min(...xs.filter((x) => x != null)), max: Math.max(...xs.filter((x) => x != null)) });
const fmt = (s, d) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
console.log(`| metric | A | B | A ×kernel | B ×kernel | medians within each other's min–max |`);
console.log(`| --- | --- | --- | --- | --- | --- |`);
for (const key of Object.keys(samples.A[0] ?? {})) {
  const [wire, m] = key.split(' ');
  const values = (build) => samples[build].map((x) => x[key]?.v).filter((v) => v != null);
  if (values('A').length === 0 || values('B').length === 0) continue;
  const a = stat(values('A'));
  const b = stat(values('B'));
  const ar = stat(samples.A.map((x) => x[key]?.ratio));
  const br = stat(samples.B.map((x) => x[key]?.ratio));
  const within = a.median >= b.min && a.median <= b.max && b.median >= a.min && b.median <= a.max;
  const d = m.startsWith('rtt') ? 3 : 2;
  const ratios = Number.isFinite(ar.median) && Number.isFinite(br.median) ? `${fmt(ar, 2)} | ${fmt(br, 2)}` : '– | –';
  console.log(`| ${wire}: ${metrics[m]} | ${fmt(a, d)} | ${fmt(b, d)} | ${ratios} | ${within ? 'yes' : 'no'} |`);
}
