/**
 * The registry of a node whose peers are written in its config file: a network config and leases
 * that only this process sees. Same interface as the etcd registries, so the flannel rules in
 * ../lease-manager.ts run unchanged on it (and unit tests run them without etcd).
 */
import { RegistryError, type SubnetRegistry, type StoredLease, type LeaseWatch, type WatchHandlers, type LeaseEvent } from './registry.js';

export class StaticRegistry implements SubnetRegistry {
  readonly description = 'static (config file)';
  private readonly leases = new Map<string, { value: string; expiresAt: number }>();
  private readonly watchers = new Set<WatchHandlers>();
  /** Every change, in order: the revision is its length, and a watch replays what came after its revision. */
  private readonly history: LeaseEvent[] = [];

  constructor(
    private readonly networkConfig: string,
    seed: StoredLease[] = [],
  ) {
    for (const l of seed) this.leases.set(l.subnetKey, { value: l.value, expiresAt: Infinity });
  }

  async getNetworkConfig(): Promise<string> {
    return this.networkConfig;
  }

  private expire(): void {
    const now = Date.now();
    for (const [k, l] of this.leases) if (l.expiresAt <= now) this.remove(k);
  }

  async listLeases(): Promise<{ leases: StoredLease[]; revision: string }> {
    this.expire();
    return { leases: [...this.leases].map(([subnetKey, l]) => ({ subnetKey, value: l.value })), revision: String(this.history.length) };
  }

  async createLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'created' | 'exists'> {
    this.expire();
    if (this.leases.has(subnetKey)) return 'exists';
    this.put(subnetKey, value, ttlSeconds);
    return 'created';
  }

  async refreshLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'refreshed' | 'missing'> {
    this.expire();
    if (!this.leases.has(subnetKey)) return 'missing';
    this.put(subnetKey, value, ttlSeconds);
    return 'refreshed';
  }

  /** Deletes a lease as an operator (or etcdctl) would. */
  remove(subnetKey: string): void {
    if (!this.leases.delete(subnetKey)) return;
    this.emit({ type: 'delete', subnetKey });
  }

  private put(subnetKey: string, value: string, ttlSeconds: number): void {
    this.leases.set(subnetKey, { value, expiresAt: Date.now() + ttlSeconds * 1000 });
    this.emit({ type: 'put', subnetKey, value });
  }

  private emit(ev: LeaseEvent): void {
    this.history.push(ev);
    for (const w of this.watchers) queueMicrotask(() => w.onEvent(ev));
  }

  watchLeases(revision: string, handlers: WatchHandlers): LeaseWatch {
    this.watchers.add(handlers);
    for (const ev of this.history.slice(Number(revision))) queueMicrotask(() => handlers.onEvent(ev));
    return { cancel: () => this.watchers.delete(handlers) };
  }

  async close(): Promise<void> {
    this.watchers.clear();
  }
}

export { RegistryError };
