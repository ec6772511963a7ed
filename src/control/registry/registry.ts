/**
 * What vxtun needs from a flannel registry, in the shape all three registries share (static.ts,
 * etcd-v3.ts, etcd-v2.ts): the network config, the leases under `<prefix>/subnets/`, create-if-absent,
 * refresh, and a watch. The flannel rules (which subnet to take, what a lease means) live once, in
 * ../lease-manager.ts, above this interface.
 *
 * Keys are subnet keys as flannel writes them (`10.244.2.0-24`), values the raw JSON text, so what a
 * registry returns is exactly what another flanneld would read.
 */

import type { Cidr } from '../../packet/cidr.js';

/** An IPv4 prefix (the same type as flannel.ts's Cidr4; this folder imports nothing from above it). */
export type Cidr4 = Extract<Cidr, { family: 4 }>;
export type Cidr6 = Extract<Cidr, { family: 6 }>;

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

/** The network config is not there (yet): a node waits for it, as flanneld does. */
export class NetworkConfigMissing extends RegistryError {
  constructor(message: string) {
    super(message, false);
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

/**
 * A registry in which something else assigns each node's subnet (Kubernetes: node.spec.podCIDR, the
 * kube subnet manager of flannel's pkg/subnet/kube). A node does not choose a subnet there: it
 * publishes its lease attributes and takes the subnet it was given; nothing expires, so nothing is
 * renewed. Peers are read as from a SubnetRegistry (list, then a watch from the list's revision,
 * onBroken -> full list again); our own node is never among them.
 */
export interface AssignedSubnetRegistry {
  readonly kind: 'assigned';
  readonly description: string;
  getNetworkConfig(): Promise<string>;
  /**
   * Publishes our lease (flannel's LeaseAttrs JSON, as encodeLeaseValue writes it) and returns the
   * subnet assigned to this node, checked to lie inside `network` (RegistryError otherwise); with
   * `network6` (a dual-stack network) the assigned IPv6 subnet too, inside `network6`.
   */
  publishLease(leaseValue: string, network: Cidr4, network6?: Cidr6): Promise<{ subnet: Cidr4; subnet6?: Cidr6 }>;
  /** Tells the cluster this node's network is up (flannel's CompleteLease), once the data path runs. */
  completeLease(): Promise<void>;
  listLeases(): Promise<{ leases: StoredLease[]; revision: string }>;
  watchLeases(revision: string, handlers: WatchHandlers): LeaseWatch;
  close(): Promise<void>;
}

export function isAssignedRegistry(r: SubnetRegistry | AssignedSubnetRegistry): r is AssignedSubnetRegistry {
  return 'kind' in r && r.kind === 'assigned';
}
