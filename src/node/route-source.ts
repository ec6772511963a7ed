/**
 * Where a node's network, subnet, backend and peer routes come from, and what SIGHUP re-reads.
 *   static peers  the config file says everything; SIGHUP re-reads the file and swaps in its peers.
 *   leases        flannel's rules (src/control/lease-manager.ts) over a registry: etcd (v3/v2) — the
 *                 registry is the source of routes and SIGHUP changes nothing — or the file's peers
 *                 kept as leases of a registry only this process sees, which SIGHUP re-reads.
 * A source opens before the host changes (connecting, reading the network config and taking the
 * lease may refuse); it starts publishing routes once the engines exist.
 */
import type { Logger } from 'pino';
import { ConfigError, deriveVtepMac, loadConfig, type NodeConfig, type PeerConfig } from '../control/config.js';
import { loadFlannelNodeConfig, type FlannelNodeConfig } from '../control/flannel-node-config.js';
import { parseNetworkConfig, encodeLeaseValue, subnetKey, type Cidr4, type Cidr6, type FlannelNetworkConfig, type BackendType } from '../control/flannel.js';
import { findPublicIpv6, type Underlay } from '../control/host.js';
import { RegistryError, NetworkConfigMissing, isAssignedRegistry, type SubnetRegistry, type AssignedSubnetRegistry, type StoredLease } from '../control/registry/registry.js';
import type { KubeRegistry } from '../control/registry/kube.js';
import { macFromString, type Mac } from '../packet/wire/ethernet.js';
import { StaticRegistry } from '../control/registry/static.js';
import { EtcdV2Registry } from '../control/registry/etcd-v2.js';
import { joinKey } from '../control/registry/etcd-common.js';
import { LeaseManager } from '../control/lease-manager.js';

/** flanneld's --net-config-path default (registry/kube.ts's, without loading the Kubernetes client). */
const DEFAULT_NET_CONF_PATH = '/etc/kube-flannel/net-conf.json';
import type { Route } from '../packet/routes.js';
import { cidrToString } from '../packet/cidr.js';
import type { UndoStack } from '../util/undo.js';
import type { NodeSpec, LeasesSource } from './spec.js';
import type { RouteSink } from './route-sink.js';

export interface NetworkPlan {
  network: Cidr4;
  subnet: Cidr4;
  backend: { type: BackendType; vni: number; port: number; directRouting?: boolean };
  /** The address the node publishes and sends from (a kube node's node-public-ip annotation wins over the config). */
  publicIp: string;
  /** Our VTEP MAC (a kube node keeps the one its annotations hold, so peers' FDB entries stay right). */
  vtepMac: Mac;
  underlay: Underlay;
  /** Dual-stack (flannel's EnableIPv6): the IPv6 network, our IPv6 subnet, and our flannel-v6 VTEP. */
  ipv6?: { network: Cidr6; subnet: Cidr6; publicIpv6: string; vtepMac: Mac };
}

export type LeaseStats = LeaseManager['stats'];

export interface RouteSource {
  readonly plan: NetworkPlan;
  /** Where routes come from, for `info` and the start-up log. */
  readonly description: string;
  /** The lease manager's counts; null where there is no lease (static peers). */
  lease(): LeaseStats | null;
  /** Publishes the first table into `sink` and every later one (IPv4 and, dual-stack, IPv6 routes); `fatal` when the node must stop. */
  start(sink: Pick<RouteSink, 'publish'>, fatal: (err: Error) => void): void;
  /** SIGHUP: re-read what can be re-read; never stops the node. */
  reload(): void;
  /** Once the engines run: tell the registry the node's network is up (kube: NetworkUnavailable=False). */
  complete(): Promise<void>;
  /** Whether the peers have been read from the registry at least once (readiness). */
  readOnce(): boolean;
}

export interface SourceEnv {
  log: Logger;
  undo: UndoStack;
  aborted: () => boolean;
  /** The underlay that carries `publicIp` (HostError when none does): asked before a lease is taken. */
  underlayFor: (publicIp: string) => Underlay;
}

/** Start-up was cut short by SIGINT/SIGTERM while waiting for the registry. */
export class StartAborted extends Error {}

function peerRoutes(peers: readonly PeerConfig[]): Route[] {
  return peers.map((p) => ({
    prefix: p.subnet,
    target: { endpoint: { address: p.publicIp, port: p.port }, vtepMac: p.vtepMac, vni: p.vni },
  }));
}

export async function openRouteSource(spec: NodeSpec, env: SourceEnv): Promise<RouteSource> {
  return spec.routes.kind === 'static-peers' ? staticPeers(spec.configPath!, spec.routes.config, spec, env) : await leases(spec.configPath, spec.routes, env);
}

function staticPeers(path: string, running: NodeConfig, spec: NodeSpec, env: SourceEnv): RouteSource {
  const { log } = env;
  let sink: Pick<RouteSink, 'publish'> | undefined;
  return {
    plan: { network: running.network, subnet: running.subnet, backend: running.backend, publicIp: spec.publicIp, vtepMac: spec.vtepMac, underlay: env.underlayFor(spec.publicIp) },
    complete: async () => {},
    readOnce: () => true,
    description: 'static peers (config file)',
    lease: () => null,
    start(s) {
      sink = s;
      s.publish(peerRoutes(running.peers));
    },
    // One atomic route-table swap; traffic keeps flowing. Anything else that changed needs a restart, and a broken file changes nothing.
    reload() {
      let next: NodeConfig;
      try {
        next = loadConfig(path);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'reload refused: keeping the current peers');
        return;
      }
      const { peers: _a, ...restNext } = next;
      const { peers: _b, ...restRunning } = running;
      if (refuseOtherChanges(restRunning, restNext, log)) return;
      sink?.publish(peerRoutes(next.peers));
      log.info({ peers: next.peers.length }, 'reload: peers replaced');
    },
  };
}

/** Dotted paths of the leaves that differ between two parsed configs (bytes compared as bytes, other leaves as JSON). */
export function changedFields(running: unknown, next: unknown, path = ''): string[] {
  const plain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
  if (plain(running) && plain(next)) {
    const keys = [...new Set([...Object.keys(running), ...Object.keys(next)])].sort();
    return keys.flatMap((k) => changedFields(running[k], next[k], path ? `${path}.${k}` : k));
  }
  if (running instanceof Uint8Array && next instanceof Uint8Array) return Buffer.compare(running, next) === 0 ? [] : [path];
  return JSON.stringify(running) === JSON.stringify(next) ? [] : [path];
}

/**
 * A reload swaps peers only. A file that changes anything else (VNI, port, device, subnet...) is
 * refused as a whole — applying its peers would send with settings the node does not listen with.
 * Returns true when refused (one line, naming the fields).
 */
function refuseOtherChanges(running: unknown, next: unknown, log: Logger): boolean {
  const changed = changedFields(running, next);
  if (changed.length === 0) return false;
  log.error({ changed }, `reload refused: ${changed.join(', ')} changed, which needs a restart; keeping the running config and peers`);
  return true;
}

/** The leases a static flannel config's peers stand for (they never expire). */
function fileLeases(cfg: FlannelNodeConfig): StoredLease[] {
  const type = cfg.backend.type ?? 'vxlan';
  return (cfg.static?.peers ?? []).map((p) => ({
    subnetKey: subnetKey(p.subnet),
    value: encodeLeaseValue(p.publicIp, type === 'vxlan' ? { type, vni: cfg.backend.vni ?? 1, vtepMac: p.vtepMac! } : { type }),
  }));
}

type AnyRegistry = SubnetRegistry | AssignedSubnetRegistry;

/** The registry this config names (etcd opening includes the TLS/reachability probe). */
async function openRegistry(cfg: FlannelNodeConfig, log: Logger): Promise<AnyRegistry> {
  const r = cfg.registry;
  if (!r) {
    const s = cfg.static!;
    const type = cfg.backend.type ?? 'vxlan';
    const port = cfg.backend.port;
    const networkConfig = JSON.stringify({ Network: cidrToString(s.network), SubnetLen: s.subnet.prefixLen, Backend: { Type: type, ...(cfg.backend.vni !== undefined ? { VNI: cfg.backend.vni } : {}), ...(port ? { Port: port } : {}) } });
    return new StaticRegistry(networkConfig, fileLeases(cfg));
  }
  if (r.type === 'kube') {
    // The Kubernetes client is loaded only by the nodes that use it.
    const { KubeRegistry } = await import('../control/registry/kube.js');
    return KubeRegistry.open(
      {
        ...(r.apiUrl !== undefined ? { apiUrl: r.apiUrl } : {}),
        ...(r.kubeconfigFile !== undefined ? { kubeconfigFile: r.kubeconfigFile } : {}),
        ...(r.annotationPrefix !== undefined ? { annotationPrefix: r.annotationPrefix } : {}),
        ...(r.netConfPath !== undefined ? { netConfPath: r.netConfPath } : {}),
        ...(r.setNodeNetworkUnavailable !== undefined ? { setNodeNetworkUnavailable: r.setNodeNetworkUnavailable } : {}),
      },
      log,
    );
  }
  const settings = { endpoints: r.endpoints, prefix: r.prefix, ...(r.tls ? { tls: r.tls } : {}), ...(r.auth ? { auth: r.auth } : {}) };
  if (r.api === 'v2') return EtcdV2Registry.open(settings);
  // etcd3 brings gRPC and protobufjs (about 25 MiB of heap and 130 ms of loading): only for the nodes that talk v3.
  const { EtcdV3Registry } = await import('../control/registry/etcd-v3.js');
  return EtcdV3Registry.open(settings);
}

/** Runs `fn` until it succeeds; transient RegistryErrors are retried with backoff until the deadline. */
async function retrying<T>(what: string, fn: () => Promise<T>, env: { log: Logger; aborted: () => boolean }, since: number, deadline: number): Promise<T> {
  let backoff = 500;
  for (;;) {
    if (env.aborted()) throw new StartAborted();
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof RegistryError) || !err.transient) throw err;
      if (Date.now() + backoff > deadline) {
        throw new RegistryError(`${err.message} (gave up after ${Math.round((deadline - since) / 1000)} s)`, false, err.field);
      }
      env.log.warn({ err: err.message, retryInMs: backoff }, `${what}: registry unreachable, retrying`);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  }
}

/** The network config's text; a missing one is logged once and waited for (flanneld polls every second) until the deadline. */
async function waitForNetworkConfig(registry: AnyRegistry, where: string, env: { log: Logger; aborted: () => boolean }, since: number, deadline: number): Promise<string> {
  let logged = false;
  for (;;) {
    try {
      return await retrying('read network config', () => registry.getNetworkConfig(), env, since, deadline);
    } catch (err) {
      if (!(err instanceof NetworkConfigMissing)) throw err;
      if (Date.now() + NETWORK_CONFIG_POLL_MS > deadline) throw new RegistryError(`${err.message} (gave up after ${Math.round((deadline - since) / 1000)} s)`, false);
      if (!logged) env.log.warn({ where, err: err.message }, 'network config missing: waiting for it');
      logged = true;
      await sleepUnlessAborted(NETWORK_CONFIG_POLL_MS, env.aborted);
    }
  }
}

const NETWORK_CONFIG_POLL_MS = 1000;

async function sleepUnlessAborted(ms: number, aborted: () => boolean): Promise<void> {
  for (let left = ms; left > 0; left -= 100) {
    if (aborted()) throw new StartAborted();
    await new Promise((r) => setTimeout(r, Math.min(100, left)));
  }
  if (aborted()) throw new StartAborted();
}

async function leases(path: string | undefined, src: LeasesSource, env: SourceEnv): Promise<RouteSource> {
  const { config: cfg } = src;
  const { log } = env;
  const since = Date.now();
  const deadline = cfg.registry?.startupTimeoutSeconds !== undefined ? since + cfg.registry.startupTimeoutSeconds * 1000 : Infinity;
  const registry = await retrying('connect', () => openRegistry(cfg, log), env, since, deadline);
  env.undo.push(() => registry.close());
  const kube = isAssignedRegistry(registry) && 'storedAttrs' in registry ? (registry as KubeRegistry) : undefined;
  // A kube node's annotations from an earlier run (or the operator's node-public-ip) win over the config.
  let publicIp = cfg.publicIp;
  let vtepMac = cfg.backend.vtepMac;
  if (kube) {
    const stored = await retrying('read our node', () => kube.storedAttrs(), env, since, deadline);
    if (stored.publicIp !== undefined && stored.publicIp !== publicIp) {
      log.info({ publicIp: stored.publicIp, configured: publicIp }, 'public ip from the node-public-ip annotation');
      publicIp = stored.publicIp;
    }
    if (stored.vtepMac !== undefined) vtepMac = macFromString(stored.vtepMac);
  }
  const underlay = env.underlayFor(publicIp);
  const r = cfg.registry;
  const where = r?.type === 'kube' ? (r.netConfPath ?? DEFAULT_NET_CONF_PATH) : r ? joinKey(r.prefix, 'config') : 'network';
  const network: FlannelNetworkConfig = parseNetworkConfig(await waitForNetworkConfig(registry, where, env, since, deadline), where);
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
  let v6: { publicIpv6: string; vtepMac6: Mac } | undefined;
  if (network.ipv6) {
    // flanneld's --public-ipv6, else the IPv6 address of the interface that carries PublicIP.
    const publicIpv6 = cfg.publicIpv6 ?? findPublicIpv6(publicIp);
    if (publicIpv6 === undefined) throw new ConfigError(`config: publicIpv6: missing, and the interface of ${publicIp} has no global IPv6 address (${where} says EnableIPv6)`);
    v6 = { publicIpv6, vtepMac6: deriveVtepMac(publicIpv6) };
  }
  const etcd = r?.type === 'etcd' ? r : undefined;
  const manager = new LeaseManager({
    registry,
    network,
    publicIp,
    leaseValue: encodeLeaseValue(publicIp, backend.type === 'vxlan' ? { type: 'vxlan', vni: backend.vni, vtepMac } : { type: 'udp' }, v6),
    // An assigned registry (kube) chooses the subnet and nothing expires there.
    ...(cfg.static ? { preferredSubnet: cfg.static.subnet } : {}),
    ...(etcd?.leaseTtlSeconds !== undefined ? { ttlSeconds: etcd.leaseTtlSeconds } : {}),
    ...(etcd?.renewMarginSeconds !== undefined ? { renewMarginSeconds: etcd.renewMarginSeconds } : {}),
    log,
  });
  await retrying('acquire lease', () => manager.acquire(), env, since, deadline);
  const subnet = manager.subnet;
  const subnet6 = manager.subnet6;
  let fileSeed = fileLeases(cfg);
  return {
    plan: {
      network: network.network,
      subnet,
      backend,
      publicIp,
      vtepMac,
      underlay,
      ...(network.ipv6 && subnet6 && v6 ? { ipv6: { network: network.ipv6.network, subnet: subnet6, publicIpv6: v6.publicIpv6, vtepMac: v6.vtepMac6 } } : {}),
    },
    description: registry.description,
    readOnce: () => manager.stats.resyncs > 0,
    complete: async () => {
      if (!kube) return;
      try {
        await kube.completeLease();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'setting NetworkUnavailable=False failed');
      }
    },
    lease: () => manager.stats,
    start(sink, fatal) {
      sink.publish(manager.routes);
      manager.on('routes', (routes) => {
        sink.publish(routes);
        log.info({ peers: routes.map((r) => `${cidrToString(r.prefix)}@${r.target.endpoint.address}`) }, 'routes updated');
      });
      manager.on('fatal', (err) => {
        log.error({ err: err.message }, 'lease lost for good; stopping');
        fatal(err);
      });
      env.undo.push(() => manager.stop());
      manager.start();
    },
    reload() {
      if (!(registry instanceof StaticRegistry) || path === undefined) {
        log.info({ registry: registry.description }, 'SIGHUP: the registry is the source of routes; nothing to reload, still running');
        return;
      }
      // The file's peers are leases of a registry only we see: the changed ones are put again, the lease manager's watch swaps the table.
      let next: FlannelNodeConfig | undefined;
      try {
        next = loadFlannelNodeConfig(path, { ipMasq: cfg.ipMasq });
        if (!next?.static) throw new ConfigError('config: registry: a running node cannot change where its routes come from');
      } catch (err) {
        log.error({ err: (err as Error).message }, 'reload refused: keeping the current peers');
        return;
      }
      const { static: s, ...restNext } = next;
      const { static: r, ...restRunning } = cfg;
      const { peers: _a, ...staticNext } = s;
      const { peers: _b, ...staticRunning } = r!;
      if (refuseOtherChanges({ ...restRunning, static: staticRunning }, { ...restNext, static: staticNext }, log)) return;
      const own = subnetKey(subnet);
      const wanted = new Map(fileLeases(next).filter((l) => l.subnetKey !== own).map((l) => [l.subnetKey, l.value]));
      for (const l of fileSeed) if (wanted.get(l.subnetKey) !== l.value) registry.remove(l.subnetKey);
      for (const [key, value] of wanted) void registry.createLease(key, value, Infinity);
      fileSeed = [...wanted].map(([subnetKey, value]) => ({ subnetKey, value }));
      log.info({ peers: wanted.size }, 'reload: peers replaced');
    },
  };
}
