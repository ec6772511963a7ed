/**
 * A C udp proxy in flannel's udp-backend design (one read and one sendto per packet), written for
 * vxtun — not flannel's code — as a lab node: bench/udp-proxy-c/udp_proxy.c, which speaks flannel's
 * udp wire format (the bare IPv4 packet in a UDP datagram, port 8285) on a node laid out as a flannel
 * udp node (flannel0 with <lease>.0/<network prefix>, MTU underlay − 28), peers from `--route`.
 * Built with gcc on first use and cached under build/udp-proxy-c/<hash of the source and flags>/.
 */
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { waitForOutput, type Netns } from './netns.js';
import { buildCProgram } from './c-program.js';

const SOURCE = join('bench', 'udp-proxy-c', 'udp_proxy.c');

/** flannel's udp backend port. */
export const UDP_PROXY_C_PORT = 8285;

/** Path of the compiled proxy, building it if this exact source has not been built yet. */
export function buildUdpProxyC(): Promise<string> {
  return buildCProgram(SOURCE, 'udp-proxy-c', 'the C udp proxy');
}

export interface UdpProxyCPeer {
  /** The peer's lease, e.g. `10.244.2.0/24`. */
  subnet: string;
  publicIp: string;
  /** Default: our own port (a flannel udp network uses one port everywhere). */
  port?: number;
}

export interface UdpProxyCOptions {
  publicIp: string;
  /** This node's lease, e.g. `10.244.1.0/24`. */
  subnet: string;
  /** The whole network (its prefix length goes on the TUN, so the network routes into it). */
  network?: string;
  port?: number;
  /** Default: the underlay interface's MTU − 28. */
  mtu?: number;
  peers: UdpProxyCPeer[];
}

/** What the proxy counted: every packet is tx, rx or one named drop (vxtun's reason names). */
export interface UdpProxyCCounters {
  tx: { packets: number; bytes: number };
  rx: { packets: number; bytes: number };
  dropped: Record<string, number>;
}

/** `tx-packets=1 ... drop:no-route=0 ...` as printed by the proxy. */
export function parseUdpProxyCCounters(line: string): UdpProxyCCounters {
  const c: UdpProxyCCounters = { tx: { packets: 0, bytes: 0 }, rx: { packets: 0, bytes: 0 }, dropped: {} };
  for (const [, key, value] of line.matchAll(/(\S+)=(\d+)/g)) {
    const n = Number(value);
    if (key!.startsWith('drop:')) c.dropped[key!.slice('drop:'.length)] = n;
    else if (key === 'tx-packets') c.tx.packets = n;
    else if (key === 'tx-bytes') c.tx.bytes = n;
    else if (key === 'rx-packets') c.rx.packets = n;
    else if (key === 'rx-bytes') c.rx.bytes = n;
  }
  return c;
}

/** A running C udp proxy in a node namespace. */
export class UdpProxyCNode {
  private countersAsked = 0;

  private constructor(
    readonly child: ChildProcess,
    /** The TUN device, `flannel0` unless taken. */
    readonly device: string,
    readonly mtu: number,
    private readonly exited: Promise<number | null>,
  ) {}

  static async start(ns: Netns, opts: UdpProxyCOptions): Promise<UdpProxyCNode> {
    const binary = await buildUdpProxyC();
    const prefixLen = (opts.network ?? '10.244.0.0/16').split('/')[1];
    const port = opts.port ?? UDP_PROXY_C_PORT;
    const args = [binary, '--public-ip', opts.publicIp, '--tun-ip', `${opts.subnet.split('/')[0]}/${prefixLen}`, '--port', String(port)];
    if (opts.mtu !== undefined) args.push('--mtu', String(opts.mtu));
    for (const p of opts.peers) args.push('--route', `${p.subnet}=${p.publicIp}:${p.port ?? port}`);
    const child = ns.spawn(args);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const m = await waitForOutput(child, /ready: tun (\S+) \S+ mtu (\d+)/, { timeoutMs: 10_000 });
    return new UdpProxyCNode(child, m[1]!, Number(m[2]), exited);
  }

  /** The proxy's counters now (SIGUSR1 makes it print a numbered line between two packets). */
  async counters(): Promise<UdpProxyCCounters> {
    const n = ++this.countersAsked;
    this.child.kill('SIGUSR1');
    const m = await waitForOutput(this.child, new RegExp(`counters #${n}: (.*)`), { timeoutMs: 5_000 });
    return parseUdpProxyCCounters(m[1]!);
  }

  /** SIGTERM; resolves to the exit code (0: it stopped cleanly, printed its counters and closed the TUN). */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}
