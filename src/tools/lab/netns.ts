/**
 * Network-namespace lab: the topology library behind `vxtun lab` and every integration test.
 * This file: Topology and Netns; commands in exec.ts, address guards in addresses.ts, the underlay
 * bridge in underlay.ts, kernel flannel nodes in kernel-flannel.ts, pods in pods.ts (tcpdump capture
 * is test-only: test/support/capture.ts).
 *
 * Everything this module creates lives in network namespaces it creates itself, named
 * `<prefix>-<suffix>` with a prefix unique to the run (`vxt-<runId>`); links are created directly
 * inside those namespaces (never in the root namespace), so deleting the namespaces removes them.
 * Underlay addresses must be in 198.18.0.0/15, pod addresses in 10.244.0.0/16 or an IPv6 ULA
 * (fc00::/7); no default route is ever installed. Needs root and iproute2 (`ip`, `bridge`);
 * `capture()` needs tcpdump.
 *
 * API
 *   runId(): string                                    short unique id (pid + random), [a-z0-9]
 *   run(cmd, opts?) / runOk(cmd, opts?)                run a command in the current namespace
 *   class CommandError extends Error                   { cmd, code, signal, stdout, stderr }
 *   class Topology                                     owner of everything created for one run
 *     new Topology({ id?, prefix?, exitHandlers? = true })
 *     .id, .prefix                                     prefix defaults to `vxt-<id>`
 *     .netns(suffix): Promise<Netns>                   creates `<prefix>-<suffix>`, lo up
 *     .track(child): ChildProcess                      killed by destroy()
 *     .namespaces: readonly Netns[]
 *     .destroy(): Promise<void>                        idempotent: kills processes, deletes namespaces
 *     .destroySync(): void                             same, synchronous (used by the exit/signal handlers)
 *   class Netns
 *     static create(name, topology?): Promise<Netns>   fails if the name exists (never adopts one)
 *     .name, .topology
 *     .exec(cmd, opts?): Promise<ExecResult>           `ip netns exec <name> ...cmd`, never throws on exit code
 *     .execOk(cmd, opts?): Promise<ExecResult>         throws CommandError on non-zero exit
 *     .ip(args): Promise<ExecResult>                   `ip -n <name> ...args`, throws on failure
 *     .bridge(args): Promise<ExecResult>               `bridge -n <name> ...args`, throws on failure
 *     .sysctl(key, value): Promise<void>
 *     .spawn(cmd, opts?): ChildProcess                 long-running process inside, tracked by the topology;
 *                                                      output drained and kept (processOutput / waitForOutput)
 *     .pids(): Promise<number[]>                       processes inside (`ip netns pids`)
 *     .linkMtu(dev): Promise<number>
 *     .delete(): Promise<void>                         kills processes inside, deletes; idempotent
 *   class Underlay                                     a bridge `br0` in `<prefix>-<suffix>` (default `ul`)
 *     static create(topology, suffix = 'ul'): Promise<Underlay>
 *     .attach(node, ip, { mtu = 1500, prefixLen = 24, ifname = 'eth0' }?): Promise<UnderlayPort>
 *   createKernelFlannelNode(ns, { publicIp, subnet, vtepMac, vni = 1, port = 8472,
 *                                 dev = `flannel.<vni>`, underlayDev = 'eth0', mtu = underlay − 50,
 *                                 ipv6Address? }): Promise<KernelFlannelNode>
 *   addKernelPeer(ns, { subnet, publicIp, vtepMac, dev = 'flannel.1', port? }): Promise<void>
 *   removeKernelPeer(ns, { subnet, publicIp, vtepMac, dev = 'flannel.1' }): Promise<void>
 *   addKernelPeerV6(ns, { subnet6, vtepMac, dev = 'flannel.1' }): Promise<void>
 *   addPod(node, { name, gatewayCidr, podIp, network = '10.244.0.0/16', bridge = 'cni0', mtu = 1450,
 *                  gatewayCidr6?, podIp6?, network6? }): Promise<Netns>
 *   enableIpv4Forwarding(ns) / enableIpv6Forwarding(ns): Promise<void>
 *   setOffloads(ns, dev, { 'tx-checksum-ip-generic': false, ... }): Promise<void>   `ethtool -K`
 *   waitFor(predicate, { timeoutMs = 10000, intervalMs = 50, what? }?): Promise<void>
 *   sleep(ms): Promise<void>
 *   processOutput(child): string                       last 64 KiB of a spawned process's stdout+stderr
 *   waitForOutput(child, re, { timeoutMs = 10000 }?): Promise<RegExpMatchArray>
 *
 * Typical use (integration test):
 *   const topo = new Topology();
 *   afterAll(() => topo.destroy());
 *   const ul = await Underlay.create(topo);
 *   const n1 = await topo.netns('n1');
 *   await ul.attach(n1, '198.18.0.1');
 *   await createKernelFlannelNode(n1, { publicIp: '198.18.0.1', subnet: '10.244.1.0/24', vtepMac: '0a:58:0a:f4:01:00' });
 */
import { CommandError, ExecOptions, ExecResult, run, runId, runOk, waitFor } from './exec.js';
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const live = new Set<Topology>();
let handlersInstalled = false;

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const t of live) t.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const t of live) t.destroySync();
      // Keep the default behaviour (terminate by the signal) unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

export interface TopologyOptions {
  /** Unique part of the names; default runId(). */
  id?: string;
  /** Namespace name prefix; default `vxt-<id>`. */
  prefix?: string;
  /** Clean up from process 'exit' / SIGINT / SIGTERM / SIGHUP handlers (default true). */
  exitHandlers?: boolean;
}

/** Owns every namespace and process created for one run; destroy() removes them all. */
export class Topology {
  readonly id: string;
  readonly prefix: string;
  private readonly nsList: Netns[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly cleanups: Array<() => void> = [];
  private destroyed = false;

  constructor(opts: TopologyOptions = {}) {
    this.id = opts.id ?? runId();
    this.prefix = opts.prefix ?? `vxt-${this.id}`;
    if (!NAME_RE.test(this.prefix)) throw new Error(`bad prefix: ${this.prefix}`);
    live.add(this);
    if (opts.exitHandlers ?? true) installProcessHandlers();
  }

  get namespaces(): readonly Netns[] {
    return this.nsList;
  }

  /** Creates namespace `<prefix>-<suffix>` (lo up) owned by this topology. */
  netns(suffix: string): Promise<Netns> {
    return Netns.create(`${this.prefix}-${suffix}`, this);
  }

  /** @internal called by Netns.create */
  register(ns: Netns): void {
    if (this.destroyed) throw new Error(`topology ${this.prefix} already destroyed`);
    this.nsList.push(ns);
  }

  /** Runs `cleanup` (synchronous: it must work from a signal handler too) when the topology is destroyed. */
  atDestroy(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }

  private runCleanups(): void {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        fn();
      } catch {
        // best effort: the rest still run
      }
    }
  }

  /** Kills `child` (and its process group when it leads one) on destroy(). */
  track<T extends ChildProcess>(child: T): T {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    live.delete(this);
    await Promise.all([...this.children].map((c) => stopChild(c)));
    this.children.clear();
    // Reverse order: pods before nodes before the underlay (not required, but tidy).
    const errors: unknown[] = [];
    for (const ns of [...this.nsList].reverse()) await ns.delete().catch((e: unknown) => errors.push(e));
    this.nsList.length = 0;
    this.runCleanups();
    if (errors.length > 0) throw new AggregateError(errors, `destroying ${this.prefix}: ${errors.length} namespace(s) not deleted`);
  }

  destroySync(): void {
    this.destroyed = true;
    live.delete(this);
    for (const c of this.children) killChild(c, 'SIGKILL');
    this.children.clear();
    for (const ns of [...this.nsList].reverse()) ns.deleteSync();
    this.nsList.length = 0;
    this.runCleanups();
  }
}

function killChild(c: ChildProcess, sig: NodeJS.Signals): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, sig); // spawn() makes each child a process-group leader
  } catch {
    try {
      c.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

async function stopChild(c: ChildProcess, graceMs = 2000): Promise<void> {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  killChild(c, 'SIGTERM');
  const t = setTimeout(() => killChild(c, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

function killPids(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

function parsePids(out: string): number[] {
  return out
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

export class Netns {
  private deleted = false;
  private constructor(
    readonly name: string,
    readonly topology: Topology | undefined,
  ) {}

  /** Creates a new namespace named exactly `name` with lo up. Fails if it already exists. */
  static async create(name: string, topology?: Topology): Promise<Netns> {
    if (!NAME_RE.test(name)) throw new Error(`bad namespace name: ${name}`);
    await runOk(['ip', 'netns', 'add', name]);
    const ns = new Netns(name, topology);
    try {
      topology?.register(ns);
      await ns.ip(['link', 'set', 'lo', 'up']);
    } catch (e) {
      await ns.delete();
      throw e;
    }
    return ns;
  }

  private argv(cmd: readonly string[]): string[] {
    if (cmd.length === 0) throw new Error('empty command');
    return ['ip', 'netns', 'exec', this.name, ...cmd];
  }

  exec(cmd: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return run(this.argv(cmd), opts);
  }

  execOk(cmd: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return runOk(this.argv(cmd), opts);
  }

  ip(args: readonly string[]): Promise<ExecResult> {
    return runOk(['ip', '-n', this.name, ...args]);
  }

  bridge(args: readonly string[]): Promise<ExecResult> {
    return runOk(['bridge', '-n', this.name, ...args]);
  }

  /** `key` in dotted or slash form (use slashes when a component, e.g. `flannel.1`, contains dots). */
  async sysctl(key: string, value: string | number): Promise<void> {
    await this.execOk(['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /**
   * Starts a long-running process inside the namespace (`ip netns exec` execs it, so the pid is
   * the command's own). It leads its own process group and is killed by the topology's destroy().
   * Default stdio is ['ignore', 'pipe', 'pipe']; piped output is always drained (so a chatty
   * process never blocks) and its last 64 KiB are kept for processOutput() / waitForOutput().
   */
  spawn(cmd: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const [file, ...args] = this.argv(cmd);
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts, detached: true });
    keepOutput(child);
    this.topology?.track(child);
    return child;
  }

  async pids(): Promise<number[]> {
    const r = await run(['ip', 'netns', 'pids', this.name]);
    return r.code === 0 ? parsePids(r.stdout) : [];
  }

  async linkMtu(dev: string): Promise<number> {
    const r = await this.ip(['-j', 'link', 'show', 'dev', dev]);
    const [link] = JSON.parse(r.stdout) as { mtu: number }[];
    if (!link) throw new Error(`no link ${dev} in ${this.name}`);
    return link.mtu;
  }

  /** Kills what runs inside, then deletes the namespace (its links go with it). Idempotent. */
  async delete(): Promise<void> {
    if (this.deleted) return;
    this.deleted = true;
    let pids = await this.pids();
    if (pids.length > 0) {
      killPids(pids, 'SIGTERM');
      await waitFor(async () => (pids = await this.pids()).length === 0, { timeoutMs: 2000 }).catch(() => {
        killPids(pids, 'SIGKILL');
      });
    }
    const r = await run(['ip', 'netns', 'del', this.name]);
    if (r.code !== 0 && !/No such file/.test(r.stderr)) throw new CommandError(['ip', 'netns', 'del', this.name], r.code, r.signal, r.stdout, r.stderr);
  }

  deleteSync(): void {
    if (this.deleted) return;
    this.deleted = true;
    try {
      killPids(parsePids(execFileSync('ip', ['netns', 'pids', this.name], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()), 'SIGKILL');
    } catch {
      /* namespace gone */
    }
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

const OUTPUT_KEEP = 64 * 1024;
const outputs = new WeakMap<ChildProcess, { text: string; waiters: Set<() => void> }>();

function keepOutput(child: ChildProcess): void {
  const o = { text: '', waiters: new Set<() => void>() };
  outputs.set(child, o);
  const onData = (b: Buffer) => {
    o.text = (o.text + b.toString()).slice(-OUTPUT_KEEP);
    for (const w of o.waiters) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
}

/** The last 64 KiB of stdout and stderr (interleaved) of a process started by Netns.spawn(). */
export function processOutput(child: ChildProcess): string {
  return outputs.get(child)?.text ?? '';
}

/** Resolves with the match once `re` matches the process's output; rejects on exit or timeout. */
export function waitForOutput(child: ChildProcess, re: RegExp, opts: { timeoutMs?: number } = {}): Promise<RegExpMatchArray> {
  const o = outputs.get(child);
  if (!o) return Promise.reject(new Error('waitForOutput: process was not started by Netns.spawn()'));
  return new Promise((resolve, reject) => {
    const done = (err?: Error, m?: RegExpMatchArray) => {
      clearTimeout(timer);
      o.waiters.delete(check);
      child.off('close', onExit);
      if (err) reject(err);
      else resolve(m!);
    };
    const check = () => {
      const m = o.text.match(re);
      if (m) done(undefined, m);
    };
    const onExit = () => {
      check();
      done(new Error(`process exited before its output matched ${re}:\n${o.text.slice(-2000)}`));
    };
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${re} in output:\n${o.text.slice(-2000)}`)), opts.timeoutMs ?? 10_000);
    o.waiters.add(check);
    child.once('close', onExit);
    check();
    if (child.exitCode !== null || child.signalCode !== null) onExit();
  });
}
