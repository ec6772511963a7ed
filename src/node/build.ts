/**
 * The one builder of a node, whatever its config says: host checks -> route source (static peers,
 * or a registry: connect, network config, lease) -> TUN device, pod-network route, UDP socket ->
 * engine (VXLAN, or flannel's udp backend), express path, scheduling, workers, all following one
 * route sink -> subnet.env and masquerade rules (flannel nodes) -> trace hub; the control socket
 * and the health server listen from the start.
 * Every step that changes the host pushes its undo onto `undo` as it happens, so a failed start
 * and a stop both leave the host as it was (the lease stays in the registry and subnet.env on disk,
 * as flanneld leaves them: a restarted node keeps its subnet).
 */
import { getPriority } from 'node:os';
import type { Logger } from 'pino';
import type { UndoStack } from '../util/undo.js';
import { checkHost, requireUnderlay, DirectRoutes, attachedSubnets, addIpv6DeviceRoutes, type Underlay } from '../control/host.js';
import { VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6 } from '../control/config.js';
import { ControlServer } from '../control/socket.js';
import { writeSubnetEnv } from '../control/subnet-env.js';
import { installMasq, removeMasq, ensureMasq } from '../control/ipmasq.js';
import { Engine } from '../datapath/engine.js';
import { FlannelUdpEngine, FLANNEL_UDP_OVERHEAD } from '../datapath/flannel-udp.js';
import { openDatapath, resolveDatapathKind, namedCounters, describeSourcePorts } from '../datapath/select.js';
import { applyNice } from '../datapath/priority.js';
import { startEngineWorkers, peerFilterFollower, defaultWorkers, applyBatchScheduling, inboundSchedulingFor, type WorkerPool } from '../datapath/workers.js';
import { bulkInWanted, bulkOutWanted, expressWanted, ExpressCounter, sumExpress } from '../datapath/express.js';
import { openLinuxTun, addRoute, TunCounter, txQueueLength } from '../io/tun-linux.js';
import { UdpCounter, NativeBind } from '../io/bind-native.js';
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
import { watchLink } from './link-watch.js';
import { startHealthServer, READINESS_STEPS, type HealthView, type ReadinessStep } from './health.js';
import { bootId, epochOffsetMs } from '../util/clock.js';
import { memoryReport, youngGenerationCapped } from './memory.js';

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
  checkHost(spec.device.name, spec.controlSocket);
  // The control socket and the health server come first: a second node of this namespace stops
  // here, before it takes a lease; and a probe sees a node that waits for its registry as alive.
  let handler: ReturnType<typeof controlHandler> | undefined;
  const control = await ControlServer.listen(spec.controlSocket, (req) => (handler ? handler(req) : { starting: true, error: 'vxtun is starting: no lease yet' }));
  undo.push(() => control.close());
  const done = new Set<ReadinessStep>();
  let running: { info: () => InfoReply; counters: () => CounterSnapshot; routes: () => number } | undefined;
  let readOnce = (): boolean => false;
  const healthView: HealthView = {
    info: () => running?.info(),
    counters: () => running?.counters(),
    routeCount: () => running?.routes() ?? 0,
    missing: () => READINESS_STEPS.filter((step) => (step === 'registry' ? !readOnce() : !done.has(step))),
  };
  if (spec.healthz) {
    const health = await startHealthServer(spec.healthz, healthView, log);
    undo.push(() => health.close());
  }
  const source = await openRouteSource(spec, { ...env, underlayFor: requireUnderlay });
  readOnce = () => source.readOnce();
  const { network, subnet, backend, publicIp, vtepMac, underlay } = source.plan;
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
  const tun = openLinuxTun({ name: spec.device.name, mtu, ipv4: ipv4ToString(subnet.addr), prefixLen: 32, offload: vxlan && dp.tunOffload, offloadIn: kind, uso: kind === 'native' && dp.tunUso, multiQueue: workers > 1, txQueueLength: dp.tunQueueLength });
  undo.push(() => tun.close());
  done.add('device');
  addRoute(ipv4ToString(network.addr), network.prefixLen, tun.name);
  done.add('routes');
  // flanneld's udp backend sends from its port both ways; VXLAN hashes source ports as flannel.1 does unless told "fixed".
  const sourcePorts = vxlan ? dp.sourcePorts : 'fixed';
  const datapath = await openDatapath({ kind, gso: dp.gso, gro: dp.gro, sourcePorts, codel: dp.codel, address: publicIp, port: backend.port, reusePort: workers > 1 });
  const bind = datapath.bind;
  undo.push(() => bind.close());
  const features = datapath.features;
  features.tunOffload = tun.features.offload;
  features.tunUso = tun.features.uso;
  const queueLength = txQueueLength(tun.name);
  if (queueLength !== undefined) features.tunQueueLength = queueLength;
  features.workers = workers;
  features.youngGenerationCap = youngGenerationCapped();
  // The kernel's half of unknown-peer: turning that check off (peers behind NAT) turns the filter off too.
  features.peerFilter = dp.peerFilter && spec.security.antiSpoofing.unknownPeer && bind instanceof NativeBind;
  // Lone packets forwarded by the addon (native path, where the TUN has the offload reader it hands over to).
  const express = vxlan && kind === 'native' && expressWanted(dp.express) && tun.features.vnetHdr;
  // Before the workers start: they inherit both.
  const nice = applyNice(dp.nice);
  if ('error' in nice) log.warn({ nice: dp.nice, err: nice.error }, `datapath.nice ${dp.nice} not applied (${nice.error}): the threads keep nice ${getPriority(0)}`);
  features.nice = getPriority(0);
  features.batchScheduling = kind === 'native' && applyBatchScheduling(dp.batchScheduling);
  const inboundScheduling = inboundSchedulingFor(features.batchScheduling);
  features.inboundScheduling = inboundScheduling !== undefined;
  const followLoad = inboundScheduling ? { inboundScheduling } : {};
  const engine = vxlan
    ? new Engine(tun, bind, {
        vni: backend.vni,
        vtepMac,
        vtepIp: subnet.addr,
        localSubnets: [subnet],
        antiSpoofing: spec.security.antiSpoofing,
        port: backend.port,
        maxInnerSize: maxInner,
        tunMtu: mtu,
        ...(datapath.onesSum ? { onesSum: datapath.onesSum, encapBatch: datapath.encapBatch, batchSize: 128 } : {}),
        ...(express ? { express: { native: requireNative() } } : {}),
        ...followLoad,
      })
    : new FlannelUdpEngine(tun, bind, { tunMtu: mtu, vtepIp: subnet.addr, localSubnets: [subnet], antiSpoofing: spec.security.antiSpoofing, ...followLoad });
  const routes = new RouteSink();
  routes.subscribe(engine);
  const peerFilter = features.peerFilter === true;
  if (peerFilter && bind instanceof NativeBind) {
    routes.subscribe(peerFilterFollower(bind, (peers) => log.warn({ peers }, 'peer filter off: more peers than a socket filter holds; datagrams from non-peers reach the engine')));
  }
  const v6 = source.plan.ipv6 ? await openIpv6Side(spec, source.plan, underlay, undo) : undefined;
  let direct: DirectRoutes | undefined;
  if (backend.directRouting) {
    const directRoutes = new DirectRoutes(underlay.iface, attachedSubnets(underlay.iface), log);
    direct = directRoutes;
    undo.push(() => directRoutes.clear());
    routes.subscribe({ setRoutes: (table) => directRoutes.apply(table.routes) });
  }
  // IPv4 routes to the IPv4 engines, IPv6 ones (dual-stack leases' second half) to the IPv6 engine.
  source.start(
    {
      publish: (all) => {
        v6?.routes.publish(all.filter((r) => r.prefix.family === 6));
        return routes.publish(all.filter((r) => r.prefix.family === 4));
      },
    },
    env.fatal,
  );
  let pool: WorkerPool | undefined;
  if (engine instanceof Engine) {
    pool = await startEngineWorkers(routes, workers, {
      tun: { name: tun.name, mtu, features: tun.features },
      bind: { address: publicIp, port: backend.port, gso: dp.gso, gro: dp.gro, peerFilter, ...(sourcePorts !== 'fixed' ? { sourcePorts } : {}), ...(features.codel !== false && dp.codel ? { codel: dp.codel } : {}) },
      engine: { vni: backend.vni, vtepMac: Uint8Array.from(vtepMac), vtepIp: subnet.addr, localSubnets: [subnet], antiSpoofing: spec.security.antiSpoofing, port: backend.port, maxInnerSize: maxInner, tunMtu: mtu, batchSize: 128 },
      express,
      inboundScheduling: inboundScheduling !== undefined,
    });
    const workerPool = pool;
    if (workerPool) undo.push(() => workerPool.stop());
  }

  // --- flannel's host side: subnet.env for the CNI plugin, masquerade rules -----------------------
  // subnet.env stays when the node stops (flanneld's way: CNI ADD keeps working through a restart).
  // Masquerade rules are reconciled on every start: a run killed with -9 may have left them.
  if (spec.flannel) {
    const { subnetEnv, ipMasq } = spec.flannel;
    writeSubnetEnv(subnetEnv, { network, subnet, mtu, ipMasq, ...(source.plan.ipv6 ? { ipv6: { network: source.plan.ipv6.network, subnet: source.plan.ipv6.subnet } } : {}) });
    if (ipMasq) {
      undo.push(() => void removeMasq());
      installMasq(network, subnet);
      const resync = setInterval(() => {
        try {
          if (ensureMasq(network, subnet)) log.warn('masquerade rules were missing: installed again');
        } catch (err) {
          log.error({ err: (err as Error).message }, 'masquerade rules: resync failed');
        }
      }, (spec.iptablesResyncSeconds ?? 5) * 1000);
      resync.unref();
      undo.push(() => clearInterval(resync));
    } else if (removeMasq()) {
      log.info('masquerade rules of an earlier run removed (--ip-masq is off)');
    }
  }
  done.add('masquerade');
  done.add('subnet.env');

  // --- observation and control ---------------------------------------------------------------------
  const counters = (): CounterSnapshot => (pool ? pool.addCounters(engine.counters.snapshot()) : engine.counters.snapshot());
  const vtepMacText = macToString(vtepMac);
  // With workers, a trace sees every engine: the workers' observations come over by message.
  const trace = new TraceHub(pool ? pool.observable(engine) : engine, () => ({
    device: tun.name,
    publicIp: publicIp,
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
      publicIp: publicIp,
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
      ...(v6 ? { ipv6: v6.info() } : {}),
      memory: memoryReport(),
    };
  };
  handler = controlHandler({
    info,
    counters,
    routes: () => [...engine.routeTable.describe(vxlan).map((r) => (direct?.has(r.subnet) ? { ...r, direct: true as const } : r)), ...(v6 ? v6.engine.routeTable.describe() : [])],
    trace: (req) => trace.handle(req),
  });
  running = { info, counters, routes: () => routes.current.routes.length };
  engine.start();
  undo.push(() => engine.stop());
  if (v6) {
    v6.engine.start();
    undo.push(() => v6.engine.stop());
  }
  // What runs, not what was asked for (the addon may have refused the parameters).
  const expressActive = engine instanceof Engine && engine.expressActive;
  features.express = expressActive;
  features.expressThread = expressActive && (engine as Engine).expressThread;
  features.bulkIn = expressActive && bulkInWanted();
  features.bulkOut = expressActive && bulkOutWanted();
  if (engine instanceof Engine && engine.expressError !== undefined) log.warn({ err: engine.expressError }, 'express path off');
  // A deleted device stops the node (exit 1); a device set down and up gets its route back.
  const linkWatch = watchLink({ device: tun.name, route: { dst: ipv4ToString(network.addr), prefixLen: network.prefixLen }, log, lost: env.fatal });
  undo.push(() => linkWatch.stop());
  // kube: NetworkUnavailable=False once packets flow (flanneld's CompleteLease; off with --set-node-network-unavailable=false).
  await source.complete();

  return {
    info,
    counters,
    reload: () => source.reload(),
    summary: {
      publicIp: publicIp,
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

interface Ipv6Side {
  engine: Engine;
  routes: RouteSink;
  info(): NonNullable<InfoReply['ipv6']>;
}

/**
 * A dual-stack node's IPv6 side, as flanneld's flannel-v6.<VNI>: its own device (a second TUN), its
 * own VTEP MAC (BackendV6Data) and VXLAN over the IPv6 underlay from PublicIPv6 (overhead 70), fed
 * the IPv6 routes of the leases. The addon's UDP socket is IPv4 only: this side runs on the
 * TypeScript path.
 */
async function openIpv6Side(spec: NodeSpec, plan: NetworkPlan, underlay: Underlay, undo: UndoStack): Promise<Ipv6Side> {
  const v6 = plan.ipv6!;
  const mtu = underlay.mtu - VXLAN_OVERHEAD_V6;
  const tun = openLinuxTun({ name: `${spec.device.name.slice(0, 12)}-v6`, mtu, ipv6: true, txQueueLength: spec.datapath.tunQueueLength });
  undo.push(() => tun.close());
  addIpv6DeviceRoutes(tun.name, v6.subnet, v6.network);
  const datapath = await openDatapath({ kind: 'ts', gso: false, address: v6.publicIpv6, port: plan.backend.port });
  undo.push(() => datapath.bind.close());
  // vtepIp answers IPv4 ARP, which never comes over the IPv6 side (flanneld's neighbours there are permanent).
  const engine = new Engine(tun, datapath.bind, { vni: plan.backend.vni, vtepMac: v6.vtepMac, vtepIp: 0, localSubnets: [v6.subnet], antiSpoofing: spec.security.antiSpoofing, port: plan.backend.port, maxInnerSize: mtu, tunMtu: mtu });
  const routes = new RouteSink();
  routes.subscribe(engine);
  const vtepMac = macToString(v6.vtepMac);
  return {
    engine,
    routes,
    info: () => {
      const c = engine.counters.snapshot();
      return { device: tun.name, mtu, network: cidrToString(v6.network), subnet: cidrToString(v6.subnet), publicIpv6: v6.publicIpv6, vtepMac, txPackets: c.tx.packets, rxPackets: c.rx.packets };
    },
  };
}
