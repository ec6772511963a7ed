/**
 * The Prometheus registry behind /metrics (health.ts): packets and bytes by direction, drops, answers
 * and fix-ups by reason, routes, lease events, lease expiry and ignored leases by reason, registry
 * reachability, errors and resyncs, offload features, workers, and the process metrics. A module of
 * its own so that prom-client is loaded only by nodes that serve /metrics.
 */
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import type { CounterSnapshot } from '../packet/counters.js';
import { socketDropReasons, type InfoReply } from './control-api.js';

/** What the metrics read from the running node at scrape time. */
export interface MetricsView {
  /** Present once the node runs. */
  info(): InfoReply | undefined;
  counters(): CounterSnapshot | undefined;
  routeCount(): number;
  /** Readiness steps not done yet (empty: ready). */
  missing(): readonly string[];
}

type Labels = Record<string, string>;

/** A counter (or gauge) whose values are read at scrape time from the running node. */
function live(kind: 'counter' | 'gauge', register: Registry, name: string, help: string, labelNames: string[], read: () => Array<[Labels, number]>): void {
  const Metric = kind === 'counter' ? Counter : Gauge;
  new Metric({
    name,
    help,
    labelNames,
    registers: [register],
    collect(this: Counter | Gauge) {
      this.reset();
      for (const [labels, value] of read()) {
        if (this instanceof Gauge) this.set(labels, value);
        else if (value > 0) this.inc(labels, value);
      }
    },
  });
}

const liveCounter = (...args: Parameters<typeof live> extends [unknown, ...infer R] ? R : never): void => live('counter', ...args);
const liveGauge = (...args: Parameters<typeof live> extends [unknown, ...infer R] ? R : never): void => live('gauge', ...args);

export function metricsRegistry(view: MetricsView): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register });
  const snap = (): CounterSnapshot | undefined => view.counters();
  const byReason = (pick: (s: CounterSnapshot) => Record<string, number>, label: string) => (): Array<[Labels, number]> => {
    const s = snap();
    return s ? Object.entries(pick(s)).map(([k, v]) => [{ [label]: k }, v]) : [];
  };
  liveCounter(register, 'vxtun_packets_total', 'Inner packets through the tunnel, by direction (tx: pod to peer, rx: peer to pod)', ['direction'], () => {
    const s = snap();
    return s ? [[{ direction: 'tx' }, s.tx.packets], [{ direction: 'rx' }, s.rx.packets]] : [];
  });
  liveCounter(register, 'vxtun_bytes_total', 'Inner bytes through the tunnel, by direction', ['direction'], () => {
    const s = snap();
    return s ? [[{ direction: 'tx' }, s.tx.bytes], [{ direction: 'rx' }, s.rx.bytes]] : [];
  });
  // The engine's drops, and the VXLAN socket's (kernel overflows and the peer filter; CoDel).
  liveCounter(register, 'vxtun_dropped_packets_total', 'Packets dropped, by reason', ['reason'], () => {
    const s = snap();
    const all = { ...(s?.dropped ?? {}), ...socketDropReasons(view.info()?.datapathCounters?.udp) };
    return Object.entries(all).map(([k, v]) => [{ reason: k }, v]);
  });
  liveCounter(register, 'vxtun_answered_packets_total', 'Packets answered by vxtun itself (ARP, ICMP errors), by kind', ['kind'], byReason((s) => s.answered, 'kind'));
  liveCounter(register, 'vxtun_fixed_packets_total', 'Packets repaired on the way (checksums, segmentation), by kind', ['kind'], byReason((s) => s.fixed, 'kind'));
  liveGauge(register, 'vxtun_routes', 'Peer subnets in the route table', [], () => [[{}, view.routeCount()]]);
  const lease = (): NonNullable<InfoReply['lease']> | undefined => view.info()?.lease ?? undefined;
  liveCounter(register, 'vxtun_lease_events_total', 'Our lease: acquired, renewed, reacquired', ['event'], () => {
    const l = lease();
    return l ? [[{ event: 'acquired' }, l.acquired], [{ event: 'renewed' }, l.renewed], [{ event: 'reacquired' }, l.reacquired]] : [];
  });
  liveGauge(register, 'vxtun_ignored_leases', "Other nodes' leases vxtun cannot use, by reason", ['reason'], () => {
    const l = lease();
    return l ? Object.entries(l.ignoredByReason).map(([reason, n]) => [{ reason }, n]) : [];
  });
  liveCounter(register, 'vxtun_registry_errors_total', 'Registry calls that failed (unreachable, timeouts)', [], () => {
    const l = lease();
    return l ? [[{}, l.registryErrors]] : [];
  });
  liveGauge(register, 'vxtun_registry_up', '1 while the registry answers (its last call succeeded) or there is none (static peers), 0 after a failed call', [], () => {
    const l = lease();
    return [[{}, l && !l.registryReachable ? 0 : 1]];
  });
  liveGauge(register, 'vxtun_lease_expiry_timestamp_seconds', 'When our lease expires unless renewed (Unix time); 0 where nothing expires (static peers, Kubernetes)', [], () => {
    const l = lease();
    return [[{}, l ? l.leaseExpiresAtMs / 1000 : 0]];
  });
  liveCounter(register, 'vxtun_registry_resyncs_total', 'Full reads of the leases from the registry', [], () => {
    const l = lease();
    return l ? [[{}, l.resyncs]] : [];
  });
  liveGauge(register, 'vxtun_feature_enabled', 'Offloads and data-path features in use (1) or not (0)', ['feature'], () => {
    const f = view.info()?.features as Record<string, unknown> | undefined;
    return f ? Object.entries(f).filter(([, v]) => typeof v === 'boolean').map(([feature, v]) => [{ feature }, v ? 1 : 0]) : [];
  });
  liveGauge(register, 'vxtun_workers', 'Engines running (threads with their own TUN queue)', [], () => {
    const w = view.info()?.features.workers;
    return typeof w === 'number' ? [[{}, w]] : [];
  });
  liveGauge(register, 'vxtun_ready', '1 once the node is ready (see /readyz)', [], () => [[{}, view.missing().length === 0 ? 1 : 0]]);
  return register;
}

