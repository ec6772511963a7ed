/**
 * flanneld's --healthz-ip/--healthz-port server, with readiness and metrics:
 *   /healthz  200 while the process runs (flanneld's)
 *   /readyz   503 naming what is missing until the device, routes, masquerade rules and subnet.env
 *             are in place and the registry has been read once; then 200
 *   /metrics  Prometheus text (prom-client): packets and bytes by direction, drops, answers and
 *             fix-ups by reason, routes, lease events, lease expiry and ignored leases by reason,
 *             registry reachability, errors and resyncs, offload features, workers, and the process metrics
 * It listens from the start (as flanneld's does), so a probe sees a starting node as alive and unready.
 * sdNotify() is systemd's READY=1/STOPPING=1 when NOTIFY_SOCKET is set.
 */
import http from 'node:http';
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { CounterSnapshot } from '../packet/counters.js';
import { loadNative } from '../io/addon.js';
import type { InfoReply } from './control-api.js';

/** The steps /readyz waits for, in the order a node takes them. */
export const READINESS_STEPS = ['registry', 'device', 'routes', 'masquerade', 'subnet.env'] as const;
export type ReadinessStep = (typeof READINESS_STEPS)[number];

export interface HealthView {
  /** Present once the node runs. */
  info(): InfoReply | undefined;
  counters(): CounterSnapshot | undefined;
  routeCount(): number;
  /** Steps not done yet (empty: ready). */
  missing(): ReadinessStep[];
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
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

export function metricsRegistry(view: HealthView): Registry {
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
  liveCounter(register, 'vxtun_dropped_packets_total', 'Packets dropped, by reason', ['reason'], byReason((s) => s.dropped, 'reason'));
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

export async function startHealthServer(where: { ip: string; port: number }, view: HealthView, log: Logger): Promise<HealthServer> {
  const register = metricsRegistry(view);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    if (path === '/healthz') return send(200, 'vxtun is running\n');
    if (path === '/readyz') {
      const missing = view.missing();
      return missing.length === 0 ? send(200, 'ready\n') : send(503, `not ready: waiting for ${missing.join(', ')}\n`);
    }
    if (path === '/metrics') {
      register.metrics().then(
        (text) => send(200, text, register.contentType),
        (err: Error) => send(500, `${err.message}\n`),
      );
      return;
    }
    send(404, 'not found: /healthz, /readyz, /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`--healthz-port: cannot listen on ${where.ip}:${where.port}: ${err.code ?? err.message}`)));
    server.listen(where.port, where.ip, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  log.info({ address: `${where.ip}:${port}` }, 'health server: /healthz /readyz /metrics');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** sd_notify(3): one state line to $NOTIFY_SOCKET when systemd (or a test) set it; a failure is logged, never fatal. */
export function sdNotify(state: string, log: Logger, env: Record<string, string | undefined> = process.env): boolean {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return false;
  try {
    const native = loadNative();
    if (!native) throw new Error('the native addon is not loaded');
    native.sdNotify(socket, state);
    return true;
  } catch (err) {
    log.warn({ err: (err as Error).message, state }, 'sd_notify failed');
    return false;
  }
}
