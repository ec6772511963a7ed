/**
 * flannel's registry over the etcd v2 keys API (older flanneld releases; etcd 3.4 serves it with
 * --enable-v2): keys with a TTL, created with `prevExist=false` so that of two nodes racing for one
 * subnet exactly one gets 201 and the other 412, refreshed with `prevExist=true`, watched by long
 * polls (`wait=true&recursive=true&waitIndex=N`).
 */
import http from 'node:http';
import https from 'node:https';
import { RegistryError, NetworkConfigMissing, type SubnetRegistry, type StoredLease, type LeaseWatch, type WatchHandlers } from './registry.js';
import { type EtcdSettings, type EtcdTlsMaterial, readTlsMaterial, probeEndpoints, joinKey } from './etcd-common.js';

interface V2Node {
  key: string;
  value?: string;
  dir?: boolean;
  nodes?: V2Node[];
  modifiedIndex?: number;
}

interface V2Response {
  status: number;
  etcdIndex: number | undefined;
  body: { action?: string; node?: V2Node; errorCode?: number; message?: string; index?: number };
}

/** etcd v2 error codes we act on. */
const KEY_NOT_FOUND = 100;
const NODE_EXIST = 105;
const EVENT_INDEX_CLEARED = 401;

export class EtcdV2Registry implements SubnetRegistry {
  readonly description: string;
  private readonly subnetsDir: string;
  private endpointIndex = 0;
  /** Open long polls, ended by cancel()/close() so nothing keeps the process alive. */
  private readonly longPolls = new Set<http.ClientRequest>();

  private constructor(
    private readonly settings: EtcdSettings,
    private readonly material: EtcdTlsMaterial | undefined,
  ) {
    this.subnetsDir = joinKey(settings.prefix, 'subnets');
    this.description = `etcd v2 ${settings.endpoints.join(',')} ${settings.prefix}`;
  }

  static async open(settings: EtcdSettings): Promise<EtcdV2Registry> {
    const material = readTlsMaterial(settings.tls);
    await probeEndpoints(settings.endpoints, material);
    return new EtcdV2Registry(settings, material);
  }

  /** One request to the current endpoint; on a transport error the next request tries the next endpoint. */
  private request(method: string, key: string, query: Record<string, string>, form?: Record<string, string>, timeoutMs?: number): Promise<V2Response> {
    const base = new URL(this.settings.endpoints[this.endpointIndex % this.settings.endpoints.length]!);
    const url = new URL(`/v2/keys${key.split('/').map(encodeURIComponent).join('/')}`, base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const mod = url.protocol === 'https:' ? https : http;
    const timeout = timeoutMs ?? this.settings.requestTimeoutMs ?? 5000;
    return new Promise<V2Response>((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          headers: {
            ...(body ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } : {}),
            ...(this.settings.auth ? { authorization: `Basic ${Buffer.from(`${this.settings.auth.username}:${this.settings.auth.password}`).toString('base64')}` } : {}),
          },
          ...(this.material ? { ca: this.material.ca, cert: this.material.cert, key: this.material.key } : {}),
          agent: false,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            try {
              const idx = res.headers['x-etcd-index'];
              resolve({ status: res.statusCode ?? 0, etcdIndex: idx ? Number(idx) : undefined, body: text ? JSON.parse(text) : {} });
            } catch (err) {
              reject(new RegistryError(`etcd ${method} ${key}: unreadable answer (${(err as Error).message})`, true));
            }
          });
          res.on('error', (err) => reject(new RegistryError(`etcd ${method} ${key}: ${err.message}`, true)));
        },
      );
      const cancel = (): void => {
        req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
      };
      const timer = timeout > 0 ? setTimeout(cancel, timeout) : undefined;
      req.on('close', () => clearTimeout(timer));
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        this.endpointIndex++;
        reject(new RegistryError(`etcd ${method} ${key} at ${base.origin}: ${err.code ?? err.message}`, true));
      });
      if (timeout === 0) {
        this.longPolls.add(req);
        req.on('close', () => this.longPolls.delete(req));
      }
      if (body) req.write(body);
      req.end();
    });
  }

  private unexpected(what: string, r: V2Response): RegistryError {
    return new RegistryError(`etcd ${what}: HTTP ${r.status} ${r.body.message ?? ''}`.trim(), r.status >= 500);
  }

  async getNetworkConfig(): Promise<string> {
    const key = joinKey(this.settings.prefix, 'config');
    const r = await this.request('GET', key, {});
    if (r.status === 404 && r.body.errorCode === KEY_NOT_FOUND) throw new NetworkConfigMissing(`${key}: not found in etcd (write the flannel network config there first)`);
    if (r.status !== 200 || r.body.node?.value === undefined) throw this.unexpected(`get ${key}`, r);
    return r.body.node.value;
  }

  async listLeases(): Promise<{ leases: StoredLease[]; revision: string }> {
    const r = await this.request('GET', this.subnetsDir, { recursive: 'true', quorum: 'true' });
    if (r.status === 404 && r.body.errorCode === KEY_NOT_FOUND) return { leases: [], revision: String(r.body.index ?? r.etcdIndex ?? 0) };
    if (r.status !== 200) throw this.unexpected(`list ${this.subnetsDir}`, r);
    const leases = (r.body.node?.nodes ?? [])
      .filter((n) => !n.dir && n.value !== undefined)
      .map((n) => ({ subnetKey: n.key.slice(this.subnetsDir.length + 1), value: n.value! }));
    return { leases, revision: String(r.etcdIndex ?? 0) };
  }

  async createLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'created' | 'exists'> {
    const key = `${this.subnetsDir}/${subnetKey}`;
    const r = await this.request('PUT', key, { prevExist: 'false' }, { value, ttl: String(ttlSeconds) });
    if (r.status === 201) return 'created';
    if (r.status === 412 && r.body.errorCode === NODE_EXIST) return 'exists';
    throw this.unexpected(`create ${key}`, r);
  }

  async refreshLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'refreshed' | 'missing'> {
    const key = `${this.subnetsDir}/${subnetKey}`;
    const r = await this.request('PUT', key, { prevExist: 'true' }, { value, ttl: String(ttlSeconds) });
    if (r.status === 200) return 'refreshed';
    if (r.status === 404 && r.body.errorCode === KEY_NOT_FOUND) return 'missing';
    throw this.unexpected(`refresh ${key}`, r);
  }

  watchLeases(revision: string, handlers: WatchHandlers): LeaseWatch {
    let cancelled = false;
    let next = Number(revision) + 1;
    const loop = async (): Promise<void> => {
      while (!cancelled) {
        let r: V2Response;
        try {
          // A long poll: no deadline while etcd holds it open; a dead etcd shows as a transport error.
          r = await this.request('GET', this.subnetsDir, { wait: 'true', recursive: 'true', waitIndex: String(next) }, undefined, 0);
        } catch (err) {
          if (!cancelled) handlers.onBroken(err as Error);
          return;
        }
        if (cancelled) return;
        if (r.status === 400 && r.body.errorCode === EVENT_INDEX_CLEARED) {
          handlers.onBroken(new RegistryError('etcd v2 watch: history cleared, resyncing', true));
          return;
        }
        if (r.status !== 200 || !r.body.node) {
          handlers.onBroken(this.unexpected('watch', r));
          return;
        }
        const node = r.body.node;
        next = (node.modifiedIndex ?? next) + 1;
        if (node.dir) continue;
        const subnetKey = node.key.slice(this.subnetsDir.length + 1);
        switch (r.body.action) {
          case 'delete':
          case 'expire':
          case 'compareAndDelete':
            handlers.onEvent({ type: 'delete', subnetKey });
            break;
          default:
            if (node.value !== undefined) handlers.onEvent({ type: 'put', subnetKey, value: node.value });
        }
      }
    };
    void loop();
    return {
      cancel: () => {
        cancelled = true;
        for (const req of this.longPolls) req.destroy();
      },
    };
  }

  async close(): Promise<void> {
    for (const req of this.longPolls) req.destroy();
  }
}
