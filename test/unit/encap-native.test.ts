/**
 * Native batch encap (native/encap.cc) against the TypeScript reference:
 *  - the addon's encapBatch and its TS twin leave byte-identical arenas (poisoned first) and return
 *    the same count over random batches, packet positions, slots, templates and IP versions;
 *  - the engine with the addon's encapBatch and the engine with per-packet TS emit turn random TUN
 *    batches (IPv4 and IPv6 to several peers, no-route, too big, malformed) into byte-identical
 *    datagrams, ICMP answers and counters, and show every packet the same observation points —
 *    in one arena (the batch call) and in separate buffers (the per-packet fallback);
 *  - bad arguments throw a named RangeError/TypeError and write nothing.
 * Needs no root; a missing addon fails (requireNative), never skips.
 */
import { describe, expect, it } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { Engine, HEADROOM } from '../../src/datapath/engine.js';
import { encapBatchTs, writeEncapTemplate, ENCAP_HEADER_LEN, type EncapBatchFn } from '../../src/packet/encap.js';
import { RouteTable, type Vtep } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { FakeNetwork } from '../../src/io/bind-fake.js';
import { RecordingTun } from '../support/recording-tun.js';
import type { Observation } from '../../src/datapath/observe.js';
import { internetChecksum } from '../../src/packet/wire/checksum.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { xorshift32 as rng } from '../support/random.js';

const native = requireNative();
const POISON = 0xa5;
const TUN_MTU = 1450;
const MY_MAC = macFromString('0a:58:0a:f4:02:00');

const cidr = (s: string): Cidr => {
  const c = parseCidr(s);
  if (typeof c === 'string') throw new Error(`${s}: ${c}`);
  return c;
};

describe('encapBatch: addon vs TS twin', () => {
  it('2000 random batches: identical arenas (poisoned first) and counts', () => {
    const next = rng(0xe1ca);
    let written = 0;
    let skipped = 0;
    for (let round = 0; round < 2000; round++) {
      const count = round % 50 === 0 ? 257 + (next() % 300) : next() % 129;
      const ntemplates = 1 + (next() % 8);
      const templates = Buffer.alloc(ntemplates * ENCAP_HEADER_LEN + (next() % ENCAP_HEADER_LEN));
      for (let k = 0; k < templates.length; k++) templates[k] = next() & 0xff;
      const slots = new Int32Array(count + (next() % 3));
      const starts = new Int32Array(slots.length);
      // packets one after the other at random gaps (any alignment), some of them overlapping
      const arena = Buffer.alloc(count * 90 + 200, POISON);
      let at = next() % 8;
      for (let i = 0; i < count; i++) {
        slots[i] = next() % 5 === 0 ? -1 - (next() % 3) : next() % ntemplates;
        starts[i] = next() % 20 === 0 && i > 0 ? starts[i - 1]! + (next() % 30) : at;
        const version = [4, 6, 4, 6, 4, 0, 5, 15][next() % 8]!;
        arena[starts[i]! + ENCAP_HEADER_LEN] = (version << 4) | (next() & 0x0f);
        at = Math.max(at, starts[i]!) + ENCAP_HEADER_LEN + 1 + (next() % 60);
      }
      const versionAt = new Set(Array.from(starts.subarray(0, count), (x) => x + ENCAP_HEADER_LEN));
      for (let k = 0; k < arena.length; k++) if (next() % 3 === 0 && !versionAt.has(k)) arena[k] = next() & 0xff;
      const mine = Buffer.from(arena);
      const nWant = encapBatchTs(mine, starts, count, slots, templates);
      const nGot = native.encapBatch(arena, starts, count, slots, templates);
      expect(nGot).toBe(nWant);
      if (!arena.equals(mine)) throw new Error(`round ${round}: arenas differ at byte ${arena.findIndex((b, k) => b !== mine[k])}`);
      written += nWant;
      skipped += count - nWant;
    }
    expect(written).toBeGreaterThan(50_000);
    expect(skipped).toBeGreaterThan(10_000); // slot -1 and other versions were exercised
  });

  it('writes the template with the EtherType of each packet and nothing else', () => {
    const peer: Vtep = { endpoint: { address: '198.18.0.1', port: 8472 }, vtepMac: macFromString('0a:58:0a:f4:01:00'), vni: 0x123456 };
    const templates = Buffer.alloc(ENCAP_HEADER_LEN);
    writeEncapTemplate(templates, 0, peer, MY_MAC);
    const arena = Buffer.alloc(120, POISON);
    const starts = Int32Array.of(0, 40, 80);
    [0x45, 0x60, 0x00].forEach((first, i) => (arena[starts[i]! + 22] = first));
    const before = Buffer.from(arena);
    expect(native.encapBatch(arena, starts, 3, Int32Array.of(0, 0, 0), templates)).toBe(2);
    // VXLAN: I flag, VNI 0x123456, reserved zero; Ethernet: peer MAC, our MAC, EtherType
    expect(arena.subarray(0, 23).toString('hex')).toBe('08000000' + '12345600' + '0a580af40100' + '0a580af40200' + '0800' + '45');
    expect(arena.subarray(40, 63).toString('hex')).toBe('08000000' + '12345600' + '0a580af40100' + '0a580af40200' + '86dd' + '60');
    expect(arena.subarray(23, 40).equals(before.subarray(23, 40))).toBe(true);
    expect(arena.subarray(63).equals(before.subarray(63))).toBe(true); // version 0 at 80: untouched
  });

  describe('bad arguments throw a named error and write nothing', () => {
    const templates = Buffer.alloc(2 * ENCAP_HEADER_LEN, 1);
    const fresh = (): Buffer => {
      const a = Buffer.alloc(90, POISON);
      for (const s of [0, 30, 60]) a[s + 22] = 0x45;
      return a;
    };
    const starts = Int32Array.of(0, 30, 60);
    const cases: Array<[string, (f: EncapBatchFn, arena: Buffer) => unknown, RegExp]> = [
      ['a slot past the templates', (f, a) => f(a, starts, 3, Int32Array.of(0, 1, 2), templates), /slots\[2\] = 2 is past the 2 templates/],
      ['a start that leaves no packet', (f, a) => f(a, Int32Array.of(0, 30, 68), 3, Int32Array.of(0, 1, 0), templates), /starts\[2\] = 68 leaves no packet after the header in the 90-byte arena/],
      ['a negative start', (f, a) => f(a, Int32Array.of(0, -1, 60), 3, Int32Array.of(0, 0, 0), templates), /starts\[1\] = -1/],
      ['count past the slots', (f, a) => f(a, starts, 4, Int32Array.of(0, 0, 0, 0), templates), /count/],
    ];
    for (const [name, call, message] of cases) {
      it(name, () => {
        for (const f of [native.encapBatch, encapBatchTs]) {
          const arena = fresh();
          expect(() => call(f, arena)).toThrow(message);
          expect(arena.equals(fresh())).toBe(true);
        }
      });
    }
    it('slots or starts that are not an Int32Array, templates that are not bytes', () => {
      expect(() => native.encapBatch(fresh(), starts, 1, new Float64Array(3) as unknown as Int32Array, templates)).toThrow(/slots must be an Int32Array/);
      expect(() => native.encapBatch(fresh(), [0, 30, 60] as unknown as Int32Array, 1, Int32Array.of(0), templates)).toThrow(/starts must be an Int32Array/);
      expect(() => native.encapBatch(fresh(), starts, 1, Int32Array.of(0), [1, 2] as unknown as Uint8Array)).toThrow(/templates must be a Buffer/);
    });
  });
});

// --- the engine, native batch encap vs per-packet TS emit ---

const PEER_A: Vtep = { endpoint: { address: '198.18.0.1', port: 8472 }, vtepMac: macFromString('0a:58:0a:f4:01:00'), vni: 1 };
// one peer reached by IPv4 and IPv6: one template, two EtherTypes in one batch
const PEER_B: Vtep = { endpoint: { address: '198.18.0.3', port: 4789 }, vtepMac: macFromString('0a:58:0a:f4:03:00'), vni: 0xabcdef };
const PEER_C: Vtep = { endpoint: { address: '198.18.0.4', port: 8472 }, vtepMac: macFromString('0a:58:0a:f4:04:00'), vni: 1 };

function makeEngine(encapBatch: EncapBatchFn | undefined): { engine: Engine; tun: RecordingTun; net: FakeNetwork; seen: string[][]; headers: { written: number } } {
  const headers = { written: 0 };
  const net = new FakeNetwork();
  const tun = new RecordingTun(TUN_MTU);
  const engine = new Engine(tun, net.bind('198.18.0.2', 8472), {
    vni: 1,
    vtepMac: MY_MAC,
    vtepIp: ipv4FromString('10.244.2.0'),
    localSubnets: [{ family: 4, addr: ipv4FromString('10.244.2.0'), prefixLen: 24 }],
    port: 8472,
    maxInnerSize: TUN_MTU,
    tunMtu: TUN_MTU,
    icmpRatePerSecond: 1e9, // no rate limit: both engines must answer the same packets
    icmpPerSource: false,
    batchSize: 64,
    ...(encapBatch ? { encapBatch: (...args: Parameters<EncapBatchFn>) => (headers.written += encapBatch(...args)) } : {}),
  });
  engine.setRoutes(
    new RouteTable([
      { prefix: cidr('10.244.1.0/24'), target: PEER_A },
      { prefix: cidr('10.244.3.0/24'), target: PEER_B },
      { prefix: cidr('fd00:244:3::/64'), target: PEER_B },
      { prefix: cidr('fd00:244:4::/64'), target: PEER_C },
      { prefix: cidr('10.244.4.0/24'), target: PEER_C },
    ]),
  );
  return { engine, tun, net, seen: [], headers };
}

/** Random TUN packet: IPv4/IPv6 to a peer, to nowhere, too big, or malformed. */
function randomTunPacket(next: () => number): Buffer {
  const kind = next() % 20;
  if (kind === 0) return Buffer.alloc(0);
  if (kind === 1) return Buffer.from([[0x00, 0x50, 0xf0, 0x45][next() % 4]!, ...Array.from({ length: next() % 60 }, () => next() & 0xff)]);
  if (kind < 8) {
    const p = Buffer.alloc(40 + (next() % (kind === 7 ? 40 : TUN_MTU - 40)));
    for (let k = 40; k < p.length; k++) p[k] = next() & 0xff;
    p[0] = 0x60;
    p.writeUInt16BE(p.length - 40, 4);
    p[6] = 17;
    p[7] = 64;
    ipv6FromString('fd00:244:2::5').copy(p, 8);
    ipv6FromString(['fd00:244:3::9', 'fd00:244:4::7', 'fd00:99::1'][next() % 3]!).copy(p, 24);
    if (kind === 7) p.writeUInt16BE(p.length, 4); // payload length past the packet: malformed
    return p;
  }
  const big = kind === 8;
  const p = Buffer.alloc(big ? TUN_MTU + 1 + (next() % 100) : 20 + (next() % (TUN_MTU - 20)));
  for (let k = 20; k < p.length; k++) p[k] = next() & 0xff;
  p[0] = kind === 9 ? 0x44 : 0x45; // 9: header length 16, malformed
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(next() & 0xffff, 4);
  p.writeUInt16BE(big || next() & 1 ? 0x4000 : 0, 6);
  p[8] = 64;
  p[9] = 17;
  p.writeUInt32BE(ipv4FromString('10.244.2.5'), 12);
  p.writeUInt32BE(ipv4FromString(['10.244.1.7', '10.244.3.8', '10.244.4.9', '10.99.0.1', '10.244.1.200'][next() % 5]!), 16);
  p.writeUInt16BE(internetChecksum(p, 0, 20), 10);
  return p;
}

describe('engine: native batch encap vs per-packet TS emit', () => {
  it('200 random batches: identical datagrams, ICMP answers, counters and observation points per packet', () => {
    const next = rng(0xbeef);
    const ts = makeEngine(undefined);
    const nat = makeEngine(native.encapBatch);
    for (const e of [ts, nat]) {
      e.engine.setObserver((o: Observation) => {
        e.seen.push([o.point, o.verdict, o.buf.subarray(o.offset, o.offset + o.length).toString('hex'), o.peer ? `${o.peer.endpoint.address}/${o.peer.vni}` : '', o.route ?? '']);
      });
    }
    const perPacket = (seen: string[][]): Map<string, string[]> => {
      // an outbound packet's events are keyed by its inner bytes (the header comes in front of them)
      const m = new Map<string, string[]>();
      for (const [point, verdict, hex, peer, route] of seen) {
        const inner = point === 'encap' || point === 'udp-send' ? hex!.slice(2 * HEADROOM) : hex!;
        const list = m.get(inner) ?? [];
        list.push(`${point} ${verdict} ${peer} ${route} ${point === 'encap' ? hex!.slice(0, 2 * HEADROOM) : ''}`);
        m.set(inner, list);
      }
      return m;
    };
    let packets = 0;
    for (let round = 0; round < 200; round++) {
      const count = 1 + (next() % 100); // sometimes more than batchSize: the slots grow
      const batch = Array.from({ length: count }, () => randomTunPacket(next));
      packets += count;
      // Mostly views of one arena, as the engine's read buffers are (the batch call); some rounds in
      // separate buffers, and some with one stray buffer (the per-packet fallback, same bytes).
      const layout = round % 10 === 9 ? 'separate' : round % 10 === 8 ? 'one stray' : 'arena';
      for (const e of [ts, nat]) {
        const room = HEADROOM + TUN_MTU + 200;
        const arena = Buffer.alloc(room * count, POISON);
        const bufs = batch.map((p, i) => {
          const b = layout === 'separate' || (layout === 'one stray' && i === count >> 1) ? Buffer.alloc(room, POISON) : arena.subarray(i * room, (i + 1) * room);
          p.copy(b, HEADROOM);
          return b;
        });
        e.engine.handleOutbound(bufs, batch.map((p) => p.length), count);
      }
    }
    const sent = ts.net.log;
    expect(nat.net.log.length).toBe(sent.length);
    for (let i = 0; i < sent.length; i++) {
      const [a, b] = [sent[i]!, nat.net.log[i]!];
      if (!b.bytes.equals(a.bytes) || b.dst.address !== a.dst.address || b.dst.port !== a.dst.port) throw new Error(`datagram ${i} differs`);
    }
    expect(nat.tun.written.map((b) => b.toString('hex'))).toEqual(ts.tun.written.map((b) => b.toString('hex')));
    expect(nat.engine.counters.snapshot()).toEqual(ts.engine.counters.snapshot());
    // every kind of outcome happened, IPv6 frames went out with their EtherType
    const snap = ts.engine.counters.snapshot();
    expect(snap.tx.packets).toBeGreaterThan(packets / 2);
    expect(Object.keys(snap.dropped)).toEqual(expect.arrayContaining(['tun-malformed']));
    expect(Object.keys(snap.answered)).toEqual(expect.arrayContaining(['icmp-unreachable', 'icmp-too-big']));
    expect(sent.filter((d) => d.bytes.readUInt16BE(20) === 0x86dd).length).toBeGreaterThan(1000);
    expect(sent.filter((d) => d.bytes.readUInt16BE(20) === 0x0800).length).toBeGreaterThan(1000);
    expect(new Set(sent.map((d) => d.bytes.readUIntBE(4, 3)))).toEqual(new Set([1, 0xabcdef]));
    // each packet passes the same points with the same verdicts, peers, routes and headers
    expect(nat.seen.length).toBe(ts.seen.length);
    const want = perPacket(ts.seen);
    const got = perPacket(nat.seen);
    expect(got.size).toBe(want.size);
    for (const [inner, events] of want) expect(got.get(inner), inner.slice(0, 80)).toEqual(events);
    expect(ts.seen.filter((e) => e[0] === 'encap').length).toBe(snap.tx.packets);
    // the native engine wrote most headers in batch calls, the rest through the fallback
    expect(ts.headers.written).toBe(0);
    expect(nat.headers.written).toBeGreaterThan(snap.tx.packets * 0.7);
    expect(nat.headers.written).toBeLessThan(snap.tx.packets);
  });

  it('read buffers reused batch after batch, some swapped in place, stay identical to the TS emit', () => {
    const next = rng(0x5eed);
    const ts = makeEngine(undefined);
    const nat = makeEngine(native.encapBatch);
    const room = HEADROOM + TUN_MTU + 200;
    // as the pipeline allocates them: one arena, 64 views, plus spare room for swapped-in views
    const layouts = [ts, nat].map(() => {
      const arena = Buffer.alloc(room * 80, POISON);
      return { arena, bufs: Array.from({ length: 64 }, (_, i) => arena.subarray(i * room, (i + 1) * room)) };
    });
    let packets = 0;
    for (let round = 0; round < 60; round++) {
      const count = 1 + (next() % 64);
      const batch = Array.from({ length: count }, () => randomTunPacket(next));
      const swap = round % 4 === 3 ? { at: next() % count, spare: next() % 16, stray: next() % 2 === 0 } : undefined;
      for (const [k, e] of [ts, nat].entries()) {
        const { arena, bufs } = layouts[k]!;
        if (swap) bufs[swap.at] = swap.stray ? Buffer.alloc(room, POISON) : arena.subarray((64 + swap.spare) * room, (65 + swap.spare) * room);
        batch.forEach((p, i) => p.copy(bufs[i]!, HEADROOM));
        e.engine.handleOutbound(bufs, batch.map((p) => p.length), count);
      }
      packets += count;
    }
    expect(nat.net.log.map((d) => d.bytes.toString('hex'))).toEqual(ts.net.log.map((d) => d.bytes.toString('hex')));
    expect(nat.engine.counters.snapshot()).toEqual(ts.engine.counters.snapshot());
    expect(ts.net.log.length).toBeGreaterThan(packets / 2);
    expect(nat.headers.written).toBeGreaterThan(ts.net.log.length * 0.8);
  });
});
