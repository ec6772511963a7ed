import { writeFileSync } from 'node:fs';
/**
 * The Linux TUN device (IFF_TUN | IFF_NO_PI, non-blocking) through the native addon: batched reads and
 * writes, readiness from a uv poll handle on the Node event loop.
 */
import { requireNative, type NativeAddon, type PollHandle } from '../native/index.js';
import type { TunDevice } from './device.js';

export interface LinuxTunOptions {
  /** Requested interface name ('' lets the kernel choose tunN); the device's `name` is what the kernel assigned. */
  name: string;
  mtu: number;
  /** Address for the device, e.g. flannel's `<subnet>.0` with prefixLen 32. */
  ipv4?: string;
  /** Default 32. */
  prefixLen?: number;
  /** Keep IPv6 on the device (default off: an IPv4 pod network has no use for it). */
  ipv6?: boolean;
}

export interface LinuxTunDevice extends TunDevice {
  /** The TUN descriptor (-1 once closed). */
  readonly fd: number;
}

/**
 * Opens (creates) the TUN device, sets its MTU and address and brings it up. The device is not
 * persistent: it disappears, with its address and routes, when closed or when the process exits.
 */
/**
 * An IPv4-only pod network needs no IPv6 on the device; left on, the kernel sends router
 * solicitations and MLD reports into it that no peer could take. Set before the link goes up;
 * the setting vanishes with the device.
 */
function disableIpv6(name: string): void {
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1');
  } catch {
    // IPv6 disabled or absent in this kernel: nothing would be sent anyway
  }
}

export function openLinuxTun(opts: LinuxTunOptions): LinuxTunDevice {
  const native = requireNative();
  const { fd, name } = native.tunOpen(opts.name);
  try {
    if (opts.ipv6 !== true) disableIpv6(name);
    native.linkConfigure(name, {
      mtu: opts.mtu,
      ...(opts.ipv4 !== undefined ? { ipv4: opts.ipv4, prefixLen: opts.prefixLen ?? 32 } : {}),
      up: true,
    });
  } catch (e) {
    native.close(fd);
    throw e;
  }
  return new LinuxTun(native, fd, name, opts.mtu);
}

class LinuxTun implements LinuxTunDevice {
  #fd: number;
  #poll: PollHandle | undefined;

  constructor(
    private readonly native: NativeAddon,
    fd: number,
    readonly name: string,
    readonly mtu: number,
  ) {
    this.#fd = fd;
  }

  get fd(): number {
    return this.#fd;
  }

  read(bufs: Buffer[], sizes: number[], offset: number): number {
    if (this.#fd < 0) return 0;
    return this.native.readBatch(this.#fd, bufs, offset, sizes);
  }

  write(bufs: Buffer[], sizes: number[], offset: number, count: number): number {
    if (this.#fd < 0) return 0;
    return this.native.writeBatch(this.#fd, bufs, sizes, offset, count);
  }

  start(onReadable: () => void): void {
    if (this.#fd < 0) throw new Error(`tun ${this.name}: start after close`);
    if (this.#poll !== undefined) throw new Error(`tun ${this.name}: already started`);
    // A poll error (the handle is then stopped by libuv) is left to the next read to report.
    this.#poll = this.native.pollStart(this.#fd, () => onReadable());
  }

  close(): void {
    if (this.#poll !== undefined) {
      this.native.pollStop(this.#poll);
      this.#poll = undefined;
    }
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      this.native.close(fd);
    }
  }
}

/** `ip route add <dst>/<prefixLen> dev <dev>`; throws an Error with code 'EEXIST' if it is there already. */
export function addRoute(dst: string, prefixLen: number, dev: string): void {
  requireNative().routeAdd(dst, prefixLen, dev);
}

/** `ip route del <dst>/<prefixLen> dev <dev>`; throws code 'ESRCH' if there is no such route. */
export function delRoute(dst: string, prefixLen: number, dev: string): void {
  requireNative().routeDel(dst, prefixLen, dev);
}
