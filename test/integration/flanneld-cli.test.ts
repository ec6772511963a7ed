/**
 * Issue 17 (a), (e), (f), (g) and the lifecycle of item 6, with `vxtun up` given flanneld's own
 * arguments only (no config file), against a real etcd in namespaces:
 *  - started before the network config exists, it says so once, waits, and comes up when it is
 *    written; /readyz answers 503 meanwhile and 200 once ready; sd_notify READY=1 reaches a test
 *    NOTIFY_SOCKET;
 *  - it joins the network with a kernel VXLAN node programmed from the registry as flanneld does:
 *    pings both ways, and /metrics counters move with them;
 *  - SIGTERM: STOPPING=1, exit 0, subnet.env kept; kill -9 with --ip-masq, then a start without it:
 *    the old masquerade rules are gone and subnet.env is rewritten;
 *  - two nodes in two namespaces of one host, neither with a control socket configured, both run
 *    and `vxtun status` in each namespace finds its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { createKernelFlannelNode, addKernelPeer } from '../../src/tools/lab/kernel-flannel.js';
import { addPod } from '../../src/tools/lab/pods.js';
import { waitFor, sleep } from '../../src/tools/lab/exec.js';
import { parseSubnetEnv } from '../../src/control/subnet-env.js';
import type { Netns } from '../../src/tools/lab/netns.js';
import { FlannelLab, PREFIX } from '../support/flannel-lab.js';
import { requirePrerequisites, ping } from '../support/integration.js';

const KERNEL_MAC = '0a:58:0a:f4:4d:00';
const KERNEL_SUBNET = '10.244.77.0/24';
const HEALTHZ = 8471;

/** A unix datagram receiver for sd_notify (Node has no unix datagram sockets): one line per message. */
const NOTIFY_RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(s.recv(4096).decode().replace("\\n", ";"), flush=True)
`;

interface Running {
  child: ChildProcess;
  out: string[];
  exit: Promise<number | null>;
}

function start(ns: Netns, args: string[], env: Record<string, string> = {}): Running {
  const child = ns.spawn([process.execPath, cliPath, 'up', ...args], { env: { ...process.env, ...env } });
  const out: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => out.push(d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => out.push(d));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, exit };
}

async function upLine(r: Running, timeoutMs = 30_000): Promise<void> {
  let exited: number | null | undefined;
  void r.exit.then((c) => (exited = c));
  await waitFor(
    () => {
      if (exited !== undefined) throw new Error(`vxtun exited with ${exited}: ${r.out.join('')}`);
      return r.out.join('').includes('"msg":"vxtun up"');
    },
    { timeoutMs, what: 'vxtun up' },
  );
}

async function httpGet(ns: Netns, path: string): Promise<{ code: string; body: string }> {
  const r = await ns.exec(['curl', '-s', '-w', '\n%{http_code}', `http://127.0.0.1:${HEALTHZ}${path}`]);
  const lines = r.stdout.split('\n');
  return { code: lines.at(-1)!, body: lines.slice(0, -1).join('\n').trim() };
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

async function masqRulesPresent(ns: Netns): Promise<boolean> {
  const r = await ns.exec(['iptables', '-t', 'nat', '-S', 'POSTROUTING']);
  return r.stdout.includes('FLANNEL-POSTRTG');
}

describe("vxtun up with flanneld's arguments only", () => {
  const lab = new FlannelLab();
  let n1: Netns;
  let n2: Netns;
  let node: Running;
  let notify: ChildProcess;
  const notified: string[] = [];
  let subnetEnv = '';
  let subnet = '';

  const flags = (): string[] => ['--etcd-endpoints=http://198.18.0.250:2379', '--iface=198.18.0.1', `--subnet-file=${subnetEnv}`, '--datapath=ts'];

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'etcd', 'etcdctl', 'curl', 'iptables', 'python3']);
    await lab.init();
    n1 = await lab.nodeNamespace(1);
    n2 = await lab.nodeNamespace(2);
    subnetEnv = join(lab.dir, 'n1', 'subnet.env');
    const socket = join(lab.dir, 'notify.sock');
    notify = lab.topology.track(
      (await import('node:child_process')).spawn('python3', ['-c', NOTIFY_RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] }),
    );
    notify.stdout!.setEncoding('utf8').on('data', (d: string) => notified.push(...d.split('\n').filter(Boolean)));
    await waitFor(() => notified.includes('listening'), { what: 'the notify receiver' });
    // No network config in etcd yet; the prefix from the environment, as flanneld reads it.
    node = start(n1, [...flags(), '--ip-masq', `--healthz-ip=127.0.0.1`, `--healthz-port=${HEALTHZ}`], { FLANNELD_ETCD_PREFIX: PREFIX, NOTIFY_SOCKET: socket });
  }, 60_000);

  afterAll(async () => {
    if (node && node.child.exitCode === null) {
      node.child.kill('SIGTERM');
      await node.exit;
    }
    await lab.destroy([]);
  }, 60_000);

  it('waits for a network config written after start (logged once; /readyz 503), then comes up (READY=1, /readyz 200)', async () => {
    await waitFor(() => node.out.join('').includes('network config missing: waiting for it'), { timeoutMs: 20_000, what: 'the waiting line' });
    await sleep(2500);
    expect(node.out.join('').split('network config missing').length - 1).toBe(1);
    expect(node.child.exitCode).toBeNull();
    const waiting = await httpGet(n1, '/readyz');
    expect(waiting.code).toBe('503');
    expect(waiting.body).toBe('not ready: waiting for registry, device, routes, masquerade, subnet.env');
    expect((await httpGet(n1, '/healthz')).code).toBe('200');
    expect(notified).not.toContain('READY=1');

    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    await upLine(node);
    await waitFor(async () => (await httpGet(n1, '/readyz')).code === '200', { timeoutMs: 5000, what: '/readyz 200' });
    await waitFor(() => notified.includes('READY=1'), { timeoutMs: 5000, what: 'READY=1' });
    const env = parseSubnetEnv(readFileSync(subnetEnv, 'utf8'));
    expect(env).toMatchObject({ FLANNEL_NETWORK: '10.244.0.0/16', FLANNEL_IPMASQ: 'true' });
    subnet = env.FLANNEL_SUBNET!.replace(/\.1\//, '.0/');
    expect(await masqRulesPresent(n1)).toBe(true);
  });

  it('exchanges pings with a kernel VXLAN node programmed from the registry; /metrics counters move', async () => {
    await createKernelFlannelNode(n2, { publicIp: '198.18.0.2', subnet: KERNEL_SUBNET, vtepMac: KERNEL_MAC });
    const kpod = await addPod(n2, { name: 'kpod', gatewayCidr: '10.244.77.1/24', podIp: '10.244.77.2/24' });
    const base = subnet.replace(/\.0\/24$/, '');
    const vpod = await addPod(n1, { name: 'vpod', gatewayCidr: `${base}.1/24`, podIp: `${base}.2/24` });
    await lab.etcd.etcdctl(['put', `${PREFIX}/subnets/10.244.77.0-24`, JSON.stringify({ PublicIP: '198.18.0.2', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: KERNEL_MAC } })]);
    const lease = JSON.parse((await lab.etcd.etcdctl(['get', `${PREFIX}/subnets/${subnet.replace('/', '-')}`, '--print-value-only'])).stdout.trim()) as { PublicIP: string; BackendData: { VtepMAC: string } };
    expect(lease.PublicIP).toBe('198.18.0.1');
    await addKernelPeer(n2, { subnet, publicIp: lease.PublicIP, vtepMac: lease.BackendData.VtepMAC });
    await waitFor(() => node.out.join('').includes('10.244.77.0/24@198.18.0.2'), { timeoutMs: 5000, what: 'the kernel node in the routes' });

    const before = (await httpGet(n1, '/metrics')).body;
    expect((await ping(vpod, '10.244.77.2', ['-c', '5'])).code).toBe(0);
    expect((await ping(kpod, `${base}.2`, ['-c', '5'])).code).toBe(0);
    const after = (await httpGet(n1, '/metrics')).body;
    // 5 + 5 requests out and 5 + 5 replies in, at least (ARP/NDP may add a few).
    expect(metric(after, 'vxtun_packets_total', 'direction="tx"') - metric(before, 'vxtun_packets_total', 'direction="tx"')).toBeGreaterThanOrEqual(10);
    expect(metric(after, 'vxtun_packets_total', 'direction="rx"') - metric(before, 'vxtun_packets_total', 'direction="rx"')).toBeGreaterThanOrEqual(10);
    expect(metric(after, 'vxtun_bytes_total', 'direction="tx"')).toBeGreaterThan(metric(before, 'vxtun_bytes_total', 'direction="tx"') + 10 * 84 - 1);
    expect(metric(after, 'vxtun_routes', '')).toBe(1);
    expect(metric(after, 'vxtun_ready', '')).toBe(1);
    expect(after).toContain('process_cpu_seconds_total');
    expect(after).toMatch(/vxtun_feature_enabled\{feature="tunOffload"\} [01]/);
  });

  it('SIGTERM: STOPPING=1, exit 0, subnet.env kept', async () => {
    const text = readFileSync(subnetEnv, 'utf8');
    node.child.kill('SIGTERM');
    expect(await node.exit).toBe(0);
    expect(notified).toContain('STOPPING=1');
    expect(readFileSync(subnetEnv, 'utf8')).toBe(text);
    // A clean stop with --ip-masq takes its rules away.
    expect(await masqRulesPresent(n1)).toBe(false);
  });

  it('after kill -9 with --ip-masq, a start without it removes the old rules and rewrites subnet.env', async () => {
    node = start(n1, [...flags(), '--ip-masq']);
    await upLine(node);
    expect(await masqRulesPresent(n1)).toBe(true);
    node.child.kill('SIGKILL');
    await node.exit;
    expect(await masqRulesPresent(n1)).toBe(true);
    rmSync(subnetEnv);
    node = start(n1, flags());
    await upLine(node);
    expect(await masqRulesPresent(n1)).toBe(false);
    expect(node.out.join('')).toContain('masquerade rules of an earlier run removed');
    expect(parseSubnetEnv(readFileSync(subnetEnv, 'utf8'))).toMatchObject({ FLANNEL_SUBNET: subnet.replace(/\.0\//, '.1/'), FLANNEL_IPMASQ: 'false' });
  });

  it('two nodes in two namespaces, no control socket configured: both run, each status finds its own', async () => {
    const n3 = await lab.nodeNamespace(3);
    const other = start(n3, ['--etcd-endpoints=http://198.18.0.250:2379', '--iface=eth0', `--subnet-file=${join(lab.dir, 'n3', 'subnet.env')}`, '--datapath=ts']);
    try {
      await upLine(other);
      expect(node.child.exitCode).toBeNull();
      const mine = JSON.parse((await n1.execOk([process.execPath, cliPath, 'status', '--json'])).stdout) as { info: { subnet: string; publicIp: string } };
      const theirs = JSON.parse((await n3.execOk([process.execPath, cliPath, 'status', '--json'])).stdout) as { info: { subnet: string; publicIp: string } };
      expect(mine.info).toMatchObject({ subnet, publicIp: '198.18.0.1' });
      expect(theirs.info.publicIp).toBe('198.18.0.3');
      expect(theirs.info.subnet).not.toBe(subnet);
      expect(existsSync(join(lab.dir, 'n3', 'subnet.env'))).toBe(true);
    } finally {
      other.child.kill('SIGTERM');
      await other.exit;
    }
  });
});
