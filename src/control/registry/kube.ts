/**
 * flannel's Kubernetes subnet manager (`flanneld --kube-subnet-mgr`, pkg/subnet/kube) over the
 * official client: the subnet is this node's spec.podCIDR(s), our lease is published in the node's
 * annotations by a strategic-merge patch on nodes/<name>/status, the network config is the
 * net-conf.json file, and the peers are the other nodes carrying `kube-subnet-manager: "true"`,
 * followed by a list + watch of all nodes (410 Gone -> the lease manager lists again).
 * The rules over node objects are in kube-annotations.ts.
 */
import { readFileSync, existsSync } from 'node:fs';
import { KubeConfig, CoreV1Api, Watch, setHeaderOptions, PatchStrategy, ApiException, type V1Node } from '@kubernetes/client-node';
import { cidrContains, cidrToString } from '../../packet/cidr.js';
import { RegistryError, NetworkConfigMissing, type Cidr4, type Cidr6, type AssignedSubnetRegistry, type StoredLease, type LeaseWatch, type WatchHandlers } from './registry.js';
import {
  DEFAULT_ANNOTATION_PREFIX,
  annotationKeys,
  isManaged,
  nodeLease,
  nodeSubnet,
  nodeSubnet6,
  annotationPatch,
  storedVtepMac,
  storedPublicIp,
  networkAvailablePatch,
  AnnotationPrefixError,
  type AnnotationKeys,
  type NodeView,
} from './kube-annotations.js';

/** flanneld's --net-config-path default. */
export const DEFAULT_NET_CONF_PATH = '/etc/kube-flannel/net-conf.json';
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeSettings {
  /** --kube-api-url: the API server's URL; with a kubeconfig it replaces the current cluster's server. */
  apiUrl?: string;
  /** --kubeconfig-file. Neither this nor apiUrl: the in-cluster config (service account). */
  kubeconfigFile?: string;
  /** --kube-annotation-prefix, as given (default `flannel.alpha.coreos.com`). */
  annotationPrefix?: string;
  /** --net-config-path. */
  netConfPath?: string;
  /** flanneld's --set-node-network-unavailable (default true): completeLease sets the condition. */
  setNodeNetworkUnavailable?: boolean;
  /** NODE_NAME, POD_NAME, POD_NAMESPACE come from here (default process.env). */
  env?: Record<string, string | undefined>;
}

/** What a restart reads back from our node before anything is published (flannel's GetStored*). */
export interface StoredNodeAttrs {
  /** node-public-ip: replaces --public-ip. */
  publicIp?: string;
  /** The VtepMAC in backend-data, kept across restarts so peers' FDB entries stay right. */
  vtepMac?: string;
}

function apiCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return typeof e?.code === 'number' ? e.code : undefined;
}

function describe(err: unknown): string {
  if (err instanceof ApiException) {
    // The body is the API's Status as text: its message is the line worth showing.
    let body = err.body as unknown;
    try {
      if (typeof body === 'string') body = JSON.parse(body);
    } catch {
      // not JSON: shown as it is
    }
    const status = body as { message?: unknown } | string | undefined;
    const message = typeof status === 'object' && status !== null && typeof status.message === 'string' ? status.message : typeof status === 'string' ? status.split('\n')[0] : '';
    return `HTTP ${err.code}${message ? `: ${message}` : ''}`;
  }
  return (err as Error).message.split('\n')[0] ?? String(err);
}

/** Unreachable, 5xx, 404 (a node not registered yet), 409 and 429 are worth retrying; 401/403/422 are not. */
function wrap(what: string, err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = apiCode(err);
  const transient = code === undefined || code >= 500 || code === 404 || code === 409 || code === 429 || code === 410;
  return new RegistryError(`kube ${what} failed: ${describe(err)}`, transient);
}

function loadKubeConfig(s: KubeSettings, env: Record<string, string | undefined>): KubeConfig {
  const kc = new KubeConfig();
  if (s.kubeconfigFile) {
    if (!existsSync(s.kubeconfigFile)) throw new RegistryError(`"${s.kubeconfigFile}" does not exist`, false, 'kubeconfig-file');
    try {
      kc.loadFromFile(s.kubeconfigFile);
    } catch (err) {
      throw new RegistryError(`"${s.kubeconfigFile}" is not a kubeconfig: ${(err as Error).message.split('\n')[0]}`, false, 'kubeconfig-file');
    }
    const current = kc.getCurrentCluster();
    if (!current) throw new RegistryError(`"${s.kubeconfigFile}" names no current cluster`, false, 'kubeconfig-file');
    if (s.apiUrl) {
      const clusters = kc.clusters.map((c) => (c.name === current.name ? { ...c, server: s.apiUrl } : c));
      kc.loadFromOptions({ clusters, users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext });
    }
  } else if (s.apiUrl) {
    kc.loadFromOptions({
      clusters: [{ name: 'kube', server: s.apiUrl }],
      users: [{ name: 'flanneld' }],
      contexts: [{ name: 'kube', cluster: 'kube', user: 'flanneld' }],
      currentContext: 'kube',
    });
  } else {
    if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT || !existsSync(SERVICE_ACCOUNT_TOKEN)) {
      throw new RegistryError('not running in a cluster (no KUBERNETES_SERVICE_HOST/PORT or service account token): give --kube-api-url or --kubeconfig-file', false, 'kube-api-url');
    }
    kc.loadFromCluster();
  }
  if (s.apiUrl && !/^https?:\/\/[^/]+/.test(s.apiUrl)) throw new RegistryError(`"${s.apiUrl}" is not an API server URL (http(s)://host:port)`, false, 'kube-api-url');
  // client-go talks plain HTTP to an http:// server; this client only does with TLS checks off, which mean nothing there.
  if (kc.clusters.some((c) => c.server.startsWith('http:') && !c.skipTLSVerify)) {
    const clusters = kc.clusters.map((c) => (c.server.startsWith('http:') ? { ...c, skipTLSVerify: true } : c));
    kc.loadFromOptions({ clusters, users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext });
  }
  return kc;
}

export class KubeRegistry implements AssignedSubnetRegistry {
  readonly kind = 'assigned';
  readonly description: string;
  private readonly keys: AnnotationKeys;
  private readonly rawPrefix: string;
  private readonly netConfPath: string;
  /** The lease each managed peer stood for at the last list or event: only real changes reach the lease manager. */
  private known = new Map<string, { key: string; value: string }>();
  private readonly logged = new Map<string, string>();
  /** A dual-stack network (set by publishLease): peers' leases carry their IPv6 half. */
  private ipv6 = false;
  private watches = new Set<() => void>();

  private constructor(
    private readonly kc: KubeConfig,
    private readonly api: CoreV1Api,
    readonly nodeName: string,
    private readonly settings: KubeSettings,
    private readonly log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void },
  ) {
    this.rawPrefix = settings.annotationPrefix ?? DEFAULT_ANNOTATION_PREFIX;
    this.keys = annotationKeys(this.rawPrefix);
    this.netConfPath = settings.netConfPath ?? DEFAULT_NET_CONF_PATH;
    this.description = `kube ${kc.getCurrentCluster()?.server ?? '?'} node ${nodeName}`;
  }

  /** Builds the client and finds our node's name (NODE_NAME, else the pod's spec.nodeName), as flanneld does. */
  static async open(settings: KubeSettings, log: KubeRegistry['log']): Promise<KubeRegistry> {
    try {
      annotationKeys(settings.annotationPrefix ?? DEFAULT_ANNOTATION_PREFIX);
    } catch (err) {
      if (err instanceof AnnotationPrefixError) throw new RegistryError(err.message, false, 'kube-annotation-prefix');
      throw err;
    }
    const env = settings.env ?? process.env;
    const kc = loadKubeConfig(settings, env);
    const api = kc.makeApiClient(CoreV1Api);
    let nodeName = env.NODE_NAME ?? '';
    if (nodeName === '') {
      const podName = env.POD_NAME ?? '';
      const podNamespace = env.POD_NAMESPACE ?? '';
      if (podName === '' || podNamespace === '') throw new RegistryError('env variables POD_NAME and POD_NAMESPACE must be set (or NODE_NAME)', false);
      let pod;
      try {
        pod = await api.readNamespacedPod({ name: podName, namespace: podNamespace });
      } catch (err) {
        throw wrap(`retrieving pod spec for '${podNamespace}/${podName}'`, err);
      }
      nodeName = pod.spec?.nodeName ?? '';
      if (nodeName === '') throw new RegistryError(`node name not present in pod spec '${podNamespace}/${podName}'`, true);
    }
    return new KubeRegistry(kc, api, nodeName, settings, log);
  }

  async getNetworkConfig(): Promise<string> {
    try {
      return readFileSync(this.netConfPath, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NetworkConfigMissing(`failed to read net conf "${this.netConfPath}": ENOENT`);
      throw new RegistryError(`failed to read net conf "${this.netConfPath}": ${code ?? (err as Error).message}`, false, 'net-config-path');
    }
  }

  private async ownNode(): Promise<V1Node> {
    try {
      return await this.api.readNode({ name: this.nodeName });
    } catch (err) {
      throw wrap(`get node "${this.nodeName}"`, err);
    }
  }

  /** GetStoredPublicIP and GetStoredMacAddresses: what a previous run (or the operator) left on our node. */
  async storedAttrs(): Promise<StoredNodeAttrs> {
    const node = (await this.ownNode()) as NodeView;
    const publicIp = storedPublicIp(node, this.keys);
    const vtepMac = storedVtepMac(node, this.rawPrefix);
    return { ...(publicIp ? { publicIp } : {}), ...(vtepMac ? { vtepMac } : {}) };
  }

  async publishLease(leaseValue: string, network: Cidr4, network6?: Cidr6): Promise<{ subnet: Cidr4; subnet6?: Cidr6 }> {
    const lease = JSON.parse(leaseValue) as { PublicIP: string; PublicIPv6?: string | null; BackendType?: string; BackendData?: unknown; BackendV6Data?: unknown };
    const attrs = {
      publicIp: lease.PublicIP,
      backendType: lease.BackendType ?? '',
      backendData: JSON.stringify(lease.BackendData ?? null),
      ...(network6 && typeof lease.PublicIPv6 === 'string' ? { publicIpv6: lease.PublicIPv6, backendV6Data: JSON.stringify(lease.BackendV6Data ?? null) } : {}),
    };
    // Peers' leases are read with their IPv6 half from now on (flannel's ksm.enableIPv6).
    this.ipv6 = network6 !== undefined;
    const node = (await this.ownNode()) as NodeView;
    const subnet = nodeSubnet(node);
    // Assigned by the controller manager shortly after the node registers: worth waiting for.
    if (typeof subnet === 'string') throw new RegistryError(subnet, subnet.endsWith('not assigned'));
    const subnet6 = network6 ? nodeSubnet6(node) : undefined;
    if (typeof subnet6 === 'string') throw new RegistryError(subnet6, false);
    const patch = annotationPatch(node, attrs, this.keys);
    if (patch) {
      if (patch.publicIp !== attrs.publicIp) this.log.info({ publicIp: patch.publicIp, annotation: this.keys.backendPublicIpOverwrite }, 'overriding public ip from node annotation');
      await this.patchStatus(patch.body, 'publish lease annotations');
    }
    if (!cidrContains(network, subnet)) {
      throw new RegistryError(`subnet "${cidrToString(network)}" specified in the flannel net config doesn't contain "${cidrToString(subnet)}" PodCIDR of the "${this.nodeName}" node`, false);
    }
    if (network6 && subnet6 && !cidrContains(network6, subnet6)) {
      throw new RegistryError(`subnet "${cidrToString(network6)}" specified in the flannel net config doesn't contain "${cidrToString(subnet6)}" IPv6 PodCIDR of the "${this.nodeName}" node`, false);
    }
    return { subnet, ...(subnet6 ? { subnet6 } : {}) };
  }

  async completeLease(): Promise<void> {
    if (this.settings.setNodeNetworkUnavailable === false) return;
    await this.patchStatus(networkAvailablePatch(new Date()), 'set NetworkUnavailable=False');
  }

  private async patchStatus(body: string, what: string): Promise<void> {
    try {
      await this.api.patchNodeStatus({ name: this.nodeName, body: JSON.parse(body) as object }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    } catch (err) {
      throw wrap(`${what} on node "${this.nodeName}"`, err);
    }
  }

  /** The lease a node stands for, or undefined (our own node, unmanaged, or unreadable: logged once). */
  private leaseOf(node: NodeView): { key: string; value: string } | undefined {
    const name = node.metadata?.name ?? '';
    if (name === this.nodeName || !isManaged(node, this.keys)) return undefined;
    const lease = nodeLease(node, this.keys, { ipv6: this.ipv6 });
    if (typeof lease === 'string') {
      if (this.logged.get(name) !== lease) this.log.warn({ node: name, err: lease }, 'error turning node to lease');
      this.logged.set(name, lease);
      return undefined;
    }
    this.logged.delete(name);
    return { key: lease.subnetKey, value: lease.value };
  }

  async listLeases(): Promise<{ leases: StoredLease[]; revision: string }> {
    let list;
    try {
      list = await this.api.listNode();
    } catch (err) {
      throw wrap('list nodes', err);
    }
    const known = new Map<string, { key: string; value: string }>();
    for (const node of list.items as NodeView[]) {
      const lease = this.leaseOf(node);
      if (lease) known.set(node.metadata?.name ?? '', lease);
    }
    this.known = known;
    return { leases: [...known.values()].map((l) => ({ subnetKey: l.key, value: l.value })), revision: list.metadata?.resourceVersion ?? '' };
  }

  /** One node event from the watch, as lease events: a changed subnet is a delete and a put. */
  private nodeEvent(type: string, node: NodeView, handlers: WatchHandlers): void {
    const name = node.metadata?.name ?? '';
    const before = this.known.get(name);
    const after = type === 'DELETED' ? undefined : this.leaseOf(node);
    if (after) this.known.set(name, after);
    else this.known.delete(name);
    if (type === 'DELETED') this.logged.delete(name);
    if (before && before.key !== after?.key) handlers.onEvent({ type: 'delete', subnetKey: before.key });
    if (after && (before?.key !== after.key || before.value !== after.value)) handlers.onEvent({ type: 'put', subnetKey: after.key, value: after.value });
  }

  watchLeases(revision: string, handlers: WatchHandlers): LeaseWatch {
    const watch = new Watch(this.kc);
    let cancelled = false;
    let broken = false;
    let resourceVersion = revision;
    let controller: AbortController | undefined;
    const breakOnce = (err: RegistryError): void => {
      if (cancelled || broken) return;
      broken = true;
      controller?.abort();
      handlers.onBroken(err);
    };
    const start = (): void => {
      if (cancelled || broken) return;
      let gone = false;
      void watch
        .watch(
          '/api/v1/nodes',
          { resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: unknown) => {
            if (cancelled || broken) return;
            if (type === 'ERROR') {
              const status = obj as { code?: number; message?: string };
              gone = status.code === 410;
              if (!gone) breakOnce(new RegistryError(`kube watch nodes: ${status.message ?? JSON.stringify(obj)}`, true));
              return;
            }
            const node = obj as NodeView;
            resourceVersion = node.metadata?.resourceVersion ?? resourceVersion;
            if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.nodeEvent(type, node, handlers);
          },
          (err: unknown) => {
            if (gone || apiCode(err) === 410) breakOnce(new RegistryError(`kube watch nodes: resourceVersion ${resourceVersion} is too old (410 Gone); listing again`, true));
            else if (err) breakOnce(wrap('watch nodes', err));
            // The API server ends every watch after a while: carry on from the last version seen, as client-go's reflector does.
            else start();
          },
        )
        .then(
          (c) => {
            controller = c;
            if (cancelled || broken) c.abort();
          },
          (err: unknown) => breakOnce(wrap('watch nodes', err)),
        );
    };
    const cancel = (): void => {
      cancelled = true;
      controller?.abort();
      this.watches.delete(cancel);
    };
    this.watches.add(cancel);
    start();
    return { cancel };
  }

  async close(): Promise<void> {
    for (const cancel of [...this.watches]) cancel();
  }
}
