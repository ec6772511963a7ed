/**
 * What vxtun reads from and does to the host: preflight checks that change nothing, then the
 * TUN device, its address and the pod-network route. The TUN is not persistent, so closing it
 * removes the device and every route through it: a crash leaves nothing behind either.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, type Stats } from 'node:fs';
import os from 'node:os';
import type { NodeConfig } from './config.js';
import { VXLAN_OVERHEAD_V4 } from './config.js';
import type { Logger } from 'pino';
import { ipv4ToString, ipv4FromString, isIpv4String } from '../packet/wire/ipv4.js';
import { type Cidr, cidrContains, cidrToString, ipv4Mask } from '../packet/cidr.js';
import type { Route, Vtep } from '../packet/routes.js';

/** A failure that is the operator's to fix (exit 2 when it is about the config, 1 otherwise). */
export class HostError extends Error {
  override readonly name = 'HostError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

export interface Underlay {
  iface: string;
  mtu: number;
}

/**
 * The interface that carries `publicIp`, and its MTU. Asks iproute2 first: Node's
 * networkInterfaces() (libuv) hides interfaces that are not running, and an underlay whose
 * carrier is down at start-up is still the underlay.
 */
export function findUnderlay(publicIp: string): Underlay | undefined {
  try {
    const links = JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{
      ifname: string;
      mtu: number;
      addr_info?: Array<{ local?: string }>;
    }>;
    const link = links.find((l) => l.addr_info?.some((a) => a.local === publicIp));
    return link ? { iface: link.ifname, mtu: link.mtu } : undefined;
  } catch {
    // no iproute2: fall back to what libuv sees
  }
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (addrs?.some((a) => a.family === 'IPv4' && a.address === publicIp)) {
      let mtu = 1500;
      try {
        mtu = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim()) || 1500;
      } catch {
        // /sys not mounted: assume Ethernet's default
      }
      return { iface: name, mtu };
    }
  }
  return undefined;
}

export interface Plan {
  underlay: Underlay;
  /** MTU of the TUN device: configured, or the underlay's minus the VXLAN overhead. */
  deviceMtu: number;
  /** Largest inner packet that fits the underlay in one datagram. */
  maxInnerSize: number;
  vtepAddress: string;
}

/** First of all: without root nothing else can be checked meaningfully (the config may be unreadable too). */
export function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new HostError('vxtun up must run as root (it creates a TUN device and routes)', 1);
  }
}

function describeFileType(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a socket';
}

/**
 * Whether the control socket's path is free or holds a socket (a stale one is ours to replace);
 * anything else there is the operator's and is never removed: HostError, exit 2.
 */
export function controlSocketPathState(path: string): 'absent' | 'socket' {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw new HostError(`config: controlSocket: ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
  }
  if (st.isSocket()) return 'socket';
  throw new HostError(`config: controlSocket: ${JSON.stringify(path)} is ${describeFileType(st)}, not a socket: refusing to replace it`, 2);
}

/**
 * What any node needs of the host before touching it: root, /dev/net/tun, a free device name and a
 * control socket path that holds nothing of the operator's. Throws HostError with one line.
 */
export function checkHost(deviceName: string, controlSocket: string | undefined): void {
  requireRoot();
  // An abstract socket (`\0…`) has no path to check.
  if (controlSocket !== undefined && !controlSocket.startsWith('\0')) controlSocketPathState(controlSocket);
  if (!existsSync('/dev/net/tun')) {
    throw new HostError('/dev/net/tun is missing: load the tun module (modprobe tun) or run where TUN devices are allowed', 1);
  }
  if (existsSync(`/sys/class/net/${deviceName}`)) {
    throw new HostError(`config: device.name: "${deviceName}" already exists on this host`, 2);
  }
}

/** The interface that carries `publicIp` (HostError, exit 2, when none does). */
export function requireUnderlay(publicIp: string): Underlay {
  const underlay = findUnderlay(publicIp);
  if (!underlay) {
    throw new HostError(`config: publicIp: "${publicIp}" is not an address of any interface on this host`, 2);
  }
  return underlay;
}

/** Checks everything a static VXLAN node needs before touching the host; throws HostError with one line. */
export function preflight(cfg: NodeConfig): Plan {
  checkHost(cfg.device.name, cfg.controlSocket);
  const underlay = requireUnderlay(cfg.publicIp);
  const maxInnerSize = underlay.mtu - VXLAN_OVERHEAD_V4;
  return {
    underlay,
    deviceMtu: cfg.device.mtu ?? maxInnerSize,
    maxInnerSize,
    vtepAddress: ipv4ToString(cfg.subnet.addr),
  };
}

/** The IPv4 subnets `iface` is directly attached to (its addresses with their prefixes). */
export function attachedSubnets(iface: string): Cidr[] {
  const links = JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show', 'dev', iface], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Array<{
    addr_info?: Array<{ local?: string; prefixlen?: number }>;
  }>;
  const out: Cidr[] = [];
  for (const a of links.flatMap((l) => l.addr_info ?? [])) {
    if (a.local === undefined || a.prefixlen === undefined || !isIpv4String(a.local)) continue;
    out.push({ family: 4, addr: (ipv4FromString(a.local) & ipv4Mask(a.prefixlen)) >>> 0, prefixLen: a.prefixlen });
  }
  return out;
}

/**
 * flanneld's vxlan DirectRouting (pkg/backend/vxlan/vxlan_network.go): a peer whose PublicIP the
 * underlay reaches without a gateway gets the kernel route `<subnet> via <PublicIP> dev <iface>`
 * instead of the tunnel, so its pods' packets go both ways unencapsulated on the underlay, which is
 * what the peer does towards us (a tunnelled answer fails reverse-path filtering there). The route
 * is more specific than the pod network's route through the TUN, so the engine never sees these
 * packets; its table keeps the peer for status only. Routes are replaced on every table, removed
 * when their lease goes, and all removed on stop.
 */
export class DirectRoutes {
  /** Subnet text -> the PublicIP it is routed via. */
  private readonly installed = new Map<string, string>();

  constructor(
    private readonly iface: string,
    private readonly attached: readonly Cidr[],
    private readonly log: Logger,
  ) {}

  /** Is `publicIp` on one of the underlay interface's own subnets? */
  reachesDirectly(publicIp: string): boolean {
    if (!isIpv4String(publicIp)) return false;
    const host = { family: 4 as const, addr: ipv4FromString(publicIp), prefixLen: 32 };
    return this.attached.some((s) => cidrContains(s, host));
  }

  /** Subnets routed directly now (for status). */
  has(subnet: string): boolean {
    return this.installed.has(subnet);
  }

  /** Makes the kernel's direct routes match `routes` (one table's worth of peers). */
  apply(routes: readonly Route<Vtep>[]): void {
    const wanted = new Map<string, string>();
    for (const r of routes) {
      if (r.prefix.family === 4 && this.reachesDirectly(r.target.endpoint.address)) wanted.set(cidrToString(r.prefix), r.target.endpoint.address);
    }
    for (const [subnet, via] of this.installed) {
      if (wanted.get(subnet) === via) continue;
      this.remove(subnet, via);
    }
    for (const [subnet, via] of wanted) {
      if (this.installed.get(subnet) === via) continue;
      try {
        execFileSync('ip', ['route', 'replace', subnet, 'via', via, 'dev', this.iface], { stdio: ['ignore', 'ignore', 'pipe'] });
        this.installed.set(subnet, via);
        this.log.info({ subnet, via, dev: this.iface }, 'direct route added');
      } catch (err) {
        // The peer stays reachable through the tunnel (the engine's table still has it).
        this.log.warn({ subnet, via, dev: this.iface, err: stderrOf(err) }, 'direct route refused; the peer stays on the tunnel');
      }
    }
  }

  clear(): void {
    for (const [subnet, via] of this.installed) this.remove(subnet, via);
  }

  private remove(subnet: string, via: string): void {
    this.installed.delete(subnet);
    try {
      execFileSync('ip', ['route', 'del', subnet, 'via', via, 'dev', this.iface], { stdio: ['ignore', 'ignore', 'pipe'] });
      this.log.info({ subnet, via, dev: this.iface }, 'direct route removed');
    } catch (err) {
      // Already gone (the operator, or the interface went away): nothing of ours is left.
      this.log.debug({ subnet, via, err: stderrOf(err) }, 'direct route already gone');
    }
  }
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: Buffer | string; message: string };
  return e.stderr?.toString().trim() || e.message;
}

/**
 * flanneld's IPv6 public address when --public-ipv6 is not given: the first global IPv6 address of
 * the interface that carries `publicIp`.
 */
export function findPublicIpv6(publicIp: string): string | undefined {
  const underlay = findUnderlay(publicIp);
  if (!underlay) return undefined;
  try {
    const links = JSON.parse(execFileSync('ip', ['-j', '-6', 'addr', 'show', 'dev', underlay.iface, 'scope', 'global'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{
      addr_info?: Array<{ local?: string; tentative?: boolean }>;
    }>;
    return links.flatMap((l) => l.addr_info ?? []).find((a) => a.local !== undefined)?.local;
  } catch {
    return undefined;
  }
}

/**
 * What flanneld does to flannel-v6.<VNI>, on vxtun's IPv6 TUN device: the lease's IPv6 subnet
 * address as a /128 (no prefix route of its own) and the IPv6 pod network routed into the device.
 * Both go with the device when it closes.
 */
export function addIpv6DeviceRoutes(dev: string, subnet6: Cidr, network6: Cidr): void {
  const ip = (args: string[]): void => {
    try {
      execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new HostError(`ip ${args.join(' ')}: ${stderrOf(err)}`, 1);
    }
  };
  const subnetAddress = cidrToString(subnet6).split('/')[0]!;
  ip(['-6', 'addr', 'add', `${subnetAddress}/128`, 'dev', dev, 'nodad']);
  ip(['-6', 'route', 'replace', cidrToString(network6), 'dev', dev]);
}
