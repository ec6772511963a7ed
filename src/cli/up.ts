/**
 * `vxtun up --config FILE`: validate (nothing on the host changes if the config is wrong), then
 * TUN device -> address and route -> UDP socket -> engine, and undo all of it on SIGINT/SIGTERM.
 */
import { UndoStack } from '../util/undo.js';
import pino from 'pino';
import { loadConfig, ConfigError, type NodeConfig } from '../control/config.js';
import { preflight, requireRoot, HostError, type Plan } from '../control/host.js';
import { ControlServer } from '../control/socket.js';
import { Engine } from '../datapath/engine.js';
import { RouteTable, type Route } from '../packet/routes.js';
import { cidrToString } from '../packet/cidr.js';
import { openDatapath, resolveDatapathKind, namedCounters, describeSourcePorts, type Datapath } from '../datapath/select.js';
import { openLinuxTun, addRoute, TunCounter, type LinuxTunDevice } from '../io/tun-linux.js';
import { startEngineWorkers, defaultWorkers, applyBatchScheduling, inboundSchedulingFor, type WorkerPool } from '../datapath/workers.js';
import { UdpCounter } from '../io/bind-native.js';
import { requireNative } from '../io/addon.js';
import { expressWanted, ExpressCounter, sumExpress } from '../datapath/express.js';
import { macToString } from '../packet/wire/ethernet.js';
import { ipv4ToString } from '../packet/wire/ipv4.js';
import type { TunDevice } from '../io/tun-device.js';
import { TraceHub } from '../trace/server.js';
import { loadFlannelNodeConfig } from '../control/flannel-node-config.js';
import { runFlannelUp } from './up-flannel.js';

export interface UpOptions {
  config: string;
  logLevel: string;
  /** 'auto' picks the fastest path available; 'native' insists on it; 'ts' forces the pure-TypeScript reference path. */
  datapath?: 'auto' | 'native' | 'ts';
  /** Engines on their own threads and TUN queues (native path); default datapath.workers, else defaultWorkers(). */
  workers?: number;
  /** flanneld's --ip-masq: masquerade pod traffic leaving the network (rules removed on exit). */
  ipMasq?: boolean;
  /** `--no-express`: false turns the express path off, whatever datapath.express says. */
  express?: boolean;
  /** `--no-batch-scheduling`: false leaves the threads at SCHED_OTHER, whatever datapath.batchScheduling says. */
  batchScheduling?: boolean;
}

export function peerRoutes(cfg: NodeConfig): Route[] {
  return cfg.peers.map((p) => ({
    prefix: p.subnet,
    target: { endpoint: { address: p.publicIp, port: p.port }, vtepMac: p.vtepMac, vni: p.vni },
  }));
}

/**
 * SIGHUP: re-read the config and swap in its peers (one atomic route-table swap; traffic keeps
 * flowing). Anything else that changed needs a restart, and a broken file changes nothing.
 */
export function reloadPeers(path: string, running: NodeConfig, engine: Engine, log: pino.Logger): void {
  let next: NodeConfig;
  try {
    next = loadConfig(path);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'reload refused: keeping the current peers');
    return;
  }
  const { peers: _a, ...restNext } = next;
  const { peers: _b, ...restRunning } = running;
  if (JSON.stringify(restNext) !== JSON.stringify(restRunning)) {
    log.warn('reload: only peers are reloaded; other changes need a restart');
  }
  engine.setRoutes(new RouteTable(peerRoutes(next)));
  log.info({ peers: next.peers.length }, 'reload: peers replaced');
}

/** Runs the node until a signal; resolves to the process exit code. */
export async function runUp(opts: UpOptions): Promise<number> {
  let cfg: NodeConfig;
  let plan: Plan;
  try {
    // A node joining a flannel network (registry, udp backend, subnet.env, --ip-masq): up-flannel.ts.
    const flannel = loadFlannelNodeConfig(opts.config, { ipMasq: opts.ipMasq ?? false });
    if (flannel) return await runFlannelUp(flannel, { logLevel: opts.logLevel, ...(opts.datapath !== undefined ? { datapath: opts.datapath } : {}), ...(opts.workers !== undefined ? { workers: opts.workers } : {}), express: opts.express !== false, batchScheduling: opts.batchScheduling !== false });
    requireRoot();
    cfg = loadConfig(opts.config);
    plan = preflight(cfg);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vxtun: ${err.message}\n`);
      return 2;
    }
    if (err instanceof HostError) {
      process.stderr.write(`vxtun: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }

  const log = pino({ level: opts.logLevel, base: { device: cfg.device.name } });
  const undo = new UndoStack((err) => log.warn({ err: err.message }, 'teardown step failed'));
  const teardown = (): Promise<void> => undo.runAll();

  let tun: TunDevice;
  let engine: Engine;
  let datapath: Datapath;
  let linuxTun: LinuxTunDevice;
  let pool: WorkerPool | undefined;
  try {
    // The CLI flag wins over the config's datapath.kind unless it is left at auto.
    const kind = resolveDatapathKind(opts.datapath !== undefined && opts.datapath !== 'auto' ? opts.datapath : cfg.datapath.kind);
    const workers = kind === 'native' ? (opts.workers ?? cfg.datapath.workers ?? defaultWorkers()) : 1;
    // Both paths take TUN offloads; on the ts path their packet work is TypeScript too (src/io/tun-offload.ts).
    // USO only where the addon splits UDP super-packets on read (the TS reader knows TCP ones only).
    const tunOffload = cfg.datapath.tunOffload;
    const tunUso = kind === 'native' && cfg.datapath.tunUso;
    linuxTun = openLinuxTun({ name: cfg.device.name, mtu: plan.deviceMtu, ipv4: plan.vtepAddress, prefixLen: 32, offload: tunOffload, offloadIn: kind, uso: tunUso, multiQueue: workers > 1 });
    tun = linuxTun;
    undo.push(() => tun.close());
    addRoute(ipv4ToString(cfg.network.addr), cfg.network.prefixLen, tun.name);
    datapath = await openDatapath({ kind, gso: cfg.datapath.gso, gro: cfg.datapath.gro, sourcePorts: cfg.datapath.sourcePorts, address: cfg.publicIp, port: cfg.backend.port, reusePort: workers > 1 });
    datapath.features.tunOffload = linuxTun.features.offload;
    datapath.features.tunUso = linuxTun.features.uso;
    datapath.features.workers = workers;
    const bind = datapath.bind;
    undo.push(() => bind.close());
    // Lone packets forwarded by the addon (native path, where the TUN has the offload reader it hands over to).
    const express = kind === 'native' && expressWanted(cfg.datapath.express && opts.express !== false) && linuxTun.features.vnetHdr;
    datapath.features.express = express;
    // Before the workers start: they inherit it.
    datapath.features.batchScheduling = kind === 'native' && applyBatchScheduling(cfg.datapath.batchScheduling && opts.batchScheduling !== false);
    const inboundScheduling = inboundSchedulingFor(datapath.features.batchScheduling);
    datapath.features.inboundScheduling = inboundScheduling !== undefined;
    engine = new Engine(tun, bind, {
      vni: cfg.backend.vni,
      vtepMac: cfg.backend.vtepMac,
      vtepIp: cfg.subnet.addr,
      localSubnets: [cfg.subnet],
      antiSpoofing: cfg.security.antiSpoofing,
      port: cfg.backend.port,
      maxInnerSize: plan.maxInnerSize,
      tunMtu: plan.deviceMtu,
      ...(datapath.onesSum ? { onesSum: datapath.onesSum, encapBatch: datapath.encapBatch, batchSize: 128 } : {}),
      ...(express ? { express: { native: requireNative() } } : {}),
      ...(inboundScheduling ? { inboundScheduling } : {}),
    });
    engine.setRoutes(new RouteTable(peerRoutes(cfg)));
    pool = await startEngineWorkers(engine, workers, {
      tun: { name: tun.name, mtu: plan.deviceMtu, features: linuxTun.features },
      bind: { address: cfg.publicIp, port: cfg.backend.port, gso: cfg.datapath.gso, gro: cfg.datapath.gro, ...(cfg.datapath.sourcePorts !== 'fixed' ? { sourcePorts: cfg.datapath.sourcePorts } : {}) },
      engine: { vni: cfg.backend.vni, vtepMac: Uint8Array.from(cfg.backend.vtepMac), vtepIp: cfg.subnet.addr, localSubnets: [cfg.subnet], antiSpoofing: cfg.security.antiSpoofing, port: cfg.backend.port, maxInnerSize: plan.maxInnerSize, tunMtu: plan.deviceMtu, batchSize: 128 },
      express,
      inboundScheduling: inboundScheduling !== undefined,
    });
    const workerPool = pool;
    if (workerPool) undo.push(() => workerPool.stop());
    // With workers, a trace sees every engine: the workers' observations come over by message.
    const trace = new TraceHub(pool ? pool.observable(engine) : engine, () => ({
      device: tun.name,
      publicIp: cfg.publicIp,
      port: cfg.backend.port,
      vni: cfg.backend.vni,
      vtepMac: macToString(cfg.backend.vtepMac),
      subnet: cidrToString(cfg.subnet),
      network: cidrToString(cfg.network),
      mtu: plan.deviceMtu,
    }));
    const control = await ControlServer.listen(cfg.controlSocket, (req) => {
      switch (req.cmd) {
        case 'counters':
          return pool ? pool.addCounters(engine.counters.snapshot()) : engine.counters.snapshot();
        case 'routes':
          return engine.routeTable.describe();
        case 'info':
          return {
            device: tun.name,
            mtu: plan.deviceMtu,
            publicIp: cfg.publicIp,
            underlay: plan.underlay,
            network: cidrToString(cfg.network),
            subnet: cidrToString(cfg.subnet),
            vni: cfg.backend.vni,
            port: cfg.backend.port,
            vtepMac: macToString(cfg.backend.vtepMac),
            pid: process.pid,
            datapath: datapath.kind,
            features: datapath.features,
            engines: pool ? pool.perEngine(engine.counters) : [{ txPackets: engine.counters.snapshot().tx.packets, rxPackets: engine.counters.snapshot().rx.packets }],
            datapathCounters: {
              udp: pool && datapath.rawCounters ? namedCounters(UdpCounter, pool.addNative('udp', datapath.rawCounters)) : datapath.counters(),
              tun: namedCounters(TunCounter, pool ? pool.addNative('tun', linuxTun.offloadCounters) : linuxTun.offloadCounters),
              express: namedCounters(ExpressCounter, sumExpress(engine.counters.express, pool?.expressTotals())),
            },
          };
        case 'trace':
          return trace.handle(req);
        default:
          return { error: `unknown command ${JSON.stringify(req.cmd)}` };
      }
    });
    undo.push(() => control.close());
    engine.start();
    undo.push(() => engine.stop());
    // What runs, not what was asked for (the addon may have refused the parameters).
    datapath.features.express = engine.expressActive;
    datapath.features.expressThread = engine.expressActive && engine.expressThread;
    if (engine.expressError !== undefined) log.warn({ err: engine.expressError }, 'express path off');
  } catch (err) {
    await teardown();
    process.stderr.write(`vxtun: ${(err as Error).message}\n`);
    return 1;
  }

  log.info(
    {
      publicIp: cfg.publicIp,
      underlay: plan.underlay,
      subnet: cidrToString(cfg.subnet),
      network: cidrToString(cfg.network),
      mtu: plan.deviceMtu,
      vni: cfg.backend.vni,
      port: cfg.backend.port,
      vtepMac: macToString(cfg.backend.vtepMac),
      peers: cfg.peers.length,
      datapath: datapath.kind,
      datapathRequested: opts.datapath ?? 'auto',
      workers: datapath.features.workers,
      sourcePorts: describeSourcePorts(datapath.features, cfg.backend.port),
      features: datapath.features,
    },
    'vxtun up',
  );

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, counters: pool ? pool.addCounters(engine.counters.snapshot()) : engine.counters.snapshot() }, 'vxtun stopping');
      void teardown().then(() => {
        log.info('vxtun down');
        resolve(0);
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => reloadPeers(opts.config, cfg, engine, log));
  });
}
