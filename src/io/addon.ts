/**
 * Typed loader of the native addon (build/Release/vxtun_native.node, built by node-gyp from native/).
 *
 * Conventions of the addon: JS owns the buffers of a call and native code fills or reads them during it (a
 * native object that keeps a pointer past the call holds a reference to that memory, or owns it); one call per batch;
 * a failed system call throws an Error whose message reads "<syscall> <subject>: <ERRNO> (<strerror>)"
 * — e.g. "TUNSETIFF vxtun0: EPERM (Operation not permitted); needs root or CAP_NET_ADMIN ..." — with
 * Node's fields `code` ('EPERM'), `errno` (negative) and `syscall`. Bad arguments throw TypeError/RangeError.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const pollHandleBrand: unique symbol;
/** Opaque handle returned by pollStart. */
export interface PollHandle {
  readonly [pollHandleBrand]: true;
}
declare const tunQueueBrand: unique symbol;
/** Opaque handle returned by tunQueueOpen: a TUN queue whose read scratch and state live in the addon. */
export interface TunQueueHandle {
  readonly [tunQueueBrand]: true;
}
declare const expressHandleBrand: unique symbol;
/** Opaque handle returned by expressOpen (native/express.cc). */
export interface ExpressHandle {
  readonly [expressHandleBrand]: true;
}

/**
 * One decision of the express rules: `verdict` a Verdict code (policy.ts), `reason` an index in
 * expressReasons; forward: outbound `peer` (the target's record), inbound the inner packet is
 * datagram[offset, offset + length).
 */
export interface ExpressDecision {
  verdict: number;
  reason: number;
  peer: number;
  offset: number;
  length: number;
}

/** The TUN queue's part of ExpressOptions (LinuxTunDevice.expressSide). */
export type ExpressTunSide = Pick<ExpressOptions, 'tunQueue' | 'tunCounters' | 'tunCoalesce'>;
/** The bind's part of ExpressOptions (NativeBind.expressSide). */
export type ExpressUdpSide = Pick<ExpressOptions, 'udpFd' | 'sendFds' | 'arena' | 'slotSize' | 'batch' | 'sizes' | 'addrs' | 'ports' | 'gsoSizes' | 'udpCounters' | 'udpCodel' | 'udpGso'>;

/** What expressOpen takes: the TUN queue's and the bind's descriptors and buffers, and the engine's parameters. */
export interface ExpressOptions {
  /** The TUN queue (its descriptor; with vnetHdr, the offload reader's scratch, where outbound hands a packet not for it over). */
  tunQueue: TunQueueHandle;
  tunCounters: Float64Array;
  udpFd: number;
  /** The flow-hashed source-port pool (empty: send from udpFd). */
  sendFds: Int32Array;
  arena: Uint8Array;
  slotSize: number;
  batch: number;
  sizes: Int32Array;
  addrs: Uint32Array;
  ports: Uint16Array;
  gsoSizes?: Int32Array;
  udpCounters: Float64Array;
  /** The bind's CoDel state (src/packet/codel.ts), when CoDel runs on its socket. */
  udpCodel?: Float64Array;
  vni: number;
  vtepMac: Uint8Array;
  maxInnerSize: number;
  /** Bytes a read buffer of the pipeline takes after the headroom: a longer packet is cut there (and then dropped). */
  readRoom: number;
  tunMtu: number;
  /** Layout ExpressCounter (src/io/counter-layouts.ts). */
  counters: Float64Array;
  /** gate[0] != 0: someone watches; the express path keeps forwarding and records what it forwarded (expressRecords). */
  gate: Int32Array;
  /** Serve idle wake-ups on a thread of the addon's own, off the event loop (native/poll.cc). */
  thread?: boolean;
  /**
   * Bulk inbound (default true): on the event loop, a UDP batch whose every datagram the engine would
   * write unchanged is written into the TUN by the addon, coalesced as tunWriteOffload coalesces.
   */
  bulkIn?: boolean;
  /**
   * Bulk outbound (default true): on the event loop, TUN reads the engine would send unchanged (plain
   * packets, and super-packets segmented as tunQueueRead segments them) are encapsulated and sent by
   * the addon in batches per peer, as udpSendBatch sends them.
   */
  bulkOut?: boolean;
  /** The bind sends with UDP GSO (its features.gso), as those batches then do. */
  udpGso?: boolean;
  /** The TUN writer's TunCoalesce bits for those writes (LinuxTun's; default 0). */
  tunCoalesce?: number;
  /** The engine thread's inbound scheduling (InboundScheduling.shared): [0] 1 while SCHED_BATCH, [1] the busy batch size. */
  inScheduling?: Float64Array;
}

export interface LinkOptions {
  /** SIOCSIFMTU, 68..65535. */
  mtu?: number;
  /** SIOCSIFTXQLEN, 1..100000: for a TUN, the ring of packets waiting for its reader. */
  txQueueLen?: number;
  /** SIOCSIFADDR (applied before the link is brought up). */
  ipv4?: string;
  /** SIOCSIFNETMASK; needs ipv4; default 32. */
  prefixLen?: number;
  /** SIOCSIFFLAGS |= IFF_UP | IFF_RUNNING, other flags kept. */
  up?: boolean;
}

/** The error the addon throws when a system call fails. */
export interface NativeErrnoError extends Error {
  /** Symbolic errno, e.g. 'EEXIST'. */
  code: string;
  /** Negative errno value, as in Node's own system errors. */
  errno: number;
  /** The failing call, e.g. 'TUNSETIFF', 'SIOCADDRT', 'read'. */
  syscall: string;
}

export interface UdpOpenResult {
  fd: number;
  /** The port actually bound. */
  port: number;
  /** Socket buffer sizes the kernel granted (doubled, as getsockopt reports them). */
  recvBufferSize: number;
  sendBufferSize: number;
  /** UDP_SEGMENT available (send offload). */
  gso: boolean;
  /** UDP_GRO turned on (receive offload). */
  gro: boolean;
  /** Each datagram carries its arrival time (SO_TIMESTAMPNS), which CoDel needs. */
  timestamps: boolean;
}

export interface NativeAddon {
  /**
   * Opens /dev/net/tun (O_RDWR|O_NONBLOCK|O_CLOEXEC) and attaches IFF_TUN|IFF_NO_PI `name` ('' lets the kernel pick).
   * offload: IFF_VNET_HDR + TUNSETOFFLOAD(CSUM|TSO4|TSO6); uso: USO4|USO6 as well when the kernel takes them (6.2+).
   */
  tunOpen(name: string, opts?: { offload?: boolean; uso?: boolean; multiQueue?: boolean }): { fd: number; name: string; vnetHdr?: boolean; offload?: boolean; uso?: boolean };
  /**
   * A TUN queue as the addon reads it (native/tun_queue.h): the descriptor (still the caller's to close) and,
   * with `vnetHdr`, a 65585-byte scratch and the state of what is kept there, both inside the addon.
   */
  tunQueueOpen(fd: number, vnetHdr: boolean): TunQueueHandle;
  /**
   * For a queue opened with vnetHdr (IFF_VNET_HDR): reads until EAGAIN or the buffers are used, handing over
   * plain IP packets at `offset` — TCP and UDP (USO) super-packets segmented at gso_size, unfinished checksums finished.
   * A super-packet that did not fit, or a read the express path handed over, waits in the queue for the next call.
   * Counters: layout TunCounter (src/io/counter-layouts.ts).
   */
  tunQueueRead(queue: TunQueueHandle, bufs: Uint8Array[], offset: number, sizes: Int32Array, counters: Float64Array): number;
  /** Whether packets wait in the queue's scratch, which epoll does not report: the reader must come back for them. */
  tunQueuePending(queue: TunQueueHandle): boolean;
  /**
   * For a TUN opened with offload: writev of a virtio_net_hdr + each packet; rules as writeBatch. `coalesce`
   * (TunCoalesce bits): consecutive segments of one TCP flow (Tcp), datagrams of one UDP flow (Udp, needs
   * USO), checksums verified, go as one GSO super-packet the kernel splits back into the same packets.
   * `headers` (10 bytes per packet): a non-zero virtio_net_hdr is written as it is in front of its packet.
   * `refused` (a byte per packet): set to 1 for each packet that did not go in, as in writeBatch.
   */
  tunWriteOffload(fd: number, bufs: Uint8Array[], sizes: Int32Array, offset: number, count: number, counters: Float64Array, coalesce?: number, headers?: Uint8Array, refused?: Uint8Array): number;
  /** MTU, then address + netmask, then up, through ioctls on an AF_INET socket. */
  linkConfigure(name: string, opts: LinkOptions): void;
  /** IPv4 route `dst/prefixLen dev <dev>` (SIOCADDRT, RTF_UP, no gateway). Throws code 'EEXIST' if present. */
  routeAdd(dst: string, prefixLen: number, dev: string): void;
  /** Deletes that route (SIOCDELRT). Throws code 'ESRCH' if absent. */
  routeDel(dst: string, prefixLen: number, dev: string): void;
  /**
   * Non-blocking reads, one packet into each bufs[i] at `offset` (room = length - offset), until EAGAIN
   * or every buffer is used; sets sizes[i]; returns the count (0 if nothing was waiting). EINTR is retried.
   * An error on the first read throws; an error after some packets returns those (it recurs on the next call).
   */
  readBatch(fd: number, bufs: Uint8Array[], offset: number, sizes: Int32Array | number[]): number;
  /**
   * Writes bufs[i][offset, offset + sizes[i]) for i < count; returns how many were accepted.
   * EAGAIN/ENOBUFS stop the batch; a packet refused with EINVAL/EIO/EMSGSIZE is skipped (not counted).
   * Any other error throws if it hits the first packet, else ends the batch. `refused` (a byte per
   * packet, at least `count`): set to 1 for each packet that did not go in (skipped or not tried), the
   * others left as they were — so a caller that zeroes it first knows which packets went, not only how many.
   */
  writeBatch(fd: number, bufs: Uint8Array[], sizes: Int32Array | readonly number[], offset: number, count: number, refused?: Uint8Array): number;
  /**
   * Calls `cb` from the event loop while `fd` is readable (level-triggered: drain it, or be called again
   * next turn). On a poll error (POLLERR) the watch ends and `cb` gets that error once. An active poll
   * keeps the process alive, like a listening socket. With `express`, the express path sees each
   * readiness first and `cb` runs only when it hands over (with `preRead`: UDP messages it already
   * read into the bind's arena; `roundsBefore`: recvmmsg rounds it made in this wake-up before them).
   */
  pollStart(fd: number, cb: (err?: NativeErrnoError, preRead?: number, roundsBefore?: number) => void, express?: ExpressHandle, side?: 0 | 1): PollHandle;
  /**
   * The express path (native/express.cc): a lone packet forwarded from the poll callback without JS.
   * Polls started with the handle (side 0: the TUN queue, 1: the UDP socket) offer it each readiness first.
   */
  expressOpen(opts: ExpressOptions): ExpressHandle;
  /**
   * The engine's IPv4 trie (copied) and 28 bytes per target: 22-byte header template, IPv4 address, port (0: not served);
   * and the anti-spoofing guard (src/datapath/express.ts compileExpressGuard).
   */
  expressRoutes(handle: ExpressHandle, trie: Int32Array, peers: Uint8Array, guard: Uint8Array): void;
  /** From now on everything goes to the JS pipeline. Idempotent. */
  expressStop(handle: ExpressHandle): void;
  /**
   * What the express path forwarded while its gate was set (a trace watching), since the last call:
   * 32-byte record heads each followed by its datagram (layout in src/datapath/express-tap.ts), and
   * how many records did not fit. Called while nobody watches, it also releases the record buffers.
   */
  expressRecords(handle: ExpressHandle): { records: Buffer; lost: number };
  /**
   * The express path's rules (native/express_rules.cc) on one IP packet read from the TUN, with
   * expressRoutes' trie and records: what it would do with it (test/unit/express-twin.test.ts holds
   * it to src/packet/policy.ts).
   */
  expressDecideOutbound(packet: Uint8Array, trie: Int32Array, peers: Uint8Array, params: { maxInnerSize: number; readRoom: number }): ExpressDecision;
  /** The same for one lone VXLAN datagram from the underlay IPv4 address `from` (a uint32), with expressRoutes' table and guard. */
  expressDecideInbound(datagram: Uint8Array, trie: Int32Array, peers: Uint8Array, guard: Uint8Array, params: { vni: number; vtepMac: Uint8Array; tunMtu: number; from: number }): ExpressDecision;
  /** native/codel.h's CodelDequeue on `state` (the twin test of src/packet/codel.ts). */
  codelDequeue(state: Float64Array, sojournNs: number, nowNs: number, emptied: boolean): boolean;
  /** Verdict names by code (src/packet/policy.ts's Verdict). */
  readonly expressVerdicts: readonly string[];
  /** Reason names by code: DropReason in its order, then the express path's own hand-over reasons. */
  readonly expressReasons: readonly string[];
  /**
   * SCHED_BATCH (true) or SCHED_OTHER (false), priority 0, for every thread of the process that runs
   * either (/proc/self/task; threads created later inherit it). Returns how many were set. See native/sched.cc.
   */
  setThreadsPolicy(batch: boolean): number;
  /**
   * The calling thread only: SCHED_BATCH (true) or SCHED_OTHER (false), priority 0. False, with nothing
   * changed, when the thread runs another policy (an operator's chrt). See native/sched.cc.
   */
  setThreadPolicy(batch: boolean): boolean;
  /** One datagram `message` to systemd's NOTIFY_SOCKET `socketPath` ('@…' for an abstract address). See native/sched.cc. */
  sdNotify(socketPath: string, message: string): void;
  /**
   * MADV_DONTNEED on the pages of Node's own code (the object holding N-API: the node executable or
   * libnode.so) that hold nothing but the file's bytes: read-only PT_LOAD segments outside RELRO, and
   * only where smaps shows no private or swapped page. They leave the RSS and stay in the page cache; a
   * page run again comes back with a minor fault. How many ranges, holding about how many resident
   * bytes. Throws when /proc/self/smaps cannot be read whole (nothing is released then). See native/memory.cc.
   */
  releaseNodeCodePages(): { mappings: number; bytes: number };
  /** Stops callbacks at once and closes the uv handle. Idempotent; safe inside the callback. */
  pollStop(handle: PollHandle): void;
  close(fd: number): void;
  /** Clears (true) or sets (false) O_NONBLOCK on `fd` (fcntl F_SETFL); for one-blocking-read-per-packet designs only. */
  setBlocking(fd: number, blocking: boolean): void;
  /**
   * RFC 1071 16-bit ones' complement sum (folded, NOT complemented) of buf[offset, offset + length) as
   * big-endian words, an odd last byte padded with zero, plus `initial` (a 32-bit partial sum, default 0).
   */
  checksum(buf: Uint8Array, offset: number, length: number, initial?: number): number;
  /** RFC 1624 eqn. 3: the checksum field after a 16-bit word changes, HC' = ~(~HC + ~m + m'). */
  csumIncremental(oldCsum: number, oldWord: number, newWord: number): number;
  /**
   * Batch encap (native/encap.cc): for i < count with slots[i] ≥ 0, copies the 22-byte header
   * templates[slots[i] * 22, + 22) (VXLAN + inner Ethernet) to arena[starts[i], + 22) and sets its
   * EtherType from the IP version at arena[starts[i] + 22] (4: IPv4, 6: IPv6; any other version: left
   * untouched, not counted). Returns the headers written. Bad arguments throw before anything is written.
   */
  encapBatch(arena: Uint8Array, starts: Int32Array, count: number, slots: Int32Array, templates: Uint8Array): number;
  /**
   * A non-blocking IPv4 UDP socket bound to address:port (0 = any port), SO_RCVBUF/SO_SNDBUF set
   * (forced past net.core.*mem_max when root). `gso` (default true) probes UDP_SEGMENT, `gro` (default
   * false) turns on UDP_GRO; the result says what the kernel took. Bind errors throw with the errno name.
   */
  udpOpen(address: string, port: number, opts?: { recvBufferSize?: number; sendBufferSize?: number; gso?: boolean; gro?: boolean; reusePort?: boolean; timestamps?: boolean }): UdpOpenResult;
  /**
   * recvmmsg (MSG_DONTWAIT) of up to maxCount (≤ 256) datagrams, datagram i into arena[i * slotSize]:
   * sizes[i], addrs[i] (host order), ports[i]. Returns the count; 0 when nothing waits. Oversized
   * datagrams are dropped and counted. Counters: layout UdpCounter (src/io/counter-layouts.ts). With `gsoSizes`,
   * a UDP_GRO socket's coalesced message i reports its datagram size there (0 = one datagram).
   */
  udpRecvBatch(fd: number, arena: Uint8Array, slotSize: number, maxCount: number, sizes: Int32Array, addrs: Uint32Array, ports: Uint16Array, counters: Float64Array, gsoSizes?: Int32Array, codel?: Float64Array): number;
  /**
   * Keeps only datagrams from `peers` (IPv4, host order) on the socket, dropped in the kernel by a
   * socket filter (counted in the socket's drops, SO_RXQ_OVFL); null removes it. False: no filter
   * (removed, or more peers than one holds).
   */
  udpPeerFilter(fd: number, peers: Uint32Array | null): boolean;
  /**
   * sendmmsg (MSG_DONTWAIT) of bufs[i][offset, offset + sizes[i]) for i < count (≤ 256) to addr:port; with
   * `gso`, runs of equal-sized datagrams go as one UDP_SEGMENT message. With a pool of descriptors, each
   * datagram leaves on fds[hash(inner flow) % length] (RFC 7348 §5 source ports). Returns datagrams taken; never throws
   * on a send error (counted instead).
   */
  udpSendBatch(fd: number | Int32Array, bufs: Uint8Array[], sizes: Int32Array, offset: number, count: number, addr: number, port: number, gso: boolean, counters: Float64Array): number;
  /** The names of each counter block in index order (native/counters.def); see src/io/counter-layouts.ts. */
  readonly counterNames: { readonly tun: readonly string[]; readonly udp: readonly string[]; readonly express: readonly string[] };
}

const ADDON_RELATIVE = join('build', 'Release', 'vxtun_native.node');

let cached: { addon?: NativeAddon; error?: string } | undefined;

/** The package root: the nearest directory above this module holding package.json (works from src/ and dist/src/). */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function load(): { addon?: NativeAddon; error?: string } {
  if (cached) return cached;
  const root = packageRoot();
  // VXTUN_ADDON: another build of the addon (scripts/asan-check.sh runs one built with ASan/UBSan).
  const path = process.env.VXTUN_ADDON || (root === undefined ? undefined : join(root, ADDON_RELATIVE));
  if (path === undefined || !existsSync(path)) {
    cached = { error: 'vxtun native addon not built: run npm install (node-gyp)' };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = { addon: require(path) as NativeAddon };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    cached = { error: `vxtun native addon failed to load (${path}): ${msg}; rebuild with npm install (node-gyp)` };
  }
  return cached;
}

function disabled(): boolean {
  return process.env.VXTUN_NO_NATIVE === '1';
}

/** The addon, or undefined when it is not built, fails to load, or VXTUN_NO_NATIVE=1 asks for the fallback. */
export function loadNative(): NativeAddon | undefined {
  if (disabled()) return undefined;
  return load().addon;
}

/**
 * The addon's counter names (counterNames), whether or not VXTUN_NO_NATIVE=1 keeps the addon out of the
 * data path: the layouts are the addon's whenever it is built. Undefined when it is not (or predates them).
 */
export function addonCounterNames(): NativeAddon['counterNames'] | undefined {
  return load().addon?.counterNames;
}

/** The addon, or a one-line Error saying why it is unavailable. */
export function requireNative(): NativeAddon {
  if (disabled()) throw new Error('vxtun native addon disabled by VXTUN_NO_NATIVE=1');
  const r = load();
  if (!r.addon) throw new Error(r.error);
  return r.addon;
}
