/**
 * Issue 19, item 2: for every drop reason and every answer kind the trace says what the counters say.
 * One packet per case through a real Engine on the fakes; its journey's outcome and verdict, the
 * printed lines, the JSON a client gets, and the counters' change must name the same single thing:
 * forwarded (tx/rx), answered (answered[kind]) or dropped (dropped[reason]).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../src/datapath/engine.js';
import { RouteTable } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { createFakeTun, type FakeTun } from '../../src/io/tun-fake.js';
import { FakeNetwork, type FakeBind } from '../../src/io/bind-fake.js';
import { emitIpv4, ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { emitIpv6, ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { emitArp } from '../../src/packet/wire/arp.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import { Answer, DropReason, Outcome, type CounterSnapshot } from '../../src/packet/counters.js';
import { TraceHub } from '../../src/trace/server.js';
import type { Journey } from '../../src/trace/journey.js';
import { formatItem, summaryLine } from '../../src/trace/printer.js';
import { labels } from '../../src/trace/i18n.js';
import { stopEngines } from './engine-nodes.js';

const US = { ip: '198.18.0.1', subnet: '10.244.1.0/24', mac: '0a:58:0a:f4:01:00', vtepIp: '10.244.1.0' };
const PEER = { ip: '198.18.0.2', subnet: '10.244.2.0/24', mac: '0a:58:0a:f4:02:00', vtepIp: '10.244.2.0' };
const PORT = 8472;

/** An IPv4 packet of `total` bytes (UDP, ports 40000 -> 9). */
function ipv4(src: string, dst: string, total = 60, df = false): Buffer {
  const buf = Buffer.alloc(total);
  emitIpv4({ src: ipv4FromString(src), dst: ipv4FromString(dst), protocol: 17, ttl: 64, payloadLength: total - 20, dontFragment: df }, buf, 0);
  buf.writeUInt16BE(40000, 20);
  buf.writeUInt16BE(9, 22);
  buf.writeUInt16BE(total - 20, 24);
  return buf;
}

function ipv6(src: string, dst: string): Buffer {
  const buf = Buffer.alloc(48);
  emitIpv6({ src: ipv6FromString(src), dst: ipv6FromString(dst), nextHeader: 17, hopLimit: 64, payloadLength: 8 }, buf, 0);
  return buf;
}

function arp(op: number, targetIp: string): Buffer {
  const buf = Buffer.alloc(28);
  emitArp({ operation: op, senderMac: macFromString(PEER.mac), senderIp: ipv4FromString(PEER.vtepIp), targetMac: Buffer.alloc(6), targetIp: ipv4FromString(targetIp) }, buf, 0);
  return buf;
}

/** What the peer sends: VXLAN (flags, VNI) + inner Ethernet (to `dst`) + payload. */
function datagram(payload: Buffer, o: { vni?: number; flags?: number; reserved?: number; dst?: string; etherType?: number } = {}): Buffer {
  const out = Buffer.alloc(22 + payload.length);
  out[0] = o.flags ?? 0x08;
  out[7] = o.reserved ?? 0;
  out.writeUIntBE(o.vni ?? 1, 4, 3);
  macFromString(o.dst ?? US.mac).copy(out, 8);
  macFromString(PEER.mac).copy(out, 14);
  out.writeUInt16BE(o.etherType ?? 0x0800, 20);
  payload.copy(out, 22);
  return out;
}

interface Node {
  net: FakeNetwork;
  tun: FakeTun;
  bind: FakeBind;
  engine: Engine;
  hub: TraceHub;
}

const nodes: Node[] = [];
afterEach(() => stopEngines(nodes));

function node(): Node {
  const net = new FakeNetwork();
  const tun = createFakeTun();
  const bind = net.bind(US.ip, PORT);
  const engine = new Engine(tun.device, bind, { vni: 1, vtepMac: macFromString(US.mac), vtepIp: ipv4FromString(US.vtepIp), localSubnets: [parseCidr(US.subnet) as Cidr], port: PORT, maxInnerSize: 1450, tunMtu: 1450 });
  engine.setRoutes(new RouteTable([{ prefix: parseCidr(PEER.subnet) as Cidr, target: { endpoint: { address: PEER.ip, port: PORT }, vtepMac: macFromString(PEER.mac), vni: 1 } }]));
  engine.start();
  const hub = new TraceHub(engine, () => ({ device: 'fake0', publicIp: US.ip, port: PORT, vni: 1, vtepMac: US.mac, subnet: US.subnet }));
  const n = { net, tun, bind, engine, hub };
  nodes.push(n);
  return n;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The counters that changed, as "tx", "rx", "answered.KIND", "dropped.REASON" -> change. */
function changed(before: CounterSnapshot, after: CounterSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (k: string, d: number): void => {
    if (d !== 0) out[k] = d;
  };
  put('tx', after.tx.packets - before.tx.packets);
  put('rx', after.rx.packets - before.rx.packets);
  for (const [k, v] of Object.entries(after.answered)) put(`answered.${k}`, v - before.answered[k]!);
  for (const [k, v] of Object.entries(after.dropped)) put(`dropped.${k}`, v - before.dropped[k]!);
  return out;
}

interface Case {
  name: string;
  /** The counter this packet must end in. */
  expect: { outcome: Outcome; verdict: string };
  /** Sends the packet (after `prepare`, with the trace attached). */
  send: (n: Node) => void;
  prepare?: (n: Node) => void | Promise<void>;
}

const out = (pkt: Buffer) => (n: Node): void => n.tun.inject(pkt);
const inb = (dgram: Buffer) => (n: Node): void => n.net.inject({ address: PEER.ip, port: 40000 }, { address: US.ip, port: PORT }, dgram);
const refuseTunWrites = (n: Node): void => {
  n.tun.device.write = (_b, _s, _o, count, _g, refused) => {
    refused?.fill(1, 0, count);
    return 0;
  };
};
const refuseSends = (n: Node): void => {
  n.bind.send = () => 0;
};

const dropped = (reason: DropReason) => ({ outcome: Outcome.Dropped, verdict: reason });
const answered = (kind: Answer) => ({ outcome: Outcome.Answered, verdict: kind });

const CASES: Case[] = [
  { name: 'a packet for a peer is forwarded (tx)', expect: { outcome: Outcome.Forwarded, verdict: 'sent' }, send: out(ipv4('10.244.1.5', '10.244.2.7')) },
  { name: 'a datagram for our pod is forwarded (rx)', expect: { outcome: Outcome.Forwarded, verdict: 'forwarded' }, send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5'))) },
  { name: 'bytes that are no IP packet', expect: dropped(DropReason.TunMalformed), send: out(Buffer.from([0x45, 0, 0])) },
  { name: 'no route, and no ICMP error may be sent (source 0.0.0.0)', expect: dropped(DropReason.NoRoute), send: out(ipv4('0.0.0.0', '10.244.9.9')) },
  { name: 'no route: answered with ICMP unreachable', expect: answered(Answer.IcmpUnreachable), send: out(ipv4('10.244.1.5', '10.244.9.9')) },
  { name: 'too big, fragmenting allowed', expect: dropped(DropReason.TooBig), send: out(ipv4('10.244.1.5', '10.244.2.7', 1500)) },
  { name: 'too big with DF: answered with ICMP fragmentation needed', expect: answered(Answer.IcmpTooBig), send: out(ipv4('10.244.1.5', '10.244.2.7', 1500, true)) },
  {
    name: 'no route past the ICMP rate limit',
    expect: dropped(DropReason.IcmpRateLimited),
    prepare: async (n) => {
      for (let i = 0; i < 20 && n.engine.counters.dropped(DropReason.IcmpRateLimited) === 0; i++) {
        n.tun.inject(ipv4('10.244.1.6', '10.244.9.9'));
        await tick();
      }
    },
    send: out(ipv4('10.244.1.6', '10.244.9.9')),
  },
  { name: 'the underlay refuses the datagram', expect: dropped(DropReason.SendFailed), prepare: refuseSends, send: out(ipv4('10.244.1.5', '10.244.2.7')) },
  { name: 'the TUN refuses the ICMP answer', expect: dropped(DropReason.TunWriteFailed), prepare: refuseTunWrites, send: out(ipv4('10.244.1.5', '10.244.9.9')) },
  { name: 'a datagram from a host that is no peer', expect: dropped(DropReason.UnknownPeer), send: (n) => n.net.inject({ address: '198.18.0.99', port: 40000 }, { address: US.ip, port: PORT }, datagram(ipv4('10.244.2.7', '10.244.1.5'))) },
  { name: "an inner source outside the sending peer's subnet", expect: dropped(DropReason.SpoofedSource), send: inb(datagram(ipv4('10.244.3.7', '10.244.1.5'))) },
  { name: 'an inner destination outside this node (a relay)', expect: dropped(DropReason.NotForThisNode), send: inb(datagram(ipv4('10.244.2.7', '10.244.3.5'))) },
  { name: 'a 4-byte datagram', expect: dropped(DropReason.ShortDatagram), send: inb(Buffer.from([8, 0, 0, 0])) },
  { name: 'VXLAN without the I flag', expect: dropped(DropReason.BadFlags), send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5'), { flags: 0 })) },
  { name: 'reserved VXLAN bits', expect: dropped(DropReason.ReservedBitsSet), send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5'), { reserved: 1 })) },
  { name: 'another VNI', expect: dropped(DropReason.WrongVni), send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5'), { vni: 7 })) },
  { name: 'half an inner Ethernet header', expect: dropped(DropReason.TruncatedInner), send: inb(datagram(Buffer.alloc(0)).subarray(0, 15)) },
  { name: 'another destination MAC', expect: dropped(DropReason.WrongDstMac), send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5'), { dst: PEER.mac })) },
  { name: 'neither IPv4, IPv6 nor ARP', expect: dropped(DropReason.UnsupportedEtherType), send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5'), { etherType: 0x88cc })) },
  { name: 'a broken inner IPv4 header', expect: dropped(DropReason.MalformedInnerIpv4), send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5').subarray(0, 19))) },
  { name: 'a broken inner IPv6 header', expect: dropped(DropReason.MalformedInnerIpv6), send: inb(datagram(ipv6('fd00:244:2::7', 'fd00:244:1::5').subarray(0, 39), { etherType: 0x86dd })) },
  { name: 'a broken ARP packet', expect: dropped(DropReason.MalformedArp), send: inb(datagram(arp(1, US.vtepIp).subarray(0, 27), { etherType: 0x0806 })) },
  { name: 'an ARP request for another address', expect: dropped(DropReason.ArpNotForUs), send: inb(datagram(arp(1, '10.244.1.77'), { etherType: 0x0806 })) },
  { name: 'an ARP reply', expect: dropped(DropReason.ArpIgnored), send: inb(datagram(arp(2, US.vtepIp), { etherType: 0x0806 })) },
  { name: 'an ARP request for our VTEP address: answered', expect: answered(Answer.ArpReply), send: inb(datagram(arp(1, US.vtepIp), { etherType: 0x0806 })) },
  { name: 'an ARP request whose answer the underlay refuses', expect: dropped(DropReason.SendFailed), prepare: refuseSends, send: inb(datagram(arp(1, US.vtepIp), { etherType: 0x0806 })) },
  { name: 'the TUN refuses the packet', expect: dropped(DropReason.TunWriteFailed), prepare: refuseTunWrites, send: inb(datagram(ipv4('10.244.2.7', '10.244.1.5'))) },
];

/** Drop reasons only the flannel udp backend's pipeline counts; it reports no observations to trace. */
const UNTRACED_REASONS: string[] = [DropReason.TtlExpired];

describe('verdicts: the trace says what the counters say', () => {
  it('covers every drop reason and every answer kind', () => {
    const covered = new Set(CASES.map((c) => c.expect.verdict));
    expect(Object.values(DropReason).filter((r) => !covered.has(r) && !UNTRACED_REASONS.includes(r))).toEqual([]);
    expect(Object.values(Answer).filter((a) => !covered.has(a))).toEqual([]);
  });

  it.each(CASES)('$name', async (c) => {
    const n = node();
    await c.prepare?.(n);
    const journeys: Journey[] = [];
    const stop = n.hub.subscribe({}, (j) => journeys.push(j));
    const before = n.engine.counters.snapshot();
    c.send(n);
    for (let i = 0; i < 200 && journeys.length === 0; i++) await tick();
    for (let i = 0; i < 5; i++) await tick();
    stop();
    const after = n.engine.counters.snapshot();

    // one packet, one journey, one counter
    expect(journeys).toHaveLength(1);
    const j = journeys[0]!;
    const counter = c.expect.outcome === Outcome.Forwarded ? (c.expect.verdict === 'sent' ? 'tx' : 'rx') : `${c.expect.outcome}.${c.expect.verdict}`;
    expect(changed(before, after)).toEqual({ [counter]: 1 });
    expect({ outcome: j.outcome, verdict: j.verdict, dropped: j.dropped }).toEqual({ ...c.expect, dropped: c.expect.outcome === Outcome.Dropped });

    // the JSON a trace client reads says the same
    const json = JSON.parse(JSON.stringify({ kind: 'journey', journey: j })) as { journey: Journey };
    expect({ outcome: json.journey.outcome, verdict: json.journey.verdict }).toEqual(c.expect);

    // and so do the printed lines, in English and Chinese, never the other two outcomes
    for (const lang of ['en', 'zh'] as const) {
      const L = labels(lang);
      const word = { forwarded: L.forwarded, answered: L.answered, dropped: L.dropped }[c.expect.outcome];
      const summary = summaryLine(j, { lang });
      expect(summary.endsWith(c.expect.outcome === Outcome.Forwarded ? ` · ${word}` : ''), summary).toBe(true);
      if (c.expect.outcome !== Outcome.Forwarded) expect(summary).toContain(` · ${word}: ${c.expect.verdict} — `);
      const text = formatItem({ kind: 'journey', journey: j }, { lang });
      for (const other of [L.answered, L.dropped].filter((w) => w !== word)) expect(text, text).not.toContain(`${other}:`);
    }
  });
});
