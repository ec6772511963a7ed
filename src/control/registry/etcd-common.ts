/**
 * What the etcd registries (etcd-v3.ts, etcd-v2.ts) share: their settings, reading the TLS files,
 * and a probe that tells a wrong CA or a refused client certificate (fatal: the operator's to fix)
 * from an endpoint that is not answering yet (transient: retried) before any etcd call is made.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { RegistryError } from './registry.js';

export interface EtcdTlsFiles {
  ca: string;
  cert?: string;
  key?: string;
}

export interface EtcdSettings {
  endpoints: string[];
  prefix: string;
  tls?: EtcdTlsFiles;
  /** Basic auth (flanneld's --etcd-username/--etcd-password). */
  auth?: { username: string; password: string };
  /** Per-request deadline (ms). */
  requestTimeoutMs?: number;
}

export interface EtcdTlsMaterial {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads the CA, certificate and key files; a missing or unreadable one is fatal and names its field. */
export function readTlsMaterial(files: EtcdTlsFiles | undefined): EtcdTlsMaterial | undefined {
  if (!files) return undefined;
  const read = (field: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new RegistryError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code ?? (err as Error).message}`, false, `registry.tls.${field}`);
    }
  };
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new RegistryError(`a client certificate needs both cert and key (got only ${files.cert ? 'cert' : 'key'})`, false, files.cert ? 'registry.tls.key' : 'registry.tls.cert');
  }
  return {
    ca: read('ca', files.ca),
    ...(files.cert ? { cert: read('cert', files.cert) } : {}),
    ...(files.key ? { key: read('key', files.key) } : {}),
  };
}

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN', 'EPIPE']);

/**
 * Connects to one endpoint (TCP, and TLS when it is https) and hangs up. Resolves when etcd would
 * accept us; rejects with a RegistryError whose `transient` says whether retrying can help.
 */
export function probeEndpoint(endpoint: string, material: EtcdTlsMaterial | undefined, timeoutMs = 3000): Promise<void> {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return Promise.reject(new RegistryError(`${JSON.stringify(endpoint)} is not a URL (http://host:port or https://host:port)`, false, 'registry.endpoints'));
  }
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') {
    return Promise.reject(new RegistryError(`${JSON.stringify(endpoint)}: scheme must be http or https`, false, 'registry.endpoints'));
  }
  if (secure && !material) {
    return Promise.reject(new RegistryError(`${endpoint} is https but registry.tls is not set`, false, 'registry.tls'));
  }
  const host = url.hostname;
  const port = Number(url.port || (secure ? 443 : 80));
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      socket.destroy();
      const code = err.code ?? '';
      if (TRANSIENT_CODES.has(code)) {
        reject(new RegistryError(`cannot reach etcd at ${endpoint}: ${code}`, true, 'registry.endpoints'));
      } else if (/ALERT/.test(code)) {
        // The server's alert: it wants a client certificate it trusts (none, or signed by another CA).
        reject(new RegistryError(`etcd at ${endpoint} refused our client certificate (${code})`, false, 'registry.tls.cert'));
      } else if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/.test(code)) {
        reject(new RegistryError(`etcd at ${endpoint} presents a certificate the CA does not verify (${code})`, false, 'registry.tls.ca'));
      } else if (/alert|handshake|certificate/i.test(err.message)) {
        reject(new RegistryError(`etcd at ${endpoint} refused the TLS handshake (${err.message.split('\n')[0]})`, false, 'registry.tls.cert'));
      } else {
        reject(new RegistryError(`cannot reach etcd at ${endpoint}: ${code || err.message}`, true, 'registry.endpoints'));
      }
    };
    const timer = setTimeout(() => onError(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      socket.end();
      socket.destroy();
      resolve();
    };
    const socket: net.Socket = secure
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ca: material!.ca, cert: material!.cert, key: material!.key, ALPNProtocols: ['h2'] }, () => {
          // A server that wants a client certificate rejects a missing or wrong one after the
          // handshake (TLS 1.3): wait a moment for its alert before calling the endpoint good.
          socket.once('data', () => done());
          setTimeout(done, 200);
        })
      : net.connect({ host, port }, done);
    socket.once('error', (err) => {
      clearTimeout(timer);
      onError(err);
    });
  });
}

/** Probes the endpoints in order; resolves at the first good one, else rejects with the most telling error. */
export async function probeEndpoints(endpoints: string[], material: EtcdTlsMaterial | undefined): Promise<void> {
  let first: RegistryError | undefined;
  for (const e of endpoints) {
    try {
      await probeEndpoint(e, material);
      return;
    } catch (err) {
      const r = err as RegistryError;
      if (!r.transient) throw r;
      first ??= r;
    }
  }
  throw first ?? new RegistryError('no endpoints', false, 'registry.endpoints');
}

export function joinKey(prefix: string, ...parts: string[]): string {
  return [prefix.replace(/\/+$/, ''), ...parts].join('/');
}
