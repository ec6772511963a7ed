/**
 * Bulk inbound (native/express.cc ForwardInBatch) writes into the TUN exactly what the engine's
 * pipeline writes for the same batch: the same bytes (virtio headers, coalesced TCP and UDP
 * super-packets, plain packets, in order) and the same counters. On loopback: a UDP socket of our own
 * sends a batch of VXLAN datagrams (UDP_SEGMENT runs arrive as GRO messages the path splits) to a
 * NativeBind whose express path writes into a regular file standing in for the TUN; the reference is
 * the Engine's handleInbound on the same datagrams, writing through a LinuxTun over another file. No
 * device, no namespace. Anything the engine must judge sends the whole batch to the pipeline, and a
 * busy batch does while the engine thread runs SCHED_BATCH (its inbound scheduling decides first).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireNative, type ExpressHandle } from '../../src/io/addon.js';
import { NativeBind } from '../../src/io/bind-native.js';
import { adoptLinuxTun, TunCoalesce, type LinuxTunDevice } from '../../src/io/tun-linux.js';
import { TunCounter, TUN_COUNTER_COUNT, UDP_COUNTER_COUNT, UdpCounter } from '../../src/io/counter-layouts.js';
import { compileExpressGuard, compileExpressRoutes, EXPRESS_COUNTER_COUNT, ExpressCounter } from '../../src/datapath/express.js';
import { Engine } from '../../src/datapath/engine.js';
import { ANTI_SPOOFING_ON } from '../../src/packet/policy.js';
import { RouteTable, type Vtep } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { writeEncapTemplate } from '../../src/packet/encap.js';
import { onesSum, finish } from '../../src/packet/wire/checksum.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import type { Bind, Endpoint } from '../../src/io/bind.js';
import { build as buildTcp, payloadOf, udp4, finishUdp4, ACK, PSH } from '../support/tcp-packets.js';

const native = requireNative();
// We own 10.244.2.0/24; the peer on loopback owns 10.244.1.0/24 (tcp-packets.ts sends 10.244.1.5 -> 10.244.2.7).
const OUR_MAC = Buffer.from('0a580af40200', 'hex');
const PEER_MAC = Buffer.from('0a580af40100', 'hex');
const VNI = 1;
const TUN_MTU = 1500;
const MAX_INNER = 1450;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const PEER: Vtep = { endpoint: { address: '127.0.0.1', port: 8472 }, vtepMac: PEER_MAC, vni: VNI };
const ROUTES = new RouteTable([{ prefix: cidr('10.244.1.0/24'), target: PEER }]);
const LOCAL = [cidr('10.244.2.0/24')];
const VTEP_IP = ipv4FromString('10.244.2.0');

/** The inner packet behind VXLAN and an inner Ethernet header to us, as the peer sends it. */
function vxlan(inner: Buffer, vni = VNI): Buffer {
  const head = Buffer.alloc(22);
  writeEncapTemplate(head, 0, { endpoint: PEER.endpoint, vtepMac: OUR_MAC, vni }, PEER_MAC);
  return Buffer.concat([head, inner]);
}

/** A TCP segment of flow `port` (1..3) with valid checksums. */
function tcp(port: number, seq: number, len: number, flags: number, id: number): Buffer {
  const p = buildTcp({ payload: payloadOf(len, seq), seq, flags, id }).pkt;
  // A flow of its own: the source port, then the TCP checksum again.
  p.writeUInt16BE(40000 + port, 20);
  p.writeUInt16BE(0, 36);
  const l4 = p.length - 20;
  p.writeUInt16BE(finish(onesSum(p, 20, l4, onesSum(p, 12, 8, 6 + l4))), 36);
  return p;
}

/** An IPv4 UDP datagram of flow `port` with valid checksums (IPv4 id `id`). */
const udp = (port: number, len: number, id: number, seed: number): Buffer => finishUdp4(udp4(len, id, 50000 + port, seed));

/** What a batch holds: TCP segments of up to 3 flows (runs the writer coalesces, PSH ends, gaps) and UDP datagrams. */
const batchArb = fc
  .array(
    fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('tcp' as const), flow: fc.integer({ min: 1, max: 3 }), len: fc.constantFrom(1398, 1398, 1398, 700, 1), psh: fc.boolean(), gap: fc.integer({ min: 0, max: 8 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('udp' as const), flow: fc.integer({ min: 1, max: 2 }), len: fc.constantFrom(1350, 1350, 600, 20) }) },
    ),
    { minLength: 2, maxLength: 48 },
  )
  .map((items) => {
    const seq = [0, 1000, 2000_000, 3000_000];
    const ids = [0, 100, 200];
    return items.map((it, k) => {
      if (it.kind === 'udp') return vxlan(udp(it.flow, it.len, ids[it.flow]!++, k));
      const s = seq[it.flow]! + (it.gap === 0 ? 7 : 0); // now and then a segment that does not continue its flow
      seq[it.flow] = s + it.len;
      return vxlan(tcp(it.flow, s, it.len, it.psh && it.gap === 1 ? ACK | PSH : ACK, 0x2000 + k));
    });
  });

/** A bind for the reference engine: it never runs (the test calls handleInbound itself). */
const idleBind: Bind = { local: { address: '127.0.0.1', port: 8472 }, send: () => 0, start: () => {}, close: async () => {} };

describe('bulk inbound writes what the engine writes (loopback, files as the TUN)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-bulk-'));
  let bind: NativeBind;
  let sender: { fd: number; port: number };
  const senderCounters = new Float64Array(UDP_COUNTER_COUNT);
  let handle: ExpressHandle;
  const counters = new Float64Array(EXPRESS_COUNTER_COUNT);
  const gate = new Int32Array(1);
  const tunCounters = new Float64Array(TUN_COUNTER_COUNT);
  const sched = new Float64Array([0, 1e12]); // SCHED_OTHER, nothing busy: the default here
  let bulkPath: string;
  let bulkFd: number;
  /** Sizes of each batch handed to the pipeline. */
  const handed: number[][] = [];
  let files = 0;

  beforeAll(() => {
    bind = NativeBind.open('127.0.0.1', 0, { gso: false, gro: true });
    bulkPath = join(dir, 'bulk');
    bulkFd = openSync(bulkPath, 'w+');
    handle = native.expressOpen({
      tunQueue: native.tunQueueOpen(bulkFd, true),
      tunCounters,
      tunCoalesce: TunCoalesce.Tcp | TunCoalesce.Udp,
      ...bind.expressSide()!,
      vni: VNI,
      vtepMac: Uint8Array.from(OUR_MAC),
      maxInnerSize: MAX_INNER,
      readRoom: 1564,
      tunMtu: TUN_MTU,
      counters,
      gate,
      thread: false,
      inScheduling: sched,
    });
    const { trie, peers } = compileExpressRoutes(ROUTES, OUR_MAC);
    native.expressRoutes(handle, trie, peers, compileExpressGuard(ANTI_SPOOFING_ON, VTEP_IP, LOCAL));
    bind.useExpress(handle);
    bind.start((_bufs, sizes, _srcs, count) => void handed.push(Array.from(sizes).slice(0, count)));
    sender = native.udpOpen('127.0.0.1', 0, { gso: true, gro: false, sendBufferSize: 4 << 20 });
  });
  afterAll(async () => {
    native.expressStop(handle);
    native.close(sender.fd);
    await bind.close();
    closeSync(bulkFd);
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    sched[0] = 0;
    gate[0] = 0;
  });

  /** Sends the datagrams in one tick (so one wake-up reads them all) and waits for the path to take or hand over the batch. */
  async function deliver(dgrams: Buffer[]): Promise<void> {
    const before = counters[ExpressCounter.InBatches]! + counters[ExpressCounter.InHandedOver]! + counters[ExpressCounter.RxPackets]!;
    const sizes = Int32Array.from(dgrams, (d) => d.length);
    const sent = native.udpSendBatch(sender.fd, dgrams, sizes, 0, dgrams.length, ipv4FromString('127.0.0.1'), bind.local.port, true, senderCounters);
    expect(sent).toBe(dgrams.length);
    const deadline = Date.now() + 3000;
    while (counters[ExpressCounter.InBatches]! + counters[ExpressCounter.InHandedOver]! + counters[ExpressCounter.RxPackets]! === before) {
      if (Date.now() > deadline) throw new Error('the express path did not take the batch');
      await new Promise((r) => setImmediate(r));
    }
  }

  /** The engine's pipeline on the same datagrams, writing into a file of its own: what it wrote, and its counters. */
  function reference(dgrams: Buffer[]): { bytes: Buffer; rx: { packets: number; bytes: number }; tun: Float64Array } {
    const path = join(dir, `ref-${files++}`);
    const fd = openSync(path, 'w+');
    let tun: LinuxTunDevice | undefined;
    try {
      tun = adoptLinuxTun(fd, 'ref0', TUN_MTU, { vnetHdr: true, offload: true, uso: true });
      const engine = new Engine(tun, idleBind, { vni: VNI, vtepMac: OUR_MAC, vtepIp: VTEP_IP, localSubnets: LOCAL, port: 8472, maxInnerSize: MAX_INNER, tunMtu: TUN_MTU, icmpPerSource: false });
      engine.setRoutes(ROUTES);
      const src: Endpoint = { address: '127.0.0.1', port: sender.port };
      const bufs = dgrams.map((d) => Buffer.from(d));
      engine.handleInbound(bufs, bufs.map((b) => b.length), bufs.map(() => src), bufs.length);
      const s = engine.counters.snapshot();
      return { bytes: readFileSync(path), rx: { packets: s.rx.packets, bytes: s.rx.bytes }, tun: Float64Array.from(tun.offloadCounters) };
    } finally {
      closeSync(fd);
    }
  }

  it('every batch of forwardable datagrams: the same bytes into the TUN and the same counters, one batch, nothing handed over', async () => {
    let groSeen = 0;
    const tunBefore = Float64Array.from(tunCounters);
    await fc.assert(
      fc.asyncProperty(batchArb, async (dgrams) => {
        const ref = reference(dgrams);
        const x0 = Float64Array.from(counters);
        const t0 = Float64Array.from(tunCounters);
        const g0 = bind.counters[UdpCounter.GroReceives]!;
        const at = readFileSync(bulkPath).length;
        await deliver(dgrams);
        groSeen += bind.counters[UdpCounter.GroReceives]! - g0;
        const d = (i: number): number => counters[i]! - x0[i]!;
        expect(d(ExpressCounter.InHandedOver)).toBe(0);
        expect(d(ExpressCounter.InBatches)).toBe(1);
        expect(d(ExpressCounter.InBatchPackets)).toBe(dgrams.length);
        expect(readFileSync(bulkPath).subarray(at).equals(ref.bytes)).toBe(true);
        expect(d(ExpressCounter.RxPackets)).toBe(ref.rx.packets);
        expect(d(ExpressCounter.RxBytes)).toBe(ref.rx.bytes);
        expect(d(ExpressCounter.TunWriteFailed)).toBe(0);
        expect(Array.from(tunCounters, (v, i) => v - t0[i]!)).toEqual(Array.from(ref.tun));
      }),
      { numRuns: 40, seed: 20261207 },
    );
    // The runs of equal-size datagrams left as UDP_SEGMENT sends and arrived as GRO messages, which the path split.
    expect(groSeen).toBeGreaterThan(0);
    // And the writer joined runs of both kinds into super-packets.
    expect(tunCounters[TunCounter.CoalescedWrites]! - tunBefore[TunCounter.CoalescedWrites]!).toBeGreaterThan(0);
    expect(tunCounters[TunCounter.UdpCoalescedWrites]! - tunBefore[TunCounter.UdpCoalescedWrites]!).toBeGreaterThan(0);
    expect(handed).toEqual([]);
  });

  it('a batch with one datagram the engine must judge (a wrong VNI) goes to the pipeline whole, nothing written', async () => {
    const good = Array.from({ length: 6 }, (_, k) => vxlan(tcp(1, 5_000_000 + 1398 * k, 1398, ACK, k)));
    const batch = [...good.slice(0, 3), vxlan(tcp(2, 1, 1398, ACK, 9), VNI + 1), ...good.slice(3)];
    const x0 = Float64Array.from(counters);
    const at = readFileSync(bulkPath).length;
    await deliver(batch);
    expect(counters[ExpressCounter.InHandedOver]! - x0[ExpressCounter.InHandedOver]!).toBe(1);
    expect(counters[ExpressCounter.InBatches]! - x0[ExpressCounter.InBatches]!).toBe(0);
    expect(counters[ExpressCounter.RxPackets]! - x0[ExpressCounter.RxPackets]!).toBe(0);
    expect(readFileSync(bulkPath).length).toBe(at);
    // The pipeline got every datagram of it (the GRO message of the first three split by the bind as the path would).
    expect(handed.pop()!.reduce((a, b) => a + b, 0)).toBe(batch.reduce((a, b) => a + b.length, 0));
  });

  it('a busy batch while the engine thread runs SCHED_BATCH goes to the pipeline (its scheduling decides); under SCHED_OTHER it is written and counted busy', async () => {
    const batch = (base: number): Buffer[] => Array.from({ length: 8 }, (_, k) => vxlan(tcp(3, base + 1398 * k, 1398, ACK, k)));
    sched[1] = 8 * 1000; // 8 datagrams of 1470 bytes are busy
    sched[0] = 1;
    const x0 = Float64Array.from(counters);
    await deliver(batch(7_000_000));
    expect(counters[ExpressCounter.InHandedOver]! - x0[ExpressCounter.InHandedOver]!).toBe(1);
    expect(counters[ExpressCounter.InBusyBatches]! - x0[ExpressCounter.InBusyBatches]!).toBe(0);
    handed.pop();
    sched[0] = 0;
    const x1 = Float64Array.from(counters);
    await deliver(batch(8_000_000));
    expect(counters[ExpressCounter.InBatches]! - x1[ExpressCounter.InBatches]!).toBe(1);
    expect(counters[ExpressCounter.InBusyBatches]! - x1[ExpressCounter.InBusyBatches]!).toBe(1);
    expect(counters[ExpressCounter.RxPackets]! - x1[ExpressCounter.RxPackets]!).toBe(8);
    // A small batch is not busy, whatever the policy.
    sched[0] = 1;
    const x2 = Float64Array.from(counters);
    await deliver(batch(9_000_000).slice(0, 2));
    expect(counters[ExpressCounter.InBatches]! - x2[ExpressCounter.InBatches]!).toBe(1);
    expect(counters[ExpressCounter.InBusyBatches]! - x2[ExpressCounter.InBusyBatches]!).toBe(0);
    sched[1] = 1e12;
  });

  it('expressOpen names a bad bulk option and its value range', () => {
    const base = { tunQueue: native.tunQueueOpen(bulkFd, true), tunCounters, ...bind.expressSide()!, vni: VNI, vtepMac: Uint8Array.from(OUR_MAC), maxInnerSize: MAX_INNER, readRoom: 1564, tunMtu: TUN_MTU, counters, gate, thread: false };
    expect(() => native.expressOpen({ ...base, tunCoalesce: 4 })).toThrow(/^expressOpen: tunCoalesce must be an integer in \[0, 3\]$/);
    expect(() => native.expressOpen({ ...base, inScheduling: new Float64Array(1) })).toThrow(/^expressOpen: inScheduling needs 2 entries$/);
    expect(() => native.expressOpen({ ...base, inScheduling: new Int32Array(2) as never })).toThrow(/^expressOpen: inScheduling has the wrong type$/);
  });

  it('while a trace watches, a batch goes to the pipeline, which observes every stage (the trace log would lose a busy stream)', async () => {
    native.expressRecords(handle);
    gate[0] = 1;
    const batch = Array.from({ length: 5 }, (_, k) => vxlan(tcp(2, 10_000_000 + 1000 * k, 1000, ACK, k)));
    const x0 = Float64Array.from(counters);
    await deliver(batch);
    expect(counters[ExpressCounter.InHandedOver]! - x0[ExpressCounter.InHandedOver]!).toBe(1);
    expect(counters[ExpressCounter.InBatches]! - x0[ExpressCounter.InBatches]!).toBe(0);
    expect(native.expressRecords(handle).records.length).toBe(0);
    expect(handed.pop()!.reduce((a, b) => a + b, 0)).toBe(batch.reduce((a, b) => a + b.length, 0));
  });
});
