/**
 * `vxtun up` for a node that joins a flannel network: its lease and its peers come from a registry
 * (etcd v3/v2, or static peers), its backend from `<prefix>/config` (vxlan, or flannel's udp).
 * Order: registry reachable and config valid -> host checks -> lease -> TUN, route, UDP, engine ->
 * subnet.env, masquerade rules. A config fault is one line and exit 2 before anything exists on
 * the host; SIGTERM removes device, routes, rules and subnet.env but leaves the lease, so a
 * restarted node keeps its subnet.
 */
import { UndoStack } from '../util/undo.js';
import { TraceHub } from '../trace/server.js';
import { existsSync, rmSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { ConfigError } from '../control/config.js';
import { findUnderlay, requireRoot, HostError } from '../control/host.js';
import { ControlServer } from '../control/socket.js';
import type { FlannelNodeConfig } from '../control/flannel-node-config.js';
import { FlannelConfigError, parseNetworkConfig, encodeLeaseValue, subnetKey, type FlannelNetworkConfig } from '../control/flannel.js';
import { RegistryError, type SubnetRegistry } from '../control/registry/registry.js';
import { StaticRegistry } from '../control/registry/static.js';
import { EtcdV3Registry } from '../control/registry/etcd-v3.js';
import { EtcdV2Registry } from '../control/registry/etcd-v2.js';
import { joinKey } from '../control/registry/etcd-common.js';
import { LeaseManager } from '../control/lease-manager.js';
import { writeSubnetEnv } from '../control/subnet-env.js';
import { installMasq, removeMasq } from '../control/ipmasq.js';
import { Engine } from '../datapath/engine.js';
import { FlannelUdpEngine, FLANNEL_UDP_OVERHEAD } from '../datapath/flannel-udp.js';
import { RouteTable } from '../packet/routes.js';
import { cidrToString } from '../packet/cidr.js';
import { openDatapath, resolveDatapathKind, describeSourcePorts, namedCounters } from '../datapath/select.js';
import { datapathDefaults } from '../datapath/config.js';
import { startEngineWorkers, defaultWorkers, applyBatchScheduling, inboundSchedulingFor, type WorkerPool } from '../datapath/workers.js';
import { requireNative } from '../io/addon.js';
import { expressWanted, ExpressCounter, sumExpress } from '../datapath/express.js';
import { openLinuxTun, addRoute } from '../io/tun-linux.js';
import { macToString } from '../packet/wire/ethernet.js';
import { ipv4ToString } from '../packet/wire/ipv4.js';
import { VXLAN_OVERHEAD_V4 } from '../control/config.js';

export interface FlannelUpOptions {
  logLevel: string;
  /** As for static mode: auto (native when the addon loaded), native, or ts. */
  datapath?: 'auto' | 'native' | 'ts';
  /** `vxtun up --workers`: engines on their own threads and TUN queues (vxlan backend, native path); default one per core, capped. */
  workers?: number;
  /** `vxtun up --no-express` gives false: no express path (default on, as in static mode). */
  express?: boolean;
  /** `vxtun up --no-batch-scheduling` gives false: threads stay at SCHED_OTHER. */
  batchScheduling?: boolean;
}

class Aborted extends Error {}

/** The registry this config names (etcd opening includes the TLS/reachability probe). */
async function openRegistry(cfg: FlannelNodeConfig): Promise<SubnetRegistry> {
  const r = cfg.registry;
  if (!r) {
    const s = cfg.static!;
    const type = cfg.backend.type ?? 'vxlan';
    const port = cfg.backend.port;
    const networkConfig = JSON.stringify({ Network: cidrToString(s.network), SubnetLen: s.subnet.prefixLen, Backend: { Type: type, ...(cfg.backend.vni !== undefined ? { VNI: cfg.backend.vni } : {}), ...(port ? { Port: port } : {}) } });
    const seed = s.peers.map((p) => ({
      subnetKey: subnetKey(p.subnet),
      value: encodeLeaseValue(p.publicIp, type === 'vxlan' ? { type, vni: cfg.backend.vni ?? 1, vtepMac: p.vtepMac! } : { type }),
    }));
    return new StaticRegistry(networkConfig, seed);
  }
  const settings = { endpoints: r.endpoints, prefix: r.prefix, ...(r.tls ? { tls: r.tls } : {}) };
  return r.api === 'v2' ? EtcdV2Registry.open(settings) : EtcdV3Registry.open(settings);
}

/** Runs `fn` until it succeeds; transient RegistryErrors are retried with backoff until the deadline. */
async function retrying<T>(what: string, fn: () => Promise<T>, log: Logger, deadline: number, aborted: () => boolean): Promise<T> {
  let backoff = 500;
  for (;;) {
    if (aborted()) throw new Aborted();
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof RegistryError) || !err.transient) throw err;
      if (Date.now() + backoff > deadline) {
        throw new RegistryError(`${err.message} (gave up after ${Math.round((deadline - startedAt) / 1000)} s)`, false, err.field);
      }
      log.warn({ err: err.message, retryInMs: backoff }, `${what}: registry unreachable, retrying`);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  }
}

const startedAt = Date.now();

export async function runFlannelUp(cfg: FlannelNodeConfig, opts: FlannelUpOptions): Promise<number> {
  const deviceName = cfg.device.name ?? 'vxtun0';
  const log = pino({ level: opts.logLevel, base: { device: deviceName } });
  const fail = (line: string, code: number): number => {
    process.stderr.write(`vxtun: ${line}\n`);
    return code;
  };

  let stopping = false;
  let wake: ((signal: string) => void) | undefined;
  const onSignal = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    wake?.(signal);
  };
  const onTerm = (): void => onSignal('SIGTERM');
  const onInt = (): void => onSignal('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);

  const undo = new UndoStack((err) => log.warn({ err: err.message }, 'teardown step failed'));
  const teardown = (): Promise<void> => undo.runAll();

  // --- everything that can refuse, before the host changes ---------------------------------------
  let registry: SubnetRegistry;
  let network: FlannelNetworkConfig;
  let manager: LeaseManager;
  let underlay: { iface: string; mtu: number };
  const startupDeadline = cfg.registry?.startupTimeoutSeconds !== undefined ? Date.now() + cfg.registry.startupTimeoutSeconds * 1000 : Infinity;
  const aborted = (): boolean => stopping;
  try {
    requireRoot();
    if (!existsSync('/dev/net/tun')) throw new HostError('/dev/net/tun is missing: load the tun module (modprobe tun) or run where TUN devices are allowed', 1);
    if (existsSync(`/sys/class/net/${deviceName}`)) throw new HostError(`config: device.name: "${deviceName}" already exists on this host`, 2);
    const found = findUnderlay(cfg.publicIp);
    if (!found) throw new HostError(`config: publicIp: "${cfg.publicIp}" is not an address of any interface on this host`, 2);
    underlay = found;
    registry = await retrying('connect', () => openRegistry(cfg), log, startupDeadline, aborted);
    undo.push(() => registry.close());
    const where = cfg.registry ? joinKey(cfg.registry.prefix, 'config') : 'network';
    network = parseNetworkConfig(await retrying('read network config', () => registry.getNetworkConfig(), log, startupDeadline, aborted), where);
    if (cfg.backend.type !== undefined && cfg.backend.type !== network.backend.type) {
      throw new ConfigError(`config: backend.type: "${cfg.backend.type}" but ${where} says Backend.Type "${network.backend.type}"`);
    }
    for (const k of ['port', 'vni'] as const) {
      const mine = cfg.backend[k];
      if (mine !== undefined && mine !== network.backend[k]) {
        throw new ConfigError(`config: backend.${k}: ${mine} but ${where} says Backend.${k === 'port' ? 'Port' : 'VNI'} ${network.backend[k]}`);
      }
    }
    const backend = network.backend;
    const leaseValue = encodeLeaseValue(cfg.publicIp, backend.type === 'vxlan' ? { type: 'vxlan', vni: backend.vni, vtepMac: cfg.backend.vtepMac } : { type: 'udp' });
    manager = new LeaseManager({
      registry,
      network,
      publicIp: cfg.publicIp,
      leaseValue,
      ...(cfg.static ? { preferredSubnet: cfg.static.subnet } : {}),
      ...(cfg.registry?.leaseTtlSeconds !== undefined ? { ttlSeconds: cfg.registry.leaseTtlSeconds } : {}),
      ...(cfg.registry?.renewMarginSeconds !== undefined ? { renewMarginSeconds: cfg.registry.renewMarginSeconds } : {}),
      log,
    });
    await retrying('acquire lease', () => manager.acquire(), log, startupDeadline, aborted);
  } catch (err) {
    await teardown();
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    if (err instanceof Aborted) return 0;
    if (err instanceof ConfigError) return fail(err.message, 2);
    if (err instanceof HostError) return fail(err.message, err.exitCode);
    if (err instanceof FlannelConfigError) return fail(`registry: ${err.message}`, 2);
    if (err instanceof RegistryError) return fail(err.field ? `config: ${err.field}: ${err.message}` : `registry: ${err.message}`, 2);
    throw err;
  }

  // --- the host: device, route, socket, engine, subnet.env, rules ------------------------------
  const backend = network.backend;
  const subnet = manager.subnet;
  const maxInner = underlay.mtu - (backend.type === 'vxlan' ? VXLAN_OVERHEAD_V4 : FLANNEL_UDP_OVERHEAD);
  const mtu = cfg.device.mtu ?? maxInner;
  let engine: Engine | FlannelUdpEngine;
  // The fast path as in static mode (issue 3): native UDP when the addon loaded, TUN offloads for VXLAN (on either path).
  const kind = resolveDatapathKind(opts.datapath ?? 'auto');
  // Several engines as in static mode, for VXLAN on the native path; flannel's udp backend keeps one.
  const workers = kind === 'native' && backend.type === 'vxlan' ? (opts.workers ?? defaultWorkers()) : 1;
  if ((opts.workers ?? 1) > workers) log.warn({ workers: opts.workers }, `workers: the ${backend.type} backend on the ${kind} path runs one engine`);
  let pool: WorkerPool | undefined;
  try {
    const tunOffload = backend.type === 'vxlan';
    const tun = openLinuxTun({ name: deviceName, mtu, ipv4: ipv4ToString(subnet.addr), prefixLen: 32, offload: tunOffload, offloadIn: kind, multiQueue: workers > 1 });
    undo.push(() => tun.close());
    addRoute(ipv4ToString(network.network.addr), network.network.prefixLen, tun.name);
    // vxlan: flow-hashed source ports as flannel.1 has them; udp: port 8285 both ways, as flanneld's udp backend.
    const sourcePorts = backend.type === 'vxlan' ? datapathDefaults(undefined).sourcePorts : 'fixed';
    const datapath = await openDatapath({ kind, gso: true, sourcePorts, address: cfg.publicIp, port: backend.port, reusePort: workers > 1 });
    const bind = datapath.bind;
    undo.push(() => bind.close());
    // Lone packets forwarded by the addon, as in static mode.
    const express = backend.type === 'vxlan' && kind === 'native' && expressWanted(opts.express !== false) && tun.features.vnetHdr;
    log.info({ datapath: datapath.kind, workers, sourcePorts: describeSourcePorts(datapath.features, backend.port), features: { ...datapath.features, tunOffload: tun.features.offload, tunUso: tun.features.uso, express } }, 'datapath');
    // Before the workers start: they inherit it.
    datapath.features.batchScheduling = kind === 'native' && applyBatchScheduling(opts.batchScheduling !== false);
    const inboundScheduling = inboundSchedulingFor(datapath.features.batchScheduling);
    datapath.features.inboundScheduling = inboundScheduling !== undefined;
    const followLoad = inboundScheduling ? { inboundScheduling } : {};
    engine =
      backend.type === 'vxlan'
        ? new Engine(tun, bind, { vni: backend.vni, vtepMac: cfg.backend.vtepMac, vtepIp: subnet.addr, localSubnets: [subnet], antiSpoofing: cfg.security.antiSpoofing, port: backend.port, maxInnerSize: maxInner, tunMtu: mtu, ...(datapath.onesSum ? { onesSum: datapath.onesSum, encapBatch: datapath.encapBatch, batchSize: 128 } : {}), ...(express ? { express: { native: requireNative() } } : {}), ...followLoad })
        : new FlannelUdpEngine(tun, bind, { tunMtu: mtu, vtepIp: subnet.addr, localSubnets: [subnet], antiSpoofing: cfg.security.antiSpoofing, ...followLoad });
    const eng = engine;
    eng.setRoutes(new RouteTable(manager.routes));
    if (engine instanceof Engine) {
      pool = await startEngineWorkers(engine, workers, {
        tun: { name: tun.name, mtu, features: tun.features },
        bind: { address: cfg.publicIp, port: backend.port, gso: true, ...(sourcePorts !== 'fixed' ? { sourcePorts } : {}) },
        engine: { vni: backend.vni, vtepMac: Uint8Array.from(cfg.backend.vtepMac), vtepIp: subnet.addr, localSubnets: [subnet], antiSpoofing: cfg.security.antiSpoofing, port: backend.port, maxInnerSize: maxInner, tunMtu: mtu, batchSize: 128 },
        express,
        inboundScheduling: inboundScheduling !== undefined,
      });
      const workerPool = pool;
      if (workerPool) undo.push(() => workerPool.stop());
    }
    manager.on('routes', (routes) => {
      eng.setRoutes(new RouteTable(routes));
      log.info({ peers: routes.map((r) => `${cidrToString(r.prefix)}@${r.target.endpoint.address}`) }, 'routes updated');
    });
    manager.on('fatal', (err) => {
      log.error({ err: err.message }, 'lease lost for good; stopping');
      process.exitCode = 1;
      onSignal('lease-lost');
    });
    undo.push(() => manager.stop());
    manager.start();
    writeSubnetEnv(cfg.subnetEnv, { network: network.network, subnet, mtu, ipMasq: cfg.ipMasq });
    undo.push(() => rmSync(cfg.subnetEnv, { force: true }));
    if (cfg.ipMasq) {
      undo.push(() => removeMasq());
      installMasq(network.network, subnet);
    }
    // The udp backend has no observation points yet: a trace of it attaches but sees nothing.
    const trace = new TraceHub(pool ? pool.observable(eng) : eng, () => ({
      device: tun.name,
      publicIp: cfg.publicIp,
      port: backend.port,
      vni: backend.vni ?? 0,
      vtepMac: macToString(cfg.backend.vtepMac),
      subnet: cidrToString(subnet),
      network: cidrToString(network.network),
      mtu,
    }));
    const control = await ControlServer.listen(cfg.controlSocket ?? `/run/vxtun/${deviceName}.sock`, (req) => {
      switch (req.cmd) {
        case 'trace':
          return trace.handle(req);
        case 'counters':
          return pool ? pool.addCounters(eng.counters.snapshot()) : eng.counters.snapshot();
        case 'routes':
          return eng.routeTable.describe(backend.type === 'vxlan');
        case 'info':
          return {
            device: tun.name,
            mtu,
            publicIp: cfg.publicIp,
            underlay,
            network: cidrToString(network.network),
            subnet: cidrToString(subnet),
            backend: backend.type,
            vni: backend.vni,
            port: backend.port,
            vtepMac: macToString(cfg.backend.vtepMac),
            registry: registry.description,
            lease: manager.stats,
            pid: process.pid,
            datapath: datapath.kind,
            features: { ...datapath.features, tunOffload: tun.features.offload, tunUso: tun.features.uso, express: eng instanceof Engine && eng.expressActive, expressThread: eng instanceof Engine && eng.expressActive && eng.expressThread, workers },
            datapathCounters: { express: namedCounters(ExpressCounter, sumExpress(eng instanceof Engine ? eng.counters.express : undefined, pool?.expressTotals())) },
            engines: pool ? pool.perEngine(eng.counters) : [{ txPackets: eng.counters.snapshot().tx.packets, rxPackets: eng.counters.snapshot().rx.packets }],
          };
        default:
          return { error: `unknown command ${JSON.stringify(req.cmd)}` };
      }
    });
    undo.push(() => control.close());
    engine.start();
    undo.push(() => eng.stop());
  } catch (err) {
    await teardown();
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    return fail((err as Error).message, 1);
  }

  log.info(
    { publicIp: cfg.publicIp, subnet: cidrToString(subnet), network: cidrToString(network.network), backend: backend.type, port: backend.port, mtu, datapath: kind, registry: registry.description, subnetEnv: cfg.subnetEnv, ipMasq: cfg.ipMasq },
    'vxtun up',
  );

  const signal = await new Promise<string>((resolve) => {
    wake = resolve;
    if (stopping) resolve('SIGTERM');
  });
  log.info({ signal, counters: pool ? pool.addCounters(engine.counters.snapshot()) : engine.counters.snapshot() }, 'vxtun stopping (the lease stays in the registry)');
  await teardown();
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onInt);
  log.info('vxtun down');
  return process.exitCode === 1 ? 1 : 0;
}
