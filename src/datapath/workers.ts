/**
 * Multi-core: one engine per TUN queue. The device is opened with IFF_MULTI_QUEUE and one queue per
 * worker; the kernel picks a queue per flow (symmetric hash), and every worker binds the VXLAN port
 * with SO_REUSEPORT so the kernel spreads arriving datagrams over them by outer flow. Worker 0 is the
 * main thread's own engine; workers 1..n-1 are worker_threads running this same module. Each worker
 * publishes its counters into a SharedArrayBuffer after every batch, so the main thread sums them
 * without a message round trip; route tables go out by message (and are swapped atomically there).
 *
 * Tracing across threads stays exact: whether anyone watches is a flag in shared memory that every
 * worker reads before each batch (so a trace that has said hello misses no packet a worker starts on
 * afterwards), and a worker forwards the observations of one batch as one message, stamped with the
 * time they were made. The main thread replays such a message in one go, so a packet's stages are
 * never split across event-loop turns (the journey collector groups by turn).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Route, Vtep } from '../packet/routes.js';
import { RouteTable } from '../packet/routes.js';
import { Engine, type EngineOptions } from './engine.js';
import { Counters, DropReason, Answer, Fixup, type CounterSnapshot } from '../packet/counters.js';
import { NativeBind } from '../io/bind-native.js';
import { TUN_COUNTER_COUNT, UDP_COUNTER_COUNT } from '../io/counter-layouts.js';
import { adoptLinuxTun, openTunQueue, type TunFeatures } from '../io/tun-linux.js';
import { requireNative } from '../io/addon.js';
import type { Observation, Observer } from './observe.js';
import { addExpressCounters, EXPRESS_COUNTER_COUNT } from './express.js';
import { InboundScheduling } from './inbound-scheduling.js';
import { monotonicMs } from '../util/clock.js';

/** An Observation as it crosses threads: the bytes copied out, the peer's MAC as plain bytes. */
interface WireObservation extends Omit<Observation, 'buf' | 'offset' | 'peer'> {
  bytes: Uint8Array;
  peer?: { endpoint: { address: string; port: number }; vtepMac: Uint8Array; vni: number };
}

function observationToWire(o: Observation): WireObservation {
  const { buf, offset, length, peer, ...rest } = o;
  return {
    ...rest,
    at: rest.at ?? monotonicMs(), // one clock for every thread and process of the host
    length,
    bytes: Uint8Array.prototype.slice.call(buf, offset, offset + length),
    ...(peer ? { peer: { endpoint: { ...peer.endpoint }, vtepMac: Uint8Array.from(peer.vtepMac), vni: peer.vni } } : {}),
  };
}

function observationFromWire(w: WireObservation): Observation {
  const { bytes, peer, ...rest } = w;
  return {
    ...rest,
    buf: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    offset: 0,
    ...(peer ? { peer: { endpoint: peer.endpoint, vtepMac: Buffer.from(peer.vtepMac), vni: peer.vni } } : {}),
  };
}

/**
 * Past this many, more engines are not worth their cost by default: each is a V8 isolate with its
 * receive arena (about 12 MB of RSS: a node measured 90-100 MB with 1, 108 MB with 2, 117-125 MB with
 * 4 after load before the memory work, 49-55 MB with 1 after it), a TUN queue and 1 + 16 sockets, and the kernel's
 * side of every packet (TUN and UDP syscalls, veth softirq) needs cores too. `--workers` /
 * `datapath.workers` go up to 64.
 */
export const MAX_DEFAULT_WORKERS = 4;

/**
 * SCHED_BATCH for every thread of the process (see native/sched.cc), unless not wanted or
 * VXTUN_NO_SCHED_BATCH=1; called before the workers start, which inherit it. Whether it is on.
 */
export function applyBatchScheduling(wanted: boolean): boolean {
  if (!wanted || process.env.VXTUN_NO_SCHED_BATCH === '1') return false;
  try {
    return requireNative().setThreadsPolicy(true) > 0;
  } catch {
    return false; // a kernel without SCHED_BATCH (or a seccomp filter): the default policy stays
  }
}

/**
 * The calling thread's policy follower when SCHED_BATCH is on and VXTUN_NO_INBOUND_SCHED is not 1
 * (a worker makes its own when `WorkerSpec.inboundScheduling` says so); undefined otherwise.
 */
export function inboundSchedulingFor(batchScheduling: boolean): InboundScheduling | undefined {
  if (!batchScheduling || process.env.VXTUN_NO_INBOUND_SCHED === '1') return undefined;
  const native = requireNative();
  return new InboundScheduling({ setBatch: (b) => native.setThreadPolicy(b) });
}

/**
 * One engine per core the process may use (os.availableParallelism), at most MAX_DEFAULT_WORKERS; but
 * one in all on two cores or fewer. There the kernel's side of every packet (TUN and UDP system calls,
 * softirq) and the pods need the other core: a second engine carried no more (one engine over two,
 * 5 interleaved rounds: ×0.97 and ×0.93 with 4 TCP streams, ×0.98 and ×1.11 with one, veth and link
 * wire) and cost a V8 isolate, 12 MiB of RSS (docs/performance.md).
 */
export function defaultWorkers(cores = availableParallelism()): number {
  if (cores <= 2) return 1;
  return Math.min(cores, MAX_DEFAULT_WORKERS);
}

const ANSWERS = Object.values(Answer);
const DROP_REASONS = Object.values(DropReason);
const FIXUPS = Object.values(Fixup);

/** The layout of a published engine counter block. */
const COUNTER_KEYS: Array<{ group: 'tx' | 'rx' | 'answered' | 'dropped' | 'fixed'; name: string }> = [
  { group: 'tx', name: 'packets' },
  { group: 'tx', name: 'bytes' },
  { group: 'rx', name: 'packets' },
  { group: 'rx', name: 'bytes' },
  ...ANSWERS.map((name) => ({ group: 'answered' as const, name })),
  ...DROP_REASONS.map((name) => ({ group: 'dropped' as const, name })),
  ...FIXUPS.map((name) => ({ group: 'fixed' as const, name })),
];

/** Runs after every worker batch: no arrays made here, the name lists are built once above. */
function publish(c: Counters, out: Float64Array): void {
  out[0] = c.txPackets;
  out[1] = c.txBytes;
  out[2] = c.rxPackets;
  out[3] = c.rxBytes;
  let i = 4;
  for (const a of ANSWERS) out[i++] = c.answered(a);
  for (const d of DROP_REASONS) out[i++] = c.dropped(d);
  for (const f of FIXUPS) out[i++] = c.fixed(f);
}

/** Adds a published block to a snapshot (in place). */
function addInto(s: CounterSnapshot, block: Float64Array): void {
  COUNTER_KEYS.forEach((k, i) => {
    const v = block[i] ?? 0;
    if (k.group === 'tx' || k.group === 'rx') (s[k.group] as Record<string, number>)[k.name]! += v;
    else s[k.group][k.name] = (s[k.group][k.name] ?? 0) + v;
  });
}

export interface WireRoute {
  family: 4 | 6;
  addr: number | Uint8Array;
  prefixLen: number;
  endpoint: { address: string; port: number };
  vtepMac: Uint8Array;
  vni: number;
}

function toWire(routes: readonly Route<Vtep>[]): WireRoute[] {
  return routes.map((r) => ({
    family: r.prefix.family,
    addr: r.prefix.addr as number | Uint8Array,
    prefixLen: r.prefix.prefixLen,
    endpoint: { ...r.target.endpoint },
    vtepMac: Uint8Array.from(r.target.vtepMac),
    vni: r.target.vni,
  }));
}

/** The message a route table crosses to a worker in, and the table the worker makes of it. */
export function routesMessage(table: RouteTable<Vtep>): { type: 'routes'; routes: WireRoute[] } {
  return { type: 'routes', routes: toWire(table.routes) };
}

export function tableFromMessage(m: { routes: WireRoute[] }): RouteTable<Vtep> {
  return new RouteTable(fromWire(m.routes));
}

function fromWire(routes: WireRoute[]): Route<Vtep>[] {
  return routes.map((r) => ({
    prefix: (r.family === 4 ? { family: 4, addr: r.addr as number, prefixLen: r.prefixLen } : { family: 6, addr: Buffer.from(r.addr as Uint8Array), prefixLen: r.prefixLen }) as Route<Vtep>['prefix'],
    target: { endpoint: r.endpoint, vtepMac: Buffer.from(r.vtepMac), vni: r.vni },
  }));
}

export interface WorkerSpec {
  tun: { fd: number; name: string; mtu: number; features: TunFeatures };
  bind: { address: string; port: number; gso: boolean; gro?: boolean; sourcePorts?: { min: number; max: number; sockets: number }; peerFilter?: boolean; codel?: { targetUs: number; intervalUs: number } };
  engine: Omit<EngineOptions, 'vtepMac' | 'onesSum' | 'encapBatch' | 'express'> & { vtepMac: Uint8Array };
  /** The addon's express path for lone packets in this worker too (src/datapath/express.ts). */
  express?: boolean;
  /** The worker's thread leaves SCHED_BATCH under inbound load (src/datapath/inbound-scheduling.ts). */
  inboundScheduling?: boolean;
}

interface WorkerInit extends WorkerSpec {
  routes: WireRoute[];
  /** Int32Array(1): 1 while a trace watches (read by every worker before each batch). */
  observing: SharedArrayBuffer;
  engineCounters: SharedArrayBuffer;
  /** The worker's express path counts here (the main thread reads it directly: lone packets run no JS batch that could publish). */
  expressCounters: SharedArrayBuffer;
  udpCounters: SharedArrayBuffer;
  tunCounters: SharedArrayBuffer;
}

/** Runs in a worker thread: one engine on one TUN queue and one SO_REUSEPORT socket. */
function runWorker(init: WorkerInit): void {
  const native = requireNative();
  const tunCounters = new Float64Array(init.tunCounters);
  const udpCounters = new Float64Array(init.udpCounters);
  const engineCounters = new Float64Array(init.engineCounters);
  const observing = new Int32Array(init.observing);
  const tun = adoptLinuxTun(init.tun.fd, init.tun.name, init.tun.mtu, init.tun.features, tunCounters);
  const bind = NativeBind.open(init.bind.address, init.bind.port, {
    gso: init.bind.gso,
    ...(init.bind.gro !== undefined ? { gro: init.bind.gro } : {}),
    reusePort: true,
    counters: udpCounters,
    ...(init.bind.sourcePorts ? { sourcePorts: init.bind.sourcePorts } : {}),
    ...(init.bind.codel ? { codel: init.bind.codel } : {}),
  });
  let engine: Engine | undefined;
  // Observations of the batch under way: copied at once (the engine reuses its buffers), posted together.
  let batch: WireObservation[] = [];
  const collect: Observer = (o) => batch.push(observationToWire(o));
  let watching = false;
  const before = (): void => {
    const on = Atomics.load(observing, 0) === 1;
    if (on !== watching) {
      watching = on;
      engine!.setObserver(on ? collect : undefined);
    }
  };
  const after = (): void => {
    publish(engine!.counters, engineCounters);
    if (batch.length > 0) {
      parentPort!.postMessage({ type: 'obs', batch });
      batch = [];
    }
  };
  engine = new Engine(tun, bind, {
    batchHooks: { before, after },
    inboundScheduling: inboundSchedulingFor(init.inboundScheduling === true),
    ...init.engine,
    vtepMac: Buffer.from(init.engine.vtepMac),
    onesSum: native.checksum,
    encapBatch: native.encapBatch,
    // The pool's flag is the gate: the addon checks it before every packet, so a trace misses none.
    ...(init.express === true ? { express: { native, counters: new Float64Array(init.expressCounters), gate: observing } } : {}),
  });
  // Every socket of the SO_REUSEPORT group needs the filter: the kernel picks one per flow.
  const filter = init.bind.peerFilter === true ? peerFilterFollower(bind) : undefined;
  const follow = (table: RouteTable<Vtep>): void => {
    engine!.setRoutes(table);
    filter?.setRoutes(table);
  };
  follow(tableFromMessage(init));
  engine.start();
  parentPort!.on('message', (m: { type: 'routes'; routes: WireRoute[] } | { type: 'observing' } | { type: 'stop' }) => {
    if (m.type === 'routes') follow(tableFromMessage(m));
    // The flag changed: the engine's express tap drains on a timer while watched, even when no batch runs.
    else if (m.type === 'observing') before();
    else {
      engine!.stop();
      tun.close();
      void bind.close().then(() => {
        parentPort!.postMessage({ type: 'stopped' });
        parentPort!.close();
      });
    }
  });
  parentPort!.postMessage({ type: 'ready' });
}

if (!isMainThread && (workerData as { vxtunWorker?: boolean } | null)?.vxtunWorker === true) {
  runWorker(workerData as WorkerInit);
}

/** Anything that swaps in whole route tables: an engine, a worker pool. */
export interface RouteFollower {
  setRoutes(table: RouteTable<Vtep>): void;
}

/**
 * Keeps `bind`'s socket filter on the peers of each route table (their underlay addresses), so the
 * kernel drops datagrams from any other host (datapath.peerFilter). `onTooMany` hears when there are
 * more peers than a filter holds (every datagram is then taken, as without one).
 */
export function peerFilterFollower(bind: NativeBind, onTooMany?: (peers: number) => void): RouteFollower {
  let held = true;
  return {
    setRoutes(table) {
      const peers = [...new Set(table.routes.map((r) => r.target.endpoint.address))];
      const now = bind.setPeerFilter(peers);
      if (!now && held) onTooMany?.(peers.length);
      held = now;
    },
  };
}

/**
 * Where a node's route tables come from (src/node/route-sink.ts): the current one, and every later
 * one handed to each subscriber (at once on subscribing, too).
 */
export interface RouteFeed {
  readonly current: RouteTable<Vtep>;
  subscribe(follower: RouteFollower): void;
}

/**
 * Starts engines 1..count-1 of a node beside the caller's engine 0, each on a new queue of the
 * multi-queue TUN `tun.name` (opened like the first queue: `tun.features` are what that one got) and
 * its own SO_REUSEPORT socket, and subscribes them to `routes`, the feed the main engine follows too:
 * a table published there (reload, registry watch) reaches every engine. Undefined when count is 1.
 */
export async function startEngineWorkers(
  routes: RouteFeed,
  count: number,
  req: { tun: { name: string; mtu: number; features: TunFeatures }; bind: WorkerSpec['bind']; engine: WorkerSpec['engine']; express?: boolean; inboundScheduling?: boolean },
): Promise<WorkerPool | undefined> {
  if (count <= 1) return undefined;
  const specs: WorkerSpec[] = [];
  try {
    for (let k = 1; k < count; k++) {
      const { fd, ...features } = openTunQueue(req.tun.name, req.tun.features);
      specs.push({ tun: { fd, name: req.tun.name, mtu: req.tun.mtu, features }, bind: req.bind, engine: req.engine, ...(req.express === true ? { express: true } : {}), ...(req.inboundScheduling === true ? { inboundScheduling: true } : {}) });
    }
  } catch (e) {
    for (const spec of specs) requireNative().close(spec.tun.fd);
    throw e;
  }
  const pool = await WorkerPool.start(specs, routes.current.routes);
  routes.subscribe(pool);
  return pool;
}

/** The worker threads of a node (the main thread's engine is not among them). */
export class WorkerPool implements RouteFollower {
  private observer: Observer | undefined;

  private constructor(
    private readonly workers: Worker[],
    private readonly engineBlocks: Float64Array[],
    private readonly expressBlocks: Float64Array[],
    private readonly udpBlocks: Float64Array[],
    private readonly tunBlocks: Float64Array[],
    private readonly observing: Int32Array,
  ) {
    for (const w of workers) {
      w.on('message', (m: { type: string; batch?: WireObservation[] }) => {
        if (m.type !== 'obs' || m.batch === undefined) return;
        // One worker batch, replayed within this one turn: the collector sees its packets whole.
        for (const o of m.batch) this.observer?.(observationFromWire(o));
      });
    }
  }

  /**
   * What a trace attaches its observer to: the main engine and every worker's engine (the flag is
   * set before this returns, so each worker watches from its next batch on and its express path
   * records from its next packet on; observations are made and copied over only while it is set).
   */
  observable(main: { setObserver(o: Observer | undefined): void }): { setObserver(o: Observer | undefined): void } {
    return {
      setObserver: (o) => {
        main.setObserver(o);
        this.observer = o;
        const on = o !== undefined ? 1 : 0;
        if (Atomics.exchange(this.observing, 0, on) !== on) for (const w of this.workers) w.postMessage({ type: 'observing' });
      },
    };
  }

  /** Starts one worker per spec, each on its own queue; resolves once all run (rejects with the first error). */
  static async start(specs: WorkerSpec[], routes: readonly Route<Vtep>[]): Promise<WorkerPool> {
    requireNative(); // workers run the native datapath: without the addon, say why here
    const workers: Worker[] = [];
    const engineBlocks: Float64Array[] = [];
    const expressBlocks: Float64Array[] = [];
    const udpBlocks: Float64Array[] = [];
    const tunBlocks: Float64Array[] = [];
    const started: Array<Promise<void>> = [];
    const observing = new SharedArrayBuffer(4);
    for (const spec of specs) {
      const engineCounters = new SharedArrayBuffer(COUNTER_KEYS.length * 8);
      const expressCounters = new SharedArrayBuffer(EXPRESS_COUNTER_COUNT * 8);
      expressBlocks.push(new Float64Array(expressCounters));
      const udpCounters = new SharedArrayBuffer(UDP_COUNTER_COUNT * 8);
      const tunCounters = new SharedArrayBuffer(TUN_COUNTER_COUNT * 8);
      engineBlocks.push(new Float64Array(engineCounters));
      udpBlocks.push(new Float64Array(udpCounters));
      tunBlocks.push(new Float64Array(tunCounters));
      const init: WorkerInit & { vxtunWorker: true } = { ...spec, routes: toWire(routes), observing, engineCounters, expressCounters, udpCounters, tunCounters, vxtunWorker: true };
      const w = new Worker(new URL(import.meta.url), { workerData: init });
      workers.push(w);
      started.push(
        new Promise<void>((resolve, reject) => {
          w.once('error', reject);
          w.once('exit', (code) => reject(new Error(`worker exited with ${code} before it started`)));
          w.once('message', (m: { type: string }) => (m.type === 'ready' ? resolve() : reject(new Error(`worker: ${m.type}`))));
        }),
      );
    }
    const pool = new WorkerPool(workers, engineBlocks, expressBlocks, udpBlocks, tunBlocks, new Int32Array(observing));
    try {
      await Promise.all(started);
    } catch (e) {
      await pool.stop();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Sends a new route table to every worker (each swaps it in at once). */
  setRoutes(table: RouteTable<Vtep>): void {
    const message = routesMessage(table);
    for (const w of this.workers) w.postMessage(message);
  }

  /** `base` (the main thread's snapshot) plus every worker's published counters. */
  addCounters(base: CounterSnapshot): CounterSnapshot {
    for (const b of this.engineBlocks) addInto(base, b);
    for (const b of this.expressBlocks) addExpressCounters(base, b);
    return base;
  }

  /** Packets each engine carried, the main thread's first: whether flows really spread over the workers. */
  perEngine(main: Counters): Array<{ txPackets: number; rxPackets: number }> {
    const m = main.snapshot();
    return [
      { txPackets: m.tx.packets, rxPackets: m.rx.packets },
      ...this.engineBlocks.map((b, k) => ({ txPackets: (b[0] ?? 0) + this.expressBlocks[k]![0]!, rxPackets: (b[2] ?? 0) + this.expressBlocks[k]![2]! })),
    ];
  }

  /** Sums of the workers' express counter blocks (layout ExpressCounter). */
  expressTotals(): Float64Array {
    return this.addNative('express', new Float64Array(EXPRESS_COUNTER_COUNT));
  }

  /** Sums of the workers' native counters, added to the main thread's (same layout). */
  addNative(kind: 'udp' | 'tun' | 'express', base: Float64Array): Float64Array {
    const out = Float64Array.from(base);
    const blocks = kind === 'udp' ? this.udpBlocks : kind === 'tun' ? this.tunBlocks : this.expressBlocks;
    for (const b of blocks) for (let i = 0; i < out.length; i++) out[i]! += b[i] ?? 0;
    return out;
  }

  /** Stops every worker: engine stopped, its TUN queue and sockets closed. */
  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => void w.terminate().then(() => resolve()), 3000);
            w.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            w.on('error', () => {});
            try {
              w.postMessage({ type: 'stop' });
            } catch {
              resolve();
            }
          }),
      ),
    );
  }
}
