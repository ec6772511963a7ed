/**
 * TUN offloads (IFF_VNET_HDR + TUNSETOFFLOAD CSUM|TSO4|TSO6) done in TypeScript, for the
 * pure-TypeScript datapath: the addon only moves raw bytes (readBatch/writeBatch); the
 * virtio_net_hdr in front of every packet, the segmentation of the kernel's TCP super-packets,
 * finishing unfinished checksums and coalescing received TCP segments into super-packets happen
 * here. Same rules, counters (TunCounter) and bytes as native/tun_offload.cc (test/unit/tun-offload.test.ts
 * holds the two side by side).
 *
 *   read:  one raw read may be a 64 KB super-packet; it is cut at gso_size into the caller's buffers,
 *          and what does not fit waits (with the raw packets read after it) for the next call.
 *   write: a 10-byte header goes into the headroom in front of each packet (zero: nothing to do);
 *          a run of segments of one TCP flow is copied into one super-packet with a GSO header.
 */
import { onesSum, finish, type OnesSumFn } from '../packet/wire/checksum.js';
import { IpProtocol, Ipv4Field } from '../packet/wire/ipv4.js';
import { Ipv6Field, IPV6_HEADER_LEN } from '../packet/wire/ipv6.js';
import { TcpField, TcpFlags } from '../packet/wire/tcp.js';
import { UdpField } from '../packet/wire/udp.js';
import { VirtioNetHdr, VirtioNetFlag, VirtioNetGso, VIRTIO_NET_HDR_LEN, emitVirtioNetHdr, type VirtioNetHdrRepr } from '../packet/wire/virtio-net.js';
import { prepareTcpGso, writeTcpSegment, type TcpSuperPacket } from '../packet/gso.js';
import { WireError } from '../packet/wire/error.js';
import { settleRefused } from './tun-device.js';
import { TunCounter } from './counter-layouts.js';

/** Index of each counter (native/counters.def through counter-layouts.ts, shared with native/tun_offload.cc). */
export { TunCounter, TUN_COUNTER_COUNT } from './counter-layouts.js';

/** The largest packet behind a virtio_net_hdr (an IPv4 total length). */
const MAX_PACKET = 0xffff;
/** Room for one raw read: header + the largest packet. */
const RAW_SLOT = VIRTIO_NET_HDR_LEN + MAX_PACKET;
/** Raw packets read per system-call batch (16 super-packets: 1 MB of scratch). */
const RAW_BATCH = 16;
/** Segments one coalesced super-packet carries at most (as the native coalescer). */
const MAX_COALESCE = 64;

/** Reads packets into bufs[i] from `offset` (one each, room = length - offset); sets sizes[i]; returns how many. */
export type RawRead = (bufs: Buffer[], offset: number, sizes: Int32Array) => number;
/**
 * Writes bufs[i][offset, offset + sizes[i]) for i < count; returns how many were taken. With `refused`,
 * may set refused[i] = 1 for each one not taken (native writeBatch does); one that does not is read as
 * "the first ones went".
 */
export type RawWrite = (bufs: Buffer[], sizes: Int32Array, offset: number, count: number, refused?: Uint8Array) => number;

/**
 * Finishes a CHECKSUM_PARTIAL packet: the field at start + field holds the pseudo-header sum, the
 * checksum covers [start, length). False when the fields point outside the packet.
 */
function finishPartialChecksum(p: Buffer, o: number, length: number, start: number, field: number, sum16: OnesSumFn): boolean {
  if (start + field + 2 > length) return false;
  let c = finish(sum16(p, o + start, length - start));
  // UDP stores a computed 0 as 0xffff (0 means "no checksum"); for TCP both are the same value.
  if (c === 0 && field === UdpField.CHECKSUM) c = 0xffff;
  p.writeUInt16BE(c, o + start + field);
  return true;
}

/**
 * The layout of the TCP super-packet at p[o, o + length) that `h` describes, or undefined when the
 * kernel could not have meant it (not TCP, a type that contradicts the IP version, headers past the
 * end, gso_size 0). TCP starts at csum_start when NEEDS_CSUM is set, else right after the IP header.
 */
function parseSuperPacket(h: VirtioNetHdr, p: Buffer, o: number, length: number): TcpSuperPacket | undefined {
  const type = h.gsoType & ~VirtioNetGso.ECN;
  if ((type !== VirtioNetGso.TCPV4 && type !== VirtioNetGso.TCPV6) || length < 20) return undefined;
  const version = p[o]! >> 4;
  // The type must match the packet's IP version (as native/tun_offload.cc).
  if (version !== (type === VirtioNetGso.TCPV6 ? 6 : 4)) return undefined;
  const v6 = version === 6;
  const ihl = (p[o]! & 0x0f) * 4;
  const ipHeaderLength = (h.flags & VirtioNetFlag.NEEDS_CSUM) !== 0 ? h.csumStart : v6 ? IPV6_HEADER_LEN : ihl;
  if (v6 ? ipHeaderLength === IPV6_HEADER_LEN && p[o + Ipv6Field.NEXT_HEADER] !== IpProtocol.TCP : p[o + Ipv4Field.PROTOCOL] !== IpProtocol.TCP) return undefined;
  // IPv4: TCP right behind the header (the segments' IP checksum covers ihl); IPv6 may carry extension headers.
  if (v6 ? ipHeaderLength < IPV6_HEADER_LEN : ipHeaderLength !== ihl || ihl < 20) return undefined;
  if (ipHeaderLength + 20 > length) return undefined;
  const tcpHeaderLength = (p[o + ipHeaderLength + TcpField.DATA_OFFSET]! >> 4) * 4;
  const headerLength = ipHeaderLength + tcpHeaderLength;
  if (tcpHeaderLength < 20 || headerLength > length || h.gsoSize === 0) return undefined;
  const payloadLength = length - headerLength;
  const mss = h.gsoSize;
  return { ipOffset: o, ipHeaderLength, headerLength, payloadLength, mss, count: Math.max(1, Math.ceil(payloadLength / mss)), v6 };
}

/** The reading half: raw reads into scratch, plain IP packets out. */
export class TunOffloadReader {
  private readonly raw: Buffer[];
  private readonly rawSizes = new Int32Array(RAW_BATCH);
  /** Raw packets read and not yet all handed over: raw[next, end). */
  private next = 0;
  private end = 0;
  /** The super-packet raw[next] is being cut into, and its next segment. */
  private superPacket: TcpSuperPacket | undefined;
  private segment = 0;

  constructor(
    private readonly readRaw: RawRead,
    private readonly counters: Float64Array,
    private readonly sum16: OnesSumFn = onesSum,
  ) {
    this.raw = Array.from({ length: RAW_BATCH }, () => Buffer.alloc(RAW_SLOT));
  }

  /** Packets (or pieces of one) read but not handed over: the device may be empty, call again. */
  get pending(): boolean {
    return this.next < this.end;
  }

  /** Fills bufs[i] at `offset` with plain IP packets until the buffers are used or the device is empty. */
  read(bufs: Buffer[], sizes: number[] | Int32Array, offset: number): number {
    let count = 0;
    while (count < bufs.length) {
      if (this.next === this.end) {
        let got: number;
        try {
          got = this.readRaw(this.raw, 0, this.rawSizes);
        } catch (e) {
          if (count > 0) break; // hand over what we have; a lasting error recurs on the next call
          throw e;
        }
        if (got === 0) break;
        this.counters[TunCounter.Reads]! += got;
        this.next = 0;
        this.end = got;
      }
      count = this.handOver(bufs, sizes, offset, count);
      // A short raw batch means the device is empty: no read that would only say EAGAIN.
      if (this.next === this.end && this.end < RAW_BATCH) break;
    }
    return count;
  }

  /** Moves raw[next, end) into bufs from index `count`; returns the new count. */
  private handOver(bufs: Buffer[], sizes: number[] | Int32Array, offset: number, count: number): number {
    const c = this.counters;
    while (this.next < this.end && count < bufs.length) {
      const p = this.raw[this.next]!;
      if (this.superPacket === undefined) {
        const length = this.rawSizes[this.next]! - VIRTIO_NET_HDR_LEN;
        const h = VirtioNetHdr.check(p, 0, this.rawSizes[this.next]!);
        if (h instanceof WireError || length <= 0) {
          c[TunCounter.BadVnetHdr]! += 1;
          this.next++;
          continue;
        }
        if (h.gsoType === VirtioNetGso.NONE) {
          if ((h.flags & VirtioNetFlag.NEEDS_CSUM) !== 0) {
            if (!finishPartialChecksum(p, VIRTIO_NET_HDR_LEN, length, h.csumStart, h.csumOffset, this.sum16)) {
              c[TunCounter.BadVnetHdr]! += 1;
              this.next++;
              continue;
            }
            c[TunCounter.ChecksumCompleted]! += 1;
          }
          const out = bufs[count]!;
          const take = Math.min(length, room(out, offset)); // as a plain TUN read would truncate
          p.copy(out, offset, VIRTIO_NET_HDR_LEN, VIRTIO_NET_HDR_LEN + take);
          sizes[count++] = take;
          this.next++;
          continue;
        }
        const sp = parseSuperPacket(h, p, VIRTIO_NET_HDR_LEN, length);
        if (sp === undefined) {
          c[TunCounter.BadVnetHdr]! += 1;
          this.next++;
          continue;
        }
        c[TunCounter.GsoPackets]! += 1;
        this.superPacket = sp;
        this.segment = 0;
      }
      const sp = this.superPacket;
      while (count < bufs.length && this.segment < sp.count) {
        const out = bufs[count]!;
        if (sp.headerLength + Math.min(sp.mss, sp.payloadLength - this.segment * sp.mss) > room(out, offset)) {
          c[TunCounter.BadVnetHdr]! += 1; // gso_size beyond our buffers: cannot happen with an MTU-sized room
          this.segment = sp.count;
          break;
        }
        sizes[count++] = writeTcpSegment(p, sp, this.segment, out, offset, this.sum16);
        c[TunCounter.GsoSegments]! += 1;
        this.segment++;
      }
      if (this.segment >= sp.count) {
        this.superPacket = undefined;
        this.next++;
      }
    }
    return count;
  }
}

function room(buf: Buffer, offset: number): number {
  if (offset >= buf.length) throw new RangeError(`tun read: offset ${offset} leaves no room in a ${buf.length}-byte buffer`);
  return buf.length - offset;
}

/** Where a TCP packet's pieces are, for the coalescer. */
interface TcpView {
  buf: Buffer;
  /** Offset of the IP header. */
  o: number;
  length: number;
  v6: boolean;
  ipHeaderLength: number;
  headerLength: number;
  payloadLength: number;
  seq: number;
  flags: number;
}

function newView(): TcpView {
  return { buf: Buffer.alloc(0), o: 0, length: 0, v6: false, ipHeaderLength: 0, headerLength: 0, payloadLength: 0, seq: 0, flags: 0 };
}

/**
 * Fills `v` for a plain TCP packet (IPv4 not a fragment, IPv6 without extension headers, lengths as
 * the IP header says) whose IPv4 header and TCP checksums verify: the only kind handed to the kernel coalesced, since
 * it trusts a super-packet's checksum.
 */
function viewTcp(p: Buffer, o: number, length: number, sum16: OnesSumFn, v: TcpView): boolean {
  if (length < 40) return false;
  const version = p[o]! >> 4;
  let pseudo: number;
  if (version === 4) {
    const ihl = (p[o]! & 0x0f) * 4;
    if (ihl < 20 || p[o + Ipv4Field.PROTOCOL] !== IpProtocol.TCP || p.readUInt16BE(o + Ipv4Field.TOTAL_LENGTH) !== length) return false;
    if ((p.readUInt16BE(o + Ipv4Field.FLAGS_FRAGMENT) & 0x3fff) !== 0) return false; // MF or an offset: a fragment
    // The kernel writes fresh header checksums into the segments: a corrupt header must not come out repaired.
    if (ihl > length || onesSum(p, o, ihl) !== 0xffff) return false;
    v.v6 = false;
    v.ipHeaderLength = ihl;
    pseudo = onesSum(p, o + Ipv4Field.SRC, 8, IpProtocol.TCP + length - ihl);
  } else if (version === 6) {
    if (length < 60 || p[o + Ipv6Field.NEXT_HEADER] !== IpProtocol.TCP || p.readUInt16BE(o + Ipv6Field.PAYLOAD_LENGTH) + IPV6_HEADER_LEN !== length) return false;
    v.v6 = true;
    v.ipHeaderLength = IPV6_HEADER_LEN;
    pseudo = onesSum(p, o + Ipv6Field.SRC, 32, IpProtocol.TCP + length - IPV6_HEADER_LEN);
  } else {
    return false;
  }
  const t = o + v.ipHeaderLength;
  const tcpHeaderLength = (p[t + TcpField.DATA_OFFSET]! >> 4) * 4;
  if (tcpHeaderLength < 20 || v.ipHeaderLength + tcpHeaderLength > length) return false;
  v.buf = p;
  v.o = o;
  v.length = length;
  v.headerLength = v.ipHeaderLength + tcpHeaderLength;
  v.payloadLength = length - v.headerLength;
  v.seq = p.readUInt32BE(t + TcpField.SEQ);
  v.flags = p[t + TcpField.FLAGS]!;
  return sum16(p, t, length - v.ipHeaderLength, pseudo) === 0xffff;
}

function sameBytes(a: Buffer, ao: number, b: Buffer, bo: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/**
 * Whether b continues a at `expectedSeq`: same addresses, ports, ack, window, options and the IP
 * fields a segmenting kernel copies (length, id and checksums may differ; flags are the caller's).
 */
function continues(a: TcpView, b: TcpView, expectedSeq: number): boolean {
  if (a.v6 !== b.v6 || a.headerLength !== b.headerLength || b.seq !== expectedSeq) return false;
  const x = a.buf;
  const y = b.buf;
  const xo = a.o;
  const yo = b.o;
  if (!a.v6) {
    // version/ihl, tos, flags/fragment, ttl, protocol, addresses, options
    if (x[xo] !== y[yo] || x[xo + 1] !== y[yo + 1] || x[xo + 6] !== y[yo + 6] || x[xo + 8] !== y[yo + 8]) return false;
    if (!sameBytes(x, xo + Ipv4Field.SRC, y, yo + Ipv4Field.SRC, 8)) return false;
    if (!sameBytes(x, xo + 20, y, yo + 20, a.ipHeaderLength - 20)) return false;
  } else {
    // version/class/flow, hop limit, addresses
    if (!sameBytes(x, xo, y, yo, 4) || x[xo + 7] !== y[yo + 7] || !sameBytes(x, xo + Ipv6Field.SRC, y, yo + Ipv6Field.SRC, 32)) return false;
  }
  const s = xo + a.ipHeaderLength;
  const t = yo + b.ipHeaderLength;
  // ports, ack, data offset, window, options (not seq, flags, checksum, urgent pointer)
  return (
    sameBytes(x, s, y, t, 4) &&
    sameBytes(x, s + TcpField.ACK, y, t + TcpField.ACK, 5) &&
    sameBytes(x, s + TcpField.WINDOW, y, t + TcpField.WINDOW, 2) &&
    sameBytes(x, s + 20, y, t + 20, a.headerLength - a.ipHeaderLength - 20)
  );
}

/**
 * The writing half: packets in, each behind a virtio_net_hdr, runs of one TCP flow as one super-packet.
 * Plain packets go in batches; a super-packet goes alone, so that whether it went is known (writeBatch
 * skips a packet the kernel refuses and goes on: its count says how many went, not which).
 */
export class TunOffloadWriter {
  /** Entries of the raw write under way: plain packets (or the one super-packet) behind their header. */
  private readonly outBufs: Buffer[] = [];
  private outSizes = new Int32Array(64);
  /** The caller's index of each plain entry in outBufs, and what the raw write refused of them. */
  private outIdx = new Int32Array(64);
  private outRefused = new Uint8Array(64);
  /** Buffers for coalesced super-packets and for packets without room for a header in front. */
  private readonly staged: Buffer[] = [];
  private readonly superHeaders: Array<VirtioNetHdrRepr | undefined> = [];
  private readonly first = newView();
  private readonly view = newView();

  constructor(
    private readonly writeRaw: RawWrite,
    private readonly counters: Float64Array,
    /** Coalesce TCP segments into super-packets (else every packet goes alone behind a zero header). */
    private readonly coalesce: boolean,
    private readonly sum16: OnesSumFn = onesSum,
  ) {}

  /**
   * Writes `count` packets at `offset` in bufs; gsoSizes[i] > 0 marks a TCP packet larger than the MTU
   * to be written whole, cut by the kernel at that many payload bytes. Returns how many packets the
   * device took (the segments of a coalesced super-packet count one each). Same rules as native
   * tunWriteOffload: a packet the kernel refuses is skipped, a refused coalesced super-packet is
   * rewritten packet by packet with coalescing off for the rest of the batch, and an error after some
   * packets went ends the batch (it recurs on the next call). `refused` (zeroed by the caller): set to 1
   * for each packet that did not go in.
   */
  write(bufs: Buffer[], sizes: number[] | Int32Array, offset: number, count: number, gsoSizes?: readonly number[], refused?: Uint8Array): number {
    // The header goes into the headroom in front of each packet; without headroom, packets are copied.
    const at = offset >= VIRTIO_NET_HDR_LEN ? offset - VIRTIO_NET_HDR_LEN : 0;
    const inPlace = offset >= VIRTIO_NET_HDR_LEN;
    const supers = this.superHeaders;
    supers.length = 0;
    if (gsoSizes !== undefined) {
      for (let i = 0; i < count; i++) supers.push((gsoSizes[i] ?? 0) > 0 ? prepareTcpGso(bufs[i]!, offset, sizes[i]!, gsoSizes[i]!) : undefined);
    }
    const out = this.outBufs;
    out.length = 0;
    if (this.outSizes.length < count) {
      const room = Math.max(count, 2 * this.outSizes.length);
      this.outSizes = new Int32Array(room);
      this.outIdx = new Int32Array(room);
      this.outRefused = new Uint8Array(room);
    }
    const c = this.counters;
    const first = this.first;
    let coalesce = this.coalesce;
    let staged = 0;
    let written = 0;
    // The first packet whose fate is not known yet (staged, or not reached): refused if an error ends the batch.
    let pending = 0;
    try {
      for (let i = 0; i < count; ) {
        const buf = bufs[i]!;
        const size = sizes[i]!;
        const given = supers[i];
        let run = 1;
        if (given === undefined && coalesce && viewTcp(buf, offset, size, this.sum16, first) && first.payloadLength > 0 && (first.flags & ~TcpFlags.ACK) === 0) {
          run = this.extendRun(bufs, sizes, offset, count, i);
        }
        if (run === 1 && given === undefined) {
          // A plain packet waits for the next super-packet or the end of the batch.
          let entry = buf;
          if (!inPlace) {
            entry = this.stage(staged++, VIRTIO_NET_HDR_LEN + size);
            buf.copy(entry, VIRTIO_NET_HDR_LEN, offset, offset + size);
          }
          entry.fill(0, at, at + VIRTIO_NET_HDR_LEN);
          this.outSizes[out.length] = VIRTIO_NET_HDR_LEN + size;
          this.outIdx[out.length] = i;
          out.push(entry);
          i++;
          continue;
        }
        written += this.flushPlain(at, refused);
        pending = i;
        staged = 0;
        let entry: Buffer;
        if (run > 1) {
          entry = this.stage(staged, at + VIRTIO_NET_HDR_LEN + MAX_PACKET);
          this.emitCoalesced(bufs, sizes, offset, i, run, entry, at);
        } else {
          entry = buf;
          if (!inPlace) {
            entry = this.stage(staged, VIRTIO_NET_HDR_LEN + size);
            buf.copy(entry, VIRTIO_NET_HDR_LEN, offset, offset + size);
          }
          emitVirtioNetHdr(given!, entry, at);
          this.outSizes[0] = VIRTIO_NET_HDR_LEN + size;
        }
        out.push(entry);
        if (this.flush(at) === 0) {
          // Refused or the device full (writeBatch does not say which): native rewrites a refused
          // coalesced run packet by packet; on a full device those writes fail too, and nothing is counted.
          if (run > 1) coalesce = false;
          else {
            if (refused !== undefined) refused[i] = 1;
            i++;
            pending = i;
          }
          continue;
        }
        if (run > 1) {
          c[TunCounter.CoalescedWrites]! += 1;
          c[TunCounter.CoalescedPackets]! += run;
        } else {
          c[TunCounter.SuperWrites]! += 1;
        }
        written += run;
        i += run;
        pending = i;
      }
      written += this.flushPlain(at, refused);
      pending = count;
    } catch (e) {
      if (written === 0) throw e;
      refused?.fill(1, pending, count);
    }
    c[TunCounter.Writes]! += written;
    return written;
  }

  /**
   * flush for plain entries: marks refused[idx] for each one the raw write did not take (by its marks,
   * or the last ones when it gives none).
   */
  private flushPlain(at: number, refused: Uint8Array | undefined): number {
    const n = this.outBufs.length;
    if (refused === undefined || n === 0) return this.flush(at);
    const marks = this.outRefused;
    marks.fill(0, 0, n);
    const took = this.flush(at, marks);
    settleRefused(marks, n, took);
    for (let k = 0; k < n; k++) if (marks[k] === 1) refused[this.outIdx[k]!] = 1;
    return took;
  }

  /** Writes the entries in outBufs (all plain, or one super-packet) and empties it; returns how many went. */
  private flush(at: number, refused?: Uint8Array): number {
    const out = this.outBufs;
    if (out.length === 0) return 0;
    try {
      return this.writeRaw(out, this.outSizes, at, out.length, refused);
    } finally {
      out.length = 0;
    }
  }

  /**
   * How many packets from bufs[i] (viewed in this.first) go in one super-packet: the following ones
   * of the same flow at the next sequence number, ACK set and nothing but ACK/PSH, no larger than the
   * first (only the last may be shorter), at most 64 KB in all; a PSH ends the run.
   */
  private extendRun(bufs: Buffer[], sizes: number[] | Int32Array, offset: number, count: number, i: number): number {
    const first = this.first;
    const v = this.view;
    const mss = first.payloadLength;
    let nextSeq = (first.seq + mss) >>> 0;
    let total = first.length;
    let lastLength = mss;
    let run = 1;
    while (i + run < count && run < MAX_COALESCE && lastLength === mss && this.superHeaders[i + run] === undefined) {
      if (!viewTcp(bufs[i + run]!, offset, sizes[i + run]!, this.sum16, v) || v.payloadLength === 0 || v.payloadLength > mss) break;
      if ((v.flags & ~(TcpFlags.ACK | TcpFlags.PSH)) !== 0 || (v.flags & TcpFlags.ACK) === 0) break;
      if (!continues(first, v, nextSeq) || total + v.payloadLength > MAX_PACKET) break;
      total += v.payloadLength;
      nextSeq = (nextSeq + v.payloadLength) >>> 0;
      lastLength = v.payloadLength;
      run++;
      if ((v.flags & TcpFlags.PSH) !== 0) break;
    }
    return run;
  }

  /**
   * Copies bufs[i, i + run) into `entry` as one super-packet behind its GSO header (at `at`): the
   * first packet's headers with the total length (and IPv4 checksum) of the whole, PSH if the last
   * had it, then prepareTcpGso's header and pseudo-header sum (CHECKSUM_PARTIAL: the kernel
   * finishes it per segment).
   */
  private emitCoalesced(bufs: Buffer[], sizes: number[] | Int32Array, offset: number, i: number, run: number, entry: Buffer, at: number): void {
    const first = this.first;
    const o = at + VIRTIO_NET_HDR_LEN;
    let end = o + bufs[i]!.copy(entry, o, offset, offset + sizes[i]!);
    let lastFlags = 0;
    for (let k = 1; k < run; k++) {
      const b = bufs[i + k]!;
      const headerLength = first.headerLength; // equal in every packet of the run
      end += b.copy(entry, end, offset + headerLength, offset + sizes[i + k]!);
      lastFlags = b[offset + first.ipHeaderLength + TcpField.FLAGS]!;
    }
    const total = end - o;
    const t = o + first.ipHeaderLength;
    if ((lastFlags & TcpFlags.PSH) !== 0) entry[t + TcpField.FLAGS]! |= TcpFlags.PSH; // the super-packet ends where the sender pushed
    if (!first.v6) {
      entry.writeUInt16BE(total, o + Ipv4Field.TOTAL_LENGTH);
      entry.writeUInt16BE(0, o + Ipv4Field.CHECKSUM);
      entry.writeUInt16BE(finish(onesSum(entry, o, first.ipHeaderLength)), o + Ipv4Field.CHECKSUM);
    } else {
      entry.writeUInt16BE(total - IPV6_HEADER_LEN, o + Ipv6Field.PAYLOAD_LENGTH);
    }
    // From here it is a super-packet like any written whole: viewTcp vouched for the run's headers.
    emitVirtioNetHdr(prepareTcpGso(entry, o, total, first.payloadLength)!, entry, at);
    this.outSizes[this.outBufs.length] = VIRTIO_NET_HDR_LEN + total;
  }

  /** Staging buffer k of at least `size` bytes, kept for the next batches. */
  private stage(k: number, size: number): Buffer {
    let b = this.staged[k];
    if (b === undefined || b.length < size) {
      b = Buffer.alloc(size);
      this.staged[k] = b;
    }
    return b;
  }
}
