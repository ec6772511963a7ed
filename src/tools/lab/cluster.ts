/**
 * A flannel-style cluster in network namespaces: an underlay bridge, nodes that run either vxtun
 * or the kernel's VXLAN device programmed the way flanneld programs flannel.1, and one pod per
 * node wired the way the CNI bridge plugin wires it. `vxtun lab` and the integration tests share it.
 *
 * Node i (1-based) gets underlay 198.18.0.i, lease 10.244.i.0/24, VTEP MAC 0a:58:0a:f4:0i:00,
 * a bridge cni0 with 10.244.i.1/24 and a pod 10.244.i.2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Topology, Netns } from './netns.js';
import { Underlay, type WireMode } from './underlay.js';
import { createKernelFlannelNode, addKernelPeer } from './kernel-flannel.js';
import { addPod } from './pods.js';
import { waitFor } from './exec.js';
import { controlRequest } from '../../control/socket.js';
import type { CounterSnapshot } from '../../packet/counters.js';
import { packageRoot } from '../../util/package-root.js';

/** 'naive': the bench's naive reference dataplane (src/tools/bench/naive-dataplane.ts), same config file and wire format as vxtun. */
export type NodeKind = 'vxtun' | 'kernel' | 'naive';

export interface ClusterOptions {
  /** Node kinds in order: node i is kinds[i-1]. */
  kinds: NodeKind[];
  /** Underlay MTU (default 1500). */
  underlayMtu?: number;
  /** How the underlay behaves (default `veth`). */
  wire?: WireMode;
  /** MTU of the pods' veth pairs (default underlay − 50, as FLANNEL_MTU). */
  podMtu?: number;
  /** vxtun device MTU override (default: vxtun derives underlay − 50). */
  vxtunDeviceMtu?: number;
  /** Extra keys merged into every vxtun config. */
  vxtunConfig?: Record<string, unknown>;
  logLevel?: string;
  /** Extra `vxtun up` arguments for every vxtun node, e.g. ['--datapath', 'ts']. */
  vxtunArgs?: string[];
  /** Called with progress lines. */
  progress?: (line: string) => void;
}

export interface ClusterNode {
  index: number;
  kind: NodeKind;
  ns: Netns;
  publicIp: string;
  subnet: string;
  /** `<subnet>.0`: the VTEP address on flannel.1 / the TUN. */
  vtepIp: string;
  vtepMac: string;
  pod: Netns;
  podIp: string;
  /** The userspace dataplane process: vxtun on vxtun nodes, the naive reference on naive nodes. */
  vxtun?: VxtunProcess;
}

/** The compiled CLI, also when this module runs from source under vitest. */
export const cliPath = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
/** The naive reference dataplane (compiled), run in place of `vxtun up` on naive nodes. */
export const naiveDataplanePath = join(packageRoot(), 'dist', 'src', 'tools', 'bench', 'naive-dataplane.js');

export function nodeAddressing(i: number): { publicIp: string; subnet: string; vtepIp: string; vtepMac: string; podIp: string; gateway: string } {
  const hex = i.toString(16).padStart(2, '0');
  return {
    publicIp: `198.18.0.${i}`,
    subnet: `10.244.${i}.0/24`,
    vtepIp: `10.244.${i}.0`,
    vtepMac: `0a:58:0a:f4:${hex}:00`,
    podIp: `10.244.${i}.2`,
    gateway: `10.244.${i}.1`,
  };
}

/** A `vxtun up` process inside a node namespace. */
export class VxtunProcess {
  readonly output: string[] = [];
  private exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    readonly configPath: string,
    readonly controlSocket: string,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => this.output.push(d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => this.output.push(d));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** `program`: what to run with the config (default `vxtun up`; the naive dataplane on naive nodes). */
  static start(ns: Netns, config: Record<string, unknown>, dir: string, logLevel = 'info', extraArgs: readonly string[] = [], program: readonly string[] = [cliPath, 'up']): VxtunProcess {
    const name = `${ns.name.split('-').pop()}`;
    const controlSocket = join(dir, `${name}.sock`);
    const configPath = join(dir, `${name}.json`);
    writeFileSync(configPath, JSON.stringify({ ...config, controlSocket }, null, 2));
    const child = ns.spawn([process.execPath, ...program, '--config', configPath, '--log-level', logLevel, ...extraArgs]);
    return new VxtunProcess(child, configPath, controlSocket);
  }

  /** Resolves once the node answers on its control socket; rejects with its output if it exits first. */
  async ready(timeoutMs = 15_000): Promise<void> {
    let exitCode: number | null | undefined;
    void this.exited.then((c) => (exitCode = c));
    await waitFor(
      async () => {
        if (exitCode !== undefined) throw new Error(`vxtun exited with ${exitCode}: ${this.output.join('')}`);
        try {
          const reply = (await controlRequest(this.controlSocket, { cmd: 'info' }, 500)) as { starting?: boolean };
          // A starting node answers, but has no lease and no device yet.
          return reply.starting !== true;
        } catch {
          return false;
        }
      },
      { timeoutMs, what: 'vxtun control socket' },
    );
  }

  counters(): Promise<CounterSnapshot> {
    return controlRequest(this.controlSocket, { cmd: 'counters' }) as Promise<CounterSnapshot>;
  }

  /** SIGTERM and wait; resolves to the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

export class Cluster {
  readonly nodes: ClusterNode[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), 'vxtun-cluster-'));
  underlay!: Underlay;

  constructor(readonly topology: Topology) {
    // Also when the run is cut short by a signal: the topology's handlers run this.
    topology.atDestroy(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  static async build(topology: Topology, opts: ClusterOptions): Promise<Cluster> {
    const cluster = new Cluster(topology);
    const say = opts.progress ?? (() => {});
    const underlayMtu = opts.underlayMtu ?? 1500;
    const podMtu = opts.podMtu ?? underlayMtu - 50;
    cluster.underlay = await Underlay.create(topology, 'ul', { wire: opts.wire });
    say(`underlay: bridge in ${cluster.underlay.ns.name}, 198.18.0.0/24, MTU ${underlayMtu}`);
    const addrs = opts.kinds.map((_, k) => nodeAddressing(k + 1));
    for (let k = 0; k < opts.kinds.length; k++) {
      const i = k + 1;
      const kind = opts.kinds[k]!;
      const a = addrs[k]!;
      const ns = await topology.netns(`n${i}`);
      await cluster.underlay.attach(ns, a.publicIp, { mtu: underlayMtu });
      const pod = await addPod(ns, { name: `n${i}pod`, gatewayCidr: `${a.gateway}/24`, podIp: `${a.podIp}/24`, mtu: podMtu });
      const node: ClusterNode = { index: i, kind, ns, publicIp: a.publicIp, subnet: a.subnet, vtepIp: a.vtepIp, vtepMac: a.vtepMac, pod, podIp: a.podIp };
      if (kind === 'kernel') {
        await createKernelFlannelNode(ns, { publicIp: a.publicIp, subnet: a.subnet, vtepMac: a.vtepMac });
        for (let j = 0; j < opts.kinds.length; j++) {
          if (j === k) continue;
          const p = addrs[j]!;
          await addKernelPeer(ns, { subnet: p.subnet, publicIp: p.publicIp, vtepMac: p.vtepMac });
        }
        say(`node ${i} (${ns.name}): kernel VXLAN flannel.1, ${a.vtepIp}/32, VTEP ${a.vtepMac}, underlay ${a.publicIp}`);
      } else {
        const config: Record<string, unknown> = {
          publicIp: a.publicIp,
          network: '10.244.0.0/16',
          subnet: a.subnet,
          device: { name: 'vxtun0', ...(opts.vxtunDeviceMtu !== undefined ? { mtu: opts.vxtunDeviceMtu } : {}) },
          backend: { type: 'vxlan', vni: 1, port: 8472, vtepMac: a.vtepMac },
          peers: addrs.filter((_, j) => j !== k).map((p) => ({ subnet: p.subnet, publicIp: p.publicIp, vtepMac: p.vtepMac })),
          ...opts.vxtunConfig,
        };
        node.vxtun =
          kind === 'naive'
            ? VxtunProcess.start(ns, config, cluster.dir, opts.logLevel ?? 'info', [], [naiveDataplanePath])
            : VxtunProcess.start(ns, config, cluster.dir, opts.logLevel ?? 'info', opts.vxtunArgs);
        await node.vxtun.ready().catch(async (err: unknown) => {
          // The caller never gets this cluster: stop the nodes started so far and remove the config files.
          await Promise.all([...cluster.nodes, node].map((n) => n.vxtun?.stop()));
          rmSync(cluster.dir, { recursive: true, force: true });
          throw err;
        });
        say(`node ${i} (${ns.name}): ${kind === 'naive' ? 'naive dataplane' : 'vxtun'} on TUN vxtun0, ${a.vtepIp}/32, VTEP ${a.vtepMac}, underlay ${a.publicIp}`);
      }
      cluster.nodes.push(node);
    }
    return cluster;
  }

  node(i: number): ClusterNode {
    const n = this.nodes[i - 1];
    if (!n) throw new Error(`no node ${i}`);
    return n;
  }

  /** Stops vxtun processes (SIGTERM, so they clean up), deletes namespaces, removes files. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.vxtun?.stop()));
    await this.topology.destroy(); // its atDestroy removes this.dir, also when a namespace would not go
  }
}
