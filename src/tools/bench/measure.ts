/**
 * One measurement each: iperf3 TCP and UDP, netperf TCP_RR and TCP_CRR, ping RTTs, the CPU time
 * and peak RSS of a dataplane process and the host's busy CPU time from /proc. A failed
 * measurement returns an error string, never throws: one bad run must not cost the whole benchmark.
 */
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { type Netns, waitForOutput } from '../lab/netns.js';

export const IPERF_PORT = 5201;
export const NETPERF_PORT = 12865;

export type Measured<T> = { ok: true; value: T } | { ok: false; error: string };

/** Optional CPU pinning of the traffic tools (`taskset -c`). */
export interface Pinning {
  client?: string;
  server?: string;
}

function pinned(cmd: string[], cpus: string | undefined): string[] {
  return cpus === undefined ? cmd : ['taskset', '-c', cpus, ...cmd];
}

/** Starts `iperf3 -s` bound to `ip` inside `ns`; resolves once it listens. Killed with its topology. */
export async function startIperfServer(ns: Netns, ip: string, pin?: Pinning): Promise<ChildProcess> {
  const child = ns.spawn(pinned(['iperf3', '-s', '--forceflush', '-B', ip, '-p', String(IPERF_PORT)], pin?.server));
  await waitForOutput(child, /Server listening/, { timeoutMs: 10_000 });
  return child;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second: number; seconds: number; bytes?: number; packets?: number; lost_packets?: number; lost_percent?: number };
  };
}

/**
 * An iperf3 server still closing the test before (a loaded machine: its control connection ends late)
 * refuses the next one ("the server is busy", a reset control connection): asked again after a
 * second, up to twice, so a round is not lost to the server's bookkeeping.
 */
const SERVER_NOT_READY = /server is busy|Connection reset by peer|unable to receive control message/;

async function iperfClient(ns: Netns, args: string[], seconds: number, pin?: Pinning): Promise<Measured<IperfJson>> {
  let r = await iperfOnce(ns, args, seconds, pin);
  for (let retry = 0; retry < 2 && !r.ok && SERVER_NOT_READY.test(r.error); retry++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    r = await iperfOnce(ns, args, seconds, pin);
  }
  return r;
}

async function iperfOnce(ns: Netns, args: string[], seconds: number, pin?: Pinning): Promise<Measured<IperfJson>> {
  const cmd = pinned(['iperf3', '-J', '--connect-timeout', '3000', '-p', String(IPERF_PORT), '-t', String(seconds), ...args], pin?.client);
  const r = await ns.exec(cmd, { timeoutMs: (seconds + 20) * 1000 });
  let json: IperfJson | undefined;
  try {
    json = JSON.parse(r.stdout) as IperfJson;
  } catch {
    /* handled below */
  }
  if (json?.error) return { ok: false, error: `iperf3 ${args.join(' ')}: ${json.error}` };
  if (r.code !== 0 || !json?.end?.sum_received) {
    const why = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
    return { ok: false, error: `iperf3 ${args.join(' ')}: ${why} ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`.trim() };
  }
  return { ok: true, value: json };
}

/** TCP goodput in Gbit/s and the bytes delivered, as the receiver counted them. */
export async function iperfTcp(ns: Netns, serverIp: string, streams: number, seconds: number, pin?: Pinning): Promise<Measured<{ gbps: number; bytes: number }>> {
  const r = await iperfClient(ns, ['-c', serverIp, '-P', String(streams)], seconds, pin);
  if (!r.ok) return r;
  const s = r.value.end!.sum_received!;
  return { ok: true, value: { gbps: s.bits_per_second / 1e9, bytes: s.bytes ?? (s.bits_per_second * s.seconds) / 8 } };
}

export interface UdpFigures {
  /** Datagrams delivered per second, thousands. */
  kpps: number;
  lossPercent: number;
  /** Delivered payload, Mbit/s. */
  mbps: number;
  /** Delivered payload, bytes. */
  bytes: number;
}

/** Unlimited-rate UDP (`-u -b 0 -l N`): what arrived, and what was lost on the way. */
export async function iperfUdp(ns: Netns, serverIp: string, payload: number, seconds: number, pin?: Pinning): Promise<Measured<UdpFigures>> {
  const r = await iperfClient(ns, ['-c', serverIp, '-u', '-b', '0', '-l', String(payload)], seconds, pin);
  if (!r.ok) return r;
  const s = r.value.end!.sum_received!;
  const packets = s.packets ?? 0;
  const lost = s.lost_packets ?? 0;
  const secs = s.seconds > 0 ? s.seconds : seconds;
  return { ok: true, value: { kpps: (packets - lost) / secs / 1000, lossPercent: s.lost_percent ?? (packets > 0 ? (100 * lost) / packets : 0), mbps: s.bits_per_second / 1e6, bytes: s.bytes ?? (s.bits_per_second * secs) / 8 } };
}

/** Starts `netserver` in the foreground bound to `ip` inside `ns`; resolves once it listens. Killed with its topology. */
export async function startNetserver(ns: Netns, ip: string, pin?: Pinning): Promise<ChildProcess> {
  const child = ns.spawn(pinned(['netserver', '-D', '-L', `${ip},4`, '-p', String(NETPERF_PORT)], pin?.server));
  await waitForOutput(child, /Starting netserver/, { timeoutMs: 10_000 });
  // It prints before listen(): wait until the port really accepts.
  for (let i = 0; i < 50; i++) {
    const r = await ns.exec(['ss', '-Hltn', `sport = :${NETPERF_PORT}`]);
    if (r.stdout.trim() !== '') return child;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`netserver in ${ns.name} did not listen on ${ip}:${NETPERF_PORT}`);
}

export interface Transactions {
  perSecond: number;
  /** Latency percentiles of one transaction, microseconds (netperf's omni histogram, `-j`). */
  p50Us: number;
  p90Us: number;
  p99Us: number;
}

/**
 * netperf TCP_RR (one request and reply of 1 byte each on one connection) or TCP_CRR (a new
 * connection per transaction), for `seconds` or for a number of `transactions`. TCP_CRR is run by
 * count: timed, netserver only reports once its own timer (the test's length plus 4 s of padding)
 * expires, which would cost 4 idle seconds per measurement.
 */
export async function netperfRr(ns: Netns, serverIp: string, test: 'TCP_RR' | 'TCP_CRR', length: { seconds: number } | { transactions: number }, pin?: Pinning): Promise<Measured<Transactions>> {
  const l = 'seconds' in length ? String(length.seconds) : String(-Math.max(1, Math.round(length.transactions)));
  const cmd = pinned(['netperf', '-H', serverIp, '-p', String(NETPERF_PORT), '-t', test, '-l', l, '-j', '-P', '0', '--', '-o', 'THROUGHPUT,P50_LATENCY,P90_LATENCY,P99_LATENCY'], pin?.client);
  const r = await ns.exec(cmd, { timeoutMs: 60_000 });
  const fields = r.stdout.trim().split('\n').pop()?.split(',').map(Number) ?? [];
  if (r.code !== 0 || fields.length !== 4 || fields.some((f) => !Number.isFinite(f))) {
    const why = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
    return { ok: false, error: `netperf ${test}: ${why} ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`.trim() };
  }
  const [perSecond, p50Us, p90Us, p99Us] = fields as [number, number, number, number];
  return { ok: true, value: { perSecond, p50Us, p90Us, p99Us } };
}

/** Ping RTT samples in ms (`count` echoes `intervalMs` apart); replies that never came are simply absent. */
export async function pingRtts(ns: Netns, ip: string, count: number, intervalMs: number): Promise<Measured<number[]>> {
  const deadline = Math.ceil((count * intervalMs) / 1000) + 3;
  const r = await ns.exec(['ping', '-n', '-c', String(count), '-i', String(intervalMs / 1000), '-W', '1', '-w', String(deadline), ip], { timeoutMs: (deadline + 5) * 1000 });
  const samples = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (samples.length === 0) return { ok: false, error: `ping ${ip}: no replies (${(r.stderr || r.stdout).trim().split('\n').pop() ?? ''})` };
  return { ok: true, value: samples };
}

/** Linux reports /proc/<pid>/stat times in USER_HZ ticks, which is 100 on every architecture Node runs on. */
const USER_HZ = 100;

/** utime + stime of a process in seconds, or null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state (field 3); utime/stime are fields 14/15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / USER_HZ;
  } catch {
    return null;
  }
}

/** A memory figure from /proc/<pid>/status (VmHWM: peak RSS, VmRSS: current, RssAnon: its private part) in MiB, or null when the process is gone. */
export function statusMiB(pid: number, field: 'VmHWM' | 'VmRSS' | 'RssAnon'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/**
 * CPU-seconds the whole host spent busy (user, nice, system, irq, softirq, steal: everything but
 * idle and iowait) since boot, summed over every CPU, from /proc/stat.
 */
export function hostBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return (user + nice + system + irq + softirq + steal) / USER_HZ;
}

/** Peak resident set size (VmHWM) in MiB, or null when the process is gone. */
export function peakRssMiB(pid: number): number | null {
  return statusMiB(pid, 'VmHWM');
}
