/**
 * What a node is, made from its config file before anything on the host changes: a NodeSpec. Two
 * sources make one: a static config (peers in the file, VXLAN; src/control/config.ts) and a flannel
 * node config (a registry, or peers with flannel's udp backend, subnet.env, masquerade rules;
 * src/control/flannel-node-config.ts). The command line's switches are applied here, once, so the
 * builder (build.ts) never asks where a setting came from.
 */
import type { Mac } from '../packet/wire/ethernet.js';
import { loadConfig, type NodeConfig } from '../control/config.js';
import { loadFlannelNodeConfig, type FlannelNodeConfig } from '../control/flannel-node-config.js';
import type { DatapathConfig, DatapathKind, SecurityConfig } from '../datapath/config.js';

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
  /** The file it came from (SIGHUP re-reads it). */
  configPath: string;
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
}

const DEFAULT_DEVICE = 'vxtun0';

function defaultControlSocket(device: string): string {
  return `/run/vxtun/${device}.sock`;
}

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
export function specFromFlannelConfig(path: string, cfg: FlannelNodeConfig, flags: UpFlags): NodeSpec {
  const device = cfg.device.name ?? DEFAULT_DEVICE;
  return {
    configPath: path,
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
