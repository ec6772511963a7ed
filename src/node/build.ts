/**
 * The one builder of a node, whatever its config says: host checks -> route source (static peers,
 * or a registry: connect, network config, lease) -> TUN device, pod-network route, UDP socket ->
 * engine (VXLAN, or flannel's udp backend), express path, scheduling, workers, all following one
 * route sink -> subnet.env and masquerade rules (flannel nodes) -> trace hub and control socket.
 * Every step that changes the host pushes its undo onto `undo` as it happens, so a failed start
 * and a stop both leave the host as it was (the lease stays in the registry: a restarted node
 * keeps its subnet).
 */
import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import type { UndoStack } from '../util/undo.js';
import { checkHost, type Underlay } from '../control/host.js';
import { VXLAN_OVERHEAD_V4 } from '../control/config.js';
import { ControlServer } from '../control/socket.js';
import { writeSubnetEnv } from '../control/subnet-env.js';
import { installMasq, removeMasq } from '../control/ipmasq.js';
import { Engine } from '../datapath/engine.js';
import { FlannelUdpEngine, FLANNEL_UDP_OVERHEAD } from '../datapath/flannel-udp.js';
import { openDatapath, resolveDatapathKind, namedCounters, describeSourcePorts } from '../datapath/select.js';
import { startEngineWorkers, defaultWorkers, applyBatchScheduling, inboundSchedulingFor, type WorkerPool } from '../datapath/workers.js';
import { expressWanted, ExpressCounter, sumExpress } from '../datapath/express.js';
import { openLinuxTun, addRoute, TunCounter } from '../io/tun-linux.js';
import { UdpCounter } from '../io/bind-native.js';
import { requireNative } from '../io/addon.js';
import type { CounterSnapshot } from '../packet/counters.js';
import { cidrToString } from '../packet/cidr.js';
import { macToString } from '../packet/wire/ethernet.js';
import { ipv4ToString } from '../packet/wire/ipv4.js';
import { TraceHub } from '../trace/server.js';
import type { NodeSpec } from './spec.js';
import { openRouteSource, type NetworkPlan } from './route-source.js';
import { RouteSink } from './route-sink.js';
import { controlHandler, type InfoReply } from './control-api.js';
import { bootId, epochOffsetMs } from '../util/clock.js';

export interface BuildEnv {
  log: Logger;
  undo: UndoStack;
  /** True once SIGINT/SIGTERM came: waits for the registry give up (StartAborted). */
  aborted: () => boolean;
  /** The node cannot go on (its lease is lost for good): the caller stops it. */
  fatal: (err: Error) => void;
}

export interface RunningNode {
  info(): InfoReply;
  counters(): CounterSnapshot;
  /** SIGHUP: re-read what can be re-read (static peers); never stops the node. */
  reload(): void;
  /** What the start-up log line says. */
  summary: Record<string, unknown>;
}

/** The MTUs a backend leaves on this underlay. */
function mtus(underlay: Underlay, backend: NetworkPlan['backend'], configured: number | undefined): { maxInner: number; mtu: number } {
  const maxInner = underlay.mtu - (backend.type === 'vxlan' ? VXLAN_OVERHEAD_V4 : FLANNEL_UDP_OVERHEAD);
  return { maxInner, mtu: configured ?? maxInner };
}

export async function buildNode(spec: NodeSpec, env: BuildEnv): Promise<RunningNode> {
  const { log, undo } = env;
  // --- everything that can refuse, before the host changes ---------------------------------------
  const underlay = checkHost(spec.device.name, spec.publicIp, spec.controlSocket);
  const source = await openRouteSource(spec, env);
  const { network, subnet, backend } = source.plan;
  const vxlan = backend.type === 'vxlan';
  const { maxInner, mtu } = mtus(underlay, backend, spec.device.mtu);
  const dp = spec.datapath;
  const kind = resolveDatapathKind(dp.kind);
  // Several engines on the native path; flannel's udp backend keeps one.
  const workers = kind === 'native' && vxlan ? (dp.workers ?? defaultWorkers()) : 1;
  if ((dp.workers ?? 1) > workers) log.warn({ workers: dp.workers }, `workers: the ${backend.type} backend on the ${kind} path runs one engine`);

  // --- the host: device, route, socket, engines ---------------------------------------------------
  // Both paths take TUN offloads for VXLAN (on the ts path their packet work is TypeScript, src/io/tun-offload.ts);
  // USO only where the addon splits UDP super-packets on read. flannel's udp backend carries plain IPv4.
  const tun = openLinuxTun({ name: spec.device.name, mtu, ipv4: ipv4ToString(subnet.addr), prefixLen: 32, offload: vxlan && dp.tunOffload, offloadIn: kind, uso: kind === 'native' && dp.tunUso, multiQueue: workers > 1 });
  undo.push(() => tun.close());
  addRoute(ipv4ToString(network.addr), network.prefixLen, tun.name);
  // flanneld's udp backend sends from its port both ways; VXLAN hashes source ports as flannel.1 does unless told "fixed".
  const sourcePorts = vxlan ? dp.sourcePorts : 'fixed';
  const datapath = await openDatapath({ kind, gso: dp.gso, gro: dp.gro, sourcePorts, address: spec.publicIp, port: backend.port, reusePort: workers > 1 });
  const bind = datapath.bind;
  undo.push(() => bind.close());
  const features = datapath.features;
  features.tunOffload = tun.features.offload;
  features.tunUso = tun.features.uso;
  features.workers = workers;
  // Lone packets forwarded by the addon (native path, where the TUN has the offload reader it hands over to).
  const express = vxlan && kind === 'native' && expressWanted(dp.express) && tun.features.vnetHdr;
  // Before the workers start: they inherit it.
  features.batchScheduling = kind === 'native' && applyBatchScheduling(dp.batchScheduling);
  const inboundScheduling = inboundSchedulingFor(features.batchScheduling);
  features.inboundScheduling = inboundScheduling !== undefined;
  const followLoad = inboundScheduling ? { inboundScheduling } : {};
  const vtepMac = spec.vtepMac;
  const engine = vxlan
    ? new Engine(tun, bind, {
        vni: backend.vni,
        vtepMac,
        vtepIp: subnet.addr,
        port: backend.port,
        maxInnerSize: maxInner,
        tunMtu: mtu,
        ...(datapath.onesSum ? { onesSum: datapath.onesSum, encapBatch: datapath.encapBatch, batchSize: 128 } : {}),
        ...(express ? { express: { native: requireNative() } } : {}),
        ...followLoad,
      })
    : new FlannelUdpEngine(tun, bind, { tunMtu: mtu, ...followLoad });
  const routes = new RouteSink();
  routes.subscribe(engine);
  source.start(routes, env.fatal);
  let pool: WorkerPool | undefined;
  if (engine instanceof Engine) {
    pool = await startEngineWorkers(routes, workers, {
      tun: { name: tun.name, mtu, features: tun.features },
      bind: { address: spec.publicIp, port: backend.port, gso: dp.gso, gro: dp.gro, ...(sourcePorts !== 'fixed' ? { sourcePorts } : {}) },
      engine: { vni: backend.vni, vtepMac: Uint8Array.from(vtepMac), vtepIp: subnet.addr, port: backend.port, maxInnerSize: maxInner, tunMtu: mtu, batchSize: 128 },
      express,
      inboundScheduling: inboundScheduling !== undefined,
    });
    const workerPool = pool;
    if (workerPool) undo.push(() => workerPool.stop());
  }

  // --- flannel's host side: subnet.env for the CNI plugin, masquerade rules -----------------------
  if (spec.flannel) {
    const { subnetEnv, ipMasq } = spec.flannel;
    writeSubnetEnv(subnetEnv, { network, subnet, mtu, ipMasq });
    undo.push(() => rmSync(subnetEnv, { force: true }));
    if (ipMasq) {
      undo.push(() => removeMasq());
      installMasq(network, subnet);
    }
  }

  // --- observation and control ---------------------------------------------------------------------
  const counters = (): CounterSnapshot => (pool ? pool.addCounters(engine.counters.snapshot()) : engine.counters.snapshot());
  const vtepMacText = macToString(vtepMac);
  // With workers, a trace sees every engine: the workers' observations come over by message.
  const trace = new TraceHub(pool ? pool.observable(engine) : engine, () => ({
    device: tun.name,
    publicIp: spec.publicIp,
    port: backend.port,
    vni: vxlan ? backend.vni : 0,
    vtepMac: vtepMacText,
    subnet: cidrToString(subnet),
    network: cidrToString(network),
    mtu,
    bootId: bootId(),
    epochOffsetMs: epochOffsetMs(),
  }));
  const info = (): InfoReply => {
    const main = engine.counters.snapshot();
    return {
      device: tun.name,
      mtu,
      publicIp: spec.publicIp,
      underlay,
      network: cidrToString(network),
      subnet: cidrToString(subnet),
      backend: backend.type,
      vni: vxlan ? backend.vni : null,
      port: backend.port,
      vtepMac: vtepMacText,
      registry: source.description,
      lease: source.lease(),
      pid: process.pid,
      bootId: bootId(),
      datapath: datapath.kind,
      features,
      engines: pool ? pool.perEngine(engine.counters) : [{ txPackets: main.tx.packets, rxPackets: main.rx.packets }],
      datapathCounters: {
        udp: pool && datapath.rawCounters ? namedCounters(UdpCounter, pool.addNative('udp', datapath.rawCounters)) : datapath.counters(),
        tun: namedCounters(TunCounter, pool ? pool.addNative('tun', tun.offloadCounters) : tun.offloadCounters),
        express: namedCounters(ExpressCounter, sumExpress(engine instanceof Engine ? engine.counters.express : undefined, pool?.expressTotals())),
      },
    };
  };
  const control = await ControlServer.listen(
    spec.controlSocket,
    controlHandler({ info, counters, routes: () => engine.routeTable.describe(vxlan), trace: (req) => trace.handle(req) }),
  );
  undo.push(() => control.close());
  engine.start();
  undo.push(() => engine.stop());
  // What runs, not what was asked for (the addon may have refused the parameters).
  const expressActive = engine instanceof Engine && engine.expressActive;
  features.express = expressActive;
  features.expressThread = expressActive && (engine as Engine).expressThread;
  if (engine instanceof Engine && engine.expressError !== undefined) log.warn({ err: engine.expressError }, 'express path off');

  return {
    info,
    counters,
    reload: () => source.reload(),
    summary: {
      publicIp: spec.publicIp,
      underlay,
      subnet: cidrToString(subnet),
      network: cidrToString(network),
      mtu,
      backend: backend.type,
      vni: vxlan ? backend.vni : null,
      port: backend.port,
      vtepMac: vtepMacText,
      routes: source.description,
      peers: routes.current.routes.length,
      datapath: datapath.kind,
      datapathRequested: spec.requestedDatapath,
      workers,
      sourcePorts: describeSourcePorts(features, backend.port),
      features,
      ...(spec.flannel ? { subnetEnv: spec.flannel.subnetEnv, ipMasq: spec.flannel.ipMasq } : {}),
    },
  };
}
