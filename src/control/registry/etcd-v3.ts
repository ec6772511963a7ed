/**
 * flannel's registry over the etcd v3 API (current flanneld): keys as in v2, each lease key attached
 * to an etcd lease of the lease's TTL; created in a transaction that succeeds only if the key has
 * never been created (CreateRevision == 0), so two nodes can never both take one subnet.
 */
import { Etcd3, type IKeyValue } from 'etcd3';
import { noop } from 'cockatiel';
import { RegistryError, NetworkConfigMissing, type SubnetRegistry, type StoredLease, type LeaseWatch, type WatchHandlers } from './registry.js';
import { type EtcdSettings, readTlsMaterial, probeEndpoints, joinKey } from './etcd-common.js';

function describeError(err: unknown): string {
  const e = err as Error;
  return `${e.name}: ${e.message.split('\n')[0]}`;
}

export class EtcdV3Registry implements SubnetRegistry {
  readonly description: string;
  private readonly client: Etcd3;
  private readonly subnetsPrefix: string;

  private constructor(
    private readonly settings: EtcdSettings,
    client: Etcd3,
  ) {
    this.client = client;
    this.subnetsPrefix = joinKey(settings.prefix, 'subnets') + '/';
    this.description = `etcd v3 ${settings.endpoints.join(',')} ${settings.prefix}`;
  }

  /** Reads the TLS files and checks an endpoint answers (RegistryError otherwise), then connects. */
  static async open(settings: EtcdSettings): Promise<EtcdV3Registry> {
    const material = readTlsMaterial(settings.tls);
    await probeEndpoints(settings.endpoints, material);
    const timeout = settings.requestTimeoutMs ?? 5000;
    // grpc-js sets the TLS server name to the endpoint even when it is an IP address (as etcd
    // endpoints usually are), and Node warns about that on stderr: refusals must stay one line.
    if (material) process.noDeprecation = true;
    const client = new Etcd3({
      hosts: settings.endpoints,
      ...(material ? { credentials: { rootCertificate: material.ca, ...(material.key ? { privateKey: material.key } : {}), ...(material.cert ? { certChain: material.cert } : {}) } } : {}),
      ...(settings.auth ? { auth: settings.auth } : {}),
      dialTimeout: timeout,
      // Our own loop retries with backoff and resyncs; the library's breaker would hide outages from it.
      faultHandling: { host: () => noop, global: noop },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    return new EtcdV3Registry(settings, client);
  }

  private wrap(what: string, err: unknown): RegistryError {
    return err instanceof RegistryError ? err : new RegistryError(`etcd ${what} failed: ${describeError(err)}`, true);
  }

  async getNetworkConfig(): Promise<string> {
    const key = joinKey(this.settings.prefix, 'config');
    let value: string | null;
    try {
      value = await this.client.get(key).string();
    } catch (err) {
      throw this.wrap(`get ${key}`, err);
    }
    if (value === null) throw new NetworkConfigMissing(`${key}: not found in etcd (write the flannel network config there first)`);
    return value;
  }

  async listLeases(): Promise<{ leases: StoredLease[]; revision: string }> {
    try {
      const res = await this.client.getAll().prefix(this.subnetsPrefix).exec();
      const leases = res.kvs.map((kv) => ({ subnetKey: kv.key.toString().slice(this.subnetsPrefix.length), value: kv.value.toString() }));
      return { leases, revision: res.header.revision };
    } catch (err) {
      throw this.wrap('list leases', err);
    }
  }

  private async grant(ttlSeconds: number): Promise<string> {
    const res = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds });
    return res.ID;
  }

  async createLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'created' | 'exists'> {
    const key = this.subnetsPrefix + subnetKey;
    try {
      const lease = await this.grant(ttlSeconds);
      const res = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(value).lease(lease)).commit();
      if (!res.succeeded) await this.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
      return res.succeeded ? 'created' : 'exists';
    } catch (err) {
      throw this.wrap(`create ${key}`, err);
    }
  }

  async refreshLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'refreshed' | 'missing'> {
    const key = this.subnetsPrefix + subnetKey;
    try {
      // As flanneld: a new etcd lease with the full TTL, the key moved onto it only if it still exists.
      const before = (await this.client.get(key).exec()).kvs[0]?.lease;
      const lease = await this.grant(ttlSeconds);
      const res = await this.client.if(key, 'Create', '>', 0).then(this.client.put(key).value(value).lease(lease)).commit();
      if (!res.succeeded) {
        await this.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
        return 'missing';
      }
      // The key has left its old etcd lease: revoke it rather than let one pile up per renewal.
      if (before && before !== '0' && before !== lease) await this.client.leaseClient.leaseRevoke({ ID: before }).catch(() => undefined);
      return 'refreshed';
    } catch (err) {
      throw this.wrap(`refresh ${key}`, err);
    }
  }

  watchLeases(revision: string, handlers: WatchHandlers): LeaseWatch {
    let cancelled = false;
    let broken = false;
    const stripped = (kv: IKeyValue): string => kv.key.toString().slice(this.subnetsPrefix.length);
    const breakOnce = (err: Error): void => {
      if (cancelled || broken) return;
      broken = true;
      handlers.onBroken(err);
    };
    const pending = this.client
      .watch()
      .prefix(this.subnetsPrefix)
      .startRevision(String(BigInt(revision) + 1n))
      .create()
      .then((w) => {
        if (cancelled) {
          void w.cancel().catch(() => undefined);
          return w;
        }
        w.on('put', (kv) => {
          if (!broken) handlers.onEvent({ type: 'put', subnetKey: stripped(kv), value: kv.value.toString() });
        });
        w.on('delete', (kv) => {
          if (!broken) handlers.onEvent({ type: 'delete', subnetKey: stripped(kv) });
        });
        // The library would resume silently; we rather resync from a full list (an outage may hide expiries).
        w.on('disconnected', (err) => breakOnce(this.wrap('watch', err)));
        w.on('error', (err) => breakOnce(this.wrap('watch', err)));
        return w;
      })
      .catch((err) => {
        breakOnce(this.wrap('watch', err));
        return undefined;
      });
    return {
      cancel: () => {
        cancelled = true;
        void pending.then((w) => w?.cancel().catch(() => undefined));
      },
    };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
