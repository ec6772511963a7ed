// The addon's express rules (native/express_rules.cc) against the policy the engine runs
// (src/packet/policy.ts), packet by packet, over kernel captures, generated packets and mutations of
// both (fast-check). The contract, per direction:
//   - the addon forwards  => the policy forwards the same bytes (outbound: the same peer, the same
//     22-byte header in front; inbound: the same range of the datagram) and needs no fix-up;
//   - the addon names a drop reason => the policy drops or answers for that very reason;
//   - whatever the policy drops, answers, or forwards only after a fix-up, the addon does not forward
//     (the two rules above imply it; the tallies below show each kind is reached).
// Verdict and reason codes: the addon's lists are checked against policy.ts's.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { requireNative, type ExpressDecision } from '../../src/io/addon.js';
import { checkInbound, classifyOutbound, DROP_REASON_CODES, InboundFix, InboundVerdict, localSubnetTable, OutboundVerdict, Verdict, VERDICT_NAMES } from '../../src/packet/policy.js';
import { DropReason } from '../../src/packet/counters.js';
import { RouteTable, type Route, type Vtep } from '../../src/packet/routes.js';
import { cidr, mac, vtep, MIXED_ROUTES, P2, P3 } from '../support/routes.js';
import { compileExpressGuard, compileExpressRoutes } from '../../src/datapath/express.js';
import { emitVxlan } from '../../src/packet/wire/vxlan.js';
import { emitEthernet, EtherType } from '../../src/packet/wire/ethernet.js';
import { emitIpv4, ipv4FromString, isIpv4String } from '../../src/packet/wire/ipv4.js';
import { emitIpv6, ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { completeL4Checksum, l4ChecksumState, setPartialL4Checksum } from '../../src/packet/wire/l4checksum.js';
import { onesSum } from '../../src/packet/wire/checksum.js';
import { listKernelFixtures, loadTcpdumpHex } from '../support/fixtures.js';

const native = requireNative();

const OUR_MAC = mac('0a:58:0a:f4:02:00');
const OUR_VTEP_IP = ipv4FromString('10.244.2.0');
const VNI = 1;
const n1 = vtep('198.18.0.1', 8472, '0a:58:0a:f4:01:00', VNI);
const TABLES: RouteTable<Vtep>[] = [
  [...MIXED_ROUTES, { prefix: cidr('10.244.1.0/24'), target: n1 }, { prefix: cidr('fd00:244:1::/64'), target: n1 }],
  [{ prefix: cidr('10.0.0.0/8'), target: P2 }, { prefix: cidr('10.244.1.7/32'), target: P3 }],
  []
].map((routes: Route<Vtep>[]) => new RouteTable(routes));
const COMPILED = TABLES.map((t) => ({ ...compileExpressRoutes(t, OUR_MAC), targets: t.compiled4().targets }));

/** The kernel captures: VXLAN datagrams (after the outer UDP header) and the inner IP packets. */
function kernelSeeds(): { datagrams: Buffer[]; packets: Buffer[] } {
  const datagrams: Buffer[] = [];
  const packets: Buffer[] = [];
  for (const name of listKernelFixtures()) {
    const b = loadTcpdumpHex(name).bytes;
    const ip = b.subarray(14);
    if (name.startsWith('vxlan-')) {
      const d = ip.subarray((ip[0]! & 15) * 4 + 8);
      datagrams.push(Buffer.from(d));
      if (d.readUInt16BE(20) !== EtherType.ARP) packets.push(Buffer.from(d.subarray(22)));
    } else {
      packets.push(Buffer.from(ip));
    }
  }
  return { datagrams, packets };
}
const SEEDS = kernelSeeds();

/** Underlay senders: the tables' peers (198.18.0.1-3) and a host that is no peer. */
const FROMS = ['198.18.0.1', '198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.9'];
/** Inner sources: in n1's subnet (its VTEP address too), in P2's and P3's, nobody's. */
const SRCS = ['10.244.1.5', '10.244.1.0', '10.244.1.7', '10.244.2.5', '10.244.3.5', '10.244.3.200', '10.9.0.1', '192.0.2.1'].map(ipv4FromString);
/** This node's subnets (the VTEP address 10.244.2.0 is accepted besides): as a node has them, another, none. */
const LOCALS = [[cidr('10.244.2.0/24'), cidr('fd00:244:2::/64')], [cidr('10.244.9.0/24')], []];
const V6_SRCS = ['fd00:244:1::5', 'fd00:4::1', 'fd00:9::1'].map(ipv6FromString);
const V6_DSTS = ['fd00:244:2::7', 'fd00:244:1::9', 'fd00:4::2'].map(ipv6FromString);

/** An IPv6 packet (no next header, RFC 8200 §4.7) from and to the addresses above. */
const ipv6Packet = fc.record({ src: fc.constantFrom(...V6_SRCS), dst: fc.constantFrom(...V6_DSTS), payload: fc.integer({ min: 0, max: 200 }) }).map((o) => {
  const p = Buffer.alloc(40 + o.payload, 0xab);
  emitIpv6({ src: o.src, dst: o.dst, nextHeader: 59, hopLimit: 64, payloadLength: o.payload }, p, 0);
  return p;
});

const DSTS = ['10.244.2.0', '10.244.2.7', '10.244.2.7', '10.244.1.0', '10.244.1.7', '10.244.3.1', '10.244.3.200', '10.244.4.9', '10.244.9.1', '10.9.0.1', '192.0.2.1'].map(ipv4FromString);

/** An IPv4 packet of protocol TCP, UDP or ICMP with a valid, partial, zero or wrong L4 checksum. */
const ipv4Packet = fc
  .record({
    protocol: fc.constantFrom(6, 17, 1, 47),
    payload: fc.integer({ min: 0, max: 1700 }),
    /** A total length on an edge of the MTUs and sizes below (else from `payload`). */
    edge: fc.option(fc.constantFrom(575, 576, 577, 1199, 1200, 1201, 1399, 1400, 1401, 1449, 1450, 1451, 1499, 1500, 1501, 1563, 1564, 1565), { nil: undefined }),
    options: fc.integer({ min: 0, max: 10 }),
    dst: fc.constantFrom(...DSTS),
    fragment: fc.constantFrom(0, 0, 0, 0x2000, 0x0001),
    dontFragment: fc.boolean(),
    checksum: fc.constantFrom('valid', 'valid', 'partial', 'zero', 'wrong'),
    fill: fc.integer({ min: 0, max: 255 }),
  })
  .map((o) => {
    const l4Header = o.protocol === 6 ? 20 : o.protocol === 17 ? 8 : 4;
    const ihl = 20 + 4 * o.options;
    const total = o.edge ?? ihl + l4Header + o.payload;
    const p = Buffer.alloc(total, o.fill);
    emitIpv4({ src: ipv4FromString('10.244.2.5'), dst: o.dst, protocol: o.protocol, ttl: 64, payloadLength: total - 20, dontFragment: o.dontFragment }, p, 0);
    p[0] = 0x40 | (ihl / 4);
    p.writeUInt16BE(total, 2);
    p.writeUInt16BE((o.dontFragment ? 0x4000 : 0) | o.fragment, 6);
    const l4 = p.subarray(ihl);
    if (o.protocol === 6 && l4.length >= 20) l4[12] = 5 << 4;
    if (o.protocol === 17 && l4.length >= 8) l4.writeUInt16BE(l4.length, 4);
    if (o.checksum === 'valid') completeL4Checksum(p, 0, total);
    else if (o.checksum === 'partial') setPartialL4Checksum(p, 0, total);
    else if (o.checksum === 'zero' && o.protocol === 17 && l4.length >= 8) l4.writeUInt16BE(0, 6);
    return p;
  });

/** Byte-level damage: set a byte, flip a bit, cut, extend; indices biased to the headers. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.integer({ min: 0, max: 80 }), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.integer({ min: 0, max: 2000 }), value: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.integer({ min: 0, max: 1800 }), value: fc.constant(0) }),
  fc.record({ kind: fc.constant('extend' as const), at: fc.integer({ min: 1, max: 64 }), value: fc.integer({ min: 0, max: 255 }) }),
);
/** Half the cases undamaged, so the later rules (and forwarding) are reached often. */
const mutations = fc.oneof(fc.constant<Mutation[]>([]), fc.array(mutation, { minLength: 1, maxLength: 3 }));
type Mutation = { kind: 'set' | 'flip' | 'cut' | 'extend'; at: number; value: number };

function mutate(b: Buffer, ms: readonly Mutation[], base: number): Buffer {
  let out = Buffer.from(b);
  for (const m of ms) {
    if (m.kind === 'set' && base + m.at < out.length) out[base + m.at] = m.value;
    else if (m.kind === 'flip' && out.length > 0) out[m.at % out.length]! ^= 1 << m.value;
    else if (m.kind === 'cut') out = out.subarray(0, Math.min(out.length, m.at));
    else if (m.kind === 'extend') out = Buffer.concat([out, Buffer.alloc(m.at, m.value)]);
  }
  return out;
}

/** Refreshes the inner TCP/UDP checksum after damage, sometimes, so damaged packets still reach the later rules. */
function maybeRefresh(b: Buffer, ipOffset: number, refresh: boolean): void {
  if (refresh && b.length >= ipOffset + 4 && b[ipOffset]! >> 4 === 4) completeL4Checksum(b, ipOffset, Math.min(b.length - ipOffset, b.readUInt16BE(ipOffset + 2) || 0));
}

function datagramOf(inner: Buffer, o: { vni: number; dstMac: Buffer; etherType: number }): Buffer {
  const d = Buffer.alloc(22 + inner.length);
  emitVxlan({ vni: o.vni }, d, 0);
  emitEthernet({ dst: o.dstMac, src: n1.vtepMac, etherType: o.etherType }, d, 8);
  inner.copy(d, 22);
  return d;
}

/** A hand-over names why; each reason is a fact about the datagram the policy must agree with. */
function expectInboundHandOver(reason: string, d: Buffer, verdict: Verdict, out: InboundVerdict): void {
  if (reason === 'oversize') {
    expect(verdict).toBe(Verdict.Forward);
    expect(out.fix).toBe(InboundFix.Oversize);
  } else if (reason === 'checksum-not-final') {
    // Partial (the policy completes it) or a TCP/UDP header the addon does not parse; a checksum that
    // is merely wrong is forwarded as it is by both, without a pass over the payload.
    expect(verdict).toBe(Verdict.Forward);
    expect(out.fix).not.toBe(InboundFix.Oversize);
    expect(['partial', 'not-applicable']).toContain(l4ChecksumState(d, out.offset, out.length));
    if (out.fix !== InboundFix.Checksum) expect(l4ChecksumState(d, out.offset, out.length)).not.toBe('partial');
  } else if (reason === 'arp') {
    expect(d.readUInt16BE(20)).toBe(EtherType.ARP);
    if (verdict !== Verdict.Arp) expect([DropReason.MalformedArp, DropReason.WrongDstMac, DropReason.ArpIgnored, DropReason.ArpNotForUs]).toContain(out.reason);
  } else if (reason === 'ipv6') {
    expect(d.readUInt16BE(20)).toBe(EtherType.IPV6);
    if (verdict !== Verdict.Forward) expect([DropReason.MalformedInnerIpv6, DropReason.SpoofedSource, DropReason.NotForThisNode]).toContain(out.reason);
  } else {
    throw new Error(`inbound hand-over for ${reason}`);
  }
}

function expectOutboundHandOver(reason: string, p: Buffer, readRoom: number, verdict: Verdict, out: OutboundVerdict): void {
  if (reason === 'longer-than-read') expect(p.length).toBeGreaterThan(readRoom);
  else if (reason === 'ipv6') expect(p[0]! >> 4).toBe(6);
  else if (reason === 'peer-not-served') {
    expect(verdict).toBe(Verdict.Forward);
    expect(isIpv4String(out.peer!.endpoint.address)).toBe(false);
  } else throw new Error(`outbound hand-over for ${reason}`);
}

const reasonName = (code: number): string => native.expressReasons[code]!;
const tally = new Map<string, number>();
const count = (key: string): void => void tally.set(key, (tally.get(key) ?? 0) + 1);

describe('express twin: codes', () => {
  it('the addon numbers verdicts and drop reasons as policy.ts does', () => {
    expect([...native.expressVerdicts]).toEqual([...VERDICT_NAMES]);
    VERDICT_NAMES.forEach((name, code) => expect(Object.entries(Verdict).find(([, v]) => v === code)?.[0].replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase()).toBe(name));
    expect(native.expressReasons.slice(0, DROP_REASON_CODES.length)).toEqual([...DROP_REASON_CODES]);
    expect(DROP_REASON_CODES).toEqual(Object.values(DropReason));
  });
});

describe('express twin: inbound', () => {
  const out = new InboundVerdict();

  const inboundCase = fc.record({
    inner: fc.oneof(
      { weight: 1, arbitrary: fc.constantFrom(...SEEDS.datagrams).map((d) => ({ datagram: d })) },
      { weight: 3, arbitrary: ipv4Packet.map((p) => ({ packet: p })) },
      { weight: 1, arbitrary: ipv6Packet.map((p) => ({ packet6: p })) },
    ),
    /** The sender, the inner source (IPv4; undefined: the packet's own), the peers and what is ours. */
    from: fc.oneof({ weight: 4, arbitrary: fc.constant(FROMS[0]!) }, fc.constantFrom(...FROMS)),
    src: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(SRCS[0]!, SRCS[1]!) }, fc.option(fc.constantFrom(...SRCS), { nil: undefined })),
    dst: fc.oneof({ weight: 2, arbitrary: fc.constant(ipv4FromString('10.244.2.7')) }, fc.constant(undefined)),
    table: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.constantFrom(1, 2)),
    local: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.constantFrom(1, 2)),
    antiSpoofing: fc.oneof(
      { weight: 4, arbitrary: fc.constant({ unknownPeer: true, spoofedSource: true, notForThisNode: true }) },
      fc.record({ unknownPeer: fc.boolean(), spoofedSource: fc.boolean(), notForThisNode: fc.boolean() }),
    ),
    vni: fc.oneof({ weight: 8, arbitrary: fc.constant(VNI) }, fc.constantFrom(0, 2, 0x123456)),
    dstMac: fc.oneof({ weight: 8, arbitrary: fc.constant(OUR_MAC) }, fc.constantFrom(mac('ff:ff:ff:ff:ff:ff'), n1.vtepMac)),
    etherType: fc.oneof({ weight: 8, arbitrary: fc.constant(EtherType.IPV4) }, fc.constantFrom(EtherType.IPV6, EtherType.ARP, 0x88cc)),
    mutations: mutations,
    refresh: fc.boolean(),
    tunMtu: fc.constantFrom(1450, 1500, 576, 9000),
    ourVni: fc.oneof({ weight: 8, arbitrary: fc.constant(VNI) }, fc.constant(0x123456)),
  });

  const localTables = LOCALS.map(localSubnetTable);

  it('forwards only what the policy forwards unchanged, byte for byte; its drops are the policy drops, anti-spoofing included (60 000 datagrams)', () => {
    tally.clear();
    fc.assert(
      fc.property(inboundCase, (c) => {
        let d: Buffer;
        if ('datagram' in c.inner) d = c.inner.datagram;
        else if ('packet6' in c.inner) d = datagramOf(c.inner.packet6, { ...c, etherType: c.etherType === EtherType.IPV4 ? EtherType.IPV6 : c.etherType });
        else {
          const inner = Buffer.from(c.inner.packet);
          if (c.src !== undefined || c.dst !== undefined) {
            if (c.src !== undefined) inner.writeUInt32BE(c.src, 12);
            if (c.dst !== undefined) inner.writeUInt32BE(c.dst, 16);
            if (c.refresh) completeL4Checksum(inner, 0, inner.length);
          }
          d = datagramOf(inner, c);
        }
        d = mutate(d, c.mutations, 0);
        maybeRefresh(d, 22, c.refresh);
        const { trie, peers } = COMPILED[c.table]!;
        const guard = compileExpressGuard(c.antiSpoofing, OUR_VTEP_IP, LOCALS[c.local]!);
        const got: ExpressDecision = native.expressDecideInbound(d, trie, peers, guard, { vni: c.ourVni, vtepMac: OUR_MAC, tunMtu: c.tunMtu, from: ipv4FromString(c.from) });
        const params = { vni: c.ourVni, vtepMac: OUR_MAC, vtepIp: OUR_VTEP_IP, tunMtu: c.tunMtu, routes: TABLES[c.table]!, local: localTables[c.local]!, antiSpoofing: c.antiSpoofing };
        const before = Buffer.from(d);
        const verdict = checkInbound(d, d.length, c.from, params, onesSum, out);
        expect(d.equals(before)).toBe(true); // the policy only judges
        if (got.verdict === Verdict.Forward) {
          expect(verdict).toBe(Verdict.Forward);
          expect(out.fix).toBe(InboundFix.None);
          expect([got.offset, got.length]).toEqual([out.offset, out.length]);
          count('forward');
        } else if (got.verdict === Verdict.Drop) {
          expect(verdict).toBe(Verdict.Drop);
          expect(out.reason).toBe(reasonName(got.reason));
          count(`drop ${out.reason}`);
        } else {
          expect(got.verdict).toBe(Verdict.HandOver);
          expectInboundHandOver(reasonName(got.reason), d, verdict, out);
          count(`hand-over ${reasonName(got.reason)}: policy ${VERDICT_NAMES[verdict]}${verdict === Verdict.Forward ? ` fix ${out.fix}` : ''}`);
          if (reasonName(got.reason) === 'ipv6' && verdict === Verdict.Drop) count(`ipv6 drop ${out.reason}`);
        }
      }),
      { numRuns: 60_000 },
    );
    // Every kind of outcome was reached, not only the easy ones.
    if (process.env.VXTUN_TWIN_TALLY === '1') console.log(tally);
    const keys = [...tally.keys()];
    expect(tally.get('forward')).toBeGreaterThan(5_000);
    for (const r of ['unknown-peer', 'short-datagram', 'bad-flags', 'reserved-bits-set', 'wrong-vni', 'truncated-inner', 'wrong-dst-mac', 'unsupported-ethertype', 'malformed-inner-ipv4', 'spoofed-source', 'not-for-this-node']) {
      expect(keys).toContain(`drop ${r}`);
    }
    for (const k of [
      `hand-over oversize: policy forward fix ${InboundFix.Oversize}`,
      `hand-over checksum-not-final: policy forward fix ${InboundFix.Checksum}`,
      'hand-over checksum-not-final: policy forward fix 0',
      'hand-over arp: policy arp',
      'hand-over ipv6: policy forward fix 0',
      // IPv6 is the engine's alone: its anti-spoofing is reached there.
      'hand-over ipv6: policy drop',
      'ipv6 drop spoofed-source',
      'ipv6 drop not-for-this-node',
    ]) {
      expect(keys).toContain(k);
    }
  });
});

describe('express twin: outbound', () => {
  const out = new OutboundVerdict();

  const outboundCase = fc.record({
    packet: fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...SEEDS.packets) }, { weight: 4, arbitrary: ipv4Packet }),
    dst: fc.option(fc.constantFrom(...DSTS), { nil: undefined }),
    mutations: mutations,
    table: fc.integer({ min: 0, max: TABLES.length - 1 }),
    maxInnerSize: fc.constantFrom(1450, 1450, 1400, 1500, 576),
    readRoom: fc.oneof({ weight: 6, arbitrary: fc.constant(1564) }, fc.constant(1200)),
  });

  it('sends only what the policy sends, to the same peer with the same header; its drops are the policy drops (60 000 packets)', () => {
    tally.clear();
    fc.assert(
      fc.property(outboundCase, (c) => {
        const p = mutate(c.packet, c.mutations, 0);
        if (c.dst !== undefined && p.length >= 20) p.writeUInt32BE(c.dst, 16);
        const { trie, peers, targets } = COMPILED[c.table]!;
        const got: ExpressDecision = native.expressDecideOutbound(p, trie, peers, { maxInnerSize: c.maxInnerSize, readRoom: c.readRoom });
        const verdict = classifyOutbound(p, 0, p.length, { routes: TABLES[c.table]!, maxInnerSize: c.maxInnerSize }, out);
        if (got.verdict === Verdict.Forward) {
          expect(verdict).toBe(Verdict.Forward);
          expect(targets[got.peer]).toBe(out.peer);
          // The bytes on the wire: the engine's header (its emitters) then the packet, against the addon's record then the packet.
          const mine = Buffer.alloc(22);
          emitVxlan(out.peer!, mine, 0);
          emitEthernet({ dst: out.peer!.vtepMac, src: OUR_MAC, etherType: out.etherType }, mine, 8);
          expect(Buffer.from(peers.subarray(got.peer * 28, got.peer * 28 + 22)).toString('hex')).toBe(mine.toString('hex'));
          expect([got.offset, got.length]).toEqual([0, p.length]);
          count('forward');
        } else if (got.verdict === Verdict.Drop) {
          expect([Verdict.Drop, Verdict.Answer]).toContain(verdict);
          expect(out.reason).toBe(reasonName(got.reason));
          count(`drop ${out.reason}: policy ${VERDICT_NAMES[verdict]}`);
        } else {
          expect(got.verdict).toBe(Verdict.HandOver);
          expectOutboundHandOver(reasonName(got.reason), p, c.readRoom, verdict, out);
          count(`hand-over ${reasonName(got.reason)}: policy ${VERDICT_NAMES[verdict]}`);
        }
      }),
      { numRuns: 60_000 },
    );
    if (process.env.VXTUN_TWIN_TALLY === '1') console.log(tally);
    const keys = [...tally.keys()];
    expect(tally.get('forward')).toBeGreaterThan(5_000);
    for (const k of ['drop tun-malformed: policy drop', 'drop no-route: policy answer', 'drop too-big: policy answer', 'drop too-big: policy drop', 'hand-over peer-not-served: policy forward', 'hand-over ipv6: policy forward', 'hand-over longer-than-read: policy forward']) {
      expect(keys).toContain(k);
    }
  });
});
