/**
 * Network-namespace lab: the topology library behind `vxtun lab` and every integration test.
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
 *   capture(ns, iface, filter, { count?, flags = ['-xx', '-n'], file?, snaplen? }?): Promise<Capture>
 *     Capture: .child, .done: Promise<CaptureResult> (tcpdump exited by itself), .stop(): Promise<CaptureResult>
 *   parseTcpdump(text): TcpdumpPacket[]                `-xx`/`-x` output -> { summary, hexLines, bytes }
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
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

// ---------------------------------------------------------------------------------------------
// Running commands

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

// ---------------------------------------------------------------------------------------------
// Address guards: the lab refuses to configure anything outside its ranges.

function parseV4(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new Error(`not an IPv4 address: ${ip}`);
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

function formatV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function splitCidr(cidr: string, defaultLen?: number): { ip: string; len: number } {
  const [ip, len] = cidr.split('/');
  if (ip === undefined || (len === undefined && defaultLen === undefined)) throw new Error(`not a CIDR: ${cidr}`);
  const n = len === undefined ? defaultLen! : Number(len);
  if (!Number.isInteger(n)) throw new Error(`not a CIDR: ${cidr}`);
  return { ip, len: n };
}

function inV4(ip: string, net: string, len: number): boolean {
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((parseV4(ip) & mask) >>> 0) === ((parseV4(net) & mask) >>> 0);
}

function assertUnderlay(ip: string): void {
  if (!inV4(ip, '198.18.0.0', 15)) throw new Error(`underlay address ${ip} is outside 198.18.0.0/15`);
}

function assertPodV4(ip: string): void {
  if (!inV4(ip, '10.244.0.0', 16)) throw new Error(`pod address ${ip} is outside 10.244.0.0/16`);
}

function assertPodV6(ip: string): void {
  if (!/^f[cd][0-9a-f]{0,2}:/i.test(ip)) throw new Error(`IPv6 pod address ${ip} is not a ULA (fc00::/7)`);
}

/** `10.244.2.0/24` -> `10.244.2.0` (the network address, which flannel puts on flannel.<VNI>). */
function networkAddress(cidr: string): string {
  const { ip, len } = splitCidr(cidr);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return formatV4((parseV4(ip) & mask) >>> 0);
}

function assertMac(mac: string): void {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new Error(`not a MAC address: ${mac}`);
}

// ---------------------------------------------------------------------------------------------
// Topology and namespaces

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

// ---------------------------------------------------------------------------------------------
// Underlay: one L2 segment (a bridge in its own namespace) joining the nodes' eth0.

export interface UnderlayPort {
  node: Netns;
  ifname: string;
  ip: string;
  prefixLen: number;
  mtu: number;
  /** The veth end enslaved to the bridge, in the underlay namespace. */
  bridgePort: string;
}

export class Underlay {
  readonly bridge = 'br0';
  private ports = 0;
  private constructor(readonly ns: Netns) {}

  static async create(topology: Topology, suffix = 'ul'): Promise<Underlay> {
    const ns = await topology.netns(suffix);
    const ul = new Underlay(ns);
    await ns.ip(['link', 'add', ul.bridge, 'type', 'bridge']);
    await ns.ip(['link', 'set', ul.bridge, 'up']);
    return ul;
  }

  /** Connects `node` by a veth pair: `ifname` (default eth0) in the node with `ip/prefixLen`, the other end on the bridge. */
  async attach(
    node: Netns,
    ip: string,
    opts: { mtu?: number; prefixLen?: number; ifname?: string } = {},
  ): Promise<UnderlayPort> {
    assertUnderlay(ip);
    const mtu = opts.mtu ?? 1500;
    const prefixLen = opts.prefixLen ?? 24;
    const ifname = opts.ifname ?? 'eth0';
    const bridgePort = `p${++this.ports}`;
    await this.ns.ip(['link', 'add', bridgePort, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', ifname, 'mtu', String(mtu), 'netns', node.name]);
    await this.ns.ip(['link', 'set', bridgePort, 'master', this.bridge, 'up']);
    await node.ip(['addr', 'add', `${ip}/${prefixLen}`, 'dev', ifname]);
    await node.ip(['link', 'set', ifname, 'up']);
    return { node, ifname, ip, prefixLen, mtu, bridgePort };
  }
}

// ---------------------------------------------------------------------------------------------
// Kernel VXLAN set up exactly as flanneld's vxlan backend does it.
//
// flannel-io/flannel pkg/backend/vxlan/vxlan.go (RegisterNetwork) and device.go (newVXLANDevice):
// a netlink.Vxlan link `flannel.<VNI>` with VtepDevIndex = the external interface, SrcAddr = its
// address, Port = the configured port (0 -> the kernel default 8472), Learning = false, a random
// MAC, MTU = external MTU − 50; accept_ra=0; address `<lease subnet IP>/32` ("so that no broadcast
// routes are created"), link up.
// Per remote lease, vxlan_network.go handleSubnetEvents (in this order):
//   AddARP: NeighSet{State: NUD_PERMANENT, Type: RTN_UNICAST, IP: <subnet>.0, MAC: VtepMAC}
//   AddFDB: NeighSet{Family: AF_BRIDGE, Flags: NTF_SELF, State: NUD_PERMANENT, IP: PublicIP, MAC: VtepMAC}
//   route:  RouteReplace{Dst: <subnet>, Gw: <subnet>.0, LinkIndex: flannel.<VNI>, Flags: ONLINK}
// NeighSet is RTM_NEWNEIGH with NLM_F_CREATE|NLM_F_REPLACE, i.e. `ip neigh replace` and
// `bridge fdb replace` (not `append`, which would add a second remote for the same MAC).

export interface KernelFlannelOptions {
  publicIp: string;
  /** The node's lease, e.g. `10.244.1.0/24`. */
  subnet: string;
  vtepMac: string;
  vni?: number;
  port?: number;
  dev?: string;
  underlayDev?: string;
  /** Default: MTU of underlayDev − 50. */
  mtu?: number;
  /** Optional inner IPv6 address with prefix, e.g. `fd00:244:1::/128` (inner IPv6 over the IPv4 underlay). */
  ipv6Address?: string;
}

export interface KernelFlannelNode {
  ns: Netns;
  dev: string;
  publicIp: string;
  subnet: string;
  /** `<subnet>.0`, the address on the device. */
  address: string;
  vtepMac: string;
  vni: number;
  port: number;
  mtu: number;
}

export async function createKernelFlannelNode(ns: Netns, opts: KernelFlannelOptions): Promise<KernelFlannelNode> {
  assertUnderlay(opts.publicIp);
  assertMac(opts.vtepMac);
  const address = networkAddress(opts.subnet);
  assertPodV4(address);
  const vni = opts.vni ?? 1;
  const port = opts.port ?? 8472;
  const dev = opts.dev ?? `flannel.${vni}`;
  const underlayDev = opts.underlayDev ?? 'eth0';
  const mtu = opts.mtu ?? (await ns.linkMtu(underlayDev)) - 50;
  await ns.ip(['link', 'add', dev, 'type', 'vxlan', 'id', String(vni), 'local', opts.publicIp, 'dev', underlayDev, 'dstport', String(port), 'nolearning']);
  await ns.ip(['link', 'set', dev, 'address', opts.vtepMac, 'mtu', String(mtu)]);
  await ns.sysctl(`net/ipv6/conf/${dev}/accept_ra`, 0); // slash form: the device name contains a dot
  await ns.ip(['addr', 'add', `${address}/32`, 'dev', dev]);
  if (opts.ipv6Address !== undefined) {
    assertPodV6(opts.ipv6Address);
    await ns.ip(['addr', 'add', opts.ipv6Address, 'dev', dev, 'nodad']);
  }
  await ns.ip(['link', 'set', dev, 'up']);
  return { ns, dev, publicIp: opts.publicIp, subnet: opts.subnet, address, vtepMac: opts.vtepMac, vni, port, mtu };
}

export interface KernelPeer {
  /** The peer's lease, e.g. `10.244.2.0/24`. */
  subnet: string;
  publicIp: string;
  vtepMac: string;
  dev?: string;
  /** UDP port for this FDB entry (default: the device's dstport). */
  port?: number;
}

/** Programs one remote lease the way flanneld does: permanent ARP, permanent FDB, onlink route. */
export async function addKernelPeer(ns: Netns, peer: KernelPeer): Promise<void> {
  assertUnderlay(peer.publicIp);
  assertMac(peer.vtepMac);
  const dev = peer.dev ?? 'flannel.1';
  const gw = networkAddress(peer.subnet);
  assertPodV4(gw);
  await ns.ip(['neigh', 'replace', gw, 'lladdr', peer.vtepMac, 'dev', dev, 'nud', 'permanent']);
  const fdb = ['fdb', 'replace', peer.vtepMac, 'dev', dev, 'dst', peer.publicIp, 'self', 'permanent'];
  if (peer.port !== undefined) fdb.push('port', String(peer.port));
  await ns.bridge(fdb);
  await ns.ip(['route', 'replace', `${gw}/${splitCidr(peer.subnet).len}`, 'via', gw, 'dev', dev, 'onlink']);
}

/** Undoes addKernelPeer (flanneld's EventRemoved): neighbour, FDB entry and route. Missing entries are ignored. */
export async function removeKernelPeer(ns: Netns, peer: KernelPeer): Promise<void> {
  const dev = peer.dev ?? 'flannel.1';
  const gw = networkAddress(peer.subnet);
  await run(['ip', '-n', ns.name, 'route', 'del', `${gw}/${splitCidr(peer.subnet).len}`, 'dev', dev]);
  await run(['ip', '-n', ns.name, 'neigh', 'del', gw, 'dev', dev]);
  await run(['bridge', '-n', ns.name, 'fdb', 'del', peer.vtepMac, 'dev', dev, 'dst', peer.publicIp, 'self']);
}

/**
 * Inner IPv6 towards a peer whose FDB entry already exists (addKernelPeer): permanent neighbour
 * `<subnet6 network>` -> vtepMac and route `subnet6 via <network> dev <dev> onlink`. (flanneld itself
 * uses a separate flannel-v6.<VNI> device over an IPv6 underlay; this is the same shape on one device.)
 */
export async function addKernelPeerV6(ns: Netns, peer: { subnet6: string; vtepMac: string; dev?: string }): Promise<void> {
  const dev = peer.dev ?? 'flannel.1';
  const { ip: gw, len } = splitCidr(peer.subnet6);
  assertPodV6(gw);
  assertMac(peer.vtepMac);
  await ns.ip(['-6', 'neigh', 'replace', gw, 'lladdr', peer.vtepMac, 'dev', dev, 'nud', 'permanent']);
  await ns.ip(['-6', 'route', 'replace', `${gw}/${len}`, 'via', gw, 'dev', dev, 'onlink']);
}

export async function enableIpv4Forwarding(ns: Netns): Promise<void> {
  await ns.sysctl('net.ipv4.ip_forward', 1);
}

export async function enableIpv6Forwarding(ns: Netns): Promise<void> {
  await ns.sysctl('net.ipv6.conf.all.forwarding', 1);
}

/**
 * `ethtool -K <dev> <feature> on|off ...` inside `ns`. With veth's defaults a kernel VXLAN sender
 * hands its peer inner TCP/UDP checksums that are only the pseudo-header sum (CHECKSUM_PARTIAL) and
 * GSO super-packets of up to ~64 KB; `{ tx: false }` on the sender's eth0 (or flannel.1) makes it
 * finish checksums and segment in software (see test/fixtures/kernel/README.md).
 */
export async function setOffloads(ns: Netns, dev: string, features: Record<string, boolean>): Promise<void> {
  const args = Object.entries(features).flatMap(([k, v]) => [k, v ? 'on' : 'off']);
  if (args.length > 0) await ns.execOk(['ethtool', '-K', dev, ...args]);
}

// ---------------------------------------------------------------------------------------------
// Pods, as the CNI bridge plugin wires them: a veth from the pod's eth0 into bridge cni0 in the node.

export interface PodOptions {
  /** Namespace suffix (full name when the node has no topology). */
  name: string;
  /** Address of the bridge, e.g. `10.244.1.1/24`. */
  gatewayCidr: string;
  /** The pod's address, e.g. `10.244.1.2/24`. */
  podIp: string;
  /** Routed via the gateway (never a default route). */
  network?: string;
  bridge?: string;
  /** MTU of the veth pair (the CNI plugin uses FLANNEL_MTU). */
  mtu?: number;
  gatewayCidr6?: string;
  podIp6?: string;
  network6?: string;
}

const podCounters = new WeakMap<Netns, number>();

export async function addPod(node: Netns, opts: PodOptions): Promise<Netns> {
  const bridge = opts.bridge ?? 'cni0';
  const network = opts.network ?? '10.244.0.0/16';
  const mtu = opts.mtu ?? 1450;
  const gw = splitCidr(opts.gatewayCidr);
  const pod = splitCidr(opts.podIp, gw.len);
  for (const a of [gw.ip, pod.ip, splitCidr(network).ip]) assertPodV4(a);
  const v6 = opts.podIp6 !== undefined && opts.gatewayCidr6 !== undefined;
  if (v6) for (const a of [opts.podIp6!, opts.gatewayCidr6!, opts.network6 ?? 'fd00::']) assertPodV6(a);

  const podNs = node.topology ? await node.topology.netns(opts.name) : await Netns.create(opts.name);
  if ((await run(['ip', '-n', node.name, 'link', 'show', 'dev', bridge])).code !== 0) {
    await node.ip(['link', 'add', bridge, 'type', 'bridge']);
    await node.ip(['link', 'set', bridge, 'up']);
  }
  await node.ip(['addr', 'replace', `${gw.ip}/${gw.len}`, 'dev', bridge]);
  if (v6) await node.ip(['-6', 'addr', 'replace', opts.gatewayCidr6!, 'dev', bridge, 'nodad']);
  const n = (podCounters.get(node) ?? 0) + 1;
  podCounters.set(node, n);
  const hostIf = `veth${n}`;
  await node.ip(['link', 'add', hostIf, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', podNs.name]);
  await node.ip(['link', 'set', hostIf, 'master', bridge, 'up']);
  await podNs.ip(['addr', 'add', `${pod.ip}/${pod.len}`, 'dev', 'eth0']);
  if (v6) await podNs.ip(['-6', 'addr', 'add', opts.podIp6!, 'dev', 'eth0', 'nodad']);
  await podNs.ip(['link', 'set', 'eth0', 'up']);
  await podNs.ip(['route', 'add', network, 'via', gw.ip, 'dev', 'eth0']);
  if (v6 && opts.network6 !== undefined) {
    await podNs.ip(['-6', 'route', 'add', opts.network6, 'via', splitCidr(opts.gatewayCidr6!).ip, 'dev', 'eth0']);
  }
  await enableIpv4Forwarding(node);
  if (v6) await enableIpv6Forwarding(node);
  return podNs;
}

// ---------------------------------------------------------------------------------------------
// Packet capture

export interface CaptureOptions {
  /** Stop after this many packets (`-c`). */
  count?: number;
  /** tcpdump flags; default `-xx -n` (hex including the link-layer header, no name lookups). */
  flags?: string[];
  /** Write a pcap file instead of printing (`-w file -U`). */
  file?: string;
  snaplen?: number;
}

export interface CaptureResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

export interface Capture {
  child: ChildProcess;
  /** Resolves when tcpdump exits on its own (e.g. after `count` packets). */
  done: Promise<CaptureResult>;
  /** Stops tcpdump (SIGINT, it flushes) and returns its output. */
  stop(): Promise<CaptureResult>;
}

/** Starts tcpdump in `ns` on `iface`; resolves once it is listening. */
export async function capture(ns: Netns, iface: string, filter: string | string[], opts: CaptureOptions = {}): Promise<Capture> {
  // --immediate-mode: without it packets wait in the kernel's ring buffer and a stop() loses them.
  const args = ['tcpdump', '--immediate-mode', '-i', iface, '-l', ...(opts.flags ?? ['-xx', '-n'])];
  if (opts.count !== undefined) args.push('-c', String(opts.count));
  if (opts.snaplen !== undefined) args.push('-s', String(opts.snaplen));
  if (opts.file !== undefined) args.push('-U', '-w', opts.file);
  args.push(...(Array.isArray(filter) ? filter : filter.split(/\s+/).filter(Boolean)));
  const child = ns.spawn(args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (/listening on/.test(stderr)) resolve();
    });
    child.once('exit', () => reject(new Error(`tcpdump exited before listening: ${stderr.trim()}`)));
  });
  const done = new Promise<CaptureResult>((resolve) => {
    child.once('close', (code) => resolve({ stdout, stderr, code }));
  });
  await listening;
  return {
    child,
    done,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        const r = await done;
        clearTimeout(t);
        return r;
      }
      return done;
    },
  };
}

export interface TcpdumpPacket {
  /** Summary line(s) before the hex dump (the first starts with the timestamp unless -t). */
  summary: string[];
  /** The `0x0000:  ....` lines verbatim. */
  hexLines: string[];
  bytes: Buffer;
}

// The packet's own dump lines start with exactly one tab; -vv decoders may print deeper-indented
// dumps (e.g. of an ICMPv6 option) that belong to the summary. (-X's ASCII column is not supported.)
const HEX_LINE = /^\t0x([0-9a-f]{4}):((?:\s+[0-9a-f]{2,4})+)\s*$/i;

/**
 * Splits `tcpdump -x/-xx` output (optionally -v/-vv) into packets: summary lines, then the
 * `\t0x0000:  ....` dump; a summary line after dump lines starts the next packet.
 */
export function parseTcpdump(text: string): TcpdumpPacket[] {
  const packets: TcpdumpPacket[] = [];
  let cur: { summary: string[]; hexLines: string[]; chunks: Buffer[]; next: number } | undefined;
  const flush = () => {
    if (cur) packets.push({ summary: cur.summary, hexLines: cur.hexLines, bytes: Buffer.concat(cur.chunks) });
    cur = undefined;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = HEX_LINE.exec(line);
    if (m) {
      if (!cur) throw new Error(`hex line without a summary: ${line}`);
      const offset = parseInt(m[1]!, 16);
      if (offset !== cur.next) throw new Error(`hex offset 0x${m[1]} where 0x${cur.next.toString(16)} was expected`);
      const hex = m[2]!.replace(/\s+/g, '');
      if (hex.length % 2 !== 0) throw new Error(`odd hex digit count: ${line}`);
      const chunk = Buffer.from(hex, 'hex');
      cur.chunks.push(chunk);
      cur.hexLines.push(line);
      cur.next += chunk.length;
      continue;
    }
    if (cur && cur.hexLines.length > 0) flush();
    cur ??= { summary: [], hexLines: [], chunks: [], next: 0 };
    cur.summary.push(line);
  }
  flush();
  return packets;
}
