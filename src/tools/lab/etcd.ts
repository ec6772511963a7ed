/**
 * A real etcd (Debian's etcd-server, 3.4) inside a lab namespace, on an underlay address, with the v2
 * API enabled and optionally TLS with client certificates; and the openssl-made certificates for it.
 * Tests drive it with the real etcdctl, as an operator would.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { type Netns, processOutput } from './netns.js';
import { runOk, waitFor } from './exec.js';

export interface EtcdTls {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: what a misconfigured node trusts. */
  otherCa: string;
}

/** A CA, a server certificate for `ip`, a client certificate, and an unrelated CA, made with openssl. */
export async function makeEtcdCertificates(dir: string, ip: string): Promise<EtcdTls> {
  mkdirSync(dir, { recursive: true });
  const f = (n: string): string => join(dir, n);
  const ssl = (args: string[]): Promise<unknown> => runOk(['openssl', ...args]);
  for (const ca of ['ca', 'other-ca']) {
    await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=vxtun-test-${ca}`, '-keyout', f(`${ca}.key`), '-out', f(`${ca}.crt`)]);
  }
  writeFileSync(f('server.ext'), `subjectAltName=IP:${ip},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`);
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=vxtun-test-${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`)]);
    await ssl(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${who}.ext`), '-out', f(`${who}.crt`)]);
  }
  return { ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key'), otherCa: f('other-ca.crt') };
}

export class EtcdServer {
  private child: ChildProcess | undefined;

  constructor(
    readonly ns: Netns,
    readonly ip: string,
    readonly dataDir: string,
    readonly tls?: EtcdTls,
  ) {}

  get endpoint(): string {
    return `${this.tls ? 'https' : 'http'}://${this.ip}:2379`;
  }

  static async start(ns: Netns, ip: string, dataDir: string, tls?: EtcdTls): Promise<EtcdServer> {
    const e = new EtcdServer(ns, ip, dataDir, tls);
    await e.start();
    return e;
  }

  async start(): Promise<void> {
    const tlsArgs = this.tls ? ['--cert-file', this.tls.serverCert, '--key-file', this.tls.serverKey, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : [];
    this.child = this.ns.spawn([
      'etcd', '--name', 'lab', '--data-dir', this.dataDir, '--enable-v2',
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'lab=http://127.0.0.1:2380', '--log-level', 'warn', ...tlsArgs,
    ]);
    const child = this.child;
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`etcd exited: ${processOutput(child)}`);
      return (await this.etcdctl(['endpoint', 'health'], false)).code === 0;
    }, { timeoutMs: 20_000, intervalMs: 200, what: 'etcd healthy' });
  }

  /** SIGTERM and wait: the data directory stays, so start() brings the same keys back. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  /** etcdctl with the v3 API (or v2 with api: 'v2'); rejects on failure when `check`. */
  async etcdctl(args: string[], check = true, api: 'v3' | 'v2' = 'v3'): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const t = this.tls;
    const tlsArgs = t ? (api === 'v3' ? ['--cacert', t.ca, '--cert', t.clientCert, '--key', t.clientKey] : ['--ca-file', t.ca, '--cert-file', t.clientCert, '--key-file', t.clientKey]) : [];
    const r = await this.ns.exec(['env', `ETCDCTL_API=${api === 'v3' ? 3 : 2}`, 'etcdctl', api === 'v3' ? '--endpoints' : '--endpoints', this.endpoint, ...tlsArgs, ...args], { timeoutMs: 10_000 });
    if (check && r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }
}
