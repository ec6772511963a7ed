/**
 * The kernel's hops of a lab's packets: one packet-socket capturer (hop_capture.c) per namespace —
 * each node and each pod — reporting the lab's ICMP packets and VXLAN datagrams on every interface
 * with the kernel's own timestamp mapped onto CLOCK_MONOTONIC (the clock of vxtun's observation
 * points; see the capturer for how). trace/hops.ts merges them into the journeys they belong to.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { buildCProgram } from './c-program.js';
import { fingerprintOfIpv4, KernelHopPool, withKernelHops, type HopRole, type KernelHop } from '../../trace/hops.js';
import type { TraceItem } from '../../trace/printer.js';
import type { LabState } from './teaching.js';
import { run, sleep, type ExecResult } from './exec.js';
import { TraceSession } from '../../trace/client.js';

const SOURCE = 'src/tools/lab/hop_capture.c';

/** A namespace to watch and what it is: a node (by underlay address) or that node's pod. */
export interface CapturePlace {
  ns: string;
  node: string;
  place: 'pod' | 'node';
}

/** Every node and pod of a teaching lab. */
export function labCapturePlaces(state: LabState): CapturePlace[] {
  return state.nodes.flatMap((n): CapturePlace[] => [
    { ns: n.pod, node: n.publicIp, place: 'pod' },
    { ns: n.ns, node: n.publicIp, place: 'node' },
  ]);
}

function roleOf(place: 'pod' | 'node', device: string, outer: boolean): HopRole {
  if (place === 'pod') return 'pod';
  if (outer) return 'underlay';
  if (device.startsWith('veth')) return 'veth';
  if (device === 'cni0') return 'bridge';
  if (device === 'flannel.1') return 'vxlan';
  if (device.startsWith('vxtun')) return 'tun';
  return 'other';
}

/** One capturer line ("<mono ns> <in|out> <device> <IP length> <hex>") as a kernel hop; undefined for anything else. */
export function parseCaptureLine(line: string, where: CapturePlace): KernelHop | undefined {
  const m = /^(\d+) (in|out) (\S+) (\d+) ([0-9a-f]+)$/.exec(line);
  if (!m) return undefined;
  const seen = fingerprintOfIpv4(Buffer.from(m[5]!, 'hex'));
  if (!seen) return undefined;
  return {
    node: where.node,
    place: where.place,
    device: m[3]!,
    role: roleOf(where.place, m[3]!, seen.outer),
    direction: m[2] as 'in' | 'out',
    t: Number(BigInt(m[1]!)) / 1e6,
    length: Number(m[4]),
    fingerprint: seen.fingerprint,
  };
}

export class KernelHopCapture {
  readonly pool = new KernelHopPool();
  private readonly children: ChildProcess[] = [];

  private constructor() {}

  /** Starts a capturer in each namespace; resolves once every one has its socket open. */
  static async start(places: CapturePlace[]): Promise<KernelHopCapture> {
    const binary = await buildCProgram(SOURCE, 'hop-capture', 'the kernel-hop capturer');
    const c = new KernelHopCapture();
    try {
      await Promise.all(places.map((p) => c.startOne(binary, p)));
    } catch (err) {
      c.close();
      throw err;
    }
    return c;
  }

  private startOne(binary: string, where: CapturePlace): Promise<void> {
    // `ip netns exec` execs the capturer in place: it stays this process's child (and dies with it).
    const child = spawn('ip', ['netns', 'exec', where.ns, binary], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`kernel-hop capturer in ${where.ns} did not start within 5 s`)), 5000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`kernel-hop capturer in ${where.ns} exited with ${code}: ${stderr.trim()}`));
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
          return;
        }
        const hop = parseCaptureLine(line, where);
        if (hop) this.pool.add(hop);
      });
    });
  }

  /** The item with its packet's kernel hops merged in (those seen so far). */
  attach(item: TraceItem): TraceItem {
    return withKernelHops(item, this.pool);
  }

  close(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    this.children.length = 0;
  }
}

export interface TracedPing {
  /** The ping's own output and exit code. */
  ping: ExecResult;
  /** The request's and the reply's trace items, in the order they were sent, kernel hops merged in when captured. */
  items: TraceItem[];
}

/**
 * One ping from a pod, traced on the vxtun nodes (`sockets`) and, when `places` are given, in the
 * kernel's namespaces too. A capturer that cannot start (no gcc, say) leaves the hops out:
 * `onNoCapture` hears why.
 */
export async function traceOnePing(o: { sockets: string[]; places: CapturePlace[]; fromPod: string; to: string; onNoCapture?: (why: string) => void }): Promise<TracedPing> {
  const items: TraceItem[] = [];
  const capture =
    o.places.length === 0
      ? undefined
      : await KernelHopCapture.start(o.places).catch((err: Error) => {
          o.onNoCapture?.(err.message);
          return undefined;
        });
  try {
    const session = await TraceSession.connect({ sockets: o.sockets, filter: { host: o.to, protocol: 'icmp' }, onItem: (i) => items.push(i), windowMs: 300, bytes: capture !== undefined });
    const ping = await run(['ip', 'netns', 'exec', o.fromPod, 'ping', '-c', '1', '-W', '2', o.to]);
    const want = 2; // the request and the reply (each a story, or a journey when one end is a kernel node)
    const deadline = Date.now() + 3000;
    while (items.length < want && Date.now() < deadline) await sleep(50);
    await sleep(350); // let a lone journey's pairing window pass (and the last kernel hops arrive)
    session.close();
    // In the order the packets were sent (a story is reported when both its ends are in, not in order).
    const firstSeen = (i: TraceItem): number => Math.min(...(i.kind === 'journey' ? [i.journey] : [i.sender, i.receiver]).flatMap((j) => j.events.map((e) => e.t)));
    items.sort((a, b) => firstSeen(a) - firstSeen(b));
    return { ping, items: capture ? items.map((i) => capture.attach(i)) : items };
  } finally {
    capture?.close();
  }
}
