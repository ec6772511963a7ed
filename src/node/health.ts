/**
 * flanneld's --healthz-ip/--healthz-port server, with readiness and metrics:
 *   /healthz  200 while the process runs (flanneld's)
 *   /readyz   503 naming what is missing until the device, routes, masquerade rules and subnet.env
 *             are in place and the registry has been read once; then 200
 *   /metrics  Prometheus text (prom-client): packets and bytes by direction, drops, answers and
 *             fix-ups by reason, routes, lease events, lease expiry and ignored leases by reason,
 *             registry reachability, errors and resyncs, offload features, workers, and the process metrics
 *             (metrics.ts; loaded only when this server starts)
 * It listens from the start (as flanneld's does), so a probe sees a starting node as alive and unready.
 * sdNotify() is systemd's READY=1/STOPPING=1 when NOTIFY_SOCKET is set.
 */
import http from 'node:http';
import type { Logger } from 'pino';
import { loadNative } from '../io/addon.js';
import type { MetricsView } from './metrics.js';

/** The steps /readyz waits for, in the order a node takes them. */
export const READINESS_STEPS = ['registry', 'device', 'routes', 'masquerade', 'subnet.env'] as const;
export type ReadinessStep = (typeof READINESS_STEPS)[number];

export interface HealthView extends MetricsView {
  /** Steps not done yet (empty: ready). */
  missing(): ReadinessStep[];
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(where: { ip: string; port: number }, view: HealthView, log: Logger): Promise<HealthServer> {
  // prom-client (about 12 MiB of heap) is loaded only by nodes that serve /metrics.
  const { metricsRegistry } = await import('./metrics.js');
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
