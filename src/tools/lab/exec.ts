/**
 * Running commands for the lab and the tests: argv only (no shell), output collected, failures as
 * CommandError; unique run ids; polling.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';


export interface ExecOptions {
  /** Written to the command's stdin (stdin is closed afterwards either way). */
  input?: string | Buffer;
  /** SIGKILL after this many milliseconds (default 30 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class CommandError extends Error {
  constructor(
    readonly cmd: readonly string[],
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(
      `command failed (${signal !== null ? `signal ${signal}` : `exit ${code}`}): ${cmd.join(' ')}` +
        (stderr.trim() ? `\n${stderr.trim()}` : ''),
    );
    this.name = 'CommandError';
  }
}

/** Runs a command (argv, no shell) and collects its output. Rejects only if it cannot be started. */
export function run(cmd: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = cmd;
  if (file === undefined) return Promise.reject(new Error('run: empty command'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code, signal });
    });
    child.stdin.on('error', () => {}); // the command may exit without reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run(), but throws CommandError (with the command, exit code and stderr) on failure. */
export async function runOk(cmd: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await run(cmd, opts);
  if (r.code !== 0) throw new CommandError(cmd, r.code, r.signal, r.stdout, r.stderr);
  return r;
}

/** Short unique id for names in one run: pid and 16 random bits, base 36 / hex. */
export function runId(): string {
  return process.pid.toString(36) + randomBytes(2).toString('hex');
}

/** Polls `predicate` until it returns true (or a truthy promise). */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}`);
    await sleep(opts.intervalMs ?? 50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
