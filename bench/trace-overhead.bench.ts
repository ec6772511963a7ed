/**
 * What tracing costs the dataplane. One engine iteration = one outbound batch (64 UDP packets
 * read from the TUN, classified, encapsulated, sent) and one inbound batch (64 VXLAN datagrams
 * checked, unwrapped, written), through no-op TUN/bind so only the pipeline is measured:
 *   - observation points compiled out: a copy of the built engine whose `if (obs)` tests are
 *     `if (false)` (what the engine would cost without any observation points) — the baseline
 *   - no observer (the state of every node nobody traces): the question is whether this is
 *     within noise of the baseline
 *   - no observer, but a second copy of the engine module loaded like the baseline: a control
 *     for what loading a copy alone does to the figures
 *   - a trace attached whose filter matches nothing (`--host 10.9.9.9`: the per-observation
 *     byte test runs, nothing is decoded or copied)
 *   - a trace attached that keeps every journey (the price of watching everything; for scale)
 * Several alternating rounds; the report gives each case's median ops/s with min–max and the
 * ratio to "no observer" per round (median, min–max). The machine is shared: figures are noisy.
 *
 *   npm run build && node dist/bench/trace-overhead.bench.js [--rounds 5] [--time 1]
 */
import { add, complete, cycle, suite } from 'benny';
import { Engine, HEADROOM } from '../src/datapath/engine.js';
import { RouteTable } from '../src/packet/routes.js';
import { parseCidr, type Cidr } from '../src/packet/cidr.js';
import type { Bind, Endpoint } from '../src/io/bind.js';
import type { TunDevice } from '../src/io/tun-device.js';
import { emitIpv4, ipv4FromString } from '../src/packet/wire/ipv4.js';
import { emitVxlan } from '../src/packet/wire/vxlan.js';
import { emitEthernet, macFromString, EtherType } from '../src/packet/wire/ethernet.js';
import { TraceHub } from '../src/trace/server.js';
import { JourneyCollector } from '../src/trace/journey.js';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The baseline: the built engine with its observation points compiled out (same directory, so
// its relative imports resolve). Every `if (obs)` / `if (this.observer)` becomes `if (false)`.
const engineJs = fileURLToPath(new URL('../src/datapath/engine.js', import.meta.url));
const strippedJs = engineJs.replace(/engine\.js$/, 'engine.unobserved-bench.js');
let stripped = 0;
const source = readFileSync(engineJs, 'utf8')
  .replace(/if \((obs|this\.observer)\)/g, () => (stripped++, 'if (false)'))
  .replace(/const obs = this\.observer;/g, 'const obs = undefined;');
if (stripped === 0) throw new Error('found no observation points to compile out in engine.js: update this benchmark');
writeFileSync(strippedJs, source);
// A control: an unmodified second copy, loaded the same way. If it differs from the original as
// much as the stripped copy does, the difference is the copy (JIT feedback), not the observation points.
const copyJs = engineJs.replace(/engine\.js$/, 'engine.copy-bench.js');
writeFileSync(copyJs, readFileSync(engineJs));
process.on('exit', () => {
  rmSync(strippedJs, { force: true });
  rmSync(copyJs, { force: true });
});
const { Engine: UnobservedEngine } = (await import(strippedJs)) as { Engine: typeof Engine };
const { Engine: CopiedEngine } = (await import(copyJs)) as { Engine: typeof Engine };

const BATCH = 64;
const PAYLOAD = 1372; // inner IPv4 + UDP + 1372 = 1400 bytes
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('rounds', 5);
const MAX_TIME = arg('time', 1);

const ourMac = macFromString('0a:58:0a:f4:01:00');
const peerMac = macFromString('0a:58:0a:f4:02:00');
const peer: Endpoint = { address: '198.18.0.2', port: 8472 };

const nullBind: Bind = { local: { address: '198.18.0.1', port: 8472 }, send: (_b, _s, _o, count) => count, start: () => {}, close: async () => {} };
const nullTun = { name: 'bench0', mtu: 1450, read: () => 0, write: (_b: Buffer[], _s: number[], _o: number, count: number) => count, start: () => {}, close: () => {} } as unknown as TunDevice;

function udpPacket(buf: Buffer, at: number, src: string, dst: string, i: number): number {
  emitIpv4({ src: ipv4FromString(src), dst: ipv4FromString(dst), protocol: 17, ttl: 63, payloadLength: 8 + PAYLOAD, identification: i }, buf, at);
  buf.writeUInt16BE(40000 + i, at + 20);
  buf.writeUInt16BE(5201, at + 22);
  buf.writeUInt16BE(8 + PAYLOAD, at + 24);
  buf.writeUInt16BE(0, at + 26); // UDP checksum 0: valid over IPv4, nothing to complete
  return 20 + 8 + PAYLOAD;
}

function makeEngine(E: typeof Engine = Engine): Engine {
  const e = new E(nullTun, nullBind, { vni: 1, vtepMac: ourMac, vtepIp: ipv4FromString('10.244.1.0'), localSubnets: [parseCidr('10.244.1.0/24') as Cidr], port: 8472, maxInnerSize: 1450, tunMtu: 1450, batchSize: BATCH });
  e.setRoutes(new RouteTable([{ prefix: parseCidr('10.244.2.0/24') as Cidr, target: { endpoint: peer, vtepMac: peerMac, vni: 1 } }]));
  return e;
}

const outBufs = Array.from({ length: BATCH }, () => Buffer.alloc(HEADROOM + 1500));
const outSizes0 = outBufs.map((b, i) => udpPacket(b, HEADROOM, '10.244.1.2', '10.244.2.2', i));
const outSizes = [...outSizes0];
const inBufs = Array.from({ length: BATCH }, (_, i) => {
  const b = Buffer.alloc(HEADROOM + 1500);
  emitVxlan({ vni: 1 }, b, 0);
  emitEthernet({ dst: ourMac, src: peerMac, etherType: EtherType.IPV4 }, b, 8);
  return b.subarray(0, HEADROOM + udpPacket(b, HEADROOM, '10.244.2.2', '10.244.1.2', i));
});
const inSizes = inBufs.map((b) => b.length);
const inSrcs = inBufs.map(() => peer);

function iteration(e: Engine): void {
  for (let i = 0; i < BATCH; i++) outSizes[i] = outSizes0[i]!;
  e.handleOutbound(outBufs, outSizes, BATCH);
  e.handleInbound(inBufs, inSizes, inSrcs, BATCH);
}

const node = () => ({ device: 'bench0', publicIp: '198.18.0.1', port: 8472, vni: 1, vtepMac: '0a:58:0a:f4:01:00', subnet: '10.244.1.0/24' });
const baseline = makeEngine(UnobservedEngine);
const copied = makeEngine(CopiedEngine);
const plain = makeEngine();
const filtered = makeEngine();
new TraceHub(filtered, node).subscribe({ filter: { host: '10.9.9.9' } }, () => {
  throw new Error('the filter should have kept everything out');
});
// Keeping everything: the collector is flushed after each iteration, as the event loop would.
const everything = makeEngine();
let kept = 0;
const collector = new JourneyCollector(node(), { emit: () => kept++, maxJourneysPerSecond: Infinity }); // no budget: measure the full cost
everything.setObserver(collector.observer);

type Result = { name: string; ops: number };
const rounds: Result[][] = [];

const cases = [
  ['observation points compiled out', () => iteration(baseline)],
  ['no observer', () => iteration(plain)],
  ['no observer, second copy of the module', () => iteration(copied)],
  ['trace attached, filtered out', () => iteration(filtered)],
  [
    'trace attached, keeps every journey',
    () => {
      iteration(everything);
      collector.flush();
    },
  ],
] as const;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (xs: number[], digits = 0): string => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? cases : [...cases].reverse();
  const results: Result[] = [];
  await suite(
    `trace overhead, round ${r + 1}/${ROUNDS} (one iteration = ${BATCH} packets out + ${BATCH} in)`,
    ...order.map(([name, fn]) => add(name, fn, { maxTime: MAX_TIME, minSamples: 5 })),
    cycle(),
    complete((summary) => {
      for (const res of summary.results) results.push({ name: res.name, ops: res.ops });
    }),
  );
  // let the collector of the "everything" engine flush between rounds
  await new Promise((res) => setImmediate(res));
  rounds.push(results);
}

const opsOf = (name: string): number[] => rounds.map((rs) => rs.find((x) => x.name === name)!.ops);
const base = opsOf('observation points compiled out');
process.stdout.write(`\ntrace overhead over ${ROUNDS} rounds (median, min–max); packets/s = ops × ${2 * BATCH}; ${stripped} observation tests compiled out for the baseline; noisy shared machine\n`);
for (const [name] of cases) {
  const ops = opsOf(name);
  const ratio = ops.map((o, i) => o / base[i]!);
  process.stdout.write(`  ${name.padEnd(38)} ${fmt(ops)} ops/s   ${fmt(ops.map((o) => o * 2 * BATCH))} packets/s   ratio to baseline ${fmt(ratio, 3)}\n`);
}
process.stdout.write(`  (journeys kept by the third case: ${kept})\n`);
