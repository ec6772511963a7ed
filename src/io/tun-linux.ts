import { readFileSync, writeFileSync } from 'node:fs';
/**
 * The Linux TUN device (IFF_TUN | IFF_NO_PI, non-blocking) through the native addon: batched reads and
 * writes, readiness from a uv poll handle on the Node event loop.
 */
import { requireNative, type NativeAddon, type PollHandle, type TunQueueHandle, type ExpressHandle, type ExpressTunSide } from './addon.js';
import type { TunDevice } from './tun-device.js';
import { prepareTcpGso } from '../packet/gso.js';
import { emitVirtioNetHdr, VIRTIO_NET_HDR_LEN } from '../packet/wire/virtio-net.js';
import { TunCounter, TunOffloadReader, TunOffloadWriter, TUN_COUNTER_COUNT } from './tun-offload.js';

export interface LinuxTunOptions {
  /** Requested interface name ('' lets the kernel choose tunN); the device's `name` is what the kernel assigned. */
  name: string;
  mtu: number;
  /**
   * The device's transmit queue length (txqueuelen): how many packets the kernel holds for vxtun to
   * read before it drops, each up to a 64 KB super-packet with offloads; omitted: the kernel's 500.
   */
  txQueueLength?: number;
  /** Address for the device, e.g. flannel's `<subnet>.0` with prefixLen 32. */
  ipv4?: string;
  /** Default 32. */
  prefixLen?: number;
  /** Keep IPv6 on the device (default off: an IPv4 pod network has no use for it). */
  ipv6?: boolean;
  /**
   * IFF_VNET_HDR + TUNSETOFFLOAD(CSUM|TSO4|TSO6): the kernel hands over 64 KB TCP super-packets that the
   * addon (or src/io/tun-offload.ts, offloadIn 'ts') segments (one read per window instead of one per packet). Default off; VXTUN_NO_TUN_OFFLOAD=1
   * forces it off. `features.offload` says whether the kernel took it.
   */
  offload?: boolean;
  /**
   * With offload, also USO (TUNSETOFFLOAD USO4|USO6, Linux 6.2+): runs of one UDP flow's datagrams are
   * written as one super-packet, and UDP super-packets of local UDP_SEGMENT senders are read and split.
   * Default on; VXTUN_NO_TUN_USO=1 forces it off. `features.uso` says whether the kernel took it.
   */
  uso?: boolean;
  /** IFF_MULTI_QUEUE, so openTunQueue can attach more queues (one per worker thread). */
  multiQueue?: boolean;
  /** Where the offload counters live (e.g. shared with a supervising thread). */
  counters?: Float64Array;
  /**
   * Who does the offloads' packet work: 'native' (the addon's tunQueueRead/tunWriteOffload, default)
   * or 'ts' (src/io/tun-offload.ts over plain readBatch/writeBatch: the pure-TypeScript datapath).
   */
  offloadIn?: 'native' | 'ts';
}

/** Index of each counter in LinuxTunDevice.offloadCounters (the TypeScript and the native offloads share it). */
export { TunCounter };

/** tunWriteOffload's `coalesce` bits (kCoalesceTcp / kCoalesceUdp in native/tun_offload.cc). */
export const TunCoalesce = { Tcp: 1, Udp: 2 } as const;

/** What a TUN queue runs with: vnetHdr: packets carry a virtio_net_hdr; offload: the kernel took TSO/CSUM; uso: and USO. */
export interface TunFeatures {
  vnetHdr: boolean;
  offload: boolean;
  uso: boolean;
}

/** Whether to ask for USO: with offloads, unless the config or VXTUN_NO_TUN_USO=1 says no. */
function wantUso(offload: boolean, uso: boolean | undefined, offloadIn: 'native' | 'ts' | undefined): boolean {
  // The TypeScript reader splits TCP super-packets only: a UDP one (a local UDP_SEGMENT sender) would be lost.
  return offload && uso !== false && offloadIn !== 'ts' && process.env.VXTUN_NO_TUN_USO !== '1';
}

export interface LinuxTunDevice extends TunDevice {
  /** The TUN descriptor (-1 once closed). */
  readonly fd: number;
  readonly features: TunFeatures;
  /** Shared with the addon when vnetHdr (see TunCounter); all zero otherwise. */
  readonly offloadCounters: Float64Array;
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
  let native: NativeAddon;
  try {
    native = requireNative();
  } catch (e) {
    // Node has no ioctl: without the addon there is no TUN device, whatever the datapath.
    throw new Error(`cannot open TUN ${opts.name || '(any name)'}: ${(e as Error).message}`);
  }
  const wantOffload = opts.offload === true && process.env.VXTUN_NO_TUN_OFFLOAD !== '1';
  const { fd, name, vnetHdr, offload, uso } =
    wantOffload || opts.multiQueue === true
      ? native.tunOpen(opts.name, { offload: wantOffload, uso: wantUso(wantOffload, opts.uso, opts.offloadIn), multiQueue: opts.multiQueue === true })
      : native.tunOpen(opts.name);
  try {
    if (opts.ipv6 !== true) disableIpv6(name);
    native.linkConfigure(name, {
      mtu: opts.mtu,
      ...(opts.txQueueLength !== undefined ? { txQueueLen: opts.txQueueLength } : {}),
      ...(opts.ipv4 !== undefined ? { ipv4: opts.ipv4, prefixLen: opts.prefixLen ?? 32 } : {}),
      up: true,
    });
  } catch (e) {
    native.close(fd);
    throw e;
  }
  return new LinuxTun(native, fd, name, opts.mtu, { vnetHdr: vnetHdr === true, offload: offload === true, uso: uso === true }, opts.counters, opts.offloadIn);
}

/** The device's transmit queue length as the kernel has it (txqueuelen), or undefined when sysfs cannot tell. */
export function txQueueLength(name: string): number | undefined {
  try {
    const n = Number(readFileSync(`/sys/class/net/${name}/tx_queue_len`, 'utf8').trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One more queue of a device opened with multiQueue: the descriptor, for a worker thread to adopt.
 * The virtio header and the offloads belong to the device, so the queue asks for what the first
 * queue got (`first`, its features) — not for what the config said, which an environment switch may
 * have overruled there (the addon refuses a queue that disagrees about the header).
 */
export function openTunQueue(name: string, first: TunFeatures): { fd: number } & TunFeatures {
  const r = requireNative().tunOpen(name, { offload: first.vnetHdr, uso: first.uso, multiQueue: true });
  return { fd: r.fd, vnetHdr: r.vnetHdr === true, offload: r.offload === true, uso: r.uso === true };
}

/** Wraps a TUN queue descriptor opened elsewhere in this process (a worker thread's queue). */
export function adoptLinuxTun(fd: number, name: string, mtu: number, features: TunFeatures, counters?: Float64Array): LinuxTunDevice {
  return new LinuxTun(requireNative(), fd, name, mtu, features, counters);
}

class LinuxTun implements LinuxTunDevice {
  #fd: number;
  #poll: PollHandle | undefined;
  #express: ExpressHandle | undefined;
  readonly offloadCounters: Float64Array;
  /**
   * The addon's view of this queue (not with offloadIn 'ts'): with vnetHdr, the scratch a 64 KB
   * super-packet lands in and leaves in MTU-sized pieces, and what is kept there — shared with the express path inside the addon.
   */
  private readonly queue: TunQueueHandle | undefined;
  private sizes32 = new Int32Array(0);
  /** 10 bytes per packet of a write batch holding super-packets (zero = no header of its own). */
  private vnetHdrs = Buffer.alloc(0);
  /**
   * TunCoalesce bits for native writes: TCP segments into super-packets, and with USO UDP datagrams too
   * (VXTUN_NO_TUN_COALESCE=1 turns both off).
   */
  private readonly coalesce: number;
  /** Offloads done in TypeScript over plain reads and writes (offloadIn 'ts'), instead of the addon's queue. */
  private readonly tsReader: TunOffloadReader | undefined;
  private readonly tsWriter: TunOffloadWriter | undefined;

  constructor(
    private readonly native: NativeAddon,
    fd: number,
    readonly name: string,
    readonly mtu: number,
    readonly features: TunFeatures,
    counters?: Float64Array,
    offloadIn: 'native' | 'ts' = 'native',
  ) {
    this.#fd = fd;
    this.coalesce = process.env.VXTUN_NO_TUN_COALESCE === '1' ? 0 : TunCoalesce.Tcp | (features.uso ? TunCoalesce.Udp : 0);
    this.offloadCounters = counters ?? new Float64Array(TUN_COUNTER_COUNT);
    if (features.vnetHdr && offloadIn === 'ts') {
      this.tsReader = new TunOffloadReader((bufs, offset, sizes) => native.readBatch(this.#fd, bufs, offset, sizes), this.offloadCounters);
      this.tsWriter = new TunOffloadWriter((bufs, sizes, offset, count, refused) => native.writeBatch(this.#fd, bufs, sizes, offset, count, refused), this.offloadCounters, this.coalesce !== 0);
    } else {
      this.queue = native.tunQueueOpen(fd, features.vnetHdr);
    }
  }

  private int32Sizes(n: number): Int32Array {
    if (this.sizes32.length < n) this.sizes32 = new Int32Array(Math.max(n, 64));
    return this.sizes32;
  }

  get fd(): number {
    return this.#fd;
  }

  read(bufs: Buffer[], sizes: number[], offset: number): number {
    if (this.#fd < 0) return 0;
    if (this.tsReader !== undefined) return this.tsReader.read(bufs, sizes, offset);
    if (!this.features.vnetHdr) return this.native.readBatch(this.#fd, bufs, offset, sizes);
    const s32 = this.int32Sizes(bufs.length);
    const n = this.native.tunQueueRead(this.queue!, bufs, offset, s32, this.offloadCounters);
    for (let i = 0; i < n; i++) sizes[i] = s32[i]!;
    return n;
  }

  get writesSuperPackets(): boolean {
    return this.features.vnetHdr;
  }

  write(bufs: Buffer[], sizes: number[], offset: number, count: number, gsoSizes?: readonly number[], refused?: Uint8Array): number {
    if (this.#fd < 0) {
      refused?.fill(1, 0, count);
      return 0;
    }
    if (this.tsWriter !== undefined) return this.tsWriter.write(bufs, sizes, offset, count, gsoSizes, refused);
    if (!this.features.vnetHdr) return this.native.writeBatch(this.#fd, bufs, sizes, offset, count, refused);
    const s32 = this.int32Sizes(count);
    for (let i = 0; i < count; i++) s32[i] = sizes[i]!;
    const hdrs = gsoSizes === undefined ? undefined : this.superHeaders(bufs, sizes, offset, count, gsoSizes);
    return this.native.tunWriteOffload(this.#fd, bufs, s32, offset, count, this.offloadCounters, this.coalesce, hdrs, refused);
  }

  /** The virtio_net_hdr of each packet marked with a gso size (zero for the others); undefined if none. */
  private superHeaders(bufs: Buffer[], sizes: number[], offset: number, count: number, gsoSizes: readonly number[]): Buffer | undefined {
    let hdrs: Buffer | undefined;
    for (let i = 0; i < count; i++) {
      const gso = gsoSizes[i] ?? 0;
      if (gso <= 0) continue;
      // Not a TCP packet we can describe: written plain, and the kernel refuses it if it does not fit.
      const repr = prepareTcpGso(bufs[i]!, offset, sizes[i]!, gso);
      if (repr === undefined) continue;
      if (hdrs === undefined) {
        if (this.vnetHdrs.length < count * VIRTIO_NET_HDR_LEN) this.vnetHdrs = Buffer.alloc(Math.max(count, 64) * VIRTIO_NET_HDR_LEN);
        hdrs = this.vnetHdrs;
        hdrs.fill(0, 0, count * VIRTIO_NET_HDR_LEN);
      }
      emitVirtioNetHdr(repr, hdrs, i * VIRTIO_NET_HDR_LEN);
    }
    return hdrs;
  }

  /** The addon's queue: outbound express runs with its offload reader (vnetHdr), inbound needs only the descriptor. */
  expressSide(): ExpressTunSide | undefined {
    if (this.#fd < 0 || this.queue === undefined) return undefined;
    return { tunQueue: this.queue, tunCounters: this.offloadCounters, tunCoalesce: this.coalesce };
  }

  /** See ExpressCapable (express-sides.ts). */
  useExpress(handle: ExpressHandle): void {
    this.#express = handle;
  }

  start(onReadable: () => void): void {
    if (this.#fd < 0) throw new Error(`tun ${this.name}: start after close`);
    if (this.#poll !== undefined) throw new Error(`tun ${this.name}: already started`);
    // A poll error (the handle is then stopped by libuv) is left to the next read to report.
    // A super-packet cut short by full buffers waits in the queue (or in the TS reader): epoll will not say so (the fd may be
    // empty), so come back on the next turn until it is handed over.
    let again = false;
    const run = (): void => {
      again = false;
      onReadable();
      const pending = this.tsReader !== undefined ? this.tsReader.pending : this.features.vnetHdr && this.native.tunQueuePending(this.queue!);
      // Not once reading stopped (stopReading, close): a stopped pipeline leaves the pending part unread.
      if (pending && !again && this.#fd >= 0 && this.#poll !== undefined) {
        again = true;
        setImmediate(run);
      }
    };
    this.#poll = this.native.pollStart(this.#fd, run, this.#express, 0);
  }

  stopReading(): void {
    if (this.#express !== undefined) this.native.expressStop(this.#express);
    if (this.#poll !== undefined) {
      this.native.pollStop(this.#poll);
      this.#poll = undefined;
    }
  }

  close(): void {
    // The express path must not touch a descriptor that is about to close (and may be reused).
    this.stopReading();
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
