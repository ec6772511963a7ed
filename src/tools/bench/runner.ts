/**
 * `vxtun bench`: for each wire mode, build every selected case's topology once, then measure in
 * rounds — round r measures each case in turn — so slow drift of the machine (other work, thermal
 * state, page cache) falls on every case alike instead of on whichever ran last; tear all down;
 * then medians with bootstrap intervals and ratios to the kernel VXLAN case of the same wire.
 *
 * One run of a case: TCP 1 stream; TCP N streams with ping alongside (RTT under load); UDP at each
 * payload size; netperf TCP_RR and TCP_CRR; idle ping. Dataplane CPU (utime+stime of its
 * processes) and the host's busy CPU (/proc/stat) are taken across the bulk transfers (TCP and
 * UDP) and divided by what they delivered; peak RSS is the processes' VmHWM after the run.
 */
import { loadavg } from 'node:os';
import { describeMachine, cpusAllowed, buildIdentity } from './machine.js';
import { BENCH_CASES, UnsupportedCase, type BenchCase, type BuiltCase } from './cases.js';
import type { CaseEnv } from './built-case.js';
import type { WireMode } from '../lab/underlay.js';
import { startIperfServer, startNetserver, iperfTcp, iperfUdp, netperfRr, pingRtts, cpuSeconds, hostBusySeconds, peakRssMiB, type Measured, type Pinning } from './measure.js';
import { metricDefs, NAIVE_CASE, RESULT_VERSION, type BenchResult, type CaseResult, type MetricDef, type RunResult, type Stat, type WireResult } from './schema.js';
import { quantile, summarize, ratio, bootstrapMedianCi, bootstrapRatioCi, type BootstrapOptions } from './stats.js';
import { underlayLinks, recordOffloads, applyNetem, NetemError } from './underlay-ports.js';
import { Progress } from './progress.js';

export interface BenchSettings {
  quick: boolean;
  runs: number;
  /** Seconds per iperf3 and netperf measurement. */
  seconds: number;
  warmupSeconds: number;
  pingCount: number;
  pingIntervalMs: number;
  cases: string[];
  pin: boolean;
  command: string;
  wires: WireMode[];
  mtu: number;
  streams: number;
  udpSizes: number[];
  netem: string | null;
}

/** Every interval in a result: 95 %, 2000 resamples, one fixed seed (a file's intervals reproduce from its runs). */
export const BOOTSTRAP: BootstrapOptions = { confidence: 0.95, resamples: 2000, seed: 1 };

/** The default case list of --quick: the kernel baseline, vxtun's fast path and userspace OVS (when this build has that case). */
export const QUICK_CASES = ['kernel', 'vxtun-fast', 'ovs-userspace'];

export function defaultSettings(quick: boolean): Pick<BenchSettings, 'quick' | 'runs' | 'seconds' | 'warmupSeconds' | 'pingCount' | 'pingIntervalMs' | 'wires'> {
  return quick
    ? { quick, runs: 1, seconds: 1, warmupSeconds: 1, pingCount: 50, pingIntervalMs: 10, wires: ['link'] }
    : { quick, runs: 5, seconds: 1, warmupSeconds: 1, pingCount: 100, pingIntervalMs: 10, wires: ['veth', 'link'] };
}

/** Estimated seconds of one measured run of one case (tool start and stop included), for the progress display. */
export function runEstimate(s: Pick<BenchSettings, 'seconds' | 'udpSizes' | 'pingCount' | 'pingIntervalMs'>): number {
  // iperf3: TCP 1 and N streams and each UDP size; netperf TCP_RR and TCP_CRR; idle ping; /proc reads.
  return (2 + s.udpSizes.length) * (s.seconds + 0.1) + 2 * (s.seconds + 0.1) + (s.pingCount * s.pingIntervalMs) / 1000 + 0.4;
}
/** Estimated seconds to build one case, start its servers and warm it up (one teardown each included). */
export function buildEstimate(s: Pick<BenchSettings, 'warmupSeconds'>): number {
  return 3 + s.warmupSeconds + 1;
}
/** Estimated seconds of a whole bench with these settings over `caseCount` cases, builds and runs apart. */
export function benchEstimate(s: Pick<BenchSettings, 'seconds' | 'udpSizes' | 'pingCount' | 'pingIntervalMs' | 'warmupSeconds' | 'runs' | 'wires'>, caseCount: number): { build: number; run: number } {
  return { build: s.wires.length * caseCount * buildEstimate(s), run: s.wires.length * caseCount * s.runs * runEstimate(s) };
}

/** Transactions of the TCP_CRR probe after warm-up (its rate sizes the first measured run's count) and the least any run makes. */
const CRR_PROBE = 300;

/** Pin the traffic tools' client and server to different CPUs when asked and there are two or more. */
function pinning(pin: boolean, cores: number): Pinning | undefined {
  if (!pin || cores < 2) return undefined;
  return { client: '0', server: String(cores - 1) };
}

/** A case of one wire pass: its result so far and, while it is up, its topology and servers. */
interface Slot {
  bc: BenchCase;
  result: CaseResult;
  /** Up while the pass measures; its iperf3 server and netserver are the topology's and go with it. */
  built?: BuiltCase;
  /** TCP_CRR transactions per second last seen: the next count aims at `seconds` of them. */
  crrRate: number;
}

export async function runBench(settings: BenchSettings, out: NodeJS.WriteStream | NodeJS.WritableStream = process.stdout): Promise<BenchResult> {
  const started = Date.now();
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  const machine = await describeMachine();
  const pin = pinning(settings.pin, machine.cores);
  const cases = settings.cases.map((id) => BENCH_CASES.find((c) => c.id === id)!);
  const defs = metricDefs(settings);
  const progress = new Progress(out, benchEstimate(settings, cases.length));
  const wires: WireResult[] = [];
  // On Ctrl-C the lab's own handlers kill the processes, delete the namespaces and the cluster's files.
  const onSignal = (): void => {
    out.write('\nvxtun bench interrupted: namespaces, processes and files removed\n');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const [wi, wire] of settings.wires.entries()) {
      const env: CaseEnv = { wire, mtu: settings.mtu };
      const tag = settings.wires.length > 1 ? `${wire} ${wi + 1}/${settings.wires.length}` : wire;
      const slots: Slot[] = [];
      try {
        for (const [ci, bc] of cases.entries()) {
          progress.start(`[${tag}] build ${ci + 1}/${cases.length} ${bc.id}`, 'build', buildEstimate(settings));
          slots.push(await prepareCase(bc, env, settings, progress, pin));
          progress.done();
        }
        for (let round = 1; round <= settings.runs; round++) {
          for (const slot of slots) {
            if (!slot.built) {
              progress.skip('run', runEstimate(settings));
              continue;
            }
            progress.start(`[${tag}] round ${round}/${settings.runs} ${slot.bc.id}`, 'run', runEstimate(settings));
            slot.result.runs.push(await measureRun(slot as Slot & { built: BuiltCase }, settings, defs, round, progress, pin));
            progress.done();
          }
        }
      } finally {
        progress.step('tearing down');
        await Promise.all(slots.map((slot) => slot.built?.destroy().catch((e: unknown) => progress.note(`${slot.bc.id}: teardown: ${(e as Error).message}`))));
      }
      const results = slots.map((slot) => slot.result);
      addSummaries(results, defs, BOOTSTRAP);
      wires.push({ wire, mtu: settings.mtu, cases: results });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  progress.finish();
  const loadAfter = loadavg().map((x) => Math.round(x * 100) / 100);
  return {
    kind: 'vxtun-bench',
    version: RESULT_VERSION,
    date: new Date(started).toISOString(),
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    command: settings.command,
    build: buildIdentity(),
    settings: {
      quick: settings.quick,
      runs: settings.runs,
      warmupSeconds: settings.warmupSeconds,
      seconds: settings.seconds,
      pingCount: settings.pingCount,
      pingIntervalMs: settings.pingIntervalMs,
      cases: settings.cases,
      pinned: pin !== undefined,
      wires: settings.wires,
      mtu: settings.mtu,
      streams: settings.streams,
      udpSizes: settings.udpSizes,
      netem: settings.netem,
      ...BOOTSTRAP,
    },
    machine,
    noise: {
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadAfter,
      note: noiseNote(machine.cores, loadBefore, loadAfter),
    },
    baseline: 'kernel',
    wires,
  };
}

function noiseNote(cores: number, before: number[], after: number[]): string {
  const peak = Math.max(before[0] ?? 0, after[0] ?? 0);
  return peak > cores * 0.5
    ? `noisy: 1-minute load average reached ${peak} on ${cores} cores (other work shared the machine); trust ratios within this file more than absolute figures`
    : `quiet: 1-minute load average at most ${peak} on ${cores} cores`;
}

function caseRecord(bc: BenchCase, status: CaseResult['status'], reason?: string): CaseResult {
  return { id: bc.id, title: bc.title, description: bc.description, dataplane: bc.dataplane, status, ...(reason !== undefined ? { reason } : {}), datapaths: [], dataplaneProcesses: [], placement: [], underlay: [], runs: [], summary: null, rttSamples: { idle: [], load: [] } };
}

/** Builds one case on `env`: its topology, or the record of why it could not be built (never retried). */
async function buildCase(bc: BenchCase, env: CaseEnv, progress: Progress): Promise<BuiltCase | CaseResult> {
  let built: BuiltCase;
  progress.step('building topology');
  try {
    built = await bc.build((line) => progress.detail(line), env);
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0]!;
    progress.note(`${bc.id} (${env.wire}): ${err instanceof UnsupportedCase ? reason : `failed to build: ${reason}`}`);
    return caseRecord(bc, err instanceof UnsupportedCase ? 'unsupported' : 'failed', reason);
  }
  return built;
}

/** Builds a case, records its underlay's offloads, applies netem, starts iperf3 and netserver and warms the path up. */
async function prepareCase(bc: BenchCase, env: CaseEnv, s: BenchSettings, progress: Progress, pin: Pinning | undefined): Promise<Slot> {
  const built = await buildCase(bc, env, progress);
  if (!('client' in built)) return { bc, result: built, crrRate: 0 };
  progress.info(`${bc.id}: namespaces ${built.namespacePrefix}-*`);
  const result = caseRecord(bc, 'measured');
  try {
    progress.step('verifying the wire');
    await built.verify?.(); // a case that carries no traffic, or not in the encapsulation it claims, fails here
    const links = await underlayLinks(built);
    result.underlay = await recordOffloads(links);
    if (s.netem !== null) await applyNetem(links, s.netem);
    const iperf = await startIperfServer(built.server, built.serverIp, pin);
    const netserver = await startNetserver(built.server, built.serverIp, pin);
    result.datapaths = built.datapaths;
    result.dataplaneProcesses = built.dataplane.map((d) => d.role);
    result.placement = [
      ...built.dataplane.map((d) => ({ role: d.role, pid: d.pid, cpusAllowed: cpusAllowed(d.pid) })),
      { role: 'iperf3 server', pid: iperf.pid ?? null, cpusAllowed: iperf.pid ? cpusAllowed(iperf.pid) : 'unknown' },
      { role: 'netserver', pid: netserver.pid ?? null, cpusAllowed: netserver.pid ? cpusAllowed(netserver.pid) : 'unknown' },
      { role: 'iperf3/netperf client', pid: null, cpusAllowed: pin?.client ?? cpusAllowed('self') },
    ];
    progress.step('warm-up');
    const warm = await iperfTcp(built.client, built.serverIp, 1, s.warmupSeconds, pin);
    if (!warm.ok) progress.note(`${bc.id}: warm-up failed: ${warm.error}`);
    await pingRtts(built.client, built.serverIp, 5, 20);
    const crr = await netperfRr(built.client, built.serverIp, 'TCP_CRR', { transactions: CRR_PROBE }, pin);
    if (!crr.ok) progress.note(`${bc.id}: TCP_CRR probe failed: ${crr.error}`);
    return { bc, result, built, crrRate: crr.ok ? crr.value.perSecond : CRR_PROBE };
  } catch (err) {
    await built.destroy().catch(() => {});
    if (err instanceof NetemError) throw err;
    const reason = (err as Error).message.split('\n')[0]!;
    progress.note(`${bc.id} (${env.wire}): failed: ${reason}`);
    return { bc, result: { ...result, status: 'failed', reason }, crrRate: 0 };
  }
}

/** One measured run of a built case; its ping samples are also kept whole in `rtt`. */
async function measureRun(slot: Slot & { built: BuiltCase }, s: BenchSettings, defs: MetricDef[], round: number, progress: Progress, pin: Pinning | undefined): Promise<RunResult> {
  const m: Record<string, number | null> = Object.fromEntries(defs.map((d) => [d.key, null]));
  const errors: string[] = [];
  const take = <T>(x: Measured<T>): T | undefined => {
    if (x.ok) return x.value;
    errors.push(x.error);
    return undefined;
  };
  const { built, result } = slot;
  const rtt = result.rttSamples;
  const { client, serverIp } = built;
  const cpu0 = built.dataplane.map((d) => cpuSeconds(d.pid));
  const host0 = hostBusySeconds();
  let bytes = 0;
  let bulkOk = true;
  const moved = (x: { bytes: number } | undefined): void => {
    if (x) bytes += x.bytes;
    else bulkOk = false;
  };

  progress.step('TCP 1 stream');
  const tcp1 = take(await iperfTcp(client, serverIp, 1, s.seconds, pin));
  moved(tcp1);
  m.tcp1Gbps = tcp1?.gbps ?? null;

  progress.step(`TCP ${s.streams} streams + ping`);
  const loadPings = Math.max(5, Math.floor((s.seconds * 1000) / s.pingIntervalMs) - 20);
  const [tcpN, pingLoad] = await Promise.all([
    iperfTcp(client, serverIp, s.streams, s.seconds, pin),
    // Start pinging once iperf3 has connected, so the samples fall inside the load.
    new Promise<Measured<number[]>>((resolve) => setTimeout(() => resolve(pingRtts(client, serverIp, loadPings, s.pingIntervalMs)), 150)),
  ]);
  const n = take(tcpN);
  moved(n);
  m.tcpNGbps = n?.gbps ?? null;
  const load = take(pingLoad);
  if (load) {
    rtt.load.push(...load);
    m.rttLoadP50Ms = quantile(load, 0.5);
    m.rttLoadP99Ms = quantile(load, 0.99);
  }

  for (const size of s.udpSizes) {
    progress.step(`UDP ${size} B`);
    const u = take(await iperfUdp(client, serverIp, size, s.seconds, pin));
    moved(u);
    if (u) {
      m[`udp${size}Kpps`] = u.kpps;
      m[`udp${size}LossPct`] = u.lossPercent;
      m[`udp${size}Mbps`] = u.mbps;
    }
  }

  const cpu1 = built.dataplane.map((d) => cpuSeconds(d.pid));
  const host1 = hostBusySeconds();
  if (bulkOk && bytes > 0) {
    m.hostCpuSecondsPerGbit = (host1 - host0) / ((bytes * 8) / 1e9);
    if (built.dataplane.length > 0) {
      const deltas = cpu1.map((c, i) => (c === null || cpu0[i] === null ? null : c - cpu0[i]!));
      if (deltas.every((d) => d !== null)) m.cpuSecondsPerGB = (deltas as number[]).reduce((a, b) => a + b, 0) / (bytes / 1e9);
    }
  }

  for (const [test, key] of [['TCP_RR', 'tcpRr'], ['TCP_CRR', 'tcpCrr']] as const) {
    progress.step(test);
    const length = test === 'TCP_RR' ? { seconds: s.seconds } : { transactions: Math.max(CRR_PROBE, slot.crrRate * s.seconds) };
    const t = take(await netperfRr(client, serverIp, test, length, pin));
    if (t && test === 'TCP_CRR') slot.crrRate = t.perSecond;
    if (t) {
      m[`${key}Tps`] = t.perSecond;
      m[`${key}P50Us`] = t.p50Us;
      m[`${key}P90Us`] = t.p90Us;
      m[`${key}P99Us`] = t.p99Us;
    }
  }

  progress.step('ping idle');
  const idle = take(await pingRtts(client, serverIp, s.pingCount, s.pingIntervalMs));
  if (idle) {
    rtt.idle.push(...idle);
    m.rttIdleP50Ms = quantile(idle, 0.5);
    m.rttIdleP99Ms = quantile(idle, 0.99);
  }

  if (built.dataplane.length > 0) {
    const rss = built.dataplane.map((d) => peakRssMiB(d.pid));
    m.peakRssMiB = rss.every((x) => x !== null) ? Math.max(...(rss as number[])) : null;
    if (m.peakRssMiB === null || cpu1.some((c) => c === null)) errors.push('a dataplane process exited during the run');
  }
  for (const e of errors) progress.note(`round ${round}: ${e}`);
  return { round, metrics: m, errors };
}

/** Medians, min–max and bootstrap intervals per metric; ratios (with intervals) against the kernel case's runs, and the naive case's medians when it ran. */
export function addSummaries(results: CaseResult[], defs: MetricDef[], bootstrap: BootstrapOptions): void {
  const values = (c: CaseResult, key: string): number[] => c.runs.map((r) => r.metrics[key] ?? null).filter((x): x is number => x !== null && Number.isFinite(x));
  for (const c of results) {
    if (c.status !== 'measured') continue;
    c.summary = Object.fromEntries(defs.map((d) => [d.key, { ...summarize(values(c, d.key)), ci: bootstrapMedianCi(values(c, d.key), bootstrap), ratio: null, ratioCi: null, ratioToNaive: null } satisfies Stat]));
  }
  const kernel = results.find((c) => c.id === 'kernel');
  const naive = results.find((c) => c.id === NAIVE_CASE)?.summary ?? null;
  for (const c of results) {
    if (!c.summary) continue;
    for (const d of defs) {
      const s = c.summary[d.key]!;
      if (!d.asRatio) continue;
      const k = kernel?.summary?.[d.key];
      s.ratio = k ? ratio(s.median, k.median) : null;
      s.ratioCi = k && s.ratio !== null ? bootstrapRatioCi(values(c, d.key), values(kernel!, d.key), bootstrap) : null;
      s.ratioToNaive = naive ? ratio(s.median, naive[d.key]!.median) : null;
    }
  }
}
