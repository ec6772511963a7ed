/**
 * Issue 5, done-when: etcd with TLS client certificates works; a wrong CA, a missing key file, an
 * unreachable endpoint and a malformed `<prefix>/config` each give one clear line and exit 2, with
 * nothing left on the host. And --ip-masq installs flannel's masquerade rules and removes them on exit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { FlannelLab, PREFIX, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites } from '../support/integration.js';
import { writeFileSync } from 'node:fs';

describe('flannel over etcd with TLS client certificates', () => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];
  let n = 0;

  beforeAll(async () => {
    requirePrerequisites(['ip', 'etcd', 'etcdctl', 'openssl', 'iptables']);
    await lab.init({ tls: true });
    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    await lab.putNetworkConfig('{"Network": "10.244.0.0/16", "Backend": ', 'v3', '/broken/network');
    await lab.putNetworkConfig({ Network: '10.244.0.0/30' }, 'v3', '/small/network');
  }, 60_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  /** Runs `vxtun up` to completion on node 1 with this registry config; returns exit code and stderr. */
  async function refusedUp(registry: Record<string, unknown>, extraArgs: string[] = []): Promise<{ code: number | null; stderr: string }> {
    const ns = await lab.nodeNamespace(1);
    const file = join(lab.dir, `refused-${n++}.json`);
    writeFileSync(file, JSON.stringify({ publicIp: '198.18.0.1', registry, subnetEnv: join(lab.dir, 'refused.env'), controlSocket: join(lab.dir, 'refused.sock') }));
    const r = await ns.exec([process.execPath, cliPath, 'up', '--config', file, ...extraArgs], { timeoutMs: 30_000 });
    return { code: r.code, stderr: r.stderr };
  }

  async function nothingLeft(): Promise<void> {
    const ns = await lab.nodeNamespace(1);
    const links = (JSON.parse((await ns.ip(['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
    expect(links).toEqual(['eth0', 'lo']);
    expect((await ns.ip(['route', 'show', '10.244.0.0/16'])).stdout).toBe('');
    expect(existsSync(join(lab.dir, 'refused.env'))).toBe(false);
    expect((await ns.exec(['iptables', '-t', 'nat', '-S'])).stdout).not.toContain('FLANNEL');
  }

  it('with the right CA and client certificate the node joins, its lease is in etcd, and --ip-masq rules come and go', async () => {
    const node = await lab.startReadyNode(2, 'v3', { ipMasq: true });
    nodes.push(node);
    const info = await lab.info(node);
    const lease = (await lab.etcd.etcdctl(['get', `${PREFIX}/subnets/${info.subnet.replace('/', '-')}`, '--print-value-only'])).stdout;
    expect(JSON.parse(lease).PublicIP).toBe('198.18.0.2');
    const rules = (await node.ns.exec(['iptables', '-t', 'nat', '-S'])).stdout;
    expect(rules).toContain('-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
    expect(rules).toContain(`-A FLANNEL-POSTRTG -s ${info.subnet} -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN`);
    expect(rules).toMatch(/-A FLANNEL-POSTRTG -s 10\.244\.0\.0\/16 ! -d 224\.0\.0\.0\/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully/);
    expect(await node.vxtun.stop()).toBe(0);
    expect((await node.ns.exec(['iptables', '-t', 'nat', '-S'])).stdout).not.toContain('FLANNEL');
  });

  const t = (): NonNullable<typeof lab.tls> => lab.tls!;
  const cases: Array<[string, () => Record<string, unknown>, string[]]> = [
    ['wrong CA', () => lab.registryConfig('v3', { tls: { ca: t().otherCa, cert: t().clientCert, key: t().clientKey } }), ['registry.tls.ca', 'does not verify']],
    ['missing key file', () => lab.registryConfig('v3', { tls: { ca: t().ca, cert: t().clientCert, key: join(lab.dir, 'nope.key') } }), ['registry.tls.key', 'nope.key', 'no such file']],
    ['no client certificate', () => lab.registryConfig('v3', { tls: { ca: t().ca } }), ['registry.tls.cert', 'refused']],
    ['unreachable endpoint', () => lab.registryConfig('v3', { endpoints: ['https://198.18.0.251:2379'], startupTimeoutSeconds: 2 }), ['registry.endpoints', '198.18.0.251', 'gave up']],
    ['malformed <prefix>/config', () => lab.registryConfig('v3', { prefix: '/broken/network' }), ['/broken/network/config', 'not valid JSON']],
    ['network too small in <prefix>/config', () => lab.registryConfig('v3', { prefix: '/small/network' }), ['/small/network/config', 'Network', '10.244.0.0/30']],
    // A missing config is waited for, as flanneld waits (flanneld-cli.test.ts); the start-up deadline still ends the wait.
    ['absent <prefix>/config, past the start-up deadline', () => lab.registryConfig('v3', { prefix: '/absent/network', startupTimeoutSeconds: 2 }), ['/absent/network/config', 'not found', 'gave up after 2 s']],
    ['v2 API, wrong CA', () => lab.registryConfig('v2', { tls: { ca: t().otherCa, cert: t().clientCert, key: t().clientKey } }), ['registry.tls.ca']],
    ['v2 API, absent <prefix>/config, past the start-up deadline', () => lab.registryConfig('v2', { prefix: '/absent/network', startupTimeoutSeconds: 2 }), ['/absent/network/config', 'not found', 'gave up after 2 s']],
  ];
  for (const [what, registry, mention] of cases) {
    it(`${what}: one line naming it, exit 2, nothing left`, async () => {
      const r = await refusedUp(registry(), ['--ip-masq']);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      for (const m of mention) expect(lines[0]).toContain(m);
      await nothingLeft();
    });
  }

  it('an endpoint that does not answer is retried (no timeout set); SIGTERM during the retries exits 0, nothing left', async () => {
    const ns = await lab.nodeNamespace(1);
    const file = join(lab.dir, 'retrying.json');
    writeFileSync(file, JSON.stringify({ publicIp: '198.18.0.1', registry: lab.registryConfig('v3', { endpoints: ['https://198.18.0.251:2379'] }), subnetEnv: join(lab.dir, 'refused.env'), controlSocket: join(lab.dir, 'refused.sock') }));
    const child = ns.spawn([process.execPath, cliPath, 'up', '--config', file]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const { waitFor } = await import('../../src/tools/lab/exec.js');
    await waitFor(() => out.includes('registry unreachable, retrying'), { timeoutMs: 15_000, what: 'a retry log line' });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await nothingLeft();
  }, 30_000);
});
