/** A flannel network in namespaces: an underlay, a real etcd on 198.18.0.250, vxtun nodes joining through it, CNI pods. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology, type Netns } from '../../src/tools/lab/netns.js';
import { Underlay } from '../../src/tools/lab/underlay.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { VxtunProcess } from '../../src/tools/lab/cluster.js';
import { EtcdServer, makeEtcdCertificates, type EtcdTls } from '../../src/tools/lab/etcd.js';
import { cniAddPod, type CniPod } from '../../src/tools/lab/cni.js';
import { controlRequest } from '../../src/control/socket.js';

export const ETCD_IP = '198.18.0.250';
export const PREFIX = '/coreos.com/network';

export interface LabNode {
  index: number;
  ns: Netns;
  publicIp: string;
  subnetEnv: string;
  vxtun: VxtunProcess;
  config: Record<string, unknown>;
}

export interface NodeInfo {
  subnet: string;
  mtu: number;
  device: string;
  backend: string;
  features: Record<string, unknown>;
}

export class FlannelLab {
  readonly topology = new Topology();
  /** Made in init(), so a suite filtered out (vitest -t) leaves no directory behind. */
  dir = '';
  underlay!: Underlay;
  etcd!: EtcdServer;
  tls: EtcdTls | undefined;
  private readonly nodeNs = new Map<number, Netns>();
  private pods = 0;

  async init(opts: { tls?: boolean } = {}): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'vxtun-flannel-'));
    this.underlay = await Underlay.create(this.topology);
    const ens = await this.topology.netns('etcd');
    await this.underlay.attach(ens, ETCD_IP);
    if (opts.tls) this.tls = await makeEtcdCertificates(join(this.dir, 'pki'), ETCD_IP);
    this.etcd = await EtcdServer.start(ens, ETCD_IP, join(this.dir, 'etcd-data'), this.tls);
  }

  /** Writes `<prefix>/config` with the API a node of that API would read. */
  async putNetworkConfig(value: object | string, api: 'v3' | 'v2' = 'v3', prefix = PREFIX): Promise<void> {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (api === 'v3') await this.etcd.etcdctl(['put', `${prefix}/config`, text]);
    else await this.etcd.etcdctl(['set', `${prefix}/config`, text], true, 'v2');
  }

  /** The namespace of node i, attached to the underlay at 198.18.0.i on first use. */
  async nodeNamespace(i: number): Promise<Netns> {
    let ns = this.nodeNs.get(i);
    if (!ns) {
      ns = await this.topology.netns(`n${i}`);
      await this.underlay.attach(ns, `198.18.0.${i}`);
      this.nodeNs.set(i, ns);
    }
    return ns;
  }

  registryConfig(api: 'v3' | 'v2', extra: Record<string, unknown> = {}): Record<string, unknown> {
    const t = this.tls;
    return {
      type: 'etcd',
      endpoints: [this.etcd.endpoint],
      prefix: PREFIX,
      api,
      ...(t ? { tls: { ca: t.ca, cert: t.clientCert, key: t.clientKey } } : {}),
      ...extra,
    };
  }

  /** Starts `vxtun up` on node i with only the registry config (plus `extra`, and `args` on the command line); does not wait. */
  async startNode(i: number, api: 'v3' | 'v2', extra: Record<string, unknown> = {}, args: string[] = []): Promise<LabNode> {
    const ns = await this.nodeNamespace(i);
    const publicIp = `198.18.0.${i}`;
    const subnetEnv = join(this.dir, `n${i}`, 'subnet.env');
    const config = { publicIp, registry: this.registryConfig(api), subnetEnv, ...extra };
    const vxtun = VxtunProcess.start(ns, config, this.dir, 'info', args);
    return { index: i, ns, publicIp, subnetEnv, vxtun, config };
  }

  async startReadyNode(i: number, api: 'v3' | 'v2', extra: Record<string, unknown> = {}): Promise<LabNode> {
    const n = await this.startNode(i, api, extra);
    await n.vxtun.ready(60_000);
    return n;
  }

  async info(n: LabNode): Promise<NodeInfo> {
    return (await controlRequest(n.vxtun.controlSocket, { cmd: 'info' })) as NodeInfo;
  }

  async routes(n: LabNode): Promise<Array<{ subnet: string; publicIp: string }>> {
    return (await controlRequest(n.vxtun.controlSocket, { cmd: 'routes' })) as Array<{ subnet: string; publicIp: string }>;
  }

  async waitRoute(n: LabNode, subnet: string, present: boolean, timeoutMs = 5000): Promise<void> {
    try {
      await waitFor(async () => (await this.routes(n)).some((r) => r.subnet === subnet) === present, {
        timeoutMs,
        intervalMs: 100,
        what: `${subnet} ${present ? 'in' : 'gone from'} node ${n.index}'s routes`,
      });
    } catch (e) {
      // Seen once in CI and never since: say what the node's lease manager went through, and its last log lines.
      const lease = await controlRequest(n.vxtun.controlSocket, { cmd: 'info' }).then((i) => JSON.stringify((i as { lease?: unknown }).lease), (err: Error) => err.message);
      const log = n.vxtun.output.join('').split('\n').slice(-8).join('\n');
      throw new Error(`${(e as Error).message}\nnode ${n.index} lease manager: ${lease}\nits last log lines:\n${log}`);
    }
  }

  /** A pod on node `n` made by the CNI bridge + host-local plugins from n's subnet.env. */
  async addPod(n: LabNode): Promise<CniPod> {
    const pod = await this.topology.netns(`p${++this.pods}`);
    return cniAddPod(n.ns, pod, n.subnetEnv, join(this.dir, `ipam-n${n.index}`));
  }

  async destroy(nodes: LabNode[]): Promise<void> {
    await Promise.all(nodes.map((n) => n.vxtun.stop()));
    await this.etcd?.stop();
    await this.topology.destroy();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
