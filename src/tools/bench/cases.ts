/**
 * The dataplanes `vxtun bench` compares. Each case builds its own namespaced topology (same shape
 * for every encapsulating case: two nodes on one underlay bridge, a pod on each, traffic pod to
 * pod) and says where the traffic goes and which processes are the dataplane.
 */
import { NAIVE_CASE } from './schema.js';
import { Topology } from '../lab/netns.js';
import { Underlay } from '../lab/underlay.js';
import { waitFor } from '../lab/exec.js';
import { UnsupportedCase, type BenchCase, type BuiltCase, type CaseEnv } from './built-case.js';
import { Cluster, type NodeKind, type VxtunProcess } from '../lab/cluster.js';
import { buildUdpProxyCCase } from './udp-proxy-c.js';
import { verifyWire, WIRE, type WireStack } from './verify-wire.js';
import { GENEVE_CASE } from './case-geneve.js';
import { IPIP_CASE } from './case-ipip.js';
import { FOU_CASE } from './case-fou.js';
import { WIREGUARD_CASE } from './case-wireguard.js';
import { WIREGUARD_GO_CASE } from './case-wireguard-go.js';
import { OVS_USERSPACE_CASE } from './case-ovs-userspace.js';

export type { BenchCase, BuiltCase, CaseEnv } from './built-case.js';
export { UnsupportedCase } from './built-case.js';

/** The "vxtun up" log line's `datapath` field (pino JSON), once the node has logged it. */
async function reportedDatapath(p: VxtunProcess): Promise<string> {
  let found: string | undefined;
  await waitFor(
    () => {
      for (const line of p.output.join('').split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const rec = JSON.parse(line) as { msg?: string; datapath?: string };
          if (rec.msg === 'vxtun up') found = rec.datapath ?? 'unreported';
        } catch {
          /* a partial line: wait for the rest */
        }
      }
      return found !== undefined;
    },
    { timeoutMs: 5000, what: '"vxtun up" log line' },
  ).catch(() => (found = 'unreported'));
  return found!;
}

interface ClusterCaseOptions {
  kinds: NodeKind[];
  vxtunArgs?: string[];
  vxtunConfig?: Record<string, unknown>;
  /** The pods' packets on the underlay (default: VXLAN on flannel's port 8472). */
  stack?: WireStack;
}

/** Two nodes of the given kinds; traffic from node 1's pod to node 2's pod. */
async function clusterCase(opts: ClusterCaseOptions, say: (line: string) => void, env: CaseEnv): Promise<BuiltCase> {
  const topology = new Topology();
  let cluster: Cluster;
  try {
    cluster = await Cluster.build(topology, { wire: env.wire, underlayMtu: env.mtu, kinds: opts.kinds, vxtunArgs: opts.vxtunArgs, vxtunConfig: opts.vxtunConfig, logLevel: 'info', progress: (l) => say(l) });
  } catch (err) {
    await topology.destroy().catch(() => {});
    throw err;
  }
  const [a, b] = [cluster.node(1), cluster.node(2)];
  const dataplane: BuiltCase['dataplane'] = [];
  const datapaths: string[] = [];
  for (const n of cluster.nodes) {
    if (!n.vxtun) continue;
    dataplane.push({ role: `${n.kind} node ${n.index}`, pid: n.vxtun.child.pid! });
    datapaths.push(n.kind === 'naive' ? 'naive' : await reportedDatapath(n.vxtun));
  }
  const verify = (): Promise<void> => verifyWire({ underlay: cluster.underlay, clientNode: a.ns, client: a.pod, serverIp: b.podIp, stack: opts.stack ?? WIRE.vxlan() });
  return { client: a.pod, server: b.pod, serverIp: b.podIp, namespacePrefix: topology.prefix, dataplane, datapaths, verify, destroy: () => cluster.destroy() };
}

export const BENCH_CASES: BenchCase[] = [
  {
    id: 'kernel',
    dataplane: 'kernel VXLAN',
    title: 'kernel ↔ kernel VXLAN',
    description: "Linux's VXLAN device on both nodes, programmed as flanneld programs flannel.1: the ceiling on this machine and the baseline of every ratio",
    build: (say, env) => clusterCase({ kinds: ['kernel', 'kernel'] }, say, env),
  },
  {
    id: 'veth',
    dataplane: 'none (bare underlay)',
    title: 'bare veth underlay',
    description: 'node to node over the underlay (veth pairs and a bridge), no encapsulation and no pod hop: what the wire itself carries',
    async build(_say, env) {
      const topology = new Topology();
      try {
        const ul = await Underlay.create(topology, 'ul', { wire: env.wire });
        const n1 = await topology.netns('n1');
        const n2 = await topology.netns('n2');
        await ul.attach(n1, '198.18.0.1', { mtu: env.mtu });
        await ul.attach(n2, '198.18.0.2', { mtu: env.mtu });
        const verify = (): Promise<void> => verifyWire({ underlay: ul, clientNode: n1, client: n1, serverIp: '198.18.0.2', stack: WIRE.plain() });
        return { client: n1, server: n2, serverIp: '198.18.0.2', namespacePrefix: topology.prefix, dataplane: [], datapaths: [], verify, destroy: () => topology.destroy() };
      } catch (err) {
        await topology.destroy().catch(() => {});
        throw err;
      }
    },
  },
  {
    id: 'vxtun-fast',
    dataplane: 'vxtun',
    title: 'vxtun ↔ vxtun, fast path',
    description: 'vxtun on both nodes with `--datapath auto` (the native fast path where this build has one; the datapath column says what ran)',
    build: (say, env) => clusterCase({ kinds: ['vxtun', 'vxtun'], vxtunArgs: ['--datapath', 'auto'] }, say, env),
  },
  {
    id: 'vxtun-ts',
    dataplane: 'vxtun',
    title: 'vxtun ↔ vxtun, TypeScript path',
    description: 'vxtun on both nodes with `--datapath ts`: the pure-TypeScript reference pipeline',
    build: (say, env) => clusterCase({ kinds: ['vxtun', 'vxtun'], vxtunArgs: ['--datapath', 'ts'] }, say, env),
  },
  {
    id: NAIVE_CASE,
    dataplane: 'naive fs.read + dgram.send',
    title: 'naive ↔ naive (fs.read + dgram.send)',
    description:
      'the naive Node design on both nodes (src/tools/bench/naive-dataplane.ts): one blocking fs.read per packet, one dgram.send per datagram, one fs.write per received packet; same config and wire format as vxtun. The baseline of the "vxtun-ts / naive" ratio',
    build: (say, env) => clusterCase({ kinds: ['naive', 'naive'] }, say, env),
  },
  {
    id: 'mixed',
    dataplane: 'vxtun + kernel VXLAN',
    title: 'vxtun → kernel VXLAN (mixed)',
    description: 'a mixed cluster: the client pod on a vxtun node (`--datapath auto`), the server pod on a kernel VXLAN node',
    build: (say, env) => clusterCase({ kinds: ['vxtun', 'kernel'], vxtunArgs: ['--datapath', 'auto'] }, say, env),
  },
  {
    id: 'flannel-udp',
    dataplane: 'vxtun',
    title: "vxtun ↔ vxtun, flannel's udp format",
    description: "vxtun on both nodes with `\"backend\": {\"type\": \"udp\", \"port\": 8285}`: flannel's udp wire format (raw IP in UDP), when this build supports it",
    async build(say, env) {
      try {
        return await clusterCase({ kinds: ['vxtun', 'vxtun'], vxtunArgs: ['--datapath', 'auto'], vxtunConfig: { backend: { type: 'udp', port: 8285 } }, stack: WIRE.ipInUdp(8285, "flannel's udp format") }, say, env);
      } catch (err) {
        // `vxtun up` refuses a config it does not understand with exit 2 and one line naming the field:
        // a refusal of backend.type is "not supported"; any other refusal is a failure of this case, said as such.
        const m = /^vxtun exited with 2: ([\s\S]*)$/.exec((err as Error).message);
        const line = m?.[1]!.trim().split('\n')[0] ?? '';
        if (m && /backend\.type/.test(line)) throw new UnsupportedCase(`not supported by this build (vxtun up refused the udp backend: ${line})`);
        throw err;
      }
    },
  },
  {
    id: 'udp-proxy-c',
    dataplane: 'C udp proxy',
    title: "C udp proxy (flannel's udp-backend design)",
    description: "on both nodes, a C udp proxy in flannel's udp-backend design (one read and one sendto per packet, flannel's udp wire format), written for vxtun — not flannel's code (bench/udp-proxy-c); on flannel0, pods at MTU 1472: the one-packet-per-syscall baseline",
    build: (say, env) => buildUdpProxyCCase(say, env),
  },
  {
    id: 'kernel-to-vxtun',
    dataplane: 'kernel VXLAN + vxtun',
    title: 'kernel VXLAN → vxtun (mixed, reversed)',
    description: 'the mixed cluster the other way round: the client pod on a kernel VXLAN node, the server pod on a vxtun node (`--datapath auto`), so vxtun receives what the kernel sends',
    build: (say, env) => clusterCase({ kinds: ['kernel', 'vxtun'], vxtunArgs: ['--datapath', 'auto'] }, say, env),
  },
  GENEVE_CASE,
  IPIP_CASE,
  FOU_CASE,
  WIREGUARD_CASE,
  OVS_USERSPACE_CASE,
  WIREGUARD_GO_CASE,
];

export function caseById(id: string): BenchCase | undefined {
  return BENCH_CASES.find((c) => c.id === id);
}
