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
