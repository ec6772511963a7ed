/**
 * The local control socket: a root-only Unix socket that answers one JSON request per line
 * ({"cmd":"counters"} / {"cmd":"routes"} / {"cmd":"info"}) with one JSON line. `vxtun status`
 * and later `vxtun trace` talk to a running node through it.
 */
import net from 'node:net';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { controlSocketPathState } from './host.js';

export type Handler = (request: { cmd: string; [k: string]: unknown }) => unknown;

/**
 * A reply that keeps the connection open: `start` gets a line writer and returns the function
 * that stops the stream, called when the client disconnects (used by `vxtun trace`).
 */
export class StreamReply {
  constructor(readonly start: (send: (value: unknown) => boolean) => () => void) {}
}

/** Bytes a slow stream client may have queued before lines for it are dropped (never buffered without bound). */
const STREAM_HIGH_WATER = 4 * 1024 * 1024;

export class ControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  static async listen(path: string, handler: Handler): Promise<ControlServer> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (controlSocketPathState(path) === 'socket') {
      if (await isAlive(path)) throw new Error(`control socket ${path} is in use: is another vxtun running with this device?`);
      unlinkSync(path); // stale, from a process that was killed
    }
    const server = net.createServer((conn) => {
      let pending = '';
      let streaming = false;
      conn.setEncoding('utf8');
      conn.on('data', (chunk: string) => {
        if (streaming) return; // a stream takes no further requests
        pending += chunk;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          let reply: unknown;
          try {
            reply = handler(JSON.parse(line) as { cmd: string });
          } catch (err) {
            reply = { error: (err as Error).message };
          }
          if (reply instanceof StreamReply) {
            streaming = true;
            const stop = reply.start((value) => {
              if (conn.destroyed || conn.writableLength > STREAM_HIGH_WATER) return false;
              conn.write(`${JSON.stringify(value)}\n`);
              return true;
            });
            conn.once('close', stop);
            return;
          }
          conn.write(`${JSON.stringify(reply)}\n`);
        }
      });
      conn.on('error', () => conn.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const mask = process.umask(0o177);
      server.listen(path, () => {
        process.umask(mask);
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    return new ControlServer(server, path);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Sends one request and returns the parsed reply. */
export function controlRequest(path: string, request: { cmd: string }, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    let data = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`control socket ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${JSON.stringify(request)}\n`));
    c.on('data', (chunk: string) => {
      data += chunk;
      const nl = data.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        c.end();
        try {
          resolve(JSON.parse(data.slice(0, nl)));
        } catch (err) {
          reject(err as Error);
        }
      }
    });
    c.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // The code travels on, so a caller can say what it means (`vxtun status` with no node running).
      reject(Object.assign(new Error(`control socket ${path}: ${err.code ?? err.message}`), { code: err.code }));
    });
  });
}

/**
 * Opens a stream (e.g. {"cmd":"trace"}): calls onValue for every JSON line until close() or the
 * node goes away (onEnd). Rejects if the socket cannot be reached.
 */
export function controlStream(
  path: string,
  request: { cmd: string; [k: string]: unknown },
  onValue: (value: unknown) => void,
  onEnd: (err?: Error) => void = () => {},
): Promise<{ close(): void }> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    let data = '';
    let connected = false;
    c.setEncoding('utf8');
    c.on('connect', () => {
      connected = true;
      c.write(`${JSON.stringify(request)}\n`);
      resolve({ close: () => c.destroy() });
    });
    c.on('data', (chunk: string) => {
      data += chunk;
      let nl: number;
      while ((nl = data.indexOf('\n')) >= 0) {
        const line = data.slice(0, nl);
        data = data.slice(nl + 1);
        try {
          onValue(JSON.parse(line));
        } catch {
          // a line we cannot parse is skipped, never fatal
        }
      }
    });
    c.on('error', (err) => {
      const e = Object.assign(new Error(`control socket ${path}: ${(err as NodeJS.ErrnoException).code ?? err.message}`), { code: (err as NodeJS.ErrnoException).code });
      if (!connected) reject(e);
      else onEnd(e);
    });
    c.on('close', () => {
      if (connected) onEnd();
    });
  });
}
