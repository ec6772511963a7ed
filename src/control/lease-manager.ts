/**
 * This node's lease and its view of everyone else's, over any SubnetRegistry, by flanneld's rules:
 *  - acquire: reuse the lease that already carries our PublicIP (a restart keeps its subnet), else
 *    take a random free subnet with create-if-absent (a lost race just tries again);
 *  - renew before the TTL runs out; our lease gone (deleted, expired) -> take it again;
 *  - peers: list + watch from the list's revision; every change swaps a whole new route table;
 *    a lease becomes a route only if judgeLease (flannel.ts) finds nothing wrong with it, and each
 *    refused one is logged once and counted by its reason;
 *  - our own lease rewritten with another PublicIP is lost, as a deleted one is;
 *  - registry unreachable: the last table stays in force, retries back off, and on return a full
 *    list replaces whatever the watch may have missed.
 * An AssignedSubnetRegistry (Kubernetes) gives the subnet instead: acquire publishes our lease there,
 * nothing is renewed, and the peers are followed as above.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Route, Vtep } from '../packet/routes.js';
import type { Mac } from '../packet/wire/ethernet.js';
import { cidrToString, cidrOverlaps } from '../packet/cidr.js';
import { RegistryError, isAssignedRegistry, type SubnetRegistry, type AssignedSubnetRegistry, type LeaseWatch } from './registry/registry.js';
import {
  type Cidr4,
  type FlannelNetworkConfig,
  subnetKey,
  parseLeaseKey,
  subnet6Fits,
  pickFreeSubnet6,
  type Cidr6,
  decodeLeaseValue,
  judgeLease,
  subnetFits,
  LEASE_REFUSALS,
  type LeaseRefusal,
  type OwnLease,
  pickFreeSubnet,
  LEASE_TTL_SECONDS,
  LEASE_RENEW_MARGIN_SECONDS,
} from './flannel.js';

export interface LeaseManagerOptions {
  registry: SubnetRegistry | AssignedSubnetRegistry;
  network: FlannelNetworkConfig;
  publicIp: string;
  /** Our lease value, exactly as flanneld would write it (flannel.ts encodeLeaseValue). */
  leaseValue: string;
  /** Subnet to ask for first when no lease carries our PublicIP (a static config's subnet). */
  preferredSubnet?: Cidr4;
  ttlSeconds?: number;
  renewMarginSeconds?: number;
  /** Longest pause between retries while the registry is unreachable. */
  maxBackoffMs?: number;
  log: Logger;
}

export interface LeaseManagerEvents {
  routes: [routes: Route<Vtep>[]];
  /** Something we cannot recover from (our subnet taken by another node): the process must stop. */
  fatal: [err: Error];
}

function sleep(ms: number, signal: { stopped: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    if (signal.stopped) {
      clearTimeout(t);
      resolve();
    }
  });
}

export class LeaseManager extends EventEmitter<LeaseManagerEvents> {
  private ownSubnet: Cidr4 | undefined;
  /** Dual-stack: our IPv6 subnet (the second half of our key). */
  private ownSubnet6: Cidr6 | undefined;
  /** Our lease's key as the registry holds it (dual-stack keys carry an IPv6 part too). */
  private ownKey = '';
  /** Per lease key: its IPv4 route and, dual-stack, its IPv6 one. */
  private peers = new Map<string, Route<Vtep>[]>();
  private watch: LeaseWatch | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private wakeSync: (() => void) | undefined;
  private readonly state = { stopped: false };
  private readonly ttl: number;
  private readonly renewAfterMs: number;
  private readonly maxBackoffMs: number;
  /** Counts for status and tests; ignoredLeases is the sum of ignoredByReason. */
  readonly stats = {
    acquired: 0,
    renewed: 0,
    reacquired: 0,
    resyncs: 0,
    registryErrors: 0,
    ignoredLeases: 0,
    ignoredByReason: Object.fromEntries(LEASE_REFUSALS.map((r) => [r, 0])) as Record<LeaseRefusal, number>,
    /** Dual-stack leases whose IPv6 half we cannot use (their IPv4 route stands). */
    ignoredIpv6Halves: 0,
    /** When our lease expires unless renewed (ms since the epoch); 0 where nothing expires (static, kube). */
    leaseExpiresAtMs: 0,
    /** Whether the last registry call answered (false after an unreachable, timed-out or failed call). */
    registryReachable: true,
  };
  /** Refused leases by key, with the value and reason last logged: a lease is logged and counted once, not at every resync. */
  private readonly refused = new Map<string, string>();
  private readonly ownVtepMac: Mac | undefined;
  private readonly ownPublicIpv6: string | undefined;

  constructor(private readonly opts: LeaseManagerOptions) {
    super();
    this.ttl = opts.ttlSeconds ?? LEASE_TTL_SECONDS;
    const margin = opts.renewMarginSeconds ?? LEASE_RENEW_MARGIN_SECONDS;
    this.renewAfterMs = (margin < this.ttl ? this.ttl - margin : this.ttl / 2) * 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 5000;
    const ownAttrs = decodeLeaseValue(opts.leaseValue);
    this.ownVtepMac = ownAttrs?.vtepMac;
    this.ownPublicIpv6 = ownAttrs?.publicIpv6;
  }

  get subnet(): Cidr4 {
    if (!this.ownSubnet) throw new Error('no lease yet');
    return this.ownSubnet;
  }

  /** Our IPv6 subnet in a dual-stack network (undefined otherwise). */
  get subnet6(): Cidr6 | undefined {
    return this.ownSubnet6;
  }

  get routes(): Route<Vtep>[] {
    return [...this.peers.values()].flat();
  }

  /** Takes this node's lease (one attempt round; RegistryError on failure, `transient` says if retrying helps). */
  async acquire(): Promise<Cidr4> {
    const { registry, network, publicIp, leaseValue } = this.opts;
    if (isAssignedRegistry(registry)) {
      const { subnet, subnet6 } = await registry.publishLease(leaseValue, network.network, network.ipv6?.network);
      return this.took(subnet, 'assigned', subnetKey(subnet, subnet6), subnet6);
    }
    for (let attempt = 0; attempt < 20; attempt++) {
      const { leases } = await registry.listLeases();
      const taken: Cidr4[] = [];
      const taken6: Cidr6[] = [];
      let mine: { subnet: Cidr4; subnet6?: Cidr6; key: string } | undefined;
      for (const l of leases) {
        // Every subnet a key holds is taken, whether or not we can route to it (a dual-stack
        // flanneld lease, an unusable one): a subnet is never handed out twice.
        const held = parseLeaseKey(l.subnetKey);
        if (held?.subnet6) taken6.push(held.subnet6);
        const subnet = held?.subnet;
        if (!subnet) continue;
        taken.push(subnet);
        const fits6 = network.ipv6 === undefined || (held.subnet6 !== undefined && subnet6Fits(network.ipv6, held.subnet6));
        if (mine === undefined && decodeLeaseValue(l.value)?.publicIp === publicIp && subnetFits(network, subnet) && fits6) {
          mine = { subnet, key: l.subnetKey, ...(network.ipv6 ? { subnet6: held.subnet6! } : {}) };
        }
      }
      if (mine) {
        if ((await registry.refreshLease(mine.key, leaseValue, this.ttl)) === 'refreshed') return this.took(mine.subnet, 'reused', mine.key, mine.subnet6);
        continue; // vanished between list and refresh: look again
      }
      const preferred = this.ownSubnet ?? this.opts.preferredSubnet;
      const preferredFree = preferred !== undefined && !taken.some((t) => t.addr === preferred.addr && t.prefixLen === preferred.prefixLen);
      if (this.ownSubnet && !preferredFree) {
        // Checked before creating anything: a second lease of ours would be an orphan.
        throw new RegistryError(`our lease ${cidrToString(this.ownSubnet)} is gone and another node holds it now`, false);
      }
      const candidate = preferredFree ? preferred : pickFreeSubnet(network, taken);
      if (!candidate) throw new RegistryError(`no free /${network.subnetLen} left in ${cidrToString(network.network)}`, false);
      let candidate6: Cidr6 | undefined;
      if (network.ipv6) {
        const own6 = this.ownSubnet6;
        const ordinal = (candidate.addr - network.subnetMin) / 2 ** (32 - network.subnetLen);
        candidate6 = own6 && !taken6.some((t) => cidrOverlaps(t, own6)) ? own6 : pickFreeSubnet6(network.ipv6, taken6, Math.random, ordinal);
        if (!candidate6) throw new RegistryError(`no free /${network.ipv6.subnetLen} left in ${cidrToString(network.ipv6.network)}`, false);
      }
      const key = subnetKey(candidate, candidate6);
      if ((await registry.createLease(key, leaseValue, this.ttl)) === 'created') return this.took(candidate, 'created', key, candidate6);
      this.opts.log.info({ subnet: cidrToString(candidate) }, 'another node took that subnet first; trying again');
    }
    throw new RegistryError('could not take a subnet after 20 attempts (too many nodes racing?)', true);
  }

  private took(subnet: Cidr4, how: 'reused' | 'created' | 'assigned', key: string, subnet6?: Cidr6): Cidr4 {
    if (this.ownSubnet && (this.ownSubnet.addr !== subnet.addr || this.ownSubnet.prefixLen !== subnet.prefixLen)) {
      // Our device, routes and subnet.env, and every pod on this node, carry the old subnet.
      throw new RegistryError(`our lease ${cidrToString(this.ownSubnet)} is gone and another node holds it now`, false);
    }
    if (this.ownSubnet6 && subnet6 && cidrToString(this.ownSubnet6) !== cidrToString(subnet6)) {
      throw new RegistryError(`our lease's IPv6 subnet ${cidrToString(this.ownSubnet6)} is gone and another node holds it now`, false);
    }
    this.ownSubnet = subnet;
    this.ownSubnet6 = subnet6;
    this.ownKey = key;
    this.stats.acquired++;
    this.noteRegistryAnswered(true);
    this.opts.log.info({ subnet: cidrToString(subnet), ...(subnet6 ? { subnet6: cidrToString(subnet6) } : {}), how, registry: this.opts.registry.description }, 'lease acquired');
    return subnet;
  }

  /** Starts renewal and the peer watch (after acquire()). */
  start(): void {
    this.scheduleRenew(this.renewAfterMs);
    void this.syncLoop();
  }

  async stop(): Promise<void> {
    this.state.stopped = true;
    clearTimeout(this.renewTimer);
    this.watch?.cancel();
    this.wakeSync?.();
  }

  private scheduleRenew(ms: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), ms);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    const { registry } = this.opts;
    // Nothing expires in an assigned registry.
    if (this.state.stopped || isAssignedRegistry(registry)) return;
    try {
      const r = await registry.refreshLease(this.ownKey, this.opts.leaseValue, this.ttl);
      if (r === 'missing') {
        await this.reacquire('lease missing at renewal');
      } else {
        this.stats.renewed++;
        this.noteRegistryAnswered(true);
        this.opts.log.debug({ subnet: cidrToString(this.subnet) }, 'lease renewed');
      }
      this.scheduleRenew(this.renewAfterMs);
    } catch (err) {
      this.registryError(err, 'renew');
      this.scheduleRenew(Math.min(this.maxBackoffMs, this.renewAfterMs));
    }
  }

  private reacquiring: Promise<void> | undefined;

  private reacquire(why: string): Promise<void> {
    this.reacquiring ??= (async () => {
      this.opts.log.warn({ subnet: cidrToString(this.subnet), why }, 'own lease lost; taking it again');
      try {
        await this.acquire();
        this.stats.reacquired++;
      } catch (err) {
        if (err instanceof RegistryError && !err.transient) this.emit('fatal', err);
        else throw err;
      } finally {
        this.reacquiring = undefined;
      }
    })();
    return this.reacquiring;
  }

  /** The registry answered: reachable again, and (etcd) the lease runs a full TTL from now. */
  private noteRegistryAnswered(leaseWritten: boolean): void {
    this.stats.registryReachable = true;
    if (leaseWritten && !isAssignedRegistry(this.opts.registry) && Number.isFinite(this.ttl)) this.stats.leaseExpiresAtMs = Date.now() + this.ttl * 1000;
  }

  private registryError(err: unknown, what: string): void {
    this.stats.registryErrors++;
    this.stats.registryReachable = false;
    this.opts.log.warn({ err: (err as Error).message, what }, 'registry unreachable; forwarding on the last known routes');
  }

  /** list -> table -> watch until it breaks -> back off -> list again, until stop(). */
  private async syncLoop(): Promise<void> {
    let backoff = 250;
    while (!this.state.stopped) {
      try {
        const { leases, revision } = await this.opts.registry.listLeases();
        this.stats.resyncs++;
        this.noteRegistryAnswered(false);
        const next = new Map<string, Route<Vtep>[]>();
        let ownPresent = false;
        const listed = new Set(leases.map((l) => l.subnetKey));
        for (const key of this.refused.keys()) if (!listed.has(key)) this.refused.delete(key);
        for (const l of leases) {
          if (l.subnetKey === this.ownKey) {
            ownPresent = decodeLeaseValue(l.value)?.publicIp === this.opts.publicIp;
            continue;
          }
          const r = this.routeFor(l.subnetKey, l.value);
          if (r) next.set(l.subnetKey, r);
        }
        this.peers = next;
        this.publish();
        if (!ownPresent && !isAssignedRegistry(this.opts.registry)) await this.reacquire('lease missing at resync');
        backoff = 250;
        const broken = await new Promise<Error | undefined>((resolve) => {
          this.wakeSync = () => resolve(undefined);
          this.watch = this.opts.registry.watchLeases(revision, {
            onEvent: (ev) => {
              if (ev.subnetKey === this.ownKey) {
                const lost = ev.type === 'delete' ? 'lease deleted' : this.overwrittenBy(ev.value);
                if (lost) void this.reacquire(lost).catch((err) => this.registryError(err, 'reacquire'));
                return;
              }
              if (ev.type === 'delete') this.refused.delete(ev.subnetKey);
              const before = this.peers.has(ev.subnetKey);
              const r = ev.type === 'put' ? this.routeFor(ev.subnetKey, ev.value) : undefined;
              if (r) this.peers.set(ev.subnetKey, r);
              else this.peers.delete(ev.subnetKey);
              if (r || before) this.publish();
            },
            onBroken: (err) => resolve(err),
          });
        });
        this.watch?.cancel();
        if (broken) this.registryError(broken, 'watch');
      } catch (err) {
        this.registryError(err, 'resync');
      }
      if (this.state.stopped) return;
      await sleep(backoff, this.state);
      backoff = Math.min(backoff * 2, this.maxBackoffMs);
    }
  }

  /** Why our own key, rewritten to `value`, is no longer ours (undefined while it still carries our PublicIP). */
  private overwrittenBy(value: string): string | undefined {
    const holder = decodeLeaseValue(value)?.publicIp;
    return holder === this.opts.publicIp ? undefined : `lease overwritten by PublicIP ${holder ?? 'unreadable'}`;
  }

  private routeFor(key: string, value: string): Route<Vtep>[] | undefined {
    const own: OwnLease = {
      subnet: this.subnet,
      publicIp: this.opts.publicIp,
      ...(this.ownVtepMac ? { vtepMac: this.ownVtepMac } : {}),
      ...(this.ownSubnet6 ? { subnet6: this.ownSubnet6 } : {}),
      ...(this.ownPublicIpv6 !== undefined ? { publicIpv6: this.ownPublicIpv6 } : {}),
    };
    const verdict = judgeLease(key, value, this.opts.network, own);
    if ('route' in verdict) {
      if (verdict.refusal6 === undefined) {
        this.refused.delete(key);
      } else {
        const seen = `ipv6 ${verdict.refusal6} ${value}`;
        if (this.refused.get(key) !== seen) {
          this.refused.set(key, seen);
          this.stats.ignoredIpv6Halves++;
          this.opts.log.warn({ lease: key, value: value.length > 200 ? `${value.slice(0, 197)}...` : value, reason: verdict.refusal6 }, "lease's IPv6 half ignored; its IPv4 route stands");
        }
      }
      return verdict.route6 ? [verdict.route, verdict.route6] : [verdict.route];
    }
    const seen = `${verdict.refusal} ${value}`;
    if (this.refused.get(key) !== seen) {
      this.refused.set(key, seen);
      this.stats.ignoredLeases++;
      this.stats.ignoredByReason[verdict.refusal]++;
      this.opts.log.warn({ lease: key, value: value.length > 200 ? `${value.slice(0, 197)}...` : value, reason: verdict.refusal }, 'lease ignored');
    }
    return undefined;
  }

  private publish(): void {
    this.emit('routes', this.routes);
  }
}
