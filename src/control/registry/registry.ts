/**
 * What vxtun needs from a flannel registry, in the shape all three registries share (static.ts,
 * etcd-v3.ts, etcd-v2.ts): the network config, the leases under `<prefix>/subnets/`, create-if-absent,
 * refresh, and a watch. The flannel rules (which subnet to take, what a lease means) live once, in
 * ../lease-manager.ts, above this interface.
 *
 * Keys are subnet keys as flannel writes them (`10.244.2.0-24`), values the raw JSON text, so what a
 * registry returns is exactly what another flanneld would read.
 */

/** One lease as stored: `<prefix>/subnets/<subnetKey>` -> value (flannel's LeaseAttrs JSON). */
export interface StoredLease {
  subnetKey: string;
  value: string;
}

export type LeaseEvent =
  | { type: 'put'; subnetKey: string; value: string }
  | { type: 'delete'; subnetKey: string };

export interface LeaseWatch {
  cancel(): void;
}

export interface WatchHandlers {
  onEvent(ev: LeaseEvent): void;
  /** The watch broke (registry unreachable, history compacted): the caller resyncs from a full list. */
  onBroken(err: Error): void;
}

/** A registry failure; `transient` ones (unreachable, timeout) are retried with backoff, the rest are fatal. */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    message: string,
    readonly transient: boolean,
    /** The config field to blame for a fatal error (printed first, as config errors are). */
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface SubnetRegistry {
  /** For logs: "etcd v3 http://198.18.0.250:2379 /coreos.com/network". */
  readonly description: string;
  /** The raw text of `<prefix>/config`; RegistryError (not transient) when the key is absent. */
  getNetworkConfig(): Promise<string>;
  /** Every lease, and the revision to watch from so no change between the list and the watch is missed. */
  listLeases(): Promise<{ leases: StoredLease[]; revision: string }>;
  /** Creates the key only if absent, with a TTL: 'exists' when another node holds it (the race is lost). */
  createLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'created' | 'exists'>;
  /** Rewrites our own lease with a fresh TTL; 'missing' if it is gone (expired or deleted). */
  refreshLease(subnetKey: string, value: string, ttlSeconds: number): Promise<'refreshed' | 'missing'>;
  /** Changes after `revision` (from listLeases), in order. */
  watchLeases(revision: string, handlers: WatchHandlers): LeaseWatch;
  close(): Promise<void>;
}
