/**
 * `vxtun bench`: for each case in turn, build its topology, warm up, measure `runs` times, tear
 * down; then medians, min–max and ratios to the kernel VXLAN case of the same run.
 *
 * One run of a case: TCP 1 stream; TCP 4 streams with ping running alongside (RTT under load);
 * UDP at 64, 512, 1350-byte payloads; idle ping. CPU seconds are the dataplane processes'
 * utime+stime across the run, peak RSS their VmHWM at its end.
 */
import { loadavg } from 'node:os';
import { describeMachine, cpusAllowed } from './machine.js';
import { BENCH_CASES, UnsupportedCase, type BenchCase, type BuiltCase } from './cases.js';
import { DEFAULT_CASE_ENV } from './built-case.js';
import { startIperfServer, iperfTcp, iperfUdp, pingRtts, cpuSeconds, peakRssMiB, type Measured, type Pinning } from './measure.js';
import { METRIC_KEYS, NAIVE_CASE, UDP_SIZES, type BenchResult, type CaseResult, type MetricKey, type RunResult } from './schema.js';
import { quantile, summarize, ratio } from './stats.js';
import { Progress } from './progress.js';

export interface BenchSettings {
  quick: boolean;
  runs: number;
  /** Seconds per iperf3 measurement. */
  seconds: number;
  warmupSeconds: number;
  pingCount: number;
  pingIntervalMs: number;
  cases: string[];
  pin: boolean;
  command: string;
}

export function defaultSettings(quick: boolean): Omit<BenchSettings, 'cases' | 'command' | 'pin'> {
  return quick
    ? { quick, runs: 1, seconds: 1, warmupSeconds: 1, pingCount: 50, pingIntervalMs: 10 }
    : { quick, runs: 3, seconds: 5, warmupSeconds: 2, pingCount: 200, pingIntervalMs: 10 };
}

/** Estimated seconds of one run (iperf3 start/stop overhead included), for the progress display. */
function runEstimate(s: BenchSettings): number {
  return 5 * (s.seconds + 0.6) + (s.pingCount * s.pingIntervalMs) / 1000 + 0.3;
}
function caseEstimate(s: BenchSettings): number {
  return 4 + s.warmupSeconds + 0.6 + s.runs * runEstimate(s);
}

/** Pin iperf3's client and server to different CPUs when asked and there are two or more. */
function pinning(pin: boolean, cores: number): Pinning | undefined {
  if (!pin || cores < 2) return undefined;
  return { client: '0', server: String(cores - 1) };
}

export async function runBench(settings: BenchSettings, out: NodeJS.WriteStream | NodeJS.WritableStream = process.stdout): Promise<BenchResult> {
  const started = Date.now();
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  const machine = await describeMachine();
  const pin = pinning(settings.pin, machine.cores);
  const cases = settings.cases.map((id) => BENCH_CASES.find((c) => c.id === id)!);
  const progress = new Progress(out, cases.length * caseEstimate(settings), cases.length);
  const results: CaseResult[] = [];
  // On Ctrl-C the lab's own handlers kill the processes, delete the namespaces and the cluster's files.
  const onSignal = (): void => {
    out.write('\nvxtun bench interrupted: namespaces, processes and files removed\n');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let ci = 0; ci < cases.length; ci++) {
      const bc = cases[ci]!;
      progress.setCase(ci + 1, cases.length, bc.id);
      const caseStart = Date.now();
      results.push(await runCase(bc, settings, progress, pin));
      // Re-estimate what is left from what the cases so far really took.
      const spent = (Date.now() - caseStart) / 1000;
      progress.caseDone(spent, caseEstimate(settings));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  progress.finish();
  addSummaries(results);
  const loadAfter = loadavg().map((x) => Math.round(x * 100) / 100);
  return {
    kind: 'vxtun-bench',
    version: 1,
    date: new Date(started).toISOString(),
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    command: settings.command,
    settings: {
      quick: settings.quick,
      runs: settings.runs,
      warmupSeconds: settings.warmupSeconds,
      seconds: settings.seconds,
      pingCount: settings.pingCount,
      pingIntervalMs: settings.pingIntervalMs,
      cases: settings.cases,
      pinned: pin !== undefined,
    },
    machine,
    noise: {
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadAfter,
      note: noiseNote(machine.cores, loadBefore, loadAfter),
    },
    baseline: 'kernel',
    cases: results,
  };
}

function noiseNote(cores: number, before: number[], after: number[]): string {
  const peak = Math.max(before[0] ?? 0, after[0] ?? 0);
  return peak > cores * 0.5
    ? `noisy: 1-minute load average reached ${peak} on ${cores} cores (other work shared the machine); trust ratios within this file more than absolute figures`
    : `quiet: 1-minute load average at most ${peak} on ${cores} cores`;
}

function emptyCase(bc: BenchCase, status: 'unsupported' | 'failed', reason: string): CaseResult {
  return { id: bc.id, title: bc.title, description: bc.description, dataplane: bc.dataplane, status, reason, datapaths: [], dataplaneProcesses: [], placement: [], runs: [], summary: null, rttSamples: { idle: [], load: [] } };
}

async function runCase(bc: BenchCase, s: BenchSettings, progress: Progress, pin: Pinning | undefined): Promise<CaseResult> {
  let built: BuiltCase;
  progress.step('building topology');
  try {
    built = await bc.build((line) => progress.detail(line), DEFAULT_CASE_ENV);
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0]!;
    progress.note(`${bc.id}: ${err instanceof UnsupportedCase ? reason : `failed to build: ${reason}`}`);
    return emptyCase(bc, err instanceof UnsupportedCase ? 'unsupported' : 'failed', reason);
  }
  progress.info(`${bc.id}: namespaces ${built.namespacePrefix}-*`);
  try {
    progress.step('verifying the wire');
    await built.verify?.(); // a case that carries no traffic, or not in the encapsulation it claims, fails here
    const server = await startIperfServer(built.server, built.serverIp, pin);
    const placement = [
      ...built.dataplane.map((d) => ({ role: d.role, pid: d.pid, cpusAllowed: cpusAllowed(d.pid) })),
      { role: 'iperf3 server', pid: server.pid ?? null, cpusAllowed: server.pid ? cpusAllowed(server.pid) : 'unknown' },
      { role: 'iperf3 client', pid: null, cpusAllowed: pin?.client ?? cpusAllowed('self') },
    ];
    progress.step('warm-up');
    const warm = await iperfTcp(built.client, built.serverIp, 1, s.warmupSeconds, pin);
    if (!warm.ok) progress.note(`${bc.id}: warm-up failed: ${warm.error}`);
    await pingRtts(built.client, built.serverIp, 5, 20);

    const runs: RunResult[] = [];
    const rttIdle: number[] = [];
    const rttLoad: number[] = [];
    for (let r = 1; r <= s.runs; r++) {
      progress.setRun(r, s.runs);
      const m = Object.fromEntries(METRIC_KEYS.map((k) => [k, null])) as Record<MetricKey, number | null>;
      const errors: string[] = [];
      const take = <T>(x: Measured<T>): T | undefined => {
        if (x.ok) return x.value;
        errors.push(x.error);
        return undefined;
      };
      const cpu0 = built.dataplane.map((d) => cpuSeconds(d.pid));

      progress.step('TCP 1 stream');
      m.tcp1Gbps = take(await iperfTcp(built.client, built.serverIp, 1, s.seconds, pin)) ?? null;

      progress.step('TCP 4 streams + ping');
      const loadPings = Math.max(5, Math.floor((s.seconds * 1000) / s.pingIntervalMs) - 20);
      const [tcp4, pingLoad] = await Promise.all([
        iperfTcp(built.client, built.serverIp, 4, s.seconds, pin),
        // Start pinging once iperf3 has connected, so the samples fall inside the load.
        new Promise<Measured<number[]>>((resolve) => setTimeout(() => resolve(pingRtts(built.client, built.serverIp, loadPings, s.pingIntervalMs)), 150)),
      ]);
      m.tcp4Gbps = take(tcp4) ?? null;
      const load = take(pingLoad);
      if (load) {
        rttLoad.push(...load);
        m.rttLoadP50Ms = quantile(load, 0.5);
        m.rttLoadP99Ms = quantile(load, 0.99);
      }

      for (const size of UDP_SIZES) {
        progress.step(`UDP ${size} B`);
        const u = take(await iperfUdp(built.client, built.serverIp, size, s.seconds, pin));
        if (u) {
          m[`udp${size}Kpps`] = u.kpps;
          m[`udp${size}LossPct`] = u.lossPercent;
          m[`udp${size}Mbps`] = u.mbps;
        }
      }

      progress.step('ping idle');
      const idle = take(await pingRtts(built.client, built.serverIp, s.pingCount, s.pingIntervalMs));
      if (idle) {
        rttIdle.push(...idle);
        m.rttIdleP50Ms = quantile(idle, 0.5);
        m.rttIdleP99Ms = quantile(idle, 0.99);
      }

      if (built.dataplane.length > 0) {
        const cpu1 = built.dataplane.map((d) => cpuSeconds(d.pid));
        const deltas = cpu1.map((c, i) => (c === null || cpu0[i] === null ? null : c - cpu0[i]!));
        m.cpuSeconds = deltas.every((d) => d !== null) ? Math.round(deltas.reduce((a, b) => a! + b!, 0)! * 100) / 100 : null;
        const rss = built.dataplane.map((d) => peakRssMiB(d.pid));
        m.peakRssMiB = rss.every((x) => x !== null) ? Math.max(...(rss as number[])) : null;
        if (m.cpuSeconds === null || m.peakRssMiB === null) errors.push('a dataplane process exited during the run');
      }
      for (const e of errors) progress.note(`${bc.id} run ${r}: ${e}`);
      runs.push({ run: r, metrics: m, errors });
      progress.runDone();
    }
    return {
      id: bc.id,
      title: bc.title,
      description: bc.description,
      dataplane: bc.dataplane,
      status: 'measured',
      datapaths: built.datapaths,
      dataplaneProcesses: built.dataplane.map((d) => d.role),
      placement,
      runs,
      summary: null,
      rttSamples: { idle: rttIdle, load: rttLoad },
    };
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0]!;
    progress.note(`${bc.id}: failed: ${reason}`);
    return emptyCase(bc, 'failed', reason);
  } finally {
    progress.step('tearing down');
    await built.destroy().catch((e: unknown) => progress.note(`${bc.id}: teardown: ${(e as Error).message}`));
  }
}

/** Medians and min–max per metric; ratios against the kernel case's medians, and the naive case's when it ran. */
export function addSummaries(results: CaseResult[]): void {
  for (const c of results) {
    if (c.status !== 'measured') continue;
    c.summary = Object.fromEntries(METRIC_KEYS.map((k) => [k, { ...summarize(c.runs.map((r) => r.metrics[k])), ratio: null, ratioToNaive: null }])) as NonNullable<CaseResult['summary']>;
  }
  const kernel = results.find((c) => c.id === 'kernel')?.summary ?? null;
  const naive = results.find((c) => c.id === NAIVE_CASE)?.summary ?? null;
  for (const c of results) {
    if (!c.summary) continue;
    for (const k of METRIC_KEYS) {
      c.summary[k].ratio = kernel ? ratio(c.summary[k].median, kernel[k].median) : null;
      c.summary[k].ratioToNaive = naive ? ratio(c.summary[k].median, naive[k].median) : null;
    }
  }
}
