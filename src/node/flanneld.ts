/**
 * flanneld's command line as a node config: the flags an operator gave (on the command line or as
 * FLANNELD_* variables; src/cli/flanneld-flags.ts reads them) laid over the config file's JSON when
 * there is one (flags win), so the one validation (flannel-node-config.ts) judges the result.
 * flanneld's defaults apply where neither says anything.
 */
import { HostError } from '../control/host.js';
import { findExternalIface, type ExternalIface } from '../control/external-iface.js';
import { DEFAULT_PREFIX } from '../control/flannel.js';
import { DEFAULT_SUBNET_ENV } from '../control/subnet-env.js';

/** flanneld's --etcd-endpoints default. */
export const DEFAULT_ETCD_ENDPOINTS = 'http://127.0.0.1:4001,http://127.0.0.1:2379';

/** The flanneld flags that were given (absent ones keep the file's value, else flanneld's default). */
export interface FlanneldOptions {
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdKeyfile?: string;
  etcdCertfile?: string;
  etcdCafile?: string;
  etcdUsername?: string;
  etcdPassword?: string;
  iface?: string[];
  ifaceRegex?: string[];
  ifaceCanReach?: string;
  publicIp?: string;
  publicIpv6?: string;
  subnetFile?: string;
  /** Minutes, 1..1439. */
  subnetLeaseRenewMargin?: number;
  kubeSubnetMgr?: boolean;
  kubeApiUrl?: string;
  kubeconfigFile?: string;
  kubeAnnotationPrefix?: string;
  netConfigPath?: string;
  setNodeNetworkUnavailable?: boolean;
  healthzIp?: string;
  healthzPort?: number;
  iptablesResync?: number;
}

type Raw = Record<string, unknown>;

const ETCD_FLAGS = ['etcdEndpoints', 'etcdPrefix', 'etcdKeyfile', 'etcdCertfile', 'etcdCafile', 'etcdUsername', 'etcdPassword', 'subnetLeaseRenewMargin'] as const;
const KUBE_FLAGS = ['kubeApiUrl', 'kubeconfigFile', 'kubeAnnotationPrefix', 'netConfigPath', 'setNodeNetworkUnavailable'] as const;

/** Flags that say nothing about where routes come from (any config may have them). */
const SERVING_FLAGS = new Set<string>(['healthzIp', 'healthzPort', 'iptablesResync']);

/** Whether any flag that makes this a flanneld-style node was given. */
export function hasFlanneldFlags(o: FlanneldOptions): boolean {
  return Object.entries(o).some(([k, v]) => !SERVING_FLAGS.has(k) && v !== undefined && !(Array.isArray(v) && v.length === 0));
}

function etcdRegistry(o: FlanneldOptions, file: Raw | undefined): Raw {
  const r = { ...(file?.type === 'etcd' ? file : {}) } as Raw;
  if (o.etcdEndpoints !== undefined || r.endpoints === undefined) r.endpoints = (o.etcdEndpoints ?? DEFAULT_ETCD_ENDPOINTS).split(',').map((e) => e.trim()).filter(Boolean);
  if (o.etcdPrefix !== undefined || r.prefix === undefined) r.prefix = o.etcdPrefix ?? DEFAULT_PREFIX;
  const tls = { ...((r.tls as Raw | undefined) ?? {}) };
  if (o.etcdCafile !== undefined) tls.ca = o.etcdCafile;
  if (o.etcdCertfile !== undefined) tls.cert = o.etcdCertfile;
  if (o.etcdKeyfile !== undefined) tls.key = o.etcdKeyfile;
  if (Object.keys(tls).length > 0) {
    if (tls.ca === undefined) throw new HostError(`--etcd-cafile: missing is required with ${o.etcdCertfile !== undefined ? '--etcd-certfile' : '--etcd-keyfile'} (vxtun checks etcd's certificate against a CA you name)`, 2);
    r.tls = tls;
  }
  if (o.etcdUsername !== undefined) r.username = o.etcdUsername;
  if (o.etcdPassword !== undefined) r.password = o.etcdPassword;
  if (o.subnetLeaseRenewMargin !== undefined) r.renewMarginSeconds = o.subnetLeaseRenewMargin * 60;
  return { ...r, type: 'etcd' };
}

function kubeRegistry(o: FlanneldOptions, file: Raw | undefined): Raw {
  const r = { ...(file?.type === 'kube' ? file : {}) } as Raw;
  if (o.kubeApiUrl !== undefined) r.apiUrl = o.kubeApiUrl;
  if (o.kubeconfigFile !== undefined) r.kubeconfigFile = o.kubeconfigFile;
  if (o.kubeAnnotationPrefix !== undefined) r.annotationPrefix = o.kubeAnnotationPrefix;
  if (o.netConfigPath !== undefined) r.netConfPath = o.netConfigPath;
  if (o.setNodeNetworkUnavailable !== undefined) r.setNodeNetworkUnavailable = o.setNodeNetworkUnavailable;
  return { ...r, type: 'kube' };
}

/**
 * The config file's JSON (or nothing) with the flags laid over it. The public IP comes from
 * --public-ip, else the file, else the interface flanneld would pick (`pickIface`, injectable for tests).
 */
export function overlayFlanneld(file: Raw | undefined, o: FlanneldOptions, pickIface: (w: Parameters<typeof findExternalIface>[0]) => ExternalIface = findExternalIface): Raw {
  const out: Raw = { ...(file ?? {}) };
  const fileRegistry = out.registry as Raw | undefined;
  const kube = o.kubeSubnetMgr ?? fileRegistry?.type === 'kube';
  const etcdGiven = ETCD_FLAGS.some((k) => o[k] !== undefined);
  const kubeGiven = KUBE_FLAGS.some((k) => o[k] !== undefined);
  if (kube && etcdGiven) {
    const flag = ETCD_FLAGS.find((k) => o[k] !== undefined)!;
    throw new HostError(`--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: an etcd setting, but the subnets come from Kubernetes (--kube-subnet-mgr)`, 2);
  }
  if (!kube && kubeGiven && o.kubeSubnetMgr !== false) {
    const flag = KUBE_FLAGS.find((k) => o[k] !== undefined)!;
    throw new HostError(`--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: a Kubernetes setting, without --kube-subnet-mgr`, 2);
  }
  // Without a file, or with etcd flags, the registry is etcd as flanneld's defaults say; a static file stays static otherwise.
  if (kube) out.registry = kubeRegistry(o, fileRegistry);
  else if (etcdGiven || file === undefined || fileRegistry !== undefined) out.registry = etcdRegistry(o, fileRegistry);
  if (o.subnetFile !== undefined || out.subnetEnv === undefined) out.subnetEnv = o.subnetFile ?? DEFAULT_SUBNET_ENV;
  const ifaceGiven = (o.iface?.length ?? 0) > 0 || (o.ifaceRegex?.length ?? 0) > 0 || o.ifaceCanReach !== undefined;
  const publicIp = o.publicIp ?? (typeof out.publicIp === 'string' ? out.publicIp : undefined);
  if (ifaceGiven || publicIp === undefined) {
    out.publicIp = pickIface({ ...(o.iface ? { iface: o.iface } : {}), ...(o.ifaceRegex ? { ifaceRegex: o.ifaceRegex } : {}), ...(o.ifaceCanReach !== undefined ? { ifaceCanReach: o.ifaceCanReach } : {}), ...(publicIp !== undefined ? { publicIp } : {}) }).address;
    if (publicIp !== undefined && publicIp !== out.publicIp) throw new HostError(`--public-ip: "${publicIp}" is not an address of the chosen interface (vxtun sends from the address it publishes)`, 2);
  } else {
    out.publicIp = publicIp;
  }
  return out;
}
