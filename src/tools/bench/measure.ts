/**
 * One measurement each: iperf3 TCP and UDP, ping RTTs, and the CPU time and peak RSS of a
 * dataplane process from /proc. A failed measurement returns an error string, never throws:
 * one bad iperf3 run must not cost the whole benchmark.
 */
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { type Netns, waitForOutput } from '../lab/netns.js';

export const IPERF_PORT = 5201;

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
    sum_received?: { bits_per_second: number; seconds: number; packets?: number; lost_packets?: number; lost_percent?: number };
  };
}

async function iperfClient(ns: Netns, args: string[], seconds: number, pin?: Pinning): Promise<Measured<IperfJson>> {
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

/** TCP goodput in Gbit/s as the receiver counted it. */
export async function iperfTcp(ns: Netns, serverIp: string, streams: number, seconds: number, pin?: Pinning): Promise<Measured<number>> {
  const r = await iperfClient(ns, ['-c', serverIp, '-P', String(streams)], seconds, pin);
  if (!r.ok) return r;
  return { ok: true, value: r.value.end!.sum_received!.bits_per_second / 1e9 };
}

export interface UdpFigures {
  /** Datagrams delivered per second, thousands. */
  kpps: number;
  lossPercent: number;
  /** Delivered payload, Mbit/s. */
  mbps: number;
}

/** Unlimited-rate UDP (`-u -b 0 -l N`): what arrived, and what was lost on the way. */
export async function iperfUdp(ns: Netns, serverIp: string, payload: number, seconds: number, pin?: Pinning): Promise<Measured<UdpFigures>> {
  const r = await iperfClient(ns, ['-c', serverIp, '-u', '-b', '0', '-l', String(payload)], seconds, pin);
  if (!r.ok) return r;
  const s = r.value.end!.sum_received!;
  const packets = s.packets ?? 0;
  const lost = s.lost_packets ?? 0;
  const secs = s.seconds > 0 ? s.seconds : seconds;
  return { ok: true, value: { kpps: (packets - lost) / secs / 1000, lossPercent: s.lost_percent ?? (packets > 0 ? (100 * lost) / packets : 0), mbps: s.bits_per_second / 1e6 } };
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

/** A memory figure from /proc/<pid>/status (VmHWM: peak RSS, VmRSS: current) in MiB, or null when the process is gone. */
export function statusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Peak resident set size (VmHWM) in MiB, or null when the process is gone. */
export function peakRssMiB(pid: number): number | null {
  return statusMiB(pid, 'VmHWM');
}
