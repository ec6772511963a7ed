/**
 * `vxtun trace --web`: a small HTTP server (127.0.0.1 by default) serving one self-contained page
 * from the package (web/trace.html: no CDN, nothing fetched at run time), the traced nodes' state
 * (info, route/VTEP table) at /api/state, and the live trace as Server-Sent Events at /events.
 * Each event is one trace item plus what the page draws: the path it took and its bytes
 * dissected layer by layer (outer IPv4/UDP rebuilt from the socket endpoints, as in the pcapng).
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { packageRoot } from '../util/package-root.js';
import { controlRequest } from '../control/socket.js';
import type { TraceSource } from './client.js';
import type { Journey, TraceEvent } from './journey.js';
import { summaryLine, formatItem, describeInner, type TraceItem } from './printer.js';
import { dissect, type Layer } from './dissect.js';
import { synthesizeOuter } from './pcapng.js';
import { labels } from './i18n.js';

export interface WebPacket {
  id: number;
  summary: string;
  text: string;
  dropped: boolean;
  verdict: string;
  /** Where it went: node underlay address and observation point, in order. */
  path: Array<{ node: string; point: string; verdict: string; t: number; express?: true }>;
  /** The bytes shown in the detail view and their layers. */
  bytes: string;
  layers: Layer[];
  /** Which bytes these are (e.g. "udp-send at 198.18.0.1"). */
  bytesAt: string;
  item: TraceItem;
}

const BACKLOG = 100;

function wireBytes(j: Journey): { ev: TraceEvent; buf: Buffer; start: 'outer-ipv4' | 'vxlan' | 'ip' } | undefined {
  const send = j.events.find((e) => (e.point === 'udp-send' || e.point === 'udp-recv') && e.bytes);
  if (send) {
    const payload = Buffer.from(send.bytes!, 'base64');
    const self = send.local ?? { address: j.node.publicIp, port: j.node.port };
    const other = send.remote ?? { address: '0.0.0.0', port: j.node.port };
    const [src, dst] = send.point === 'udp-send' ? [self, other] : [other, self];
    const buf = synthesizeOuter(src, dst, payload);
    return { ev: send, buf, start: buf === payload ? 'vxlan' : 'outer-ipv4' };
  }
  const first = j.events.find((e) => e.bytes);
  if (!first) return undefined;
  return { ev: first, buf: Buffer.from(first.bytes!, 'base64'), start: first.vxlan ? 'vxlan' : 'ip' };
}

let nextPacketId = 1;

export function toWebPacket(item: TraceItem): WebPacket {
  const journeys = item.kind === 'journey' ? [item.journey] : [item.sender, item.receiver];
  const last = journeys[journeys.length - 1]!;
  const shown = wireBytes(journeys[0]!) ?? wireBytes(last);
  const L = labels('en');
  return {
    id: nextPacketId++,
    summary: item.kind === 'journey' ? summaryLine(item.journey) : `${describeInner(item.sender.inner, L)} · node ${item.sender.node.publicIp} → node ${item.receiver.node.publicIp} · ${item.receiver.dropped ? `dropped: ${item.receiver.verdict}` : item.receiver.verdict === 'forwarded' ? 'delivered' : item.receiver.verdict}`,
    text: formatItem(item),
    dropped: journeys.some((j) => j.dropped),
    verdict: last.verdict,
    path: journeys.flatMap((j) => j.events.map((e) => ({ node: j.node.publicIp, point: e.point, verdict: e.verdict, t: e.t, ...(e.express ? { express: true as const } : {}) }))),
    bytes: shown ? shown.buf.toString('hex') : '',
    layers: shown ? dissect(shown.buf, shown.start) : [],
    bytesAt: shown ? `${shown.ev.point} at ${journeys.find((j) => j.events.includes(shown.ev))?.node.publicIp ?? '?'}` : 'no bytes',
    item,
  };
}

export interface WebView {
  url: string;
  push(item: TraceItem): void;
  close(): Promise<void>;
}

export async function startWebView(o: { sockets: string[]; sources: TraceSource[]; host: string; port: number }): Promise<WebView> {
  const page = readFileSync(join(packageRoot(), 'web', 'trace.html'));
  const clients = new Set<http.ServerResponse>();
  const backlog: WebPacket[] = [];

  const state = async (): Promise<unknown> => ({
    nodes: await Promise.all(
      o.sources.map(async (s) => {
        let routes: unknown = [];
        try {
          routes = await controlRequest(s.socket, { cmd: 'routes' }, 1000);
        } catch {
          // the node went away: show what we knew
        }
        return { info: s.node, routes };
      }),
    ),
  });

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'" });
      res.end(page);
    } else if (url.pathname === '/api/state') {
      void state().then((s) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(s));
      });
    } else if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': vxtun trace\n\n');
      for (const p of backlog) res.write(`data: ${JSON.stringify(p)}\n\n`);
      clients.add(res);
      req.on('close', () => clients.delete(res));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`web view: cannot listen on ${o.host}:${o.port}: ${err.code ?? err.message}`)));
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/`,
    push(item) {
      const p = toWebPacket(item);
      backlog.push(p);
      if (backlog.length > BACKLOG) backlog.shift();
      const line = `data: ${JSON.stringify(p)}\n\n`;
      for (const c of clients) if (c.writableLength < 1 << 20) c.write(line);
    },
    async close() {
      for (const c of clients) c.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
