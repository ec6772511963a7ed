/**
 * The teaching lab that outlives one command: `vxtun lab up` builds N nodes (some on the kernel's
 * VXLAN, the rest on vxtun) in network namespaces, writes each node's flannel subnet.env, makes
 * one pod per node with the standard CNI plugins (bridge + host-local, configured from that
 * subnet.env the way flannel's CNI plugin delegates to them), starts vxtun daemons detached, and
 * records everything in a state file so `lab exec`, `lab tour` and `lab down` find it later.
 * `lab down` stops the daemons and deletes the namespaces (their links go with them) and the state.
 *
 * Node i: underlay 198.18.0.i, lease 10.244.i.0/24, VTEP MAC 0a:58:0a:f4:0i:00 (as lab/cluster.ts).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, type Netns } from './netns.js';
import { Underlay } from './underlay.js';
import { createKernelFlannelNode, addKernelPeer } from './kernel-flannel.js';
import { run, waitFor, sleep } from './exec.js';
import { cliPath, nodeAddressing, type NodeKind } from './cluster.js';
import { writeSubnetEnv, readSubnetEnv } from '../../control/subnet-env.js';
import { CNI_PATH, cniAddPod } from './cni.js';
import { parseCidr, type Cidr } from '../../packet/cidr.js';
import { controlRequest } from '../../control/socket.js';
import { DEFAULT_LAB_DIR } from './state-dir.js';

export { DEFAULT_LAB_DIR };
const NETWORK = '10.244.0.0/16';
const STATE_FILE = 'state.json';

export interface LabNodeState {
  index: number;
  kind: NodeKind;
  ns: string;
  publicIp: string;
  subnet: string;
  vtepIp: string;
  vtepMac: string;
  subnetEnv: string;
  pod: string;
  podIp: string;
  /** vxtun nodes: the daemon and how to reach it. */
  pid?: number;
  config?: string;
  controlSocket?: string;
  log?: string;
}

export interface LabState {
  prefix: string;
  dir: string;
  createdAt: string;
  underlay: string;
  /** Every namespace the lab made, in creation order. */
  namespaces: string[];
  nodes: LabNodeState[];
}

export class LabError extends Error {}

function asCidr(text: string): Cidr & { family: 4 } {
  return parseCidr(text) as Cidr & { family: 4 };
}

export function readLabState(dir = DEFAULT_LAB_DIR): LabState | undefined {
  const file = join(dir, STATE_FILE);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

function writeLabState(state: LabState): void {
  const file = join(state.dir, STATE_FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file); // a reader never sees half a file
}

/** The namespace a `lab exec` target names: 1 / n1 / node1 -> node, pod1 / n1pod -> its pod, or a full name. */
export function resolveTarget(state: LabState, target: string): string {
  const m = /^(?:n|node)?(\d+)$/.exec(target);
  const p = /^(?:pod(\d+)|n(\d+)pod)$/.exec(target);
  if (m) {
    const n = state.nodes.find((x) => x.index === Number(m[1]));
    if (n) return n.ns;
  } else if (p) {
    const n = state.nodes.find((x) => x.index === Number(p[1] ?? p[2]));
    if (n) return n.pod;
  } else if (target === 'ul' || target === 'underlay') return state.underlay;
  else if (state.namespaces.includes(target)) return target;
  const names = state.nodes.flatMap((n) => [`n${n.index}`, `pod${n.index}`]).join(', ');
  throw new LabError(`lab exec: no node or pod "${target}" in lab ${state.prefix} (try ${names}, or ul for the underlay)`);
}

export interface LabUpOptions {
  nodes: number;
  /** Node numbers (1-based) that use the kernel's VXLAN; the rest run vxtun. */
  kernel: number[];
  dir?: string;
  progress?: (line: string) => void;
}

export async function labUp(o: LabUpOptions): Promise<LabState> {
  const dir = o.dir ?? DEFAULT_LAB_DIR;
  const say = o.progress ?? (() => {});
  const existing = readLabState(dir);
  if (existing) throw new LabError(`a lab is already up (${existing.prefix}, state in ${dir}): run vxtun lab down first`);
  if (!existsSync(join(CNI_PATH, 'bridge')) || !existsSync(join(CNI_PATH, 'host-local'))) {
    throw new LabError(`the CNI plugins are missing from ${CNI_PATH} (Debian package containernetworking-plugins, installed by scripts/install-deps.sh)`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const topology = new Topology({ exitHandlers: false });
  const state: LabState = { prefix: topology.prefix, dir, createdAt: new Date().toISOString(), underlay: '', namespaces: [], nodes: [] };
  const kinds: NodeKind[] = Array.from({ length: o.nodes }, (_, k) => (o.kernel.includes(k + 1) ? 'kernel' : 'vxtun'));
  try {
    say(`vxtun lab ${topology.prefix}: ${o.nodes} nodes (${kinds.map((k, i) => `n${i + 1} ${k}`).join(', ')})`);
    const underlay = await Underlay.create(topology);
    state.underlay = underlay.ns.name;
    state.namespaces.push(underlay.ns.name);
    writeLabState(state); // from here on, `lab down` can clean up even if up fails half-way
    say(`  underlay: bridge br0 in ${underlay.ns.name}, 198.18.0.0/24`);
    const addrs = kinds.map((_, k) => nodeAddressing(k + 1));
    for (let k = 0; k < kinds.length; k++) {
      const i = k + 1;
      const a = addrs[k]!;
      const kind = kinds[k]!;
      const ns = await topology.netns(`n${i}`);
      state.namespaces.push(ns.name);
      writeLabState(state);
      await underlay.attach(ns, a.publicIp);
      const nodeDir = join(dir, `n${i}`);
      mkdirSync(nodeDir, { recursive: true, mode: 0o700 });
      // What flanneld writes for the CNI plugin: this node's lease, the network, the MTU. IPMASQ=true
      // as with kube-flannel's default --ip-masq: the CNI bridge then does not masquerade, so pod
      // addresses stay visible end to end (flannel's CNI plugin passes ipMasq = !FLANNEL_IPMASQ).
      const subnetEnv = join(nodeDir, 'subnet.env');
      writeSubnetEnv(subnetEnv, { network: asCidr(NETWORK), subnet: asCidr(a.subnet), mtu: 1450, ipMasq: true });
      const node: LabNodeState = { index: i, kind, ns: ns.name, publicIp: a.publicIp, subnet: a.subnet, vtepIp: a.vtepIp, vtepMac: a.vtepMac, subnetEnv, pod: '', podIp: '' };
      state.nodes.push(node);
      if (kind === 'kernel') {
        await createKernelFlannelNode(ns, { publicIp: a.publicIp, subnet: a.subnet, vtepMac: a.vtepMac });
        for (let j = 0; j < kinds.length; j++) if (j !== k) await addKernelPeer(ns, { subnet: addrs[j]!.subnet, publicIp: addrs[j]!.publicIp, vtepMac: addrs[j]!.vtepMac });
        say(`  node ${i} (${ns.name}): kernel VXLAN flannel.1, VTEP ${a.vtepMac}, underlay ${a.publicIp}`);
      } else {
        await startDaemon(ns, node, nodeDir, addrs.filter((_, j) => j !== k));
        writeLabState(state);
        say(`  node ${i} (${ns.name}): vxtun on TUN vxtun0 (pid ${node.pid}), VTEP ${a.vtepMac}, underlay ${a.publicIp}`);
      }
      const pod = await topology.netns(`n${i}pod`);
      state.namespaces.push(pod.name);
      node.pod = pod.name;
      writeLabState(state);
      const env = readSubnetEnv(subnetEnv);
      // As flannel's CNI plugin delegates: the bridge masquerades only if flanneld does not.
      const cniPod = await cniAddPod(ns, pod, subnetEnv, join(nodeDir, 'cni'), { ipMasqFromSubnetEnv: true }).catch((e: Error) => {
        throw new LabError(`CNI for pod ${pod.name}: ${e.message}`);
      });
      node.podIp = cniPod.ip;
      writeLabState(state);
      say(`    pod ${pod.name}: ${cniPod.ip} from CNI bridge + host-local (subnet.env ${env.FLANNEL_SUBNET}, MTU ${env.FLANNEL_MTU})`);
    }
    return state;
  } catch (err) {
    await labDown(dir).catch(() => {});
    await topology.destroy().catch(() => {});
    throw err;
  }
}

async function startDaemon(ns: Netns, node: LabNodeState, nodeDir: string, peers: Array<ReturnType<typeof nodeAddressing>>): Promise<void> {
  node.config = join(nodeDir, 'vxtun.json');
  node.controlSocket = join(nodeDir, 'vxtun.sock');
  node.log = join(nodeDir, 'vxtun.log');
  writeFileSync(
    node.config,
    JSON.stringify(
      {
        publicIp: node.publicIp,
        network: NETWORK,
        subnet: node.subnet,
        device: { name: 'vxtun0' },
        backend: { type: 'vxlan', vni: 1, port: 8472, vtepMac: node.vtepMac },
        peers: peers.map((p) => ({ subnet: p.subnet, publicIp: p.publicIp, vtepMac: p.vtepMac })),
        controlSocket: node.controlSocket,
      },
      null,
      2,
    ),
  );
  const log = openSync(node.log, 'a', 0o600);
  // Detached, with its output in a file: the daemon outlives `vxtun lab up`.
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, cliPath, 'up', '--config', node.config, '--log-level', 'info'], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  node.pid = child.pid;
  let exited: number | null | undefined;
  child.once('exit', (c) => (exited = c));
  await waitFor(
    async () => {
      if (exited !== undefined) throw new LabError(`vxtun on ${ns.name} exited with ${exited}: ${readFileSync(node.log!, 'utf8').trim()}`);
      try {
        const reply = (await controlRequest(node.controlSocket!, { cmd: 'info' }, 500)) as { starting?: boolean };
        // A starting node answers, but has no lease and no device yet.
        return reply.starting !== true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 15_000, what: `vxtun on ${ns.name}` },
  );
}

function isOurDaemon(pid: number, config: string): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmd.includes('up') && cmd.includes(config);
  } catch {
    return false;
  }
}

/** Stops the daemons, deletes every namespace the lab made and its state; says what it removed. */
export async function labDown(dir = DEFAULT_LAB_DIR, say: (line: string) => void = () => {}): Promise<LabState | undefined> {
  const state = readLabState(dir);
  if (!state) return undefined;
  for (const n of state.nodes) {
    if (n.pid === undefined || n.config === undefined || !isOurDaemon(n.pid, n.config)) continue;
    process.kill(n.pid, 'SIGTERM'); // vxtun removes its device, route and socket on SIGTERM
    const gone = await waitFor(() => !isOurDaemon(n.pid!, n.config!), { timeoutMs: 5000 }).then(
      () => true,
      () => false,
    );
    if (!gone) process.kill(n.pid, 'SIGKILL');
    say(`  stopped vxtun on ${n.ns} (pid ${n.pid})`);
  }
  for (const name of [...state.namespaces].reverse()) {
    const pids = (await run(['ip', 'netns', 'pids', name])).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (pids.length > 0) await sleep(100);
    const r = await run(['ip', 'netns', 'del', name]);
    if (r.code === 0) say(`  deleted namespace ${name}`);
    else if (!/No such file/.test(r.stderr)) throw new LabError(`cannot delete namespace ${name}: ${r.stderr.trim()}`);
  }
  rmSync(state.dir, { recursive: true, force: true });
  say(`  removed ${state.dir}`);
  return state;
}

