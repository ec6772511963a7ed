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
import { ipv4ToString } from '../packet/wire/ipv4.js';

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
