/**
 * Bulk outbound (native/express.cc OnTunReadableBulk) sends what the engine's pipeline sends for the
 * same TUN reads: the same VXLAN datagrams (super-packets segmented as tunQueueRead segments them,
 * unfinished checksums finished, the peer's header in front), in the same order, with the same
 * counters; a read it must not judge (no route here) goes to the pipeline, after everything read
 * before it was sent. On loopback, no device: each engine's "TUN" is a UDP socket whose datagrams are
 * TUN reads (virtio_net_hdr + packet: one read() each, as from a TUN queue), and its peer is a UDP
 * socket that collects what it sends. One engine runs with bulk outbound, the reference with
 * VXTUN_NO_BULK_OUT=1 (the pipeline, and the express path's lone packets).
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { NativeBind } from '../../src/io/bind-native.js';
import { adoptLinuxTun, type LinuxTunDevice } from '../../src/io/tun-linux.js';
import { TUN_COUNTER_COUNT, UDP_COUNTER_COUNT } from '../../src/io/counter-layouts.js';
import { EXPRESS_COUNTER_COUNT, ExpressCounter } from '../../src/datapath/express.js';
import { Engine } from '../../src/datapath/engine.js';
import { RouteTable, type Vtep } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { onesSum, finish } from '../../src/packet/wire/checksum.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import type { CounterSnapshot } from '../../src/packet/counters.js';
import { build as buildTcp, payloadOf, udp4, udp4Pseudo, finishUdp4, ACK, PSH } from '../support/tcp-packets.js';

const native = requireNative();
const OUR_MAC = macFromString('0a:58:0a:f4:01:00');
const PEER_MAC = macFromString('0a:58:0a:f4:02:00');
const LOCAL = [parseCidr('10.244.1.0/24') as Cidr];
const LOOPBACK = ipv4FromString('127.0.0.1');
const TUN_MTU = 1450;

/** A TUN read: virtio_net_hdr (flags, gso type, hdr_len, gso_size, csum_start, csum_offset; little-endian) + the packet. */
function read(packet: Buffer, h: { flags?: number; gsoType?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number } = {}): Buffer {
  const v = Buffer.alloc(10);
  v[0] = h.flags ?? 0;
  v[1] = h.gsoType ?? 0;
  v.writeUInt16LE(h.hdrLen ?? 0, 2);
  v.writeUInt16LE(h.gsoSize ?? 0, 4);
  v.writeUInt16LE(h.csumStart ?? 0, 6);
  v.writeUInt16LE(h.csumOffset ?? 0, 8);
  return Buffer.concat([v, packet]);
}

/** A TCP packet of `len` payload bytes to 10.244.2.7 (or `dst`), plain or as the kernel hands a TSO super-packet over. */
function tcpRead(seq: number, len: number, mss: number, dst?: number): Buffer {
  const p = buildTcp({ payload: payloadOf(len, seq), seq, flags: ACK | PSH, id: seq & 0xffff }).pkt;
  if (dst !== undefined) {
    p.writeUInt32BE(dst >>> 0, 16);
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(finish(onesSum(p, 0, 20)), 10);
  }
  if (len <= mss) return read(p);
  // CHECKSUM_PARTIAL, as the kernel leaves it: the pseudo-header sum in the field.
  const l4 = p.length - 20;
  p.writeUInt16BE(onesSum(p, 12, 8, 6 + l4), 36);
  return read(p, { flags: 1, gsoType: 1, hdrLen: 52, gsoSize: mss, csumStart: 20, csumOffset: 16 });
}

/** A UDP datagram to 10.244.2.7: plain with a finished checksum, partial (NEEDS_CSUM), or a USO super-packet of `gso`-byte pieces. */
function udpRead(len: number, kind: 'plain' | 'partial' | 'uso', gso: number, seed: number): Buffer {
  const p = udp4(len, seed, 40000 + (seed % 7), seed);
  if (kind === 'plain') return read(finishUdp4(p));
  p.writeUInt16BE(udp4Pseudo(p), 26);
  if (kind === 'partial') return read(p, { flags: 1, csumStart: 20, csumOffset: 6 });
  return read(p, { flags: 1, gsoType: 5, hdrLen: 28, gsoSize: gso, csumStart: 20, csumOffset: 6 });
}

type Item = { kind: 'tcp'; segments: number; mss: number; tail: number } | { kind: 'udp'; how: 'plain' | 'partial' | 'uso'; len: number; gso: number } | { kind: 'unrouted' };

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('tcp' as const), segments: fc.integer({ min: 1, max: 40 }), mss: fc.constantFrom(1398, 1398, 1000, 536), tail: fc.integer({ min: 0, max: 535 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('udp' as const), how: fc.constantFrom('plain' as const, 'partial' as const, 'uso' as const), len: fc.integer({ min: 1, max: 12_000 }), gso: fc.constantFrom(1200, 1350, 700) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unrouted' as const) }) },
);

/** The TUN reads for the items, and how many datagrams the peer must get from them. */
function reads(items: Item[]): { raw: Buffer[]; datagrams: number } {
  let seq = 1_000_000;
  let datagrams = 0;
  const raw = items.map((it, k) => {
    if (it.kind === 'unrouted') return tcpRead(seq++, 100, 1398, ipv4FromString('10.244.9.7'));
    if (it.kind === 'udp') {
      // A plain datagram larger than the tunnel carries would be answered (frag-needed), not sent: keep those within it.
      const len = it.how === 'uso' ? it.len : Math.min(it.len, TUN_MTU - 28);
      datagrams += it.how === 'uso' ? Math.ceil(len / it.gso) : 1;
      return udpRead(len, it.how, it.gso, k);
    }
    const len = it.segments === 1 ? Math.min(it.mss, 1 + it.tail) : (it.segments - 1) * it.mss + 1 + it.tail;
    datagrams += Math.ceil(len / it.mss);
    const r = tcpRead(seq, len, it.mss);
    seq += len;
    return r;
  });
  return { raw, datagrams };
}

interface Side {
  engine: Engine;
  tun: LinuxTunDevice;
  tunFd: number;
  tunPort: number;
  bind: NativeBind;
  express: Float64Array;
  close(): Promise<void>;
}

/** An engine whose TUN is a UDP socket and whose one peer (10.244.2.0/24) is the socket at `peerPort`. */
function side(peerPort: number, bulkOut: boolean): Side {
  const sock = native.udpOpen('127.0.0.1', 0, { gso: false, gro: false, recvBufferSize: 16 << 20 });
  const tun = adoptLinuxTun(sock.fd, 'twin0', TUN_MTU, { vnetHdr: true, offload: true, uso: true });
  const bind = NativeBind.open('127.0.0.1', 0, { gso: true, gro: false });
  const express = new Float64Array(EXPRESS_COUNTER_COUNT);
  const peer: Vtep = { endpoint: { address: '127.0.0.1', port: peerPort }, vtepMac: PEER_MAC, vni: 1 };
  const engine = new Engine(tun, bind, {
    vni: 1,
    vtepMac: OUR_MAC,
    vtepIp: ipv4FromString('10.244.1.0'),
    localSubnets: LOCAL,
    port: 8472,
    maxInnerSize: TUN_MTU,
    tunMtu: TUN_MTU,
    icmpPerSource: false,
    onesSum: native.checksum,
    batchSize: 128,
    encapBatch: native.encapBatch,
    express: { native, counters: express, thread: false },
  });
  engine.setRoutes(new RouteTable([{ prefix: parseCidr('10.244.2.0/24') as Cidr, target: peer }]));
  const saved = process.env.VXTUN_NO_BULK_OUT;
  try {
    if (!bulkOut) process.env.VXTUN_NO_BULK_OUT = '1';
    else delete process.env.VXTUN_NO_BULK_OUT;
    engine.start();
  } finally {
    if (saved === undefined) delete process.env.VXTUN_NO_BULK_OUT;
    else process.env.VXTUN_NO_BULK_OUT = saved;
  }
  expect(engine.expressActive).toBe(true);
  return {
    engine,
    tun,
    tunFd: sock.fd,
    tunPort: sock.port,
    bind,
    express,
    close: async () => {
      engine.stop();
      tun.close();
      await bind.close();
    },
  };
}

/** Collects datagrams on a socket of its own. */
class Peer {
  readonly sock = native.udpOpen('127.0.0.1', 0, { gso: false, gro: false, recvBufferSize: 32 << 20 });
  private readonly arena = Buffer.alloc(64 * 2048);
  private readonly sizes = new Int32Array(64);
  private readonly addrs = new Uint32Array(64);
  private readonly ports = new Uint16Array(64);
  private readonly counters = new Float64Array(UDP_COUNTER_COUNT);
  readonly got: Buffer[] = [];

  async collect(want: number): Promise<Buffer[]> {
    const deadline = Date.now() + 5000;
    while (this.got.length < want) {
      const n = native.udpRecvBatch(this.sock.fd, this.arena, 2048, 64, this.sizes, this.addrs, this.ports, this.counters);
      for (let i = 0; i < n; i++) this.got.push(Buffer.from(this.arena.subarray(i * 2048, i * 2048 + this.sizes[i]!)));
      if (n === 0) {
        if (Date.now() > deadline) throw new Error(`the peer got ${this.got.length} of ${want} datagrams`);
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    // Anything more would be a datagram too many: give it a moment to show.
    await new Promise((r) => setTimeout(r, 20));
    const n = native.udpRecvBatch(this.sock.fd, this.arena, 2048, 64, this.sizes, this.addrs, this.ports, this.counters);
    for (let i = 0; i < n; i++) this.got.push(Buffer.from(this.arena.subarray(i * 2048, i * 2048 + this.sizes[i]!)));
    return this.got;
  }

  close(): void {
    native.close(this.sock.fd);
  }
}

/** Sends the reads to the engine's TUN socket in one call, so that one wake-up finds them all. */
function feed(s: Side, raw: Buffer[]): void {
  const counters = new Float64Array(UDP_COUNTER_COUNT);
  const sender = native.udpOpen('127.0.0.1', 0, { gso: false, gro: false, sendBufferSize: 16 << 20 });
  try {
    const sent = native.udpSendBatch(sender.fd, raw, Int32Array.from(raw, (r) => r.length), 0, raw.length, LOOPBACK, s.tunPort, false, counters);
    expect(sent).toBe(raw.length);
  } finally {
    native.close(sender.fd);
  }
}

const txOf = (c: CounterSnapshot): unknown => ({ tx: c.tx, dropped: c.dropped, answered: c.answered });

describe('bulk outbound sends what the engine sends (loopback, UDP sockets as the TUN and the peer)', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  async function run(raw: Buffer[], datagrams: number, bulkOut: boolean): Promise<{ got: Buffer[]; counters: unknown; tun: number[]; express: Float64Array }> {
    const peer = new Peer();
    open.push(peer);
    const s = side(peer.sock.port, bulkOut);
    open.push(s);
    feed(s, raw);
    const got = await peer.collect(datagrams);
    return { got, counters: txOf(s.engine.counters.snapshot()), tun: Array.from(s.tun.offloadCounters), express: s.express };
  }

  it('every mix of TCP super-packets, plain and partial-checksum packets, USO super-packets and unrouted packets: the same datagrams, in order, and the same counters', async () => {
    let bulkBatches = 0;
    let handedOver = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(itemArb, { minLength: 1, maxLength: 24 }), async (items) => {
        const { raw, datagrams } = reads(items);
        const bulk = await run(raw, datagrams, true);
        const ref = await run(raw, datagrams, false);
        expect(bulk.got.length).toBe(datagrams);
        expect(ref.got.length).toBe(datagrams);
        for (let i = 0; i < datagrams; i++) expect(bulk.got[i]!.equals(ref.got[i]!), `datagram ${i}`).toBe(true);
        expect(bulk.counters).toEqual(ref.counters);
        expect(bulk.tun).toEqual(ref.tun);
        expect(ref.express[ExpressCounter.OutBatches]).toBe(0);
        // Everything read before an unrouted packet went in bulk; after it, what the pipeline read in the same wake-up.
        if (items[0]!.kind !== 'unrouted') expect(bulk.express[ExpressCounter.OutBatches]).toBeGreaterThan(0);
        bulkBatches += bulk.express[ExpressCounter.OutBatches]!;
        handedOver += bulk.express[ExpressCounter.OutHandedOver]!;
        for (const o of open.splice(0)) await o.close();
      }),
      { numRuns: 25, seed: 20261207 },
    );
    expect(bulkBatches).toBeGreaterThan(0);
    expect(handedOver).toBeGreaterThan(0); // some runs had an unrouted packet, which the pipeline answered
  });

  it('a wake-up of only routed traffic never runs the pipeline: every datagram counted in OutBatchPackets', async () => {
    const { raw, datagrams } = reads([
      { kind: 'tcp', segments: 30, mss: 1398, tail: 100 },
      { kind: 'tcp', segments: 110, mss: 536, tail: 0 }, // more segments than one GSO send carries (64): a batch holds 128
      { kind: 'udp', how: 'uso', len: 9000, gso: 1350 },
      { kind: 'udp', how: 'partial', len: 500, gso: 0 },
      { kind: 'tcp', segments: 1, mss: 1398, tail: 10 },
    ]);
    const bulk = await run(raw, datagrams, true);
    expect(bulk.express[ExpressCounter.OutBatchPackets]).toBe(datagrams);
    expect(bulk.express[ExpressCounter.TxPackets]).toBe(datagrams);
    expect(bulk.express[ExpressCounter.OutHandedOver]).toBe(0);
    expect(bulk.tun.slice(0, TUN_COUNTER_COUNT).some((v) => v > 0)).toBe(true);
  });
});
