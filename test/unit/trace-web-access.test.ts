/**
 * The trace web view serves whole packets: only to a request that carries the token from the URL
 * it printed, and names this server by address in Host (and Origin, when a browser sends one),
 * so neither another local user nor a web page reaching it by DNS rebinding can read it.
 * The server runs on loopback with no nodes attached; requests are written by hand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { startWebView, refusal, type WebView } from '../../src/trace/web.js';
import { labels } from '../../src/trace/i18n.js';

interface Answer {
  status: number;
  type: string;
  body: string;
}

/** One GET with exactly these headers; an event stream is cut after its first bytes. */
function get(port: number, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, setHost: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      const answer = (): Answer => ({ status: res.statusCode!, type: String(res.headers['content-type']), body });
      res.on('data', (d: string) => {
        body += d;
        if (res.headers['content-type'] !== 'text/event-stream') return;
        resolve(answer());
        req.destroy();
      });
      res.on('end', () => resolve(answer()));
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}

describe('trace web view access', () => {
  let web: WebView;
  let port = 0;
  let token = '';
  let host = '';

  beforeAll(async () => {
    web = await startWebView({ sockets: [], sources: [], host: '127.0.0.1', port: 0 });
    const u = new URL(web.url);
    port = Number(u.port);
    token = u.searchParams.get('token') ?? '';
    host = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await web.close();
  });

  it('prints a URL on 127.0.0.1 with a long random token', async () => {
    expect(web.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{48}$/);
    const other = await startWebView({ sockets: [], sources: [], host: '127.0.0.1', port: 0 });
    expect(new URL(other.url).searchParams.get('token')).not.toBe(token);
    await other.close();
  });

  it('serves the page, the state and the event stream with the token and its own Host', async () => {
    const page = await get(port, `/?token=${token}`, { host });
    expect([page.status, page.type]).toEqual([200, 'text/html; charset=utf-8']);
    expect(page.body).toContain('<html');
    const state = await get(port, `/api/state?token=${token}`, { host: `localhost:${port}`, origin: `http://127.0.0.1:${port}` });
    expect([state.status, JSON.parse(state.body)]).toEqual([200, { nodes: [], labels: { zh: labels('zh') } }]);
    const events = await get(port, `/events?token=${token}`, { host });
    expect([events.status, events.type]).toEqual([200, 'text/event-stream']);
    expect(events.body).toContain(': vxtun trace');
  });

  it.each([
    ['no token', '/', {}],
    ['no token, event stream', '/events', {}],
    ['no token, state', '/api/state', {}],
    ['a wrong token', '/?token=0000', {}],
    ['a token of the right length but wrong', `/?token=${'0'.repeat(48)}`, {}],
  ])('refuses a request with %s (403)', async (_what, path, headers) => {
    const r = await get(port, path, { host, ...headers });
    expect(r.status).toBe(403);
    expect(r.body).toBe('forbidden: missing or wrong token (use the URL vxtun trace printed)\n');
  });

  it.each([
    ['a foreign Host (DNS rebinding)', { host: 'attacker.example:PORT' }, 'Host "attacker.example:PORT" is not this server'],
    ['a foreign Host on the right address but another port', { host: '127.0.0.1:1' }, 'Host "127.0.0.1:1" is not this server'],
    ['a foreign Origin', { host: '127.0.0.1:PORT', origin: 'http://attacker.example:PORT' }, 'Origin "http://attacker.example:PORT" is not this server'],
    ['an opaque Origin', { host: '127.0.0.1:PORT', origin: 'null' }, 'Origin "null" is not this server'],
  ])('refuses a request with the token but %s (403)', async (_what, headers, reason) => {
    const h = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.replace('PORT', String(port))]));
    for (const path of [`/?token=${token}`, `/events?token=${token}`]) {
      const r = await get(port, path, h);
      expect(r.status).toBe(403);
      expect(r.body).toBe(`forbidden: ${reason.replaceAll('PORT', String(port))}\n`);
    }
  });

  it('bound to a wildcard address, accepts any address literal but never a name other than localhost', () => {
    const o = { token: 't', bound: '0.0.0.0', asked: '0.0.0.0', port: 8470 };
    const req = (h: string): { url: string; headers: http.IncomingHttpHeaders } => ({ url: '/?token=t', headers: { host: h } });
    expect(refusal(req('198.18.0.1:8470'), o)).toBeUndefined();
    expect(refusal(req('[2001:db8::1]:8470'), { ...o, bound: '::', asked: '::' })).toBeUndefined();
    expect(refusal(req('localhost:8470'), o)).toBeUndefined();
    expect(refusal(req('rebind.example:8470'), o)).toBe('Host "rebind.example:8470" is not this server');
    // bound to one address, another address is refused
    expect(refusal(req('198.18.0.2:8470'), { ...o, bound: '198.18.0.1', asked: '198.18.0.1' })).toBe('Host "198.18.0.2:8470" is not this server');
  });
});
