/**
 * Observing does not change forwarding: while the gate is set the addon's express path keeps
 * forwarding and records each packet (native/express.cc TraceLog), a full log counts what it could
 * not keep, and the tap (src/datapath/express-tap.ts) turns the records into the pipeline's
 * observations, which a trace shows marked as the express path's. Inbound only, on loopback: a UDP
 * socket of our own sends lone VXLAN datagrams to a NativeBind whose express path writes into
 * /dev/null (a stand-in for the TUN; no device, no namespace needed).
 */
import { openSync, closeSync } from 'node:fs';
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireNative, type ExpressHandle } from '../../src/io/addon.js';
import { NativeBind } from '../../src/io/bind-native.js';
import { compileExpressGuard, compileExpressRoutes, EXPRESS_COUNTER_COUNT, ExpressCounter } from '../../src/datapath/express.js';
import { ANTI_SPOOFING_ON } from '../../src/packet/policy.js';
import { EXPRESS_RECORD_HEAD, ExpressTap, replayExpressRecords, type ExpressTapContext } from '../../src/datapath/express-tap.js';
import type { Observation } from '../../src/datapath/observe.js';
import { RouteTable, type Vtep } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { JourneyCollector, type Journey } from '../../src/trace/journey.js';
import { formatItem } from '../../src/trace/printer.js';
import { journeyPackets } from '../../src/trace/pcapng.js';
import { internetChecksum } from '../../src/packet/wire/checksum.js';
import { writeEncapTemplate } from '../../src/packet/encap.js';
import { monotonicMs } from '../../src/util/clock.js';

const native = requireNative();
const OUR_MAC = Buffer.from('0a580af40100', 'hex');
const PEER_MAC = Buffer.from('0a580af40200', 'hex');
const VNI = 1;

/** VXLAN + inner Ethernet to OUR_MAC + an IPv4 ICMP echo request (seq, `pad` payload bytes). */
function datagram(seq: number, pad: number): Buffer {
  const ip = Buffer.alloc(28 + pad);
  ip[0] = 0x45;
  ip.writeUInt16BE(ip.length, 2);
  ip.writeUInt16BE(seq, 4);
  ip[8] = 64;
  ip[9] = 1;
  ip.writeUInt32BE(0x0af40202, 12); // 10.244.2.2
  ip.writeUInt32BE(0x0af40102, 16); // 10.244.1.2
  ip.writeUInt16BE(internetChecksum(ip, 0, 20), 10);
  ip[20] = 8;
  ip.writeUInt16BE(seq, 26);
  const head = Buffer.alloc(22);
  writeEncapTemplate(head, 0, { endpoint: { address: '198.18.0.1', port: 8472 }, vtepMac: OUR_MAC, vni: VNI }, PEER_MAC); // as the peer sends it
  return Buffer.concat([head, ip]);
}

/** The records of one drain, split: head fields and bytes. */
function parse(records: Buffer): Array<{ inbound: boolean; ok: boolean; addr: number; port: number; seen: bigint; done: bigint; bytes: Buffer }> {
  const out = [];
  for (let pos = 0; pos < records.length; ) {
    const length = records.readUInt32LE(pos + 16);
    out.push({
      seen: records.readBigUInt64LE(pos),
      done: records.readBigUInt64LE(pos + 8),
      addr: records.readUInt32LE(pos + 20),
      port: records.readUInt16LE(pos + 24),
      inbound: records[pos + 26] === 1,
      ok: records[pos + 27] === 1,
      bytes: records.subarray(pos + EXPRESS_RECORD_HEAD, pos + EXPRESS_RECORD_HEAD + length),
    });
    pos += EXPRESS_RECORD_HEAD + length;
  }
  return out;
}

describe('express path records while watched (loopback, /dev/null as the TUN)', () => {
  let bind: NativeBind;
  let sender: Socket;
  let devNull: number;
  let handle: ExpressHandle;
  const counters = new Float64Array(EXPRESS_COUNTER_COUNT);
  const gate = new Int32Array(1);
  const tunCounters = new Float64Array(16);
  let handedOver = 0;

  beforeAll(async () => {
    bind = NativeBind.open('127.0.0.1', 0, { gso: false, gro: false });
    devNull = openSync('/dev/null', 'w');
    handle = native.expressOpen({ tunQueue: native.tunQueueOpen(devNull, false), tunCounters, ...bind.expressSide()!, vni: VNI, vtepMac: Uint8Array.from(OUR_MAC), maxInnerSize: 1450, readRoom: 1564, tunMtu: 1500, counters, gate, thread: false });
    // The sender (loopback) is the peer owning 10.244.2.0/24, we own 10.244.1.0/24: anti-spoofing lets its datagrams through.
    const loopbackPeer: Vtep = { endpoint: { address: '127.0.0.1', port: 8472 }, vtepMac: PEER_MAC, vni: VNI };
    const { trie, peers } = compileExpressRoutes(new RouteTable([{ prefix: parseCidr('10.244.2.0/24') as Cidr, target: loopbackPeer }]), OUR_MAC);
    native.expressRoutes(handle, trie, peers, compileExpressGuard(ANTI_SPOOFING_ON, 0x0af40100, [parseCidr('10.244.1.0/24') as Cidr]));
    bind.useExpress(handle);
    bind.start(() => void handedOver++);
    sender = createSocket('udp4');
    await new Promise<void>((r) => sender.bind(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    native.expressStop(handle);
    sender?.close();
    await bind?.close();
    closeSync(devNull);
  });

  /** Sends each datagram alone and waits until the express path has written it (lone: never a batch). */
  async function sendLone(dgrams: Buffer[]): Promise<void> {
    for (const d of dgrams) {
      const before = counters[ExpressCounter.RxPackets]! + counters[ExpressCounter.InHandedOver]!;
      await new Promise<void>((r, j) => sender.send(d, bind.local.port, '127.0.0.1', (e) => (e ? j(e) : r())));
      const deadline = Date.now() + 2000;
      while (counters[ExpressCounter.RxPackets]! + counters[ExpressCounter.InHandedOver]! === before) {
        if (Date.now() > deadline) throw new Error('the express path did not take the datagram');
        await new Promise((r) => setImmediate(r));
      }
    }
  }

  it('records nothing while the gate is clear', async () => {
    gate[0] = 0;
    native.expressRecords(handle);
    const rx0 = counters[ExpressCounter.RxPackets]!;
    await sendLone([datagram(1, 56), datagram(2, 56)]);
    expect(counters[ExpressCounter.RxPackets]! - rx0).toBe(2);
    const got = native.expressRecords(handle);
    expect(got.records.length).toBe(0);
    expect(got.lost).toBe(0);
  });

  it('keeps forwarding while the gate is set and records each datagram: bytes, sender, CLOCK_MONOTONIC times, verdict', async () => {
    gate[0] = 1;
    const rx0 = counters[ExpressCounter.RxPackets]!;
    const t0 = process.hrtime.bigint();
    const sent = [datagram(10, 56), datagram(11, 100), datagram(12, 1000)];
    await sendLone(sent);
    const t1 = process.hrtime.bigint();
    expect(counters[ExpressCounter.RxPackets]! - rx0).toBe(3);
    expect(handedOver).toBe(0);
    const got = native.expressRecords(handle);
    expect(got.lost).toBe(0);
    const recs = parse(got.records);
    expect(recs.map((r) => r.bytes.toString('hex'))).toEqual(sent.map((d) => d.toString('hex')));
    for (const r of recs) {
      expect([r.inbound, r.ok, r.addr, r.port]).toEqual([true, true, 0x7f000001, sender.address().port]);
      expect(r.seen >= t0 && r.seen <= r.done && r.done <= t1, `${t0} ${r.seen} ${r.done} ${t1}`).toBe(true);
    }
    expect(native.expressRecords(handle).records.length).toBe(0); // drained whole
    gate[0] = 0;
  });

  it('counts what does not fit its log (1 MiB) instead of losing it silently; the tap says so', async () => {
    gate[0] = 1;
    native.expressRecords(handle);
    const rx0 = counters[ExpressCounter.RxPackets]!;
    const size = datagram(0, 1400).length + EXPRESS_RECORD_HEAD;
    const fits = Math.floor((1 << 20) / size);
    const total = fits + 40;
    await sendLone(Array.from({ length: total }, (_, k) => datagram(k, 1400)));
    expect(counters[ExpressCounter.RxPackets]! - rx0).toBe(total); // forwarding went on
    const got = native.expressRecords(handle);
    expect(parse(got.records)).toHaveLength(fits);
    expect(got.lost).toBe(total - fits);
    // the tap reports the loss on the next packet it shows: a trace prints it as untraced
    const ctx: ExpressTapContext = { routes: () => RouteTable.empty<Vtep>(), sentFrom: () => ({ address: '198.18.0.1', port: 40000 }), local: () => bind.local };
    const journeys: Journey[] = [];
    const collector = new JourneyCollector({ device: 'vxtun0', publicIp: '198.18.0.1', port: 8472, vni: VNI, vtepMac: '0a:58:0a:f4:01:00', subnet: '10.244.1.0/24' }, { emit: (j) => journeys.push(j) });
    expect(replayExpressRecords(got, ctx, collector.observer)).toBe(0);
    collector.flush();
    expect(journeys).toHaveLength(fits);
    expect(journeys[0]!.untraced).toBe(total - fits);
    expect(journeys.slice(1).every((j) => j.untraced === undefined)).toBe(true);
    gate[0] = 0;
  });

  it('an ExpressTap drains on its timer while watched, and drops what is left when the watch ends', async () => {
    const seen: Observation[] = [];
    const ctx: ExpressTapContext = { routes: () => RouteTable.empty<Vtep>(), sentFrom: () => bind.local, local: () => bind.local };
    const tap = new ExpressTap(() => native.expressRecords(handle), ctx);
    gate[0] = 1;
    tap.watch((o) => seen.push(o));
    await sendLone([datagram(20, 56)]);
    const deadline = Date.now() + 2000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(seen.map((o) => `${o.point} ${o.verdict} ${o.express}`)).toEqual(['udp-recv ok true', 'decap ok true', 'tun-write forwarded true']);
    await sendLone([datagram(21, 56)]);
    gate[0] = 0;
    tap.watch(undefined); // before its timer came: that packet is not reported, and the log is empty
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).toHaveLength(3);
    expect(native.expressRecords(handle).records.length).toBe(0);
  });
});

describe('express records as observations', () => {
  const peer: Vtep = { endpoint: { address: '198.18.0.2', port: 8472 }, vtepMac: PEER_MAC, vni: VNI };
  const routes = new RouteTable<Vtep>([{ prefix: parseCidr('10.244.2.0/24') as Cidr, target: peer }]);
  const ctx: ExpressTapContext = { routes: () => routes, sentFrom: () => ({ address: '198.18.0.1', port: 40000 }), local: () => ({ address: '198.18.0.1', port: 8472 }) };

  /** One outbound record as the addon writes it: the peer's header template + the inner packet. */
  function outbound(ok: boolean, seenNs: bigint, doneNs: bigint): Buffer {
    const inner = datagram(7, 56).subarray(22);
    inner.writeUInt32BE(0x0af40102, 12);
    inner.writeUInt32BE(0x0af40202, 16); // to 10.244.2.2, the peer's subnet
    const head = Buffer.alloc(EXPRESS_RECORD_HEAD);
    head.writeBigUInt64LE(seenNs, 0);
    head.writeBigUInt64LE(doneNs, 8);
    head.writeUInt32LE(22 + inner.length, 16);
    head.writeUInt32LE(0xc6120002, 20); // 198.18.0.2
    head.writeUInt16LE(8472, 24);
    head[26] = 0;
    head[27] = ok ? 1 : 0;
    const tmpl = Buffer.alloc(22);
    writeEncapTemplate(tmpl, 0, peer, OUR_MAC);
    return Buffer.concat([head, tmpl, inner]);
  }

  it('an outbound record is the pipeline stages of that packet, with the route, the peer and the send verdict, marked express', () => {
    const now = process.hrtime.bigint();
    const obs: Observation[] = [];
    replayExpressRecords({ records: Buffer.concat([outbound(true, now - 2_000_000n, now - 1_000_000n), outbound(false, now, now)]), lost: 0 }, ctx, (o) => obs.push({ ...o, buf: Buffer.from(o.buf.subarray(o.offset, o.offset + o.length)), offset: 0 }));
    expect(obs.map((o) => `${o.point} ${o.verdict} ${o.length}`)).toEqual([
      'tun-read ok 84',
      'classify ok 84',
      'encap ok 106',
      'udp-send sent 106',
      'tun-read ok 84',
      'classify ok 84',
      'encap ok 106',
      'udp-send send-failed 106',
    ]);
    expect(obs.every((o) => o.express === true)).toBe(true);
    expect(obs[1]!.peer).toBe(peer); // the table's own target: its route is named
    expect(obs[1]!.route).toBe('10.244.2.0/24');
    expect(obs[3]!.remote).toEqual(peer.endpoint);
    expect(obs[3]!.local).toEqual({ address: '198.18.0.1', port: 40000 });
    // times: the records' CLOCK_MONOTONIC as milliseconds (the one clock of every node on the host);
    // udp-send keeps the time before the send (a receiver may read the datagram before it returns)
    expect(obs[0]!.at).toBe(Number(now - 2_000_000n) / 1e6);
    expect(obs[3]!.at).toBe(obs[0]!.at);
    expect(Math.abs(obs[4]!.at! - monotonicMs())).toBeLessThan(50);
  });

  it('a trace shows the stages marked as the express path, and the pcapng says path=express', () => {
    const journeys: Journey[] = [];
    const collector = new JourneyCollector({ device: 'vxtun0', publicIp: '198.18.0.1', port: 8472, vni: VNI, vtepMac: '0a:58:0a:f4:01:00', subnet: '10.244.1.0/24' }, { emit: (j) => journeys.push(j), bytes: true });
    const now = process.hrtime.bigint();
    replayExpressRecords({ records: outbound(true, now, now), lost: 0 }, ctx, collector.observer);
    collector.flush();
    expect(journeys).toHaveLength(1);
    const text = formatItem({ kind: 'journey', journey: journeys[0]! });
    expect(text).toMatch(/udp-send +UDP 198\.18\.0\.1:40000 → 198\.18\.0\.2:8472 · 134 B on the wire · sent · express path/);
    expect(text.split('\n').filter((l) => l.endsWith(' · express path'))).toHaveLength(4);
    const comments = journeyPackets(journeys[0]!).map((p) => p.comment);
    expect(comments).toEqual([
      'vxtun node=198.18.0.1 dir=out point=tun-read+classify verdict=ok route=10.244.2.0/24 peer=198.18.0.2 path=express',
      'vxtun node=198.18.0.1 dir=out point=encap+udp-send verdict=sent route=10.244.2.0/24 peer=198.18.0.2 path=express',
    ]);
  });
});
