/**
 * Every `vxtun bench` case, built for real in namespaces: its verify (pings pod to pod while the
 * client node's underlay port is captured, tshark finding each echo in the encapsulation the case
 * claims) passes, a MiB crosses pod to pod with the same sha256 at both ends, its dataplane
 * processes are the ones it names, and destroying it leaves no namespace and no process. A case
 * that needs a kernel feature this kernel lacks (geneve, ipip, fou, wireguard) must refuse with
 * UnsupportedCase "unavailable: ..." — checked against an independent probe, never skipped.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { BENCH_CASES, UnsupportedCase, type BenchCase } from '../../src/tools/bench/cases.js';
import type { CaseEnv } from '../../src/tools/bench/built-case.js';
import { verifyWire, WIRE } from '../../src/tools/bench/verify-wire.js';
import { Topology } from '../../src/tools/lab/netns.js';
import { run } from '../../src/tools/lab/exec.js';
import { Cluster } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites, tcpTransfer } from '../support/integration.js';

const MIB = 1 << 20;
/** Every namespace this test process makes starts with this (Topology names them vxt-<pid base 36><random>). */
const ourPrefix = `vxt-${process.pid.toString(36)}`;

/** The kernel feature a case needs, as an independent probe in a namespace of its own. */
const KERNEL_FEATURE: Record<string, string[]> = {
  geneve: ['ip', 'link', 'add', 'probe0', 'type', 'geneve', 'id', '1', 'remote', '198.18.0.2'],
  ipip: ['ip', 'link', 'add', 'probe0', 'type', 'ipip'],
  fou: ['ip', 'fou', 'add', 'port', '5555', 'ipproto', '4'],
  wireguard: ['ip', 'link', 'add', 'probe0', 'type', 'wireguard'],
};

async function kernelHas(cmd: string[]): Promise<boolean> {
  const topo = new Topology();
  try {
    const ns = await topo.netns('probe');
    return (await ns.exec(cmd)).code === 0;
  } finally {
    await topo.destroy();
  }
}

async function ourNamespaces(): Promise<string[]> {
  return (await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(ourPrefix));
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`);
const comm = (pid: number): string => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

/** What each case's dataplane processes must be (by /proc/<pid>/comm); kernel dataplanes have none. */
const DATAPLANE_COMM: Record<string, RegExp> = {
  'ovs-userspace': /^ovs-vswitchd$/,
  'wireguard-go': /^wireguard-go$/,
  'udp-proxy-c': /udp.?proxy/,
};

beforeAll(() => {
  requirePrerequisites(['ip', 'bridge', 'ping', 'tcpdump', 'tshark', 'ethtool', 'gcc', 'wg', 'wireguard-go', 'ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-ofctl', 'ovs-appctl']);
});

describe.each(BENCH_CASES.map((c) => [c.id, c] as [string, BenchCase]))('bench case %s', (id, bc) => {
  // OVS on the link wire (every frame within the MTU, as a NIC gives it); the rest as veth gives it.
  const env: CaseEnv = { wire: id === 'ovs-userspace' ? 'link' : 'veth', mtu: 1500 };

  it('verifies its encapsulation on the underlay, carries a MiB pod to pod, and leaves nothing behind', async () => {
    const probe = KERNEL_FEATURE[id];
    if (probe && !(await kernelHas(probe))) {
      const err = await bc.build(() => {}, env).then(
        () => new Error('built'),
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(UnsupportedCase);
      expect(err.message).toMatch(/^unavailable: this kernel \(\S+\) has no /);
      expect(await ourNamespaces()).toEqual([]);
      return;
    }
    const built = await bc.build(() => {}, env);
    const pids = built.dataplane.map((d) => d.pid);
    try {
      expect(built.verify, 'every case verifies its wire').toBeDefined();
      await built.verify!();
      const t = await tcpTransfer(built.client, built.server, built.serverIp, MIB);
      expect(t.received.bytes).toBe(MIB);
      expect(t.received.sha256).toBe(t.sent.sha256);
      for (const pid of pids) {
        expect(alive(pid)).toBe(true);
        if (DATAPLANE_COMM[id]) expect(comm(pid)).toMatch(DATAPLANE_COMM[id]!);
      }
      if (DATAPLANE_COMM[id]) expect(pids).toHaveLength(2);
    } finally {
      await built.destroy();
    }
    expect(await ourNamespaces()).toEqual([]);
    for (const pid of pids) expect(alive(pid), `dataplane pid ${pid} still running`).toBe(false);
    if (id === 'wireguard-go') expect((await run(['sh', '-c', `ls /var/run/wireguard/ 2>/dev/null | grep '^wg${built.namespacePrefix.slice(4)}' || true`])).stdout).toBe('');
  }, 90_000);
});

describe('verifyWire', () => {
  it('fails a case whose wire is not what it claims, naming both', async () => {
    const topology = new Topology();
    try {
      const cluster = await Cluster.build(topology, { kinds: ['kernel', 'kernel'] });
      const [a, b] = [cluster.node(1), cluster.node(2)];
      const claim = { underlay: cluster.underlay, clientNode: a.ns, client: a.pod, serverIp: b.podIp };
      await verifyWire({ ...claim, stack: WIRE.vxlan() });
      await expect(verifyWire({ ...claim, stack: WIRE.geneve() })).rejects.toThrow(/expected 3 echo requests and replies in Geneve \(udp 6081\) on underlay port p1, saw 0 and 0 \(stacks seen: [^)]*eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp/);
      await expect(verifyWire({ ...claim, stack: WIRE.wireguard() })).rejects.toThrow(/transport-data messages/);
    } finally {
      await topology.destroy();
    }
  }, 60_000);

  it('fails when the pings do not come back', async () => {
    const topology = new Topology();
    try {
      const cluster = await Cluster.build(topology, { kinds: ['kernel', 'kernel'] });
      await cluster.node(2).pod.ip(['link', 'set', 'eth0', 'down']);
      await expect(verifyWire({ underlay: cluster.underlay, clientNode: cluster.node(1).ns, client: cluster.node(1).pod, serverIp: cluster.node(2).podIp, stack: WIRE.vxlan() })).rejects.toThrow(
        /^verify: 0 of 3 pings from the client pod to 10\.244\.2\.2 came back$/,
      );
    } finally {
      await topology.destroy();
    }
  }, 60_000);
});
