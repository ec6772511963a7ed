/**
 * What a result was measured on: enough to tell two machines apart (`vxtun bench compare` refuses
 * to compare across machines unless told to) and to judge how noisy the run was.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { run } from '../lab/exec.js';
import { loadNative } from '../../io/addon.js';
import { packageRoot } from '../../util/package-root.js';
import { commitOf } from '../../util/build-identity.js';

export interface MachineDescription {
  hostname: string;
  /** sha256 of /etc/machine-id (first 16 hex digits), so the file does not leak the id itself. */
  machineIdHash: string;
  /** Identifies the machine kind for compare: machine id, CPU model, core count, kernel. */
  fingerprint: string;
  kernel: string;
  cpuModel: string;
  cores: number;
  memoryMiB: number;
  node: string;
  vxtunVersion: string;
  iperf3: string;
  netperf: string;
  /** Features compiled in / available in this build. */
  features: { nativeAddon: boolean; nativeChecksum: boolean };
  /** CPUs this process may run on (from /proc/self/status Cpus_allowed_list). */
  cpusAllowed: string;
  /** 1, 5, 15 minute load averages when the description was taken: other work on the machine shows here. */
  loadAverage: number[];
  /**
   * The host's TCP congestion control (net.ipv4.tcp_congestion_control), which the lab's namespaces,
   * and so the pods' TCP, start with: the RTT under load depends on it (docs/performance.md).
   * Absent in results written before it was recorded.
   */
  tcpCongestionControl?: string;
}

/** The host's default TCP congestion control, or 'unknown'. */
export function tcpCongestionControl(): string {
  try {
    return readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

export function vxtunVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Cpus_allowed_list of a process ('self' or a pid), e.g. "0-1"; 'unknown' when gone. */
export function cpusAllowed(pid: number | 'self'): string {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The first line a tool prints about its version, or 'not installed'. */
async function toolVersion(cmd: string[]): Promise<string> {
  try {
    const r = await run(cmd);
    return (r.stdout || r.stderr).split('\n')[0]?.trim() || 'not installed';
  } catch {
    return 'not installed';
  }
}

/** What was measured: the package version and the commit of the package root. */
export function buildIdentity(): { vxtunVersion: string; commit: string } {
  return { vxtunVersion: vxtunVersion(), commit: commitOf(packageRoot()) };
}

export async function describeMachine(): Promise<MachineDescription> {
  let machineId = '';
  try {
    machineId = readFileSync('/etc/machine-id', 'utf8').trim();
  } catch {
    /* containers may lack it: the hostname stands in */
  }
  const c = cpus();
  const cpuModel = c[0]?.model.trim() ?? 'unknown';
  const kernel = release();
  const host = hostname();
  const machineIdHash = createHash('sha256').update(machineId || host).digest('hex').slice(0, 16);
  const fingerprint = createHash('sha256').update([machineIdHash, cpuModel, c.length, kernel].join('|')).digest('hex').slice(0, 16);
  const iperf3 = await toolVersion(['iperf3', '--version']);
  const netperf = await toolVersion(['netperf', '-V']);
  const native = loadNative();
  return {
    hostname: host,
    machineIdHash,
    fingerprint,
    kernel,
    cpuModel,
    cores: c.length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    vxtunVersion: vxtunVersion(),
    iperf3,
    netperf,
    features: { nativeAddon: native !== undefined, nativeChecksum: typeof native?.checksum === 'function' },
    cpusAllowed: cpusAllowed('self'),
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    tcpCongestionControl: tcpCongestionControl(),
  };
}
