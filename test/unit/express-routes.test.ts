// compileExpressRoutes: what the engine hands the addon's express path. The trie must be the table's
// own (and the addon's walk over it, expressDecideOutbound, picks the engine's peer), and each 28-byte record the header the JS path writes
// (writeEncapTemplate) followed by the peer's IPv4 address and port, big-endian; a peer the express
// path must leave to the engine (an IPv6 endpoint) gets port 0. The record bytes are spelled out by
// hand here (RFC 7348 VXLAN header, Ethernet II), not with the emitters under test.
import { describe, expect, it } from 'vitest';
import { compileExpressRoutes, addExpressCounters, sumExpress, ExpressCounter, EXPRESS_COUNTER_COUNT, expressWanted, bulkInWanted } from '../../src/datapath/express.js';
import { writeEncapTemplate, ENCAP_HEADER_LEN } from '../../src/packet/encap.js';
import { RouteTable, type Vtep } from '../../src/packet/routes.js';
import { mac, MIXED_ROUTES, P2, P3, P6 } from '../support/routes.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { mulberry32 } from '../support/random.js';
import { requireNative, type ExpressDecision } from '../../src/io/addon.js';
import { Verdict } from '../../src/packet/policy.js';
import { DropReason } from '../../src/packet/counters.js';

const ours = mac('0a:58:0a:f4:01:00');

const [p2, p3, p6] = [P2, P3, P6];
const routes = MIXED_ROUTES;

const native = requireNative();

/** What the addon's express rules decide for a bare 20-byte IPv4 header to dst (a size every route carries). */
function decide(trie: Int32Array, peers: Uint8Array, dst: number): ExpressDecision {
  const packet = Buffer.from('4500001400000000400100000a000001' + '00000000', 'hex');
  packet.writeUInt32BE(dst >>> 0, 16);
  return native.expressDecideOutbound(packet, trie, peers, { maxInnerSize: 1450, readRoom: 1564 });
}

describe('compileExpressRoutes', () => {
  const table = new RouteTable(routes);
  const { trie, peers } = compileExpressRoutes(table, ours);
  const { targets } = table.compiled4();

  it('hands over the table trie itself, whole 256-entry chunks', () => {
    expect(trie).toBe(table.compiled4().trie);
    expect(trie.length % 256).toBe(0);
  });

  it('writes one 28-byte record per target: the JS header template, address and port big-endian', () => {
    expect(peers.length).toBe(targets.length * 28);
    expect(new Set(targets)).toEqual(new Set([p2, p3, p6])); // p6 from its IPv4 route
    targets.forEach((peer, k) => {
      const rec = Buffer.from(peers.buffer, peers.byteOffset + k * 28, 28);
      const tpl = Buffer.alloc(ENCAP_HEADER_LEN);
      writeEncapTemplate(tpl, 0, peer, ours);
      expect(rec.subarray(0, 22).equals(tpl)).toBe(true);
      // by hand: VXLAN flags I, reserved, VNI, reserved; inner Ethernet dst = peer, src = ours, IPv4
      const vni = peer.vni;
      const hand = Buffer.concat([Buffer.from([0x08, 0, 0, 0, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0]), peer.vtepMac, ours, Buffer.from([0x08, 0x00])]);
      expect(rec.subarray(0, 22).toString('hex')).toBe(hand.toString('hex'));
      if (peer === p6) {
        expect(rec.subarray(22).toString('hex')).toBe('000000000000'); // port 0: the engine's
      } else {
        expect(rec.readUInt32BE(22)).toBe(ipv4FromString(peer.endpoint.address));
        expect(rec.readUInt16BE(26)).toBe(peer.endpoint.port);
      }
    });
    const rec3 = Buffer.from(peers.buffer, peers.byteOffset + targets.indexOf(p3) * 28, 28);
    expect(rec3.subarray(4, 7).toString('hex')).toBe('123456');
    expect(rec3.subarray(22).toString('hex')).toBe('c6120003' + '12b5');
  });

  it("the addon's lookup over it picks the peer the engine's lookup4 picks, for every address", () => {
    const rnd = mulberry32(7348);
    const probes = ['10.244.2.1', '10.244.3.1', '10.244.3.200', '10.244.4.9', '10.244.5.1', '10.245.2.1', '0.0.0.0', '255.255.255.255'].map(ipv4FromString);
    for (let i = 0; i < 5000; i++) probes.push((0x0af40000 | Math.floor(rnd() * 0x10000)) >>> 0);
    const reason = (d: ExpressDecision): string => native.expressReasons[d.reason]!;
    for (const dst of probes) {
      const d = decide(trie, peers, dst);
      const want = table.lookup4(dst);
      if (want === undefined) expect([d.verdict, reason(d)]).toEqual([Verdict.Drop, DropReason.NoRoute]);
      else if (want === p6) expect([d.verdict, reason(d)]).toEqual([Verdict.HandOver, 'peer-not-served']);
      else expect(targets[d.peer]).toBe(want);
    }
  });

  it('compiles an empty table to a root chunk of zeros and no records', () => {
    const empty = compileExpressRoutes(RouteTable.empty<Vtep>(), ours);
    expect(empty.peers.length).toBe(0);
    expect(empty.trie.length).toBe(256);
    expect(empty.trie.every((e) => e === 0)).toBe(true);
  });
});

describe('express counters', () => {
  it('fold into a snapshot: tx/rx packets and bytes, send-failed and tun-write-failed drops', () => {
    const b = new Float64Array(EXPRESS_COUNTER_COUNT);
    b[ExpressCounter.TxPackets] = 3;
    b[ExpressCounter.TxBytes] = 300;
    b[ExpressCounter.RxPackets] = 5;
    b[ExpressCounter.RxBytes] = 500;
    b[ExpressCounter.SendFailed] = 1;
    b[ExpressCounter.TunWriteFailed] = 2;
    b[ExpressCounter.OutHandedOver] = 7;
    b[ExpressCounter.InHandedOver] = 9;
    b[ExpressCounter.ThreadPasses] = 11;
    b[ExpressCounter.LoopHandovers] = 12;
    b[ExpressCounter.ThreadResumes] = 13;
    const s = addExpressCounters({ tx: { packets: 10, bytes: 1000 }, rx: { packets: 20, bytes: 2000 }, answered: {}, dropped: { 'send-failed': 4 }, fixed: {} }, b);
    expect(s.tx).toEqual({ packets: 13, bytes: 1300 });
    expect(s.rx).toEqual({ packets: 25, bytes: 2500 });
    expect(s.dropped['send-failed']).toBe(5);
    expect(s.dropped['tun-write-failed']).toBe(2);
    expect(Object.values(s.answered)).toEqual([]); // hand-overs and the thread's passes are not answers or drops
    expect(Object.keys(s.dropped).sort()).toEqual(['send-failed', 'tun-write-failed']);
  });

  it('sum over the main engine and the workers, zeros when off', () => {
    expect([...sumExpress(undefined, undefined)]).toEqual(Array(EXPRESS_COUNTER_COUNT).fill(0));
    const m = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    const w = Float64Array.from([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160]);
    expect(m).toHaveLength(EXPRESS_COUNTER_COUNT);
    expect([...sumExpress(m, w)]).toEqual([11, 22, 33, 44, 55, 66, 77, 88, 99, 110, 121, 132, 143, 154, 165, 176]);
    expect([...sumExpress(m, undefined)]).toEqual([...m]);
  });

  it('VXTUN_NO_BULK_IN=1 leaves every inbound batch to the pipeline', () => {
    const saved = process.env.VXTUN_NO_BULK_IN;
    try {
      delete process.env.VXTUN_NO_BULK_IN;
      expect(bulkInWanted()).toBe(true);
      process.env.VXTUN_NO_BULK_IN = '1';
      expect(bulkInWanted()).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.VXTUN_NO_BULK_IN;
      else process.env.VXTUN_NO_BULK_IN = saved;
    }
  });

  it('VXTUN_NO_EXPRESS=1 forces the path off, config false keeps it off', () => {
    const saved = process.env.VXTUN_NO_EXPRESS;
    try {
      delete process.env.VXTUN_NO_EXPRESS;
      expect(expressWanted(true)).toBe(true);
      expect(expressWanted(false)).toBe(false);
      process.env.VXTUN_NO_EXPRESS = '1';
      expect(expressWanted(true)).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.VXTUN_NO_EXPRESS;
      else process.env.VXTUN_NO_EXPRESS = saved;
    }
  });
});
