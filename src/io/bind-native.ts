/**
 * Bind over the native addon: the fast path. The addon owns the socket (bound to publicIp:port,
 * large buffers); datagrams arrive by recvmmsg into one arena this object owns (slot i is a fixed
 * view, so nothing is allocated per datagram) and leave by sendmmsg straight from the caller's
 * buffers (no copy), runs of equal-sized datagrams as one UDP GSO message when the kernel has it.
 * With UDP GRO on, a message may hold several datagrams (a peer's GSO super-datagram arrives
 * whole): it is split into views of the arena (gro.ts), cached per offset, so the engine still
 * sees one datagram per buffer.
 * Readiness comes from a uv poll handle on the event loop, as for the TUN. Counters live in a
 * Float64Array the addon increments and anyone may read without a call.
 */
import { requireNative, type NativeAddon, type PollHandle, type ExpressHandle, type ExpressUdpSide } from './addon.js';
import type { Bind, Endpoint, ReceiveFn } from './bind.js';
import { innerFlowHash } from '../packet/flow-hash.js';
import { newGroPieces, splitGro } from '../packet/gro.js';
import { UdpCounter, UDP_COUNTER_COUNT } from './counter-layouts.js';
import { newCodelState } from '../packet/codel.js';

/** Index of each counter in NativeBind.counters (native/counters.def through counter-layouts.ts). */
export { UdpCounter };

export interface NativeBindOptions {
  recvBufferSize?: number;
  sendBufferSize?: number;
  /** Use UDP GSO when the kernel has it (default true; VXTUN_NO_GSO=1 also turns it off). */
  gso?: boolean;
  /** Turn on UDP GRO when the kernel has it (default true; VXTUN_NO_UDP_GRO=1 also turns it off). */
  gro?: boolean;
  /** Datagrams per recvmmsg (default 64, or VXTUN_RECV_BATCH; at most 256). */
  batchSize?: number;
  /**
   * RFC 7348 §5 source ports: a pool of `sockets` send sockets bound to ports spread over
   * [min, max]; each datagram leaves on the one its inner flow hashes to (the addon hashes
   * addresses, protocol and ports), so a flow keeps one source port and flows spread over ECMP.
   * Omitted: every datagram leaves from the bound port itself (fixed source port).
   */
  sourcePorts?: { min: number; max: number; sockets: number };
  /** SO_REUSEPORT on every socket: one bind per worker thread on the same ports. */
  reusePort?: boolean;
  /**
   * CoDel on the receive queue (src/packet/codel.ts), target and interval in microseconds; omitted: off.
   * Needs the kernel's arrival stamps (SO_TIMESTAMPNS): without them it stays off (features.codel).
   */
  codel?: { targetUs: number; intervalUs: number };
  /** Where the counters live (e.g. a SharedArrayBuffer a supervising thread reads); default a new array. */
  counters?: Float64Array;
  /**
   * Room per received datagram. Kernel peers on veth send unsegmented GSO super-packets of up to
   * 64 KB as one datagram, so the default takes the largest UDP payload there is.
   */
  slotSize?: number;
}

/** Receive rounds per wake-up, so the TUN side gets its turn under load. */
const MAX_ROUNDS_PER_WAKE = 8;
const MAX_SEND_BATCH = 256;
const MAX_CACHED_ENDPOINTS = 4096;
/** Views of the arena at the offsets GRO pieces start at: few distinct ones for steady flows. */
const MAX_CACHED_VIEWS = 16384;

export class NativeBind implements Bind {
  /** Shared with the addon: see UdpCounter. */
  readonly counters: Float64Array;
  /** Offloads the kernel granted at open. */
  readonly features: { gso: boolean; gro: boolean; recvBufferSize: number; sendBufferSize: number; codel: boolean };
  /** CoDel's state (src/packet/codel.ts), shared with the addon; undefined: CoDel off. */
  readonly codel: Float64Array | undefined;
  private poll: PollHandle | undefined;
  private fd: number;
  private readonly arena: Buffer;
  private readonly slots: Buffer[];
  private readonly recvSizes: Int32Array;
  private readonly recvAddrs: Uint32Array;
  private readonly recvPorts: Uint16Array;
  private readonly recvGso: Int32Array | undefined;
  private readonly sizesOut: number[];
  private readonly srcsOut: Endpoint[];
  /** GRO only: the split of the last batch, the buffers handed over, arena views by offset. */
  private readonly pieces = newGroPieces();
  private readonly bufsOut: Buffer[] = [];
  private readonly views = new Map<number, Buffer>();
  private readonly sendSizes = new Int32Array(MAX_SEND_BATCH);
  private readonly sendBufs: Buffer[] = [];
  /** Peers send from few (address, port) pairs: one Endpoint object each, reused. */
  private readonly endpoints = new Map<number, Endpoint>();
  /** The sender of the datagram before (see endpoint). */
  private lastAddr = -1;
  private lastEndpoint: Endpoint = { address: '', port: -1 };
  private readonly addrCache = new Map<string, number>();
  /** Send sockets of the source-port pool (empty: send from the bound socket). */
  private sendFds = new Int32Array(0);
  /** The source ports of the pool, for logs and tests. */
  sourcePorts: number[] = [];
  /** The pool as endpoints, in the order of sendFds (the addon sends on sendFds[hash % length]). */
  private sourceEndpoints: Endpoint[] = [];

  private constructor(
    private readonly native: NativeAddon,
    fd: number,
    readonly local: Endpoint,
    gso: boolean,
    gro: boolean,
    recvBufferSize: number,
    sendBufferSize: number,
    private readonly batchSize: number,
    private readonly slotSize: number,
    counters?: Float64Array,
    codel?: Float64Array,
  ) {
    this.fd = fd;
    this.codel = codel;
    this.features = { gso, gro, recvBufferSize, sendBufferSize, codel: codel !== undefined };
    this.counters = counters ?? new Float64Array(UDP_COUNTER_COUNT);
    this.arena = Buffer.alloc(batchSize * slotSize);
    this.slots = Array.from({ length: batchSize }, (_, i) => this.arena.subarray(i * slotSize, (i + 1) * slotSize));
    this.recvSizes = new Int32Array(batchSize);
    this.recvAddrs = new Uint32Array(batchSize);
    this.recvPorts = new Uint16Array(batchSize);
    this.recvGso = gro ? new Int32Array(batchSize) : undefined;
    this.sizesOut = new Array<number>(batchSize).fill(0);
    this.srcsOut = new Array<Endpoint>(batchSize).fill(local);
  }

  /** Binds address:port; throws an Error naming the errno (EADDRINUSE, EADDRNOTAVAIL). */
  static open(address: string, port: number, opts: NativeBindOptions = {}): NativeBind {
    const native = requireNative();
    const gsoWanted = (opts.gso ?? true) && process.env.VXTUN_NO_GSO !== '1';
    const groWanted = (opts.gro ?? true) && process.env.VXTUN_NO_UDP_GRO !== '1';
    let r;
    try {
      r = native.udpOpen(address, port, {
        recvBufferSize: opts.recvBufferSize ?? 8 * 1024 * 1024,
        sendBufferSize: opts.sendBufferSize ?? 8 * 1024 * 1024,
        gso: gsoWanted,
        gro: groWanted,
        reusePort: opts.reusePort === true,
        timestamps: opts.codel !== undefined,
      });
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new Error(`cannot bind UDP ${address}:${port}: ${code ?? (e as Error).message}`);
    }
    // VXTUN_RECV_BATCH (1-256): fewer messages per recvmmsg, as tests force a standing queue with.
    const fromEnv = Number(process.env.VXTUN_RECV_BATCH);
    const batchSize = Math.min(Math.max(opts.batchSize ?? (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : 64), 1), 256);
    const bind = new NativeBind(native, r.fd, { address, port: r.port }, r.gso, r.gro, r.recvBufferSize, r.sendBufferSize, batchSize, opts.slotSize ?? 65536, opts.counters,
      opts.codel !== undefined && r.timestamps ? newCodelState(opts.codel.targetUs, opts.codel.intervalUs) : undefined);
    if (opts.sourcePorts !== undefined) {
      try {
        bind.openSourcePorts(address, opts.sourcePorts, gsoWanted, opts.reusePort === true);
      } catch (e) {
        void bind.close();
        throw e;
      }
    }
    return bind;
  }

  /** Binds the pool: socket k near min + (k + ½)·width/sockets, the next free port if that one is taken. */
  private openSourcePorts(address: string, range: { min: number; max: number; sockets: number }, gso: boolean, reusePort: boolean): void {
    const width = range.max - range.min + 1;
    const n = Math.min(range.sockets, width);
    const fds: number[] = [];
    for (let k = 0; k < n; k++) {
      const start = range.min + Math.floor(((k + 0.5) * width) / n);
      let opened = false;
      for (let t = 0; t < width && !opened; t++) {
        const port = range.min + ((start - range.min + t) % width);
        if (this.sourcePorts.includes(port)) continue;
        try {
          // Send-only: nothing is addressed to these ports, so the receive buffer stays small.
          const s = this.native.udpOpen(address, port, { recvBufferSize: 65536, sendBufferSize: 4 * 1024 * 1024, gso, reusePort });
          fds.push(s.fd);
          this.sourcePorts.push(port);
          opened = true;
        } catch (e) {
          if ((e as { code?: string }).code !== 'EADDRINUSE') {
            for (const fd of fds) this.native.close(fd);
            throw new Error(`cannot bind UDP source port ${address}:${port}: ${(e as { code?: string }).code ?? (e as Error).message}`);
          }
        }
      }
      if (!opened) break;
    }
    if (fds.length === 0) throw new Error(`cannot bind any UDP source port in ${range.min}-${range.max} on ${address}`);
    this.sendFds = Int32Array.from(fds);
    this.sourceEndpoints = this.sourcePorts.map((port) => ({ address, port }));
  }

  /** The pool port the addon picks for this datagram (the same hash, see flow-hash.ts), or the bound one. */
  sourceOf(buf: Buffer, offset: number, length: number): Endpoint {
    const pool = this.sourceEndpoints;
    if (pool.length <= 1) return pool[0] ?? this.local;
    return pool[innerFlowHash(buf, offset, length) % pool.length]!;
  }

  /** Whether sends still use GSO (false from the start, or after the kernel refused it once). */
  get gsoActive(): boolean {
    return this.features.gso && this.counters[UdpCounter.GsoDisabled] === 0;
  }

  /** The socket, the send pool and the receive arena with its result arrays, which the express path fills as drain would. */
  expressSide(): ExpressUdpSide | undefined {
    if (this.fd < 0) return undefined;
    return {
      udpFd: this.fd,
      sendFds: this.sendFds,
      arena: this.arena,
      slotSize: this.slotSize,
      batch: this.batchSize,
      sizes: this.recvSizes,
      addrs: this.recvAddrs,
      ports: this.recvPorts,
      ...(this.recvGso ? { gsoSizes: this.recvGso } : {}),
      udpCounters: this.counters,
      udpGso: this.features.gso,
      ...(this.codel ? { udpCodel: this.codel } : {}),
    };
  }

  /** See ExpressCapable (express-sides.ts). */
  useExpress(handle: ExpressHandle): void {
    this.express = handle;
  }

  start(onReceive: ReceiveFn): void {
    if (this.fd < 0) throw new Error('native bind: start after close');
    if (this.poll !== undefined) throw new Error('native bind: already started');
    this.poll = this.native.pollStart(this.fd, (_err, preRead, roundsBefore) => this.drain(onReceive, preRead ?? 0, roundsBefore ?? 0), this.express, 1);
  }
  private express: ExpressHandle | undefined;

  /**
   * `preRead`: messages the express path already read into the arena (this call's first round's);
   * `roundsBefore`: the rounds it made in this wake-up before that one (bulk inbound), which count
   * against the same budget.
   */
  private drain(onReceive: ReceiveFn, preRead: number, roundsBefore: number): void {
    const n0 = this.batchSize;
    const first = Math.min(roundsBefore, MAX_ROUNDS_PER_WAKE - 1);
    for (let round = first; round < MAX_ROUNDS_PER_WAKE && this.fd >= 0; round++) {
      let n: number;
      try {
        n = round === first && preRead > 0 ? preRead : this.native.udpRecvBatch(this.fd, this.arena, this.slotSize, n0, this.recvSizes, this.recvAddrs, this.recvPorts, this.counters, this.recvGso, this.codel);
      } catch {
        return; // a lasting socket error: counted by the addon (LastErrno); the owner sees traffic stop
      }
      if (n === 0) return;
      if (this.recvGso !== undefined) this.handOverSplit(n, onReceive);
      else {
        for (let i = 0; i < n; i++) {
          this.sizesOut[i] = this.recvSizes[i]!;
          this.srcsOut[i] = this.endpoint(this.recvAddrs[i]!, this.recvPorts[i]!);
        }
        onReceive(this.slots, this.sizesOut, this.srcsOut, n);
      }
      if (n < n0) return;
    }
  }

  /** GRO: each datagram of the `n` messages as its own view of the arena, in one call. */
  private handOverSplit(n: number, onReceive: ReceiveFn): void {
    const p = this.pieces;
    const total = splitGro(this.recvSizes, this.recvGso!, n, p);
    const bufs = this.bufsOut;
    for (let k = 0; k < total; k++) {
      const m = p.message[k]!;
      const off = p.offset[k]!;
      bufs[k] = off === 0 ? this.slots[m]! : this.view(m * this.slotSize + off, (m + 1) * this.slotSize);
      this.sizesOut[k] = p.length[k]!;
      this.srcsOut[k] = this.endpoint(this.recvAddrs[m]!, this.recvPorts[m]!);
    }
    onReceive(bufs, this.sizesOut, this.srcsOut, total);
  }

  private view(start: number, end: number): Buffer {
    let v = this.views.get(start);
    if (v === undefined) {
      if (this.views.size >= MAX_CACHED_VIEWS) this.views.clear();
      v = this.arena.subarray(start, end);
      this.views.set(start, v);
    }
    return v;
  }

  private endpoint(addr: number, port: number): Endpoint {
    // The last sender first: a batch mostly comes from one peer, and the map's key (a double
    // past 2^31) would be boxed, 16 bytes per datagram, on every lookup.
    const last = this.lastEndpoint;
    if (addr === this.lastAddr && port === last.port) return last;
    const e = this.cachedEndpoint(addr, port);
    this.lastAddr = addr;
    this.lastEndpoint = e;
    return e;
  }

  private cachedEndpoint(addr: number, port: number): Endpoint {
    const key = addr * 65536 + port;
    let e = this.endpoints.get(key);
    if (e === undefined) {
      if (this.endpoints.size >= MAX_CACHED_ENDPOINTS) this.endpoints.clear();
      e = { address: `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`, port };
      this.endpoints.set(key, e);
    }
    return e;
  }

  private addressOf(address: string): number {
    let a = this.addrCache.get(address);
    if (a === undefined) {
      const parts = address.split('.');
      a = parts.length === 4 ? parts.reduce((acc, p) => acc * 256 + (Number(p) & 255), 0) : 0;
      if (this.addrCache.size >= MAX_CACHED_ENDPOINTS) this.addrCache.clear();
      this.addrCache.set(address, a);
    }
    return a;
  }

  /**
   * Datagrams from any address but `peers` are dropped in the kernel, before they take room in the
   * receive buffer or wake the engine (a socket filter; counted in RecvOverflows, the socket's drops).
   * null takes every datagram again. False: no filter (null, or more peers than the filter holds).
   */
  setPeerFilter(peers: readonly string[] | null): boolean {
    if (this.fd < 0) return false;
    return this.native.udpPeerFilter(this.fd, peers === null ? null : Uint32Array.from(peers, (p) => this.addressOf(p)));
  }

  send(bufs: Buffer[], sizes: number[], offset: number, count: number, dst: Endpoint): number {
    if (this.fd < 0 || count === 0) return 0;
    const addr = this.addressOf(dst.address);
    const gso = this.features.gso;
    let sent = 0;
    for (let start = 0; start < count; start += MAX_SEND_BATCH) {
      const n = Math.min(MAX_SEND_BATCH, count - start);
      let batch = bufs;
      if (start !== 0) {
        // Written by index: `length = 0` would give up the array's room every call (the count says how many).
        for (let i = 0; i < n; i++) this.sendBufs[i] = bufs[start + i]!;
        batch = this.sendBufs;
      }
      for (let i = 0; i < n; i++) this.sendSizes[i] = sizes[start + i]!;
      const fds = this.sendFds.length > 0 ? this.sendFds : this.fd;
      sent += this.native.udpSendBatch(fds, batch, this.sendSizes, offset, n, addr, dst.port, gso, this.counters);
    }
    return sent;
  }

  async close(): Promise<void> {
    // The express path must not send on descriptors that are about to close (and may be reused).
    if (this.express !== undefined) this.native.expressStop(this.express);
    if (this.poll !== undefined) {
      this.native.pollStop(this.poll);
      this.poll = undefined;
    }
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      this.native.close(fd);
      for (const sfd of this.sendFds) this.native.close(sfd);
      this.sendFds = new Int32Array(0);
      this.sourceEndpoints = [];
    }
  }
}
