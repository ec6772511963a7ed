/**
 * What a node is, made from its config file before anything on the host changes: a NodeSpec. Two
 * sources make one: a static config (peers in the file, VXLAN; src/control/config.ts) and a flannel
 * node config (a registry, or peers with flannel's udp backend, subnet.env, masquerade rules;
 * src/control/flannel-node-config.ts). The command line's switches are applied here, once, so the
 * builder (build.ts) never asks where a setting came from.
 */
import type { Mac } from '../packet/wire/ethernet.js';
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type NodeConfig } from '../control/config.js';
import { loadFlannelNodeConfig, validateFlannelNodeConfig, type FlannelNodeConfig } from '../control/flannel-node-config.js';
import { overlayFlanneld, hasFlanneldFlags, type FlanneldOptions } from './flanneld.js';
import type { DatapathConfig, DatapathKind, SecurityConfig } from '../datapath/config.js';
import { defaultControlSocket } from '../control/socket-path.js';

/** `vxtun up`'s switches, each overriding the config when given. */
export interface UpFlags {
  /** 'auto' leaves the config's datapath.kind; 'native' or 'ts' override it. */
  datapath?: DatapathKind;
  workers?: number;
  /** flanneld's --ip-masq (makes any config a flannel node's: masquerade rules need subnet.env's network). */
  ipMasq?: boolean;
  /** false (`--no-express`) turns the express path off whatever datapath.express says. */
  express?: boolean;
  /** false (`--no-batch-scheduling`) leaves the threads at SCHED_OTHER whatever datapath.batchScheduling says. */
  batchScheduling?: boolean;
}

/** Routes from the config file's peers (VXLAN); SIGHUP re-reads them. */
export interface StaticPeersSource {
  kind: 'static-peers';
  config: NodeConfig;
}

/** Routes from flannel leases: an etcd registry, or the file's peers kept as leases (route-source.ts). */
export interface LeasesSource {
  kind: 'leases';
  config: FlannelNodeConfig;
}

export interface NodeSpec {
  /** The file it came from (SIGHUP re-reads it); absent when flanneld's flags say everything. */
  configPath?: string;
  publicIp: string;
  device: { name: string; mtu?: number };
  controlSocket: string;
  vtepMac: Mac;
  /** The config's datapath section with the command line's overrides applied. */
  datapath: DatapathConfig;
  /** What the command line asked for (the start-up log says it beside what runs). */
  requestedDatapath: DatapathKind;
  /** Anti-spoofing switches (the config's `security` section). */
  security: SecurityConfig;
  routes: StaticPeersSource | LeasesSource;
  /** flannel's host side: subnet.env for the CNI plugin, and masquerade rules; absent for a plain static node. */
  flannel?: { subnetEnv: string; ipMasq: boolean };
  /** flanneld's --healthz-ip/--healthz-port: /healthz, /readyz, /metrics (port 0: off). */
  healthz?: { ip: string; port: number };
  /** flanneld's --iptables-resync: seconds between checks of the masquerade rules (default 5). */
  iptablesResyncSeconds?: number;
  /** flanneld's --public-ipv6 (dual-stack). */
  publicIpv6?: string;
}

const DEFAULT_DEVICE = 'vxtun0';


function withFlags(section: DatapathConfig, flags: UpFlags): DatapathConfig {
  return {
    ...section,
    kind: flags.datapath !== undefined && flags.datapath !== 'auto' ? flags.datapath : section.kind,
    workers: flags.workers ?? section.workers,
    express: section.express && flags.express !== false,
    batchScheduling: section.batchScheduling && flags.batchScheduling !== false,
  };
}

/** A static config file (config.ts): every refusal a ConfigError naming the field. */
export function specFromStaticConfig(path: string, flags: UpFlags): NodeSpec {
  const cfg = loadConfig(path);
  return {
    configPath: path,
    publicIp: cfg.publicIp,
    device: cfg.device,
    controlSocket: cfg.controlSocket,
    vtepMac: cfg.backend.vtepMac,
    datapath: withFlags(cfg.datapath, flags),
    requestedDatapath: flags.datapath ?? 'auto',
    security: cfg.security,
    routes: { kind: 'static-peers', config: cfg },
  };
}

/** A flannel node's config (flannel-node-config.ts), already validated. */
export function specFromFlannelConfig(path: string | undefined, cfg: FlannelNodeConfig, flags: UpFlags): NodeSpec {
  const device = cfg.device.name ?? DEFAULT_DEVICE;
  return {
    ...(path !== undefined ? { configPath: path } : {}),
    publicIp: cfg.publicIp,
    device: { name: device, ...(cfg.device.mtu !== undefined ? { mtu: cfg.device.mtu } : {}) },
    controlSocket: cfg.controlSocket ?? defaultControlSocket(device),
    vtepMac: cfg.backend.vtepMac,
    datapath: withFlags(cfg.datapath, flags),
    requestedDatapath: flags.datapath ?? 'auto',
    security: cfg.security,
    routes: { kind: 'leases', config: cfg },
    flannel: { subnetEnv: cfg.subnetEnv, ipMasq: cfg.ipMasq },
  };
}

/** Reads `path` as whichever config it is; a flannel node's when it has a flannel key (or --ip-masq). */
export function loadNodeSpec(path: string, flags: UpFlags): NodeSpec {
  const flannel = loadFlannelNodeConfig(path, { ipMasq: flags.ipMasq ?? false });
  return flannel ? specFromFlannelConfig(path, flannel, flags) : specFromStaticConfig(path, flags);
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config: ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const raw = JSON.parse(text) as unknown;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('not a JSON object');
    return raw as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config: ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/**
 * `vxtun up`: a config file, flanneld's flags, or both (flags win). Without flanneld flags a file
 * is read as before; with them (or without a file) the node is a flannel node whatever the file is.
 */
export function nodeSpecFrom(opts: { config?: string; flags: UpFlags; flanneld: FlanneldOptions }): NodeSpec {
  const { config, flags, flanneld } = opts;
  const healthz = {
    ...(flanneld.healthzPort ? { healthz: { ip: flanneld.healthzIp ?? '0.0.0.0', port: flanneld.healthzPort } } : {}),
    ...(flanneld.iptablesResync !== undefined ? { iptablesResyncSeconds: flanneld.iptablesResync } : {}),
  };
  if (config !== undefined && !hasFlanneldFlags(flanneld)) return { ...loadNodeSpec(config, flags), ...healthz };
  const raw = overlayFlanneld(config !== undefined ? readJson(config) : undefined, flanneld);
  const cfg = validateFlannelNodeConfig(raw, { ipMasq: flags.ipMasq ?? false });
  return { ...specFromFlannelConfig(config, cfg, flags), ...healthz, ...(flanneld.publicIpv6 !== undefined ? { publicIpv6: flanneld.publicIpv6 } : {}) };
}
