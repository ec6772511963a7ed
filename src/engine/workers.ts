/**
 * Multi-core: one engine per TUN queue. The device is opened with IFF_MULTI_QUEUE and one queue per
 * worker; the kernel picks a queue per flow (symmetric hash), and every worker binds the VXLAN port
 * with SO_REUSEPORT so the kernel spreads arriving datagrams over them by outer flow. Worker 0 is the
 * main thread's own engine; workers 1..n-1 are worker_threads running this same module. Each worker
 * publishes its counters into a SharedArrayBuffer after every batch, so the main thread sums them
 * without a message round trip; route tables go out by message (and are swapped atomically there).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Route, Vtep } from './routes.js';
import { RouteTable } from './routes.js';
import { Engine, type EngineOptions } from './engine.js';
import { Counters, DropReason, Answer, Fixup, type CounterSnapshot } from './counters.js';
import type { Bind, ReceiveFn } from '../conn/bind.js';
import type { TunDevice } from '../tun/device.js';
import { NativeBind } from '../conn/native.js';
import { adoptLinuxTun } from '../tun/linux.js';
import { requireNative } from '../native/index.js';
import type { Observation, Observer } from '../trace/observe.js';

/** An Observation as it crosses threads: the bytes copied out, the peer's MAC as plain bytes. */
interface WireObservation extends Omit<Observation, 'buf' | 'offset' | 'peer'> {
  bytes: Uint8Array;
  peer?: { endpoint: { address: string; port: number }; vtepMac: Uint8Array; vni: number };
}

function observationToWire(o: Observation): WireObservation {
  const { buf, offset, length, peer, ...rest } = o;
  return {
    ...rest,
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
 * One engine unless asked for more (`--workers`, `datapath.workers`). Not one per core yet: a single
 * TCP flow stays on one queue, so a single stream gained nothing measurable on 2 cores (18.6 % vs
 * 18.0 % of the kernel), while a trace's journeys, pieced together from observations that now come
 * from several threads, are not yet exact (tests of `vxtun trace --pcap` and `--web` see extra or
 * uncorrelated events with 2 workers).
 */
export const DEFAULT_WORKERS = 1;

/** The layout of a published engine counter block. */
const COUNTER_KEYS: Array<{ group: 'tx' | 'rx' | 'answered' | 'dropped' | 'fixed'; name: string }> = [
  { group: 'tx', name: 'packets' },
  { group: 'tx', name: 'bytes' },
  { group: 'rx', name: 'packets' },
  { group: 'rx', name: 'bytes' },
  ...Object.values(Answer).map((name) => ({ group: 'answered' as const, name })),
  ...Object.values(DropReason).map((name) => ({ group: 'dropped' as const, name })),
  ...Object.values(Fixup).map((name) => ({ group: 'fixed' as const, name })),
];

function publish(c: Counters, out: Float64Array): void {
  out[0] = c.txPackets;
  out[1] = c.txBytes;
  out[2] = c.rxPackets;
  out[3] = c.rxBytes;
  let i = 4;
  for (const a of Object.values(Answer)) out[i++] = c.answered(a);
  for (const d of Object.values(DropReason)) out[i++] = c.dropped(d);
  for (const f of Object.values(Fixup)) out[i++] = c.fixed(f);
}

/** Adds a published block to a snapshot (in place). */
function addInto(s: CounterSnapshot, block: Float64Array): void {
  COUNTER_KEYS.forEach((k, i) => {
    const v = block[i] ?? 0;
    if (k.group === 'tx' || k.group === 'rx') (s[k.group] as Record<string, number>)[k.name]! += v;
    else s[k.group][k.name] = (s[k.group][k.name] ?? 0) + v;
  });
}

interface WireRoute {
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

function fromWire(routes: WireRoute[]): Route<Vtep>[] {
  return routes.map((r) => ({
    prefix: (r.family === 4 ? { family: 4, addr: r.addr as number, prefixLen: r.prefixLen } : { family: 6, addr: Buffer.from(r.addr as Uint8Array), prefixLen: r.prefixLen }) as Route<Vtep>['prefix'],
    target: { endpoint: r.endpoint, vtepMac: Buffer.from(r.vtepMac), vni: r.vni },
  }));
}

export interface WorkerSpec {
  tun: { fd: number; name: string; mtu: number; features: { vnetHdr: boolean; offload: boolean } };
  bind: { address: string; port: number; gso: boolean; sourcePorts?: { min: number; max: number; sockets: number } };
  engine: Omit<EngineOptions, 'vtepMac' | 'onesSum' | 'encapBatch'> & { vtepMac: Uint8Array };
}

interface WorkerInit extends WorkerSpec {
  routes: WireRoute[];
  engineCounters: SharedArrayBuffer;
  udpCounters: SharedArrayBuffer;
  tunCounters: SharedArrayBuffer;
}

/** Decorates a TUN and a Bind so the engine's counters are published after every batch. */
function publishing(tun: TunDevice, bind: Bind, after: () => void): { tun: TunDevice; bind: Bind } {
  return {
    tun: {
      name: tun.name,
      mtu: tun.mtu,
      read: (b, s, o) => tun.read(b, s, o),
      write: (b, s, o, n) => tun.write(b, s, o, n),
      start: (onReadable) =>
        tun.start(() => {
          onReadable();
          after();
        }),
      close: () => tun.close(),
    },
    bind: {
      local: bind.local,
      send: (b, s, o, n, d) => bind.send(b, s, o, n, d),
      start: (onReceive: ReceiveFn) =>
        bind.start((b, s, r, n) => {
          onReceive(b, s, r, n);
          after();
        }),
      close: () => bind.close(),
    },
  };
}

/** Runs in a worker thread: one engine on one TUN queue and one SO_REUSEPORT socket. */
function runWorker(init: WorkerInit): void {
  const native = requireNative();
  const tunCounters = new Float64Array(init.tunCounters);
  const udpCounters = new Float64Array(init.udpCounters);
  const engineCounters = new Float64Array(init.engineCounters);
  const tun = adoptLinuxTun(init.tun.fd, init.tun.name, init.tun.mtu, init.tun.features, tunCounters);
  const bind = NativeBind.open(init.bind.address, init.bind.port, {
    gso: init.bind.gso,
    reusePort: true,
    counters: udpCounters,
    ...(init.bind.sourcePorts ? { sourcePorts: init.bind.sourcePorts } : {}),
  });
  let engine: Engine | undefined;
  const p = publishing(tun, bind, () => publish(engine!.counters, engineCounters));
  const checksum = native.checksum;
  engine = new Engine(p.tun, p.bind, {
    ...init.engine,
    vtepMac: Buffer.from(init.engine.vtepMac),
    onesSum: (buf, offset, length, initial = 0) => checksum(buf, offset, length, initial),
    encapBatch: native.encapBatch,
  });
  engine.setRoutes(new RouteTable(fromWire(init.routes)));
  engine.start();
  parentPort!.on('message', (m: { type: 'routes'; routes: WireRoute[] } | { type: 'observe'; on: boolean } | { type: 'stop' }) => {
    if (m.type === 'routes') engine!.setRoutes(new RouteTable(fromWire(m.routes)));
    else if (m.type === 'observe') {
      // Only while someone traces: every observation is copied to the main thread, which owns the trace.
      engine!.setObserver(m.on ? (o) => parentPort!.postMessage({ type: 'obs', o: observationToWire(o) }) : undefined);
    } else {
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

/** The worker threads of a node (the main thread's engine is not among them). */
export class WorkerPool {
  private observer: Observer | undefined;

  private constructor(
    private readonly workers: Worker[],
    private readonly engineBlocks: Float64Array[],
    private readonly udpBlocks: Float64Array[],
    private readonly tunBlocks: Float64Array[],
  ) {
    for (const w of workers) {
      w.on('message', (m: { type: string; o?: WireObservation }) => {
        if (m.type === 'obs' && m.o !== undefined && this.observer !== undefined) this.observer(observationFromWire(m.o));
      });
    }
  }

  /**
   * What a trace attaches its observer to: the main engine and, by message, every worker's engine
   * (their observations are copied over while attached, and not produced at all otherwise).
   */
  observable(main: { setObserver(o: Observer | undefined): void }): { setObserver(o: Observer | undefined): void } {
    return {
      setObserver: (o) => {
        main.setObserver(o);
        const wasOn = this.observer !== undefined;
        this.observer = o;
        if (wasOn !== (o !== undefined)) for (const w of this.workers) w.postMessage({ type: 'observe', on: o !== undefined });
      },
    };
  }

  /** Starts one worker per spec, each on its own queue; resolves once all run (rejects with the first error). */
  static async start(specs: WorkerSpec[], routes: readonly Route<Vtep>[]): Promise<WorkerPool> {
    const native = requireNative();
    const workers: Worker[] = [];
    const engineBlocks: Float64Array[] = [];
    const udpBlocks: Float64Array[] = [];
    const tunBlocks: Float64Array[] = [];
    const started: Array<Promise<void>> = [];
    for (const spec of specs) {
      const engineCounters = new SharedArrayBuffer(COUNTER_KEYS.length * 8);
      const udpCounters = new SharedArrayBuffer(native.udpCounterCount * 8);
      const tunCounters = new SharedArrayBuffer(native.tunCounterCount * 8);
      engineBlocks.push(new Float64Array(engineCounters));
      udpBlocks.push(new Float64Array(udpCounters));
      tunBlocks.push(new Float64Array(tunCounters));
      const init: WorkerInit & { vxtunWorker: true } = { ...spec, routes: toWire(routes), engineCounters, udpCounters, tunCounters, vxtunWorker: true };
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
    const pool = new WorkerPool(workers, engineBlocks, udpBlocks, tunBlocks);
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
    const routes = toWire(table.routes);
    for (const w of this.workers) w.postMessage({ type: 'routes', routes });
  }

  /** `base` (the main thread's snapshot) plus every worker's published counters. */
  addCounters(base: CounterSnapshot): CounterSnapshot {
    for (const b of this.engineBlocks) addInto(base, b);
    return base;
  }

  /** Sums of the workers' native counters, added to the main thread's (same layout). */
  addNative(kind: 'udp' | 'tun', base: Float64Array): Float64Array {
    const out = Float64Array.from(base);
    for (const b of kind === 'udp' ? this.udpBlocks : this.tunBlocks) for (let i = 0; i < out.length; i++) out[i]! += b[i] ?? 0;
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
