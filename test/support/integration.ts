/** Shared pieces of the integration tests: prerequisites, transfers, captures. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Netns } from '../../src/tools/lab/netns.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { cliPath } from '../../src/tools/lab/cluster.js';

export const toolsDir = fileURLToPath(new URL('../tools/', import.meta.url));
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Integration tests need root and these commands. A missing one is a failure with its name,
 * never a skip: in CI the suite must prove what it claims.
 */
export function requirePrerequisites(commands: string[] = ['ip', 'bridge', 'ping', 'tcpdump']): void {
  if (process.getuid?.() !== 0) throw new Error('integration tests need root (network namespaces, TUN)');
  for (const c of commands) {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`integration tests need "${c}" (installed by scripts/install-deps.sh)`);
    }
  }
  if (!existsSync(`${repoRoot}dist/src/cli/main.js`)) throw new Error('dist/ is missing: run npm run build first');
}

/** Runs fn with `env` added to this process's environment (vxtun nodes it starts inherit it), then puts it back. */
export async function withEnv<T>(env: Record<string, string> | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  Object.assign(process.env, env ?? {});
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(env ?? {})) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

export interface TransferResult {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
}

/** Sends `bytes` over TCP from one pod to another and returns both ends' sha256. */
export async function tcpTransfer(from: Netns, to: Netns, toIp: string, bytes: number, port = 5201): Promise<TransferResult> {
  const sink = to.spawn([process.execPath, `${toolsDir}xfer.mjs`, 'sink', toIp, String(port)]);
  let out = '';
  let err = '';
  sink.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  sink.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const sinkExit = new Promise<void>((resolve) => sink.once('exit', () => resolve()));
  await waitFor(() => out.includes('listening'), { timeoutMs: 10_000, what: `sink listening (${err})` });
  const src = await from.execOk([process.execPath, `${toolsDir}xfer.mjs`, 'source', toIp, String(port), String(bytes)], { timeoutMs: 180_000 });
  await Promise.race([sinkExit, new Promise((r) => setTimeout(r, 30_000))]);
  const line = out.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`sink printed no result: ${out} ${err}`);
  return { sent: JSON.parse(src.stdout.trim().split('\n').pop()!), received: JSON.parse(line) };
}

/** Runs ping and returns its exit code and output. */
export async function ping(ns: Netns, ip: string, extra: string[] = []): Promise<{ code: number | null; out: string }> {
  const r = await ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', ...extra, ip]);
  return { code: r.code, out: r.stdout + r.stderr };
}

/** A `vxtun trace` process with its output so far. */
export interface TraceProc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

/** Starts `vxtun trace <args>`, collecting stdout and stderr. */
export function startTrace(args: string[]): TraceProc {
  const child = spawn(process.execPath, [cliPath, 'trace', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { child, out: () => out, err: () => err, exited };
}

/** The scheduling policy of every thread of a process (field 41 of /proc/<pid>/task/<tid>/stat: 0 SCHED_OTHER, 3 SCHED_BATCH). */
export function threadPolicies(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      return []; // a thread that exited since the listing
    }
    return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3])];
  });
}
/** The nice value of each thread of a process (/proc/<pid>/task/<tid>/stat field 19). */
export function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19 - 3])];
    } catch {
      return []; // a thread that exited since the listing
    }
  });
}
export const SCHED_OTHER = 0;
export const SCHED_BATCH = 3;
