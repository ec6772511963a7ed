/**
 * Every `vxtun bench` case, built for real in namespaces: its verify (pings pod to pod while the
 * client node's underlay port is captured, tshark finding each echo in the encapsulation the case
 * claims) passes, a MiB crosses pod to pod with the same sha256 at both ends, its dataplane
 * processes are the ones it names, and destroying it leaves no namespace and no process. A case
 * that needs a kernel feature this kernel lacks (geneve, ipip, fou, wireguard) must refuse with
 * UnsupportedCase "unavailable: ..." — checked against an independent probe, never skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_CASES, UnsupportedCase, type BenchCase } from '../../src/tools/bench/cases.js';
import type { CaseEnv } from '../../src/tools/bench/built-case.js';
import { checkWire, verifyWire, WIRE, type WireStack } from '../../src/tools/bench/verify-wire.js';
import { Topology } from '../../src/tools/lab/netns.js';
import { run } from '../../src/tools/lab/exec.js';
import { Cluster } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites, tcpTransfer, withEnv } from '../support/integration.js';

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

// Every case on the wire `vxtun bench` uses by default (veth); OVS also on the link wire (every frame
// within the MTU, as a NIC gives it), where its userspace datapath sees what it would see on hardware.
const RUNS: [string, BenchCase, CaseEnv][] = [
  ...BENCH_CASES.map((c): [string, BenchCase, CaseEnv] => [`${c.id} (veth wire)`, c, { wire: 'veth', mtu: 1500 }]),
  ['ovs-userspace (link wire)', BENCH_CASES.find((c) => c.id === 'ovs-userspace')!, { wire: 'link', mtu: 1500 }],
];

describe.each(RUNS)('bench case %s', (_label, bc, env) => {
  const id = bc.id;

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

describe('a case whose programs are not installed', () => {
  it.each([
    ['ovs-userspace', /^unavailable: ovsdb-tool, ovsdb-server, ovs-vswitchd, ovs-vsctl, ovs-ofctl, ovs-appctl not installed \(Debian package openvswitch-switch\)$/],
    ['wireguard-go', /^unavailable: wg not installed \(Debian package wireguard-tools\)$/],
  ])('%s is unsupported, naming the package', async (id, message) => {
    const bc = BENCH_CASES.find((c) => c.id === id)!;
    const err = await withEnv({ PATH: '/nonexistent' }, () => bc.build(() => {}, { wire: 'veth', mtu: 1500 }).then(() => new Error('built'), (e: unknown) => e as Error));
    expect(err).toBeInstanceOf(UnsupportedCase);
    expect(err.message).toMatch(message);
    expect(await ourNamespaces()).toEqual([]);
  });
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

// Frames as the kernel's tunnels put them on the wire, for the stacks this kernel cannot make: each
// claimed stack must be what tshark names such frames, and only those.
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 255]);
const ip4 = (a: string): Buffer => Buffer.from(a.split('.').map(Number));
function sum16(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}
function ipv4(src: string, dst: string, proto: number, payload: Buffer): Buffer {
  const h = Buffer.concat([Buffer.from([0x45, 0]), u16(20 + payload.length), u16(0), u16(0x4000), Buffer.from([64, proto]), u16(0), ip4(src), ip4(dst)]);
  h.writeUInt16BE(sum16(h), 10);
  return Buffer.concat([h, payload]);
}
function icmpEcho(type: 8 | 0, seq: number): Buffer {
  const m = Buffer.concat([Buffer.from([type, 0]), u16(0), u16(0x1234), u16(seq), Buffer.alloc(16, 0x61)]);
  m.writeUInt16BE(sum16(m), 2);
  return m;
}
const udp = (sport: number, dport: number, payload: Buffer): Buffer => Buffer.concat([u16(sport), u16(dport), u16(8 + payload.length), u16(0), payload]);
const eth = (payload: Buffer, etherType = 0x0800): Buffer => Buffer.concat([Buffer.from('0a580af402000a580af40100', 'hex'), u16(etherType), payload]);
function pcap(frames: Buffer[]): Buffer {
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(65535, 16);
  global.writeUInt32LE(1, 20); // Ethernet
  return Buffer.concat([global, ...frames.flatMap((f, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1_700_000_000 + i, 0);
    h.writeUInt32LE(f.length, 8);
    h.writeUInt32LE(f.length, 12);
    return [h, f];
  })]);
}

/** One echo (pod 10.244.1.2 → 10.244.2.2, or back) inside each encapsulation, between nodes 198.18.0.1 and .2. */
const ENCAPSULATE: Record<string, (inner: Buffer, back: boolean) => Buffer> = {
  vxlan: (inner, back) => eth(ipv4(...nodes(back), 17, udp(40000, 8472, Buffer.concat([Buffer.from('0800000000000100', 'hex'), eth(inner)])))),
  geneve: (inner, back) => eth(ipv4(...nodes(back), 17, udp(40000, 6081, Buffer.concat([Buffer.from('0000655800000100', 'hex'), eth(inner)])))),
  ipip: (inner, back) => eth(ipv4(...nodes(back), 4, inner)),
  fou: (inner, back) => eth(ipv4(...nodes(back), 17, udp(40000, 5555, inner))),
  flannelUdp: (inner, back) => eth(ipv4(...nodes(back), 17, udp(8285, 8285, inner))),
  // Transport data: type 4, reserved, receiver index, counter, then the sealed packet (its length padded to 16, plus the 16-byte tag).
  wireguard: (inner, back) => eth(ipv4(...nodes(back), 17, udp(51820, 51820, Buffer.concat([Buffer.from([4, 0, 0, 0]), Buffer.alloc(4, 1), Buffer.alloc(8), Buffer.alloc(Math.ceil(inner.length / 16) * 16 + 16, 0x5a)])))),
  plain: (inner) => eth(inner),
};
const nodes = (back: boolean): [string, string] => (back ? ['198.18.0.2', '198.18.0.1'] : ['198.18.0.1', '198.18.0.2']);
const CLAIMS: Record<string, WireStack> = {
  vxlan: WIRE.vxlan(),
  geneve: WIRE.geneve(),
  ipip: WIRE.ipip(),
  fou: WIRE.ipInUdp(5555, 'FOU'),
  flannelUdp: WIRE.ipInUdp(8285, "flannel's udp format"),
  wireguard: WIRE.wireguard(),
  plain: WIRE.plain(),
};

describe('checkWire on frames as each tunnel sends them', () => {
  let dir = '';
  beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'vxtun-bench-cases-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const captureOf = (kind: string): string => {
    const file = join(dir, `${kind}.pcap`);
    const echoes = [1, 2, 3].flatMap((seq) => [
      ENCAPSULATE[kind]!(ipv4('10.244.1.2', '10.244.2.2', 1, icmpEcho(8, seq)), false),
      ENCAPSULATE[kind]!(ipv4('10.244.2.2', '10.244.1.2', 1, icmpEcho(0, seq)), true),
    ]);
    writeFileSync(file, pcap(echoes));
    return file;
  };
  const check = (kind: string, claim: string): Promise<void> => checkWire(captureOf(kind), { stack: CLAIMS[claim]!, serverIp: '10.244.2.2', pings: 3, where: 'in the test capture' });

  it.each(Object.keys(CLAIMS))('%s: passes its own frames and refuses every other encapsulation', async (claim) => {
    await check(claim, claim);
    for (const other of Object.keys(ENCAPSULATE).filter((k) => k !== claim)) {
      await expect(check(other, claim), `${other} frames claimed as ${claim}`).rejects.toThrow(/^verify: /);
    }
  });

  it('refuses WireGuard traffic that also shows the pods\' ICMP in the clear', async () => {
    const file = join(dir, 'leak.pcap');
    const wg = [1, 2, 3].flatMap((seq) => [false, true].map((back) => ENCAPSULATE.wireguard!(Buffer.alloc(84), back)));
    writeFileSync(file, pcap([...wg, eth(ipv4('10.244.1.2', '10.244.2.2', 1, icmpEcho(8, 9)))]));
    await expect(checkWire(file, { stack: WIRE.wireguard(), serverIp: '10.244.2.2', pings: 3, where: 'in the test capture' })).rejects.toThrow(/1 pod ICMP packets visible in the clear/);
  });
});
