/**
 * `vxtun trace --web`: a small HTTP server (127.0.0.1 by default) serving one self-contained page
 * from the package (web/trace.html: no CDN, nothing fetched at run time), the traced nodes' state
 * (info, route/VTEP table) at /api/state, and the live trace as Server-Sent Events at /events.
 * Each event is one trace item plus what the page draws: the path it took and its bytes
 * dissected layer by layer (outer IPv4/UDP rebuilt from the socket endpoints, as in the pcapng).
 *
 * It shows whole packets, payload included, so every request needs the random token in the URL
 * it prints (as notebook servers do), and its Host and Origin must name this server by address:
 * a page elsewhere cannot reach it by DNS rebinding, another local user cannot read it.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import net, { type AddressInfo } from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { packageRoot } from '../util/package-root.js';
import { controlRequest } from '../control/socket.js';
import type { TraceSource } from './client.js';
import type { Journey, NodeInfo, TraceEvent } from './journey.js';
import type { Hop, HopRole } from './hops.js';
import { summaryLine, formatItem, storyHead, type TraceItem } from './printer.js';
import { dissect, type Layer } from './dissect.js';
import { synthesizeOuter } from './pcapng.js';
import { transitMs, WallClock } from './time.js';
import { labels } from './i18n.js';
import { compileInnerFilter, FilterError, journeyMatches, parseFilterText, type TraceFilter } from './filter.js';

export interface WebPacket {
  id: number;
  summary: string;
  text: string;
  dropped: boolean;
  verdict: string;
  /**
   * Where it went: node underlay address and observation point, in order; t is wall-clock ms
   * (display), dt the ms since the first point when both were read on one host's clock.
   */
  path: PathStep[];
  /** The bytes shown in the detail view and their layers. */
  bytes: string;
  layers: Layer[];
  /** Which bytes these are (e.g. "udp-send at 198.18.0.1"). */
  bytesAt: string;
  item: TraceItem;
  /** summary, text and bytesAt in Chinese (the page's language switch). */
  zh: { summary: string; text: string; bytesAt: string };
}

/**
 * One step of the path. `by` says who saw it: vxtun (its observation points) or the kernel (a packet
 * socket on a device, `vxtun trace --lab`: then point is the device, role what it is, place pod or node).
 */
export interface PathStep {
  node: string;
  point: string;
  verdict: string;
  t: number;
  dt?: number;
  express?: true;
  by: 'kernel' | 'vxtun';
  role?: HopRole;
  place?: 'pod' | 'node';
  direction?: 'in' | 'out';
}

const BACKLOG = 100;

/** The path from the merged hops (kernel and vxtun, in time order), all read on the lab host's clock. */
function hopPath(hops: Hop[], clockOf: NodeInfo, wall: WallClock): PathStep[] {
  const t0 = hops[0]?.t ?? 0;
  return hops.map((h) => ({
    node: h.node,
    point: h.point,
    verdict: h.verdict ?? 'ok',
    t: wall.epochMs(clockOf, h.t),
    dt: h.t - t0,
    by: h.by,
    ...(h.express ? { express: true as const } : {}),
    ...(h.by === 'kernel' ? { role: h.role, place: h.place, direction: h.direction } : {}),
  }));
}

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

export function toWebPacket(item: TraceItem, wall = new WallClock()): WebPacket {
  const journeys = item.kind === 'journey' ? [item.journey] : [item.sender, item.receiver];
  const first = journeys[0]!;
  const last = journeys[journeys.length - 1]!;
  const shown = wireBytes(journeys[0]!) ?? wireBytes(last);
  const at = shown ? journeys.find((j) => j.events.includes(shown.ev))?.node.publicIp ?? '?' : '';
  return {
    id: nextPacketId++,
    summary: item.kind === 'journey' ? summaryLine(item.journey) : storyHead(item),
    text: formatItem(item, { wall }),
    dropped: journeys.some((j) => j.dropped),
    verdict: last.verdict,
    path: item.hops
      ? hopPath(item.hops, first.node, wall)
      : journeys.flatMap((j) =>
          j.events.map((e): PathStep => {
            const dt = transitMs(first.node, first.events[0]?.t ?? e.t, j.node, e.t);
            return { node: j.node.publicIp, point: e.point, verdict: e.verdict, t: wall.epochMs(j.node, e.t), by: 'vxtun', ...(dt !== undefined ? { dt } : {}), ...(e.express ? { express: true as const } : {}) };
          }),
        ),
    bytes: shown ? shown.buf.toString('hex') : '',
    layers: shown ? dissect(shown.buf, shown.start) : [],
    bytesAt: shown ? `${shown.ev.point} at ${at}` : 'no bytes',
    item,
    zh: {
      summary: item.kind === 'journey' ? summaryLine(item.journey, { lang: 'zh' }) : storyHead(item, { lang: 'zh' }),
      text: formatItem(item, { wall, lang: 'zh' }),
      bytesAt: shown ? `${labels('zh').points[shown.ev.point] ?? shown.ev.point}，${labels('zh').node} ${at}` : '没有字节',
    },
  };
}

/**
 * Whether a trace item passes a filter of `vxtun trace`'s language: any of its journeys does, judged
 * by the same tests as on the node (the inner packet's bytes at its first point; peer and verdict).
 */
export function itemMatches(filter: TraceFilter, item: TraceItem): boolean {
  const inner = compileInnerFilter(filter);
  const journeys = item.kind === 'journey' ? [item.journey] : [item.sender, item.receiver];
  return journeys.some((j) => {
    if (!journeyMatches(filter, j)) return false;
    const ev = j.events.find((e) => e.bytes !== undefined);
    if (inner === undefined || ev === undefined) return true;
    const buf = Buffer.from(ev.bytes!, 'base64');
    return inner({ point: ev.point, direction: j.direction, buf, offset: 0, length: buf.length, verdict: ev.verdict });
  });
}

export interface WebView {
  url: string;
  push(item: TraceItem): void;
  close(): Promise<void>;
}

/** Names a browser may use for a server bound to `bound`: the address itself, localhost for a loopback one, any address for a wildcard one. */
function hostAllowed(hostname: string, bound: string, asked: string): boolean {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (bare === bound || bare === asked) return true;
  const loopback = bound === '::1' || bound.startsWith('127.');
  const wildcard = bound === '0.0.0.0' || bound === '::';
  if (bare === 'localhost') return loopback || wildcard;
  // A name could be anyone's (DNS rebinding); an address literal is what the browser was given.
  return wildcard && net.isIP(bare) !== 0;
}

/** `host[:port]` from a Host header or an Origin's authority; undefined if unreadable. */
function splitAuthority(authority: string): { hostname: string; port: number } | undefined {
  try {
    const u = new URL(`http://${authority}`);
    if (u.username || u.password || u.pathname !== '/' || u.search || u.hash) return undefined;
    return { hostname: u.hostname, port: u.port === '' ? 80 : Number(u.port) };
  } catch {
    return undefined;
  }
}

/** Why a request is refused (403), or undefined when it carries the token and names this server. */
export function refusal(req: { url?: string; headers: http.IncomingHttpHeaders }, o: { token: string; bound: string; asked: string; port: number }): string | undefined {
  const names = (a: { hostname: string; port: number } | undefined): boolean => a !== undefined && a.port === o.port && hostAllowed(a.hostname, o.bound, o.asked);
  const host = req.headers.host;
  if (host === undefined || !names(splitAuthority(host))) return `Host ${JSON.stringify(host ?? '')} is not this server`;
  const origin = req.headers.origin;
  if (origin !== undefined && !(origin.startsWith('http://') && names(splitAuthority(origin.slice('http://'.length))))) return `Origin ${JSON.stringify(origin)} is not this server`;
  const given = Buffer.from(new URL(req.url ?? '/', 'http://localhost').searchParams.get('token') ?? '');
  const expected = Buffer.from(o.token);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'missing or wrong token (use the URL vxtun trace printed)';
  return undefined;
}

export async function startWebView(o: { sockets: string[]; sources: TraceSource[]; host: string; port: number }): Promise<WebView> {
  const page = readFileSync(join(packageRoot(), 'web', 'trace.html'));
  const clients = new Map<http.ServerResponse, TraceFilter>();
  const backlog: WebPacket[] = [];
  const wall = new WallClock();

  const state = async (): Promise<unknown> => ({
    // The Chinese labels for what the page names itself: observation points, verdicts, reasons.
    labels: { zh: labels('zh') },
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

  const token = randomBytes(24).toString('hex');
  let access: { token: string; bound: string; asked: string; port: number } | undefined;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refused = access ? refusal(req, access) : 'not ready';
    if (refused !== undefined) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(`forbidden: ${refused}\n`);
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'" });
      res.end(page);
    } else if (url.pathname === '/api/state') {
      void state().then((s) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(s));
      });
    } else if (url.pathname === '/api/filter') {
      // The filter box checks its text here first: an EventSource cannot read an error reply.
      let reply: { filter: TraceFilter } | { error: string };
      try {
        reply = { filter: parseFilterText(url.searchParams.get('filter') ?? '') };
      } catch (err) {
        if (!(err instanceof FilterError)) throw err;
        reply = { error: err.message };
      }
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(reply));
    } else if (url.pathname === '/events') {
      let filter: TraceFilter;
      try {
        filter = parseFilterText(url.searchParams.get('filter') ?? '');
      } catch (err) {
        if (!(err instanceof FilterError)) throw err;
        res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': vxtun trace\n\n');
      for (const p of backlog) if (itemMatches(filter, p.item)) res.write(`data: ${JSON.stringify(p)}\n\n`);
      clients.set(res, filter);
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
  access = { token, bound: addr.address, asked: o.host, port: addr.port };
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/?token=${token}`,
    push(item) {
      const p = toWebPacket(item, wall);
      backlog.push(p);
      if (backlog.length > BACKLOG) backlog.shift();
      const line = `data: ${JSON.stringify(p)}\n\n`;
      for (const [c, filter] of clients) if (c.writableLength < 1 << 20 && itemMatches(filter, item)) c.write(line);
    },
    async close() {
      for (const c of clients.keys()) c.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
