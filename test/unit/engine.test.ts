// The Engine end to end, through the in-process fakes: the fake TUN plays the kernel routing
// packets in and receiving them back, the fake network plays the underlay. Wire expectations come
// from RFC 7348 and from the kernel-captured fixtures, never from our own encoder's output; every
// test asserts bytes and the exact counter that moved (a whole-snapshot delta, so a packet counted
// twice or in the wrong place fails).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Engine, HEADROOM, type EngineOptions } from '../../src/datapath/engine.js';
import type { CounterSnapshot } from '../../src/packet/counters.js';
import { RouteTable, type Route, type Vtep } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { createFakeTun, type FakeTun } from '../../src/io/tun-fake.js';
import { FakeNetwork, type FakeBind, type FakeDatagram } from '../../src/io/bind-fake.js';
import type { Endpoint } from '../../src/io/bind.js';
import { onesSum } from '../../src/packet/wire/checksum.js';
import { emitIpv4, ipv4FromString, ipv4ToString } from '../../src/packet/wire/ipv4.js';
import { emitIpv6, ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { emitIcmpv4 } from '../../src/packet/wire/icmpv4.js';
import { emitIcmpv6 } from '../../src/packet/wire/icmpv6.js';
import { emitArp } from '../../src/packet/wire/arp.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import { loadTcpdumpHex, type TcpdumpFixture } from '../support/fixtures.js';
import { mulberry32 } from '../support/random.js';
import { stopEngines } from './engine-nodes.js';

// ---------------------------------------------------------------------------------------------
// Helpers (local on purpose: each test file owns its builders)

const POISON = 0xa5;
const PORT = 8472;

interface NodeSpec {
  ip: string;
  subnet: string;
  subnet6: string;
  vtepIp: string;
  mac: string;
}
const A: NodeSpec = { ip: '198.18.0.1', subnet: '10.244.1.0/24', subnet6: 'fd00:244:1::/64', vtepIp: '10.244.1.0', mac: '0a:58:0a:f4:01:00' };
const B: NodeSpec = { ip: '198.18.0.2', subnet: '10.244.2.0/24', subnet6: 'fd00:244:2::/64', vtepIp: '10.244.2.0', mac: '0a:58:0a:f4:02:00' };
const C: NodeSpec = { ip: '198.18.0.3', subnet: '10.244.3.0/24', subnet6: 'fd00:244:3::/64', vtepIp: '10.244.3.0', mac: '0a:58:0a:f4:03:00' };

const cidr = (s: string): Cidr => {
  const c = parseCidr(s);
  if (typeof c === 'string') throw new Error(`${s}: ${c}`);
  return c;
};
const mac = (s: string): Buffer => macFromString(s);
const ip4 = (s: string): number => ipv4FromString(s);
const ip6 = (s: string): Buffer => ipv6FromString(s);
const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s:]+/g, ''), 'hex');

const vtepOf = (n: NodeSpec, over: Partial<Vtep> = {}): Vtep => ({
  endpoint: { address: n.ip, port: PORT },
  vtepMac: mac(n.mac),
  vni: 1,
  ...over,
});
/** Routes to each peer's IPv4 subnet and IPv6 prefix. */
function routesTo(...peers: [NodeSpec, Vtep][]): RouteTable {
  const routes: Route[] = [];
  for (const [n, v] of peers) {
    routes.push({ prefix: cidr(n.subnet), target: v });
    routes.push({ prefix: cidr(n.subnet6), target: v });
  }
  return new RouteTable(routes);
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Lets every queued delivery run (a TUN read, an underlay hop and a TUN write take a few turns). */
async function settle(turns = 12): Promise<void> {
  for (let i = 0; i < turns; i++) await tick();
}
async function until(cond: () => boolean, what: string, maxTurns = 2000): Promise<void> {
  for (let i = 0; i < maxTurns && !cond(); i++) await tick();
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** Counter snapshot as flat "group.name" -> value, and the non-zero differences between two. */
function flat(s: CounterSnapshot): Record<string, number> {
  const out: Record<string, number> = {
    'tx.packets': s.tx.packets,
    'tx.bytes': s.tx.bytes,
    'rx.packets': s.rx.packets,
    'rx.bytes': s.rx.bytes,
  };
  for (const [k, v] of Object.entries(s.answered)) out[`answered.${k}`] = v;
  for (const [k, v] of Object.entries(s.dropped)) out[`dropped.${k}`] = v;
  for (const [k, v] of Object.entries(s.fixed)) out[`fixed.${k}`] = v;
  return out;
}
function delta(before: CounterSnapshot, after: CounterSnapshot): Record<string, number> {
  const b = flat(before);
  const a = flat(after);
  const out: Record<string, number> = {};
  for (const k of Object.keys(a)) if (a[k] !== b[k]) out[k] = a[k]! - (b[k] ?? 0);
  return out;
}
const sum = (r: Record<string, number>): number => Object.values(r).reduce((x, y) => x + y, 0);

// --- packet builders (buffers poisoned first, so a field an emitter forgets shows up) ---

function icmpEcho4(src: string, dst: string, o: { id?: number; seq?: number; data?: Buffer; df?: boolean; type?: number; ipId?: number } = {}): Buffer {
  const data = o.data ?? Buffer.from('vxtun-engine-test-payload');
  const icmpLen = 8 + data.length;
  const buf = Buffer.alloc(20 + icmpLen, POISON);
  emitIpv4({ src: ip4(src), dst: ip4(dst), protocol: 1, ttl: 64, payloadLength: icmpLen, dontFragment: o.df ?? false, identification: o.ipId ?? 0x1234 }, buf, 0);
  emitIcmpv4({ kind: 'echo', type: o.type ?? 8, code: 0, identifier: o.id ?? 0x4242, sequence: o.seq ?? 1, data }, buf, 20);
  return buf;
}

/** An ICMPv4 error (type 3/11, ...) quoting `invoking`, from src to dst. */
function icmpError4(src: string, dst: string, type: number, code: number, invoking: Buffer): Buffer {
  const icmpLen = 8 + invoking.length;
  const buf = Buffer.alloc(20 + icmpLen, POISON);
  emitIpv4({ src: ip4(src), dst: ip4(dst), protocol: 1, ttl: 64, payloadLength: icmpLen }, buf, 0);
  emitIcmpv4({ kind: 'error', type, code, invoking }, buf, 20);
  return buf;
}

function udp4(src: string, dst: string, payloadLength: number, o: { df?: boolean } = {}): Buffer {
  const buf = Buffer.alloc(20 + 8 + payloadLength, POISON);
  emitIpv4({ src: ip4(src), dst: ip4(dst), protocol: 17, ttl: 64, payloadLength: 8 + payloadLength, dontFragment: o.df ?? false }, buf, 0);
  buf.writeUInt16BE(40000, 20);
  buf.writeUInt16BE(9999, 22);
  buf.writeUInt16BE(8 + payloadLength, 24);
  buf.writeUInt16BE(0, 26); // no checksum (IPv4)
  for (let i = 0; i < payloadLength; i++) buf[28 + i] = i & 0xff;
  return buf;
}

function icmpEcho6(src: string, dst: string, o: { data?: Buffer; type?: number } = {}): Buffer {
  const data = o.data ?? Buffer.from('vxtun-engine-test-payload-v6');
  const icmpLen = 8 + data.length;
  const buf = Buffer.alloc(40 + icmpLen, POISON);
  const s = ip6(src);
  const d = ip6(dst);
  emitIpv6({ src: s, dst: d, nextHeader: 58, hopLimit: 64, payloadLength: icmpLen, trafficClass: 0, flowLabel: 0x12345 }, buf, 0);
  emitIcmpv6({ kind: 'echo', type: o.type ?? 128, code: 0, identifier: 7, sequence: 9, data }, buf, 40, s, d);
  return buf;
}

/** A UDP-over-IPv6 packet of exactly `total` bytes. */
function udp6(src: string, dst: string, total: number): Buffer {
  const buf = Buffer.alloc(total, POISON);
  emitIpv6({ src: ip6(src), dst: ip6(dst), nextHeader: 17, hopLimit: 64, payloadLength: total - 40 }, buf, 0);
  buf.writeUInt16BE(40000, 40);
  buf.writeUInt16BE(9999, 42);
  buf.writeUInt16BE(total - 40, 44);
  buf.writeUInt16BE(0x1111, 46);
  for (let i = 48; i < total; i++) buf[i] = i & 0xff;
  return buf;
}

/** VXLAN header (flags I, VNI) + inner Ethernet + payload, the datagram a peer sends. */
function vxlanFrame(o: { vni?: number; dst?: string; src?: string; etherType?: number; flags?: number }, payload: Buffer): Buffer {
  const out = Buffer.alloc(8 + 14 + payload.length, POISON);
  out[0] = o.flags ?? 0x08;
  out[1] = out[2] = out[3] = 0;
  out.writeUIntBE(o.vni ?? 1, 4, 3);
  out[7] = 0;
  mac(o.dst ?? B.mac).copy(out, 8);
  mac(o.src ?? A.mac).copy(out, 14);
  out.writeUInt16BE(o.etherType ?? 0x0800, 20);
  payload.copy(out, 22);
  return out;
}

function arpPacket(op: number, senderMac: string, senderIp: string, targetMac: string, targetIp: string): Buffer {
  const buf = Buffer.alloc(28, POISON);
  emitArp({ operation: op, senderMac: mac(senderMac), senderIp: ip4(senderIp), targetMac: mac(targetMac), targetIp: ip4(targetIp) }, buf, 0);
  return buf;
}

// --- independent checks (src/packet/wire/checksum.ts is the reference; pseudo-headers by hand) ---

const ipv4HeaderOk = (p: Buffer): boolean => onesSum(p, 0, (p[0]! & 0x0f) * 4) === 0xffff;
function l4ChecksumOk(p: Buffer): boolean {
  if (p[0]! >> 4 === 4) {
    const ihl = (p[0]! & 0x0f) * 4;
    const len = p.readUInt16BE(2) - ihl;
    const proto = p[9]!;
    if (proto === 1) return onesSum(p, ihl, len) === 0xffff;
    return onesSum(p, ihl, len, onesSum(p, 12, 8, proto + len)) === 0xffff;
  }
  const len = p.readUInt16BE(4);
  return onesSum(p, 40, len, onesSum(p, 8, 32, p[6]! + len)) === 0xffff;
}

// --- fixtures: strip outer Ethernet + IPv4 + UDP ---

interface FixtureDatagram {
  fx: TcpdumpFixture;
  src: Endpoint;
  dst: Endpoint;
  /** The UDP payload: VXLAN header onwards. */
  vxlan: Buffer;
  /** The inner IP packet (or ARP), without Ethernet padding. */
  inner: Buffer;
}
function fixtureDatagram(name: string): FixtureDatagram {
  const fx = loadTcpdumpHex(name);
  const b = fx.bytes;
  expect(b.readUInt16BE(12)).toBe(0x0800);
  const ihl = (b[14]! & 0x0f) * 4;
  const udp = 14 + ihl;
  expect(b[14 + 9]).toBe(17);
  const udpLen = b.readUInt16BE(udp + 4);
  const vxlan = Buffer.from(b.subarray(udp + 8, udp + udpLen));
  const etherType = vxlan.readUInt16BE(20);
  let innerLen = vxlan.length - 22;
  if (etherType === 0x0800) innerLen = vxlan.readUInt16BE(22 + 2);
  else if (etherType === 0x86dd) innerLen = 40 + vxlan.readUInt16BE(22 + 4);
  else if (etherType === 0x0806) innerLen = 28;
  return {
    fx,
    src: { address: ipv4ToString(b.readUInt32BE(14 + 12)), port: b.readUInt16BE(udp) },
    dst: { address: ipv4ToString(b.readUInt32BE(14 + 16)), port: b.readUInt16BE(udp + 2) },
    vxlan,
    inner: Buffer.from(vxlan.subarray(22, 22 + innerLen)),
  };
}

// --- nodes ---

interface TestNode {
  spec: NodeSpec;
  tun: FakeTun;
  bind: FakeBind;
  engine: Engine;
}
const nodes: TestNode[] = [];
function makeNode(net: FakeNetwork, spec: NodeSpec, over: Partial<EngineOptions> = {}, start = true): TestNode {
  const tun = createFakeTun(`fake-${spec.ip}`, over.tunMtu ?? 1450);
  const bind = net.bind(spec.ip, PORT);
  const engine = new Engine(tun.device, bind, {
    vni: 1,
    vtepMac: mac(spec.mac),
    vtepIp: ip4(spec.vtepIp),
    localSubnets: [parseCidr(spec.subnet) as Cidr, parseCidr(spec.subnet6) as Cidr],
    port: PORT,
    maxInnerSize: 1450,
    tunMtu: 1450,
    ...over,
  });
  // The other node of the pair is a peer from the start (anti-spoofing drops datagrams from anyone else); tests set their own tables.
  const other = spec === A ? B : A;
  engine.setRoutes(routesTo([other, vtepOf(other)]));
  if (start) engine.start();
  const n = { spec, tun, bind, engine };
  nodes.push(n);
  return n;
}
afterEach(async () => {
  await stopEngines(nodes);
  vi.restoreAllMocks();
});

const ep = (n: NodeSpec): Endpoint => ({ address: n.ip, port: PORT });
/** Datagrams on the wire that came from `n`'s engine (not injected by the test). */
const sentBy = (net: FakeNetwork, n: NodeSpec): FakeDatagram[] => net.log.filter((d) => d.src.address === n.ip && d.src.port === PORT);

// ---------------------------------------------------------------------------------------------

describe('engine: two nodes through fake TUN and fake underlay', () => {
  let net: FakeNetwork;
  let a: TestNode;
  let b: TestNode;
  beforeEach(() => {
    net = new FakeNetwork();
    a = makeNode(net, A);
    b = makeNode(net, B);
    a.engine.setRoutes(routesTo([B, vtepOf(B)]));
    b.engine.setRoutes(routesTo([A, vtepOf(A)]));
  });

  it('IPv4: A TUN -> VXLAN datagram (exact bytes) -> B TUN, byte-identical inner packet', async () => {
    const pkt = icmpEcho4('10.244.1.5', '10.244.2.7', { seq: 3 });
    const a0 = a.engine.counters.snapshot();
    const b0 = b.engine.counters.snapshot();
    a.tun.inject(pkt);
    await until(() => b.tun.written.length === 1, 'B TUN write');
    await settle();

    expect(b.tun.written).toHaveLength(1);
    expect(b.tun.written[0]!.equals(pkt)).toBe(true);
    expect(a.tun.written).toHaveLength(0);

    expect(net.log).toHaveLength(1);
    const d = net.log[0]!;
    expect(d.src).toEqual({ address: A.ip, port: PORT });
    expect(d.dst).toEqual({ address: B.ip, port: PORT });
    const expected = Buffer.concat([
      hex('08 00 00 00  00 00 01 00'), // VXLAN: I flag, reserved 0, VNI 1, reserved 0
      hex('0a 58 0a f4 02 00'), // inner dst = B's VTEP MAC
      hex('0a 58 0a f4 01 00'), // inner src = A's VTEP MAC
      hex('08 00'),
      pkt,
    ]);
    expect(d.bytes.toString('hex')).toBe(expected.toString('hex'));

    expect(delta(a0, a.engine.counters.snapshot())).toEqual({ 'tx.packets': 1, 'tx.bytes': pkt.length });
    expect(delta(b0, b.engine.counters.snapshot())).toEqual({ 'rx.packets': 1, 'rx.bytes': pkt.length });
  });

  it('IPv4 both ways: B answers back through A', async () => {
    a.tun.inject(icmpEcho4('10.244.1.5', '10.244.2.7'));
    await until(() => b.tun.written.length === 1, 'B TUN write');
    const reply = icmpEcho4('10.244.2.7', '10.244.1.5', { type: 0 });
    b.tun.inject(reply);
    await until(() => a.tun.written.length === 1, 'A TUN write');
    expect(a.tun.written[0]!.equals(reply)).toBe(true);
    const d = sentBy(net, B)[0]!;
    expect(d.dst).toEqual(ep(A));
    expect(d.bytes.subarray(0, 22).toString('hex')).toBe('08000000000001000a580af401000a580af402000800');
  });

  it('IPv6: EtherType 86dd, byte-identical inner packet', async () => {
    const pkt = icmpEcho6('fd00:244:1::5', 'fd00:244:2::7');
    a.tun.inject(pkt);
    await until(() => b.tun.written.length === 1, 'B TUN write');
    await settle();
    expect(b.tun.written[0]!.equals(pkt)).toBe(true);
    expect(net.log).toHaveLength(1);
    const expected = Buffer.concat([hex('08000000 00000100'), hex('0a580af40200'), hex('0a580af40100'), hex('86dd'), pkt]);
    expect(net.log[0]!.bytes.toString('hex')).toBe(expected.toString('hex'));
    expect(net.log[0]!.dst).toEqual(ep(B));
    expect(b.engine.counters.snapshot().rx).toEqual({ packets: 1, bytes: pkt.length });
  });

  it('a batch of mixed IPv4/IPv6 packets all arrive, in order, byte-identical', async () => {
    const pkts: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      pkts.push(i % 3 === 0 ? icmpEcho6('fd00:244:1::5', `fd00:244:2::${i + 1}`) : icmpEcho4('10.244.1.5', `10.244.2.${i + 1}`, { seq: i }));
    }
    for (const p of pkts) a.tun.inject(p);
    await until(() => b.tun.written.length === pkts.length, 'all writes');
    b.tun.written.forEach((w, i) => expect(w.equals(pkts[i]!), `packet ${i}`).toBe(true));
    expect(a.engine.counters.snapshot().tx.packets).toBe(40);
    expect(b.engine.counters.snapshot().rx.packets).toBe(40);
  });
});

describe('engine: the TUN pump', () => {
  it('drains more packets than one batch (several batches, several wake-ups), in order, none lost', async () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A, { batchSize: 16 });
    const b = makeNode(net, B);
    a.engine.setRoutes(routesTo([B, vtepOf(B)]));
    const pkts = Array.from({ length: 300 }, (_, i) => icmpEcho4('10.244.1.5', `10.244.2.${(i % 250) + 1}`, { seq: i }));
    for (const p of pkts) a.tun.inject(p);
    await until(() => b.tun.written.length === 300, 'all 300');
    b.tun.written.forEach((w, i) => expect(w.equals(pkts[i]!), `packet ${i}`).toBe(true));
    expect(a.engine.counters.snapshot().tx.packets).toBe(300);
    expect(a.tun.pending).toBe(0);
  });

  it('after stop() the TUN is no longer read', async () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A);
    a.engine.setRoutes(routesTo([B, vtepOf(B)]));
    a.engine.stop();
    a.tun.inject(icmpEcho4('10.244.1.5', '10.244.2.7'));
    await settle();
    expect(net.log).toHaveLength(0);
    expect(a.tun.pending).toBe(1);
  });
});

describe('engine: encap into the headroom (poisoned buffers, handleOutbound directly)', () => {
  it('writes every header byte: reserved bits zero, 24-bit VNI big-endian, both MACs, EtherType', () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A, {}, false);
    const peer: Vtep = { endpoint: { address: '198.18.0.9', port: 4789 }, vtepMac: mac('02:11:22:33:44:55'), vni: 0xabcdef };
    a.engine.setRoutes(new RouteTable([{ prefix: cidr('10.244.9.0/24'), target: peer }, { prefix: cidr('fd00:244:9::/64'), target: peer }]));
    const p4 = icmpEcho4('10.244.1.5', '10.244.9.1');
    const p6 = icmpEcho6('fd00:244:1::5', 'fd00:244:9::1');
    const bufs = [p4, p6].map((p) => {
      const buf = Buffer.alloc(HEADROOM + p.length + 16, POISON);
      p.copy(buf, HEADROOM);
      return buf;
    });
    const sizes = [p4.length, p6.length];
    a.engine.handleOutbound(bufs, sizes, 2);
    expect(net.log).toHaveLength(2);
    const hdr = (et: string): string => `08000000abcdef00021122334455${A.mac.replace(/:/g, '')}${et}`;
    expect(net.log[0]!.bytes.toString('hex')).toBe(hdr('0800') + p4.toString('hex'));
    expect(net.log[1]!.bytes.toString('hex')).toBe(hdr('86dd') + p6.toString('hex'));
    for (const d of net.log) expect(d.dst).toEqual({ address: '198.18.0.9', port: 4789 });
    expect(a.engine.counters.snapshot().tx).toEqual({ packets: 2, bytes: p4.length + p6.length });
  });

  it('closed bind: the send fails and is counted as send-failed, not as tx', async () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A, {}, false);
    a.engine.setRoutes(routesTo([B, vtepOf(B)]));
    await a.bind.close();
    const p = icmpEcho4('10.244.1.5', '10.244.2.1');
    const buf = Buffer.alloc(HEADROOM + p.length, POISON);
    p.copy(buf, HEADROOM);
    const s0 = a.engine.counters.snapshot();
    a.engine.handleOutbound([buf], [p.length], 1);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'dropped.send-failed': 1 });
    expect(net.log).toHaveLength(0);
  });
});

describe('engine: atomic route swap', () => {
  it('one batch is classified with one table even if the table is swapped during classification', () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A, {}, false);
    const vB = vtepOf(B);
    const vC = vtepOf(C);
    const t2 = new RouteTable([{ prefix: cidr(B.subnet), target: vC }, { prefix: cidr(C.subnet), target: vB }]);
    let swapped = 0;
    // A table that swaps the engine to t2 on its first lookup: a per-packet re-read of the engine's
    // table would route the rest of the batch with t2.
    class SwappingTable extends RouteTable {
      override lookup4(dst: number): Vtep | undefined {
        const hit = super.lookup4(dst);
        if (swapped++ === 0) a.engine.setRoutes(t2);
        return hit;
      }
    }
    a.engine.setRoutes(new SwappingTable([{ prefix: cidr(B.subnet), target: vB }, { prefix: cidr(C.subnet), target: vC }]));
    const pkts = Array.from({ length: 10 }, (_, i) => icmpEcho4('10.244.1.5', i % 2 ? `10.244.3.${i}` : `10.244.2.${i}`, { seq: i }));
    const bufs = pkts.map((p) => {
      const buf = Buffer.alloc(HEADROOM + p.length, POISON);
      p.copy(buf, HEADROOM);
      return buf;
    });
    a.engine.handleOutbound(bufs, pkts.map((p) => p.length), pkts.length);
    expect(swapped).toBe(10); // every packet of the batch asked the table it started with
    expect(a.engine.routeTable).toBe(t2);
    expect(net.log).toHaveLength(10);
    for (const d of net.log) {
      const innerDst = ipv4ToString(d.bytes.readUInt32BE(22 + 16));
      expect(d.dst.address, innerDst).toBe(innerDst.startsWith('10.244.2.') ? B.ip : C.ip);
    }
    // the next batch uses the new table
    a.engine.handleOutbound([Buffer.concat([Buffer.alloc(HEADROOM, POISON), pkts[0]!])], [pkts[0]!.length], 1);
    expect(net.log[10]!.dst.address).toBe(C.ip);
  });

  it('swap from the wire tap while packets flow: batch 1 wholly on the old table, grouped per peer; batch 2 on the new', async () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A);
    const vB = vtepOf(B);
    const vC = vtepOf(C);
    const t1 = new RouteTable([{ prefix: cidr(B.subnet), target: vB }, { prefix: cidr(C.subnet), target: vC }]);
    const t2 = new RouteTable([{ prefix: cidr(B.subnet), target: vC }, { prefix: cidr(C.subnet), target: vB }]);
    a.engine.setRoutes(t1);
    let swapAt = -1;
    net.tap = (d) => {
      if (swapAt < 0 && d.src.address === A.ip) {
        swapAt = net.log.length;
        a.engine.setRoutes(t2);
      }
    };
    const batch = (base: number): Buffer[] =>
      Array.from({ length: 16 }, (_, i) => icmpEcho4('10.244.1.5', i % 2 ? `10.244.3.${i + 1}` : `10.244.2.${i + 1}`, { seq: base + i }));
    for (const p of batch(0)) a.tun.inject(p); // one TUN wake-up reads all 16 (batch size 64)
    await until(() => net.log.length === 16, 'batch 1');
    expect(swapAt).toBe(1);
    for (const p of batch(100)) a.tun.inject(p);
    await until(() => net.log.length === 32, 'batch 2');

    const seqOf = (d: FakeDatagram): number => d.bytes.readUInt16BE(22 + 20 + 6);
    const dstOf = (d: FakeDatagram): string => ipv4ToString(d.bytes.readUInt32BE(22 + 16));
    const b1 = net.log.slice(0, 16);
    const b2 = net.log.slice(16);
    for (const d of b1) expect(d.dst.address).toBe(dstOf(d).startsWith('10.244.2.') ? B.ip : C.ip);
    for (const d of b2) expect(d.dst.address).toBe(dstOf(d).startsWith('10.244.2.') ? C.ip : B.ip);
    // one send per peer per batch: the batch's datagrams form exactly two runs, each in read order
    for (const group of [b1, b2]) {
      const runs = group.map((d) => d.dst.address).filter((x, i, arr) => i === 0 || arr[i - 1] !== x);
      expect(runs).toHaveLength(2);
      for (const addr of runs) {
        const seqs = group.filter((d) => d.dst.address === addr).map(seqOf);
        expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
        expect(seqs).toHaveLength(8);
      }
    }
  });
});

describe('engine: decap of kernel-produced VXLAN (golden fixtures)', () => {
  let net: FakeNetwork;
  let b: TestNode;
  beforeEach(() => {
    net = new FakeNetwork();
    b = makeNode(net, B); // every fixture below was sent by n1 (198.18.0.1) to n2 (198.18.0.2)
  });

  async function deliver(fd: FixtureDatagram): Promise<void> {
    expect(fd.dst).toEqual({ address: B.ip, port: PORT });
    const before = b.tun.written.length + b.tun.refused.length;
    net.inject(fd.src, fd.dst, fd.vxlan);
    await until(() => b.tun.written.length + b.tun.refused.length > before, 'TUN write');
    await settle();
  }

  /** The correct checksum tcpdump printed for the inner packet ("incorrect -> 0x...", "cksum 0x... -> 0x...!"). */
  function tcpdumpCorrectChecksum(fx: TcpdumpFixture): number {
    const all = [...fx.summary.matchAll(/(?:incorrect|cksum 0x[0-9a-f]+) -> (0x[0-9a-f]+)/g)];
    return Number(all[all.length - 1]![1]);
  }

  it('ICMP echo request: the inner packet byte for byte, nothing fixed', async () => {
    const fd = fixtureDatagram('vxlan-icmp-echo-request');
    const s0 = b.engine.counters.snapshot();
    await deliver(fd);
    expect(b.tun.written).toHaveLength(1);
    expect(b.tun.written[0]!.toString('hex')).toBe(fd.inner.toString('hex'));
    expect(fd.inner.length).toBe(84);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'rx.packets': 1, 'rx.bytes': 84 });
  });

  it('ICMPv6 echo request: the inner packet byte for byte', async () => {
    const fd = fixtureDatagram('vxlan-icmpv6-echo-request');
    const s0 = b.engine.counters.snapshot();
    await deliver(fd);
    expect(b.tun.written[0]!.toString('hex')).toBe(fd.inner.toString('hex'));
    expect(l4ChecksumOk(b.tun.written[0]!)).toBe(true);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'rx.packets': 1, 'rx.bytes': fd.inner.length });
  });

  it('TCP data with a CHECKSUM_PARTIAL inner checksum: completed to the value tcpdump computed, counted', async () => {
    const fd = fixtureDatagram('vxlan-tcp-data');
    expect(fd.fx.notes).toContain('inner-tcp-checksum: partial');
    expect(l4ChecksumOk(fd.inner)).toBe(false);
    const s0 = b.engine.counters.snapshot();
    await deliver(fd);
    const got = b.tun.written[0]!;
    expect(got.length).toBe(fd.inner.length);
    const csumAt = 20 + 16;
    expect(got.readUInt16BE(csumAt)).toBe(tcpdumpCorrectChecksum(fd.fx)); // 0x9cac
    expect(got.readUInt16BE(csumAt)).toBe(0x9cac);
    expect(l4ChecksumOk(got)).toBe(true);
    // every other byte untouched
    const expected = Buffer.from(fd.inner);
    expected.writeUInt16BE(0x9cac, csumAt);
    expect(got.toString('hex')).toBe(expected.toString('hex'));
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'rx.packets': 1, 'rx.bytes': fd.inner.length, 'fixed.checksum-completed': 1 });
  });

  it('TCP data with a complete checksum (sender tx off): delivered unchanged, nothing fixed', async () => {
    const fd = fixtureDatagram('vxlan-tcp-data-txcsum-off');
    expect(l4ChecksumOk(fd.inner)).toBe(true);
    const s0 = b.engine.counters.snapshot();
    await deliver(fd);
    expect(b.tun.written[0]!.toString('hex')).toBe(fd.inner.toString('hex'));
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'rx.packets': 1, 'rx.bytes': fd.inner.length });
  });

  it('UDP with a CHECKSUM_PARTIAL inner checksum: completed, counted', async () => {
    const fd = fixtureDatagram('vxlan-udp');
    expect(fd.fx.notes).toContain('inner-udp-checksum: partial');
    const s0 = b.engine.counters.snapshot();
    await deliver(fd);
    const got = b.tun.written[0]!;
    const csumAt = 20 + 6;
    expect(got.readUInt16BE(csumAt)).toBe(tcpdumpCorrectChecksum(fd.fx)); // 0x1fd1
    expect(l4ChecksumOk(got)).toBe(true);
    const expected = Buffer.from(fd.inner);
    expected.writeUInt16BE(got.readUInt16BE(csumAt), csumAt);
    expect(got.equals(expected)).toBe(true);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'rx.packets': 1, 'rx.bytes': fd.inner.length, 'fixed.checksum-completed': 1 });
  });

  it('TCP GSO super-packet (inner 4052 bytes): segmented at the TUN MTU like the kernel would (MSS 1398)', async () => {
    const fd = fixtureDatagram('vxlan-tcp-gso');
    const orig = fd.inner;
    expect(orig.length).toBe(4052);
    const ihl = (orig[0]! & 0x0f) * 4;
    const thl = (orig[ihl + 12]! >> 4) * 4;
    const seq0 = orig.readUInt32BE(ihl + 4);
    const origPayload = orig.subarray(ihl + thl);
    expect(origPayload.length).toBe(4000);
    const origFlags = orig[ihl + 13]!;
    expect(origFlags).toBe(0x18); // PSH|ACK

    const s0 = b.engine.counters.snapshot();
    await deliver(fd);
    await settle();
    const segs = b.tun.written;
    expect(segs.length).toBe(3);
    let seq = seq0;
    const payloads: Buffer[] = [];
    segs.forEach((s, k) => {
      expect(s.length).toBeLessThanOrEqual(1450);
      expect(s.readUInt16BE(2)).toBe(s.length);
      expect(ipv4HeaderOk(s)).toBe(true);
      expect(l4ChecksumOk(s)).toBe(true);
      expect(s.readUInt16BE(4)).toBe((orig.readUInt16BE(4) + k) & 0xffff);
      // everything in the headers but length/id/checksums/seq/flags is the original's
      expect(s.subarray(12, 20).equals(orig.subarray(12, 20))).toBe(true);
      expect(s.subarray(ihl, ihl + 4).equals(orig.subarray(ihl, ihl + 4))).toBe(true); // ports
      expect(s.subarray(ihl + 8, ihl + 12).equals(orig.subarray(ihl + 8, ihl + 12))).toBe(true); // ack
      expect(s.subarray(ihl + 20, ihl + thl).equals(orig.subarray(ihl + 20, ihl + thl))).toBe(true); // options
      expect(s.readUInt32BE(ihl + 4)).toBe(seq >>> 0);
      const pl = s.subarray(ihl + thl);
      seq += pl.length;
      payloads.push(pl);
      const flags = s[ihl + 13]!;
      expect(flags & 0x10).toBe(0x10); // ACK everywhere
      expect(flags & 0x09).toBe(k === segs.length - 1 ? 0x08 : 0); // PSH (and FIN) only on the last
    });
    expect(payloads.map((p) => p.length)).toEqual([1398, 1398, 1204]);
    expect(Buffer.concat(payloads).equals(origPayload)).toBe(true);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({
      'rx.packets': 3,
      'rx.bytes': segs.reduce((n, s) => n + s.length, 0),
      'fixed.gso-segmented': 1,
    });
  });

  // Every kernel-captured VXLAN IP fixture, whichever node it was sent to: what reaches the TUN
  // verifies, and differs from the inner packet at most in the L4 checksum field.
  const linkLocalSourceName = (name: string): boolean => name.includes('neighbor');
  const ipFixtures = ['vxlan-icmp-echo-request', 'vxlan-icmp-echo-reply', 'vxlan-tcp-syn', 'vxlan-tcp-data', 'vxlan-tcp-data-txcsum-off', 'vxlan-udp',
    'vxlan-icmpv6-echo-request', 'vxlan-icmpv6-echo-reply', 'vxlan-icmpv6-neighbor-solicitation', 'vxlan-icmpv6-neighbor-advertisement'];
  // Neighbour discovery goes between link-local addresses, which no subnet holds: delivered only with spoofedSource and notForThisNode off.
  const linkLocalSource = linkLocalSourceName;
  it.each(ipFixtures)('%s: delivered with a verifying checksum, every other byte as the kernel sent it', async (name) => {
    const fd = fixtureDatagram(name);
    const own = linkLocalSource(name) ? new FakeNetwork() : net;
    const spec = fd.dst.address === B.ip ? B : A;
    const rx = own === net && spec === B ? b : makeNode(own, spec, linkLocalSource(name) ? { antiSpoofing: { unknownPeer: true, spoofedSource: false, notForThisNode: false } } : {});
    expect(fd.dst).toEqual(ep(rx.spec));
    own.inject(fd.src, fd.dst, fd.vxlan);
    await until(() => rx.tun.written.length === 1, 'TUN write');
    await settle();
    expect(rx.tun.written).toHaveLength(1);
    const got = rx.tun.written[0]!;
    expect(got.length).toBe(fd.inner.length);
    expect(l4ChecksumOk(got)).toBe(true);
    const v4 = got[0]! >> 4 === 4;
    const proto = v4 ? got[9]! : got[6]!;
    const csumAt = (v4 ? (got[0]! & 0x0f) * 4 : 40) + ({ 6: 16, 17: 6, 1: 2, 58: 2 } as Record<number, number>)[proto]!;
    const expected = Buffer.from(fd.inner);
    expected.writeUInt16BE(got.readUInt16BE(csumAt), csumAt);
    expect(got.toString('hex')).toBe(expected.toString('hex'));
    const s = rx.engine.counters.snapshot();
    expect(s.rx.packets).toBe(1);
    expect(sum(s.dropped)).toBe(0);
    expect(s.fixed['checksum-completed']).toBe(l4ChecksumOk(fd.inner) ? 0 : 1);
  });

  // The solicitation comes from a link-local source; the advertisement from the peer's address to a link-local one.
  it.each([
    ['vxlan-icmpv6-neighbor-solicitation', 'spoofed-source'],
    ['vxlan-icmpv6-neighbor-advertisement', 'not-for-this-node'],
  ] as const)('%s with anti-spoofing on (the default): dropped %s, nothing reaches the TUN', async (name, reason) => {
    const fd = fixtureDatagram(name);
    const rx = fd.dst.address === B.ip ? b : makeNode(net, A);
    const s0 = rx.engine.counters.snapshot();
    net.inject(fd.src, fd.dst, fd.vxlan);
    await until(() => rx.engine.counters.totalDropped() === 1, 'a drop');
    await settle();
    expect(rx.tun.written).toHaveLength(0);
    expect(delta(s0, rx.engine.counters.snapshot())).toEqual({ [`dropped.${reason}`]: 1 });
  });

  it('a small inner IPv4 packet with Ethernet padding: only totalLength bytes reach the TUN', async () => {
    const pkt = icmpEcho4('10.244.1.5', '10.244.2.7', { data: Buffer.alloc(0) }); // 28 bytes
    const padded = Buffer.concat([pkt, Buffer.alloc(18, 0xee)]); // to the 46-byte Ethernet minimum
    net.inject(ep(A), ep(B), vxlanFrame({}, padded));
    await until(() => b.tun.written.length === 1, 'TUN write');
    expect(b.tun.written[0]!.equals(pkt)).toBe(true);
    expect(b.engine.counters.snapshot().rx).toEqual({ packets: 1, bytes: 28 });
  });
});

describe('engine: ARP over VXLAN', () => {
  it("answers the kernel's unicast probe for its VTEP address exactly as the kernel did", async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    const req = fixtureDatagram('vxlan-arp-request');
    const kernelReply = fixtureDatagram('vxlan-arp-reply'); // n2's kernel answering that probe
    expect(req.src.port).not.toBe(PORT); // the kernel sends from an ephemeral (hashed) source port
    const s0 = b.engine.counters.snapshot();
    net.inject(req.src, req.dst, req.vxlan);
    await until(() => sentBy(net, B).length === 1, 'ARP reply');
    await settle();
    const replies = sentBy(net, B);
    expect(replies).toHaveLength(1);
    const r = replies[0]!;
    expect(r.dst).toEqual({ address: A.ip, port: PORT }); // the requester's VXLAN port, not its source port
    const x = r.bytes;
    expect(x.subarray(0, 8).toString('hex')).toBe('0800000000000100');
    expect(x.subarray(8, 14).toString('hex')).toBe('0a580af40100'); // to the requester's MAC
    expect(x.subarray(14, 20).toString('hex')).toBe('0a580af40200'); // from ours
    expect(x.readUInt16BE(20)).toBe(0x0806);
    const arp = x.subarray(22);
    expect(arp.length).toBe(28);
    expect(arp.subarray(0, 6).toString('hex')).toBe('000108000604');
    expect(arp.readUInt16BE(6)).toBe(2); // reply
    expect(arp.subarray(8, 14).toString('hex')).toBe('0a580af40200'); // sender = our MAC
    expect(ipv4ToString(arp.readUInt32BE(14))).toBe('10.244.2.0'); // sender = our VTEP IP
    expect(arp.subarray(18, 24).toString('hex')).toBe('0a580af40100'); // target = requester
    expect(ipv4ToString(arp.readUInt32BE(24))).toBe('10.244.1.0');
    // and byte for byte what the Linux kernel answered to the same probe
    expect(x.toString('hex')).toBe(kernelReply.vxlan.toString('hex'));
    expect(b.tun.written).toHaveLength(0);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'answered.arp-reply': 1 });
  });

  it('replies to the port of a known peer when the requester is one', async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    b.engine.setRoutes(routesTo([A, vtepOf(A, { endpoint: { address: A.ip, port: 4789 } })]));
    const req = fixtureDatagram('vxlan-arp-request');
    net.inject(req.src, req.dst, req.vxlan);
    await until(() => sentBy(net, B).length === 1, 'ARP reply');
    expect(sentBy(net, B)[0]!.dst).toEqual({ address: A.ip, port: 4789 });
  });

  it('a broadcast request for our VTEP address is answered too', async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    net.inject(ep(A), ep(B), vxlanFrame({ dst: 'ff:ff:ff:ff:ff:ff', etherType: 0x0806 }, arpPacket(1, A.mac, '10.244.1.0', '00:00:00:00:00:00', '10.244.2.0')));
    await until(() => sentBy(net, B).length === 1, 'ARP reply');
    expect(b.engine.counters.snapshot().answered['arp-reply']).toBe(1);
  });

  it.each([
    ['broadcast request for another IP', 'arp-not-for-us', { dst: 'ff:ff:ff:ff:ff:ff' }, () => arpPacket(1, A.mac, '10.244.1.0', '00:00:00:00:00:00', '10.244.2.77')],
    ['unicast request for another IP', 'arp-not-for-us', {}, () => arpPacket(1, A.mac, '10.244.1.0', '00:00:00:00:00:00', '10.244.1.0')],
    ['a reply', 'arp-ignored', {}, () => arpPacket(2, A.mac, '10.244.1.0', B.mac, '10.244.2.0')],
    ['unknown operation 3', 'arp-ignored', {}, () => { const p = arpPacket(1, A.mac, '10.244.1.0', B.mac, '10.244.2.0'); p.writeUInt16BE(3, 6); return p; }],
    ['request for us to another unicast MAC', 'wrong-dst-mac', { dst: '0a:58:0a:f4:02:01' }, () => arpPacket(1, A.mac, '10.244.1.0', '00:00:00:00:00:00', '10.244.2.0')],
  ] as const)('%s -> dropped %s, nothing sent', async (_name, reason, frame, make) => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    const s0 = b.engine.counters.snapshot();
    net.inject(ep(A), ep(B), vxlanFrame({ etherType: 0x0806, ...frame }, make()));
    await settle();
    expect(sentBy(net, B)).toHaveLength(0);
    expect(b.tun.written).toHaveLength(0);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ [`dropped.${reason}`]: 1 });
  });

  it("the kernel's ARP reply (fixture) reaching the requester is ignored", async () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A);
    const fd = fixtureDatagram('vxlan-arp-reply');
    expect(fd.dst.address).toBe(A.ip);
    const s0 = a.engine.counters.snapshot();
    net.inject(fd.src, fd.dst, fd.vxlan);
    await settle();
    expect(sentBy(net, A)).toHaveLength(0);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'dropped.arp-ignored': 1 });
  });
});

type DropReasonName = Parameters<Engine['counters']['dropped']>[0];
describe('engine: anti-spoofing (on by default; each check switched off on its own)', () => {
  /** A host on the underlay that is no peer of B. */
  const STRANGER: Endpoint = { address: '198.18.0.9', port: 40000 };
  const ON = { unknownPeer: true, spoofedSource: true, notForThisNode: true };
  /** off: the check switched off; then: what happens with it off (the next check's drop, or 'passes'). */
  type Case = [what: string, from: Endpoint, inner: () => Buffer, reason: string, off: keyof typeof ON, then?: string];
  const cases: Case[] = [
    ['IPv4 from a host that is no peer', STRANGER, () => vxlanFrame({}, icmpEcho4('10.244.1.5', '10.244.2.7')), 'unknown-peer', 'unknownPeer', 'spoofed-source'],
    ['IPv6 from a host that is no peer', STRANGER, () => vxlanFrame({ etherType: 0x86dd }, icmpEcho6('fd00:244:1::5', 'fd00:244:2::7')), 'unknown-peer', 'unknownPeer', 'spoofed-source'],
    ['ARP for our VTEP address from a host that is no peer', STRANGER, () => vxlanFrame({ dst: 'ff:ff:ff:ff:ff:ff', etherType: 0x0806 }, arpPacket(1, A.mac, '10.244.1.0', '00:00:00:00:00:00', '10.244.2.0')), 'unknown-peer', 'unknownPeer'],
    ['IPv4 from the peer with a source outside its subnet', { address: A.ip, port: 40000 }, () => vxlanFrame({}, icmpEcho4('10.244.3.5', '10.244.2.7')), 'spoofed-source', 'spoofedSource'],
    ['IPv4 from the peer with our own subnet as source', { address: A.ip, port: 40000 }, () => vxlanFrame({}, icmpEcho4('10.244.2.9', '10.244.2.7')), 'spoofed-source', 'spoofedSource'],
    ['IPv6 from the peer with a source outside its subnet', { address: A.ip, port: 40000 }, () => vxlanFrame({ etherType: 0x86dd }, icmpEcho6('fd00:244:3::5', 'fd00:244:2::7')), 'spoofed-source', 'spoofedSource'],
    ['IPv4 from the peer to be relayed to another node', { address: A.ip, port: 40000 }, () => vxlanFrame({}, icmpEcho4('10.244.1.5', '10.244.3.7')), 'not-for-this-node', 'notForThisNode'],
    ['IPv4 from the peer to the underlay through us', { address: A.ip, port: 40000 }, () => vxlanFrame({}, icmpEcho4('10.244.1.5', '198.18.0.2')), 'not-for-this-node', 'notForThisNode'],
    ['IPv6 from the peer to be relayed to another node', { address: A.ip, port: 40000 }, () => vxlanFrame({ etherType: 0x86dd }, icmpEcho6('fd00:244:1::5', 'fd00:244:3::7')), 'not-for-this-node', 'notForThisNode'],
  ];

  it.each(cases)('%s: dropped and counted as the reason, nothing reaches the TUN or the wire', async (_what, from, make, reason) => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    const s0 = b.engine.counters.snapshot();
    net.inject(from, ep(B), make());
    await until(() => b.engine.counters.totalDropped() === 1, reason);
    await settle();
    expect(b.tun.written).toHaveLength(0);
    expect(sentBy(net, B)).toHaveLength(0);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ [`dropped.${reason}`]: 1 });
  });

  it.each(cases)('%s: with that check off, passes it (to the TUN, answered, or the next check)', async (_what, from, make, _reason, off, then = 'passes') => {
    const net = new FakeNetwork();
    const b = makeNode(net, B, { antiSpoofing: { ...ON, [off]: false } });
    net.inject(from, ep(B), make());
    await until(() => b.tun.written.length + sentBy(net, B).length + b.engine.counters.totalDropped() === 1, 'an outcome');
    await settle();
    if (then === 'passes') expect(b.engine.counters.totalDropped()).toBe(0);
    else expect(b.engine.counters.dropped(then as DropReasonName)).toBe(1);
  });

  it('the peer\'s own VTEP address to ours, and pod to pod both families: forwarded', async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    const inner = [icmpEcho4('10.244.1.0', '10.244.2.0'), icmpEcho4('10.244.1.5', '10.244.2.7'), icmpEcho6('fd00:244:1::5', 'fd00:244:2::7')];
    for (const p of inner) net.inject(ep(A), ep(B), vxlanFrame({ etherType: p[0]! >> 4 === 6 ? 0x86dd : 0x0800 }, p));
    await until(() => b.tun.written.length === 3, 'three TUN writes');
    expect(b.tun.written.map((p) => p.toString('hex'))).toEqual(inner.map((p) => p.toString('hex')));
    expect(b.engine.counters.totalDropped()).toBe(0);
  });

  it('a peer removed from the table is unknown from the next datagram on', async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    b.engine.setRoutes(new RouteTable([]));
    net.inject(ep(A), ep(B), vxlanFrame({}, icmpEcho4('10.244.1.5', '10.244.2.7')));
    await until(() => b.engine.counters.dropped('unknown-peer') === 1, 'unknown-peer');
    expect(b.tun.written).toHaveLength(0);
  });
});

describe('engine: every underlay drop reason, each from a crafted datagram', () => {
  const good = (): Buffer => vxlanFrame({}, icmpEcho4('10.244.1.5', '10.244.2.7'));
  const ipv4With = (edit: (p: Buffer) => Buffer): Buffer => vxlanFrame({}, edit(icmpEcho4('10.244.1.5', '10.244.2.7')));
  const ipv6With = (edit: (p: Buffer) => Buffer): Buffer => vxlanFrame({ etherType: 0x86dd }, edit(icmpEcho6('fd00:244:1::5', 'fd00:244:2::7')));
  const arpWith = (edit: (p: Buffer) => Buffer): Buffer => vxlanFrame({ etherType: 0x0806 }, edit(arpPacket(1, A.mac, '10.244.1.0', '00:00:00:00:00:00', '10.244.2.0')));
  const at = (i: number, v: number) => (p: Buffer): Buffer => {
    const q = Buffer.from(p);
    q[i] = v;
    return q;
  };
  const u16 = (i: number, v: number) => (p: Buffer): Buffer => {
    const q = Buffer.from(p);
    q.writeUInt16BE(v, i);
    return q;
  };

  const cases: [string, string, () => Buffer][] = [];
  for (let n = 0; n <= 7; n++) cases.push([`${n}-byte datagram`, 'short-datagram', () => good().subarray(0, n)]);
  for (const f of [0x00, 0x0c, 0x09, 0x88, 0x48, 0xff, 0x80]) cases.push([`flags 0x${f.toString(16)}`, 'bad-flags', () => at(0, f)(good())]);
  for (const i of [1, 2, 3, 7]) for (const v of [0x01, 0x80]) cases.push([`reserved byte ${i} = 0x${v.toString(16)}`, 'reserved-bits-set', () => at(i, v)(good())]);
  for (const v of [0, 2, 0x000101, 0x010000, 0x000100, 0xffffff]) cases.push([`VNI ${v}`, 'wrong-vni', () => vxlanFrame({ vni: v }, icmpEcho4('10.244.1.5', '10.244.2.7'))]);
  for (const n of [0, 1, 6, 12, 13]) cases.push([`${n} bytes of inner Ethernet`, 'truncated-inner', () => good().subarray(0, 8 + n)]);
  for (const m of [A.mac, 'ff:ff:ff:ff:ff:ff', '0a:58:0a:f4:02:01', '8a:58:0a:f4:02:00', '01:00:5e:00:00:01'])
    cases.push([`IPv4 to MAC ${m}`, 'wrong-dst-mac', () => vxlanFrame({ dst: m }, icmpEcho4('10.244.1.5', '10.244.2.7'))]);
  cases.push(['IPv6 to another MAC', 'wrong-dst-mac', () => vxlanFrame({ dst: A.mac, etherType: 0x86dd }, icmpEcho6('fd00:244:1::5', 'fd00:244:2::7'))]);
  for (const et of [0x88cc, 0x8100, 0x0000, 0x86dc, 0x0801, 0x8035])
    cases.push([`EtherType 0x${et.toString(16)}`, 'unsupported-ethertype', () => vxlanFrame({ etherType: et }, icmpEcho4('10.244.1.5', '10.244.2.7'))]);
  cases.push(
    ['inner IPv4: version 6 nibble', 'malformed-inner-ipv4', () => ipv4With(at(0, 0x65))],
    ['inner IPv4: version 5 nibble', 'malformed-inner-ipv4', () => ipv4With(at(0, 0x55))],
    ['inner IPv4: IHL 4', 'malformed-inner-ipv4', () => ipv4With(at(0, 0x44))],
    ['inner IPv4: IHL 0', 'malformed-inner-ipv4', () => ipv4With(at(0, 0x40))],
    ['inner IPv4: IHL 15 beyond the bytes', 'malformed-inner-ipv4', () => vxlanFrame({}, at(0, 0x4f)(icmpEcho4('10.244.1.5', '10.244.2.7', { data: Buffer.alloc(0) })))],
    ['inner IPv4: totalLength beyond the bytes', 'malformed-inner-ipv4', () => ipv4With((p) => u16(2, p.length + 1)(p))],
    ['inner IPv4: totalLength 0xffff', 'malformed-inner-ipv4', () => ipv4With(u16(2, 0xffff))],
    ['inner IPv4: totalLength below the header', 'malformed-inner-ipv4', () => ipv4With(u16(2, 19))],
    ['inner IPv4: 19 bytes', 'malformed-inner-ipv4', () => ipv4With((p) => p.subarray(0, 19))],
    ['inner IPv4: 0 bytes', 'malformed-inner-ipv4', () => ipv4With((p) => p.subarray(0, 0))],
    ['inner IPv6: version 4 nibble', 'malformed-inner-ipv6', () => ipv6With(at(0, 0x40))],
    ['inner IPv6: 39 bytes', 'malformed-inner-ipv6', () => ipv6With((p) => p.subarray(0, 39))],
    ['inner IPv6: payloadLength beyond the bytes', 'malformed-inner-ipv6', () => ipv6With((p) => u16(4, p.length - 40 + 1)(p))],
    ['inner IPv6: an IPv4 packet under EtherType 86dd', 'malformed-inner-ipv6', () => vxlanFrame({ etherType: 0x86dd }, udp4('10.244.1.5', '10.244.2.7', 40))],
    ['ARP: 27 bytes', 'malformed-arp', () => arpWith((p) => p.subarray(0, 27))],
    ['ARP: 0 bytes', 'malformed-arp', () => arpWith((p) => p.subarray(0, 0))],
    ['ARP: htype 6', 'malformed-arp', () => arpWith(u16(0, 6))],
    ['ARP: ptype 86dd', 'malformed-arp', () => arpWith(u16(2, 0x86dd))],
    ['ARP: hlen 8', 'malformed-arp', () => arpWith(at(4, 8))],
    ['ARP: plen 16', 'malformed-arp', () => arpWith(at(5, 16))],
  );

  it.each(cases)('%s -> dropped %s, nothing reaches the TUN or the wire', async (_name, reason, make) => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    const s0 = b.engine.counters.snapshot();
    net.inject(ep(A), ep(B), make());
    await settle();
    expect(b.tun.written).toHaveLength(0);
    expect(b.tun.refused).toHaveLength(0);
    expect(sentBy(net, B)).toHaveLength(0);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ [`dropped.${reason}`]: 1 });
  });

  it('after every one of them, a good packet still goes through', async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    for (const [, , make] of cases) net.inject(ep(A), ep(B), make());
    await settle(40);
    expect(b.tun.written).toHaveLength(0);
    const snap = b.engine.counters.snapshot();
    expect(sum(snap.dropped)).toBe(cases.length);
    for (const reason of new Set(cases.map((c) => c[1]))) {
      expect(snap.dropped[reason], reason).toBe(cases.filter((c) => c[1] === reason).length);
    }
    const pkt = icmpEcho4('10.244.1.5', '10.244.2.7', { seq: 99 });
    net.inject(ep(A), ep(B), vxlanFrame({}, pkt));
    await until(() => b.tun.written.length === 1, 'good packet');
    expect(b.tun.written[0]!.equals(pkt)).toBe(true);
  });

  it('a TUN that refuses the write: tun-write-failed, not rx', async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B);
    b.tun.device.close();
    const s0 = b.engine.counters.snapshot();
    net.inject(ep(A), ep(B), good());
    await settle();
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'dropped.tun-write-failed': 1 });
  });
});

describe('engine: an answer that cannot be delivered ends in one place, not two', () => {
  it('an ICMP error the TUN refuses is tun-write-failed only, not also answered', () => {
    const net = new FakeNetwork();
    const a = makeNode(net, A, {}, false);
    a.tun.device.close(); // every write now fails
    const p = icmpEcho4('10.244.1.5', '10.244.77.1');
    const buf = Buffer.alloc(HEADROOM + p.length, POISON);
    p.copy(buf, HEADROOM);
    const s0 = a.engine.counters.snapshot();
    a.engine.handleOutbound([buf], [p.length], 1);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'dropped.tun-write-failed': 1 });
  });

  it('an ARP reply the bind cannot send is send-failed, not answered', async () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B, {}, false);
    await b.bind.close(); // every send now returns 0
    const req = fixtureDatagram('vxlan-arp-request');
    const s0 = b.engine.counters.snapshot();
    b.engine.handleInbound([Buffer.from(req.vxlan)], [req.vxlan.length], [req.src], 1);
    expect(net.log).toHaveLength(0);
    expect(delta(s0, b.engine.counters.snapshot())).toEqual({ 'dropped.send-failed': 1 });
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz: random datagrams never throw and each ends in exactly one place.

function randomDatagram(rnd: () => number, maxLen: number): Buffer {
  const int = (n: number): number => Math.floor(rnd() * n);
  const len = int(maxLen + 1);
  const d = Buffer.alloc(len);
  for (let i = 0; i < len; i++) d[i] = int(256);
  const mode = int(8);
  if (mode === 0) return d; // bytes only
  // a valid VXLAN header for our VNI
  const hdr = hex('0800000000000100');
  hdr.copy(d, 0, 0, Math.min(8, len));
  if (mode === 1) {
    if (len > 0 && rnd() < 0.3) {
      const at = int(Math.min(len, 8));
      d[at] = d[at]! ^ (1 << int(8)); // a header bit flipped
    }
    return d;
  }
  // plus our inner dst MAC (sometimes broadcast) and a known EtherType
  (rnd() < 0.85 ? mac(B.mac) : Buffer.alloc(6, 0xff)).copy(d, 8, 0, Math.max(0, Math.min(6, len - 8)));
  const et = [0x0800, 0x0800, 0x86dd, 0x0806, int(0x10000)][int(5)]!;
  if (len >= 22) d.writeUInt16BE(et, 20);
  if (len < 23) return d;
  const ip = 22;
  if (et === 0x0800 && mode >= 4) {
    // mostly-plausible IPv4: version 4, IHL 5..7, a totalLength near the real one, TCP/UDP/ICMP
    d[ip] = 0x40 | (5 + int(3));
    if (len >= ip + 4) d.writeUInt16BE(Math.max(0, len - ip - int(3) + (rnd() < 0.1 ? 1 : 0)), ip + 2);
    if (len >= ip + 10) d[ip + 9] = [1, 6, 17, int(256)][int(4)]!;
    if (len >= ip + 8) d[ip + 6] = rnd() < 0.8 ? 0x40 : int(256);
    // mostly from the sender's subnet (A) to ours (B), so anti-spoofing lets most through and drops some
    if (len >= ip + 20 && rnd() < 0.8) d.writeUInt32BE(ip4(A.vtepIp) + int(256), ip + 12);
    if (len >= ip + 20 && rnd() < 0.8) d.writeUInt32BE(ip4(B.vtepIp) + int(256), ip + 16);
  } else if (et === 0x86dd && mode >= 4) {
    d[ip] = 0x60 | (d[ip]! & 0x0f);
    if (len >= ip + 6) d.writeUInt16BE(Math.max(0, len - ip - 40 - int(2)), ip + 4);
    if (len >= ip + 7) d[ip + 6] = [58, 6, 17, 0, int(256)][int(5)]!;
    if (len >= ip + 40 && rnd() < 0.8) (cidr(A.subnet6).addr as Buffer).copy(d, ip + 8, 0, 8);
    if (len >= ip + 40 && rnd() < 0.8) (cidr(B.subnet6).addr as Buffer).copy(d, ip + 24, 0, 8);
  } else if (et === 0x0806 && mode >= 4 && len >= ip + 28) {
    hex('000108000604').copy(d, ip);
    d.writeUInt16BE(1 + int(3), ip + 6);
    if (rnd() < 0.5) d.writeUInt32BE(ip4(B.vtepIp), ip + 24);
  }
  return d;
}

describe('engine: fuzzing the underlay side', () => {
  it('20 000 random datagrams: no throw; dropped + rx + answered == delivered; TUN got exactly rx packets', () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B, {}, false);
    const rnd = mulberry32(0x5eed1);
    const N = 20_000;
    let delivered = 0;
    const src: Endpoint = { address: A.ip, port: 40000 };
    while (delivered < N) {
      const n = Math.min(N - delivered, 1 + Math.floor(rnd() * 32));
      const bufs: Buffer[] = [];
      for (let i = 0; i < n; i++) bufs.push(randomDatagram(rnd, 200)); // inner ≤ 178 bytes < tunMtu: no GSO
      expect(() => b.engine.handleInbound(bufs, bufs.map((x) => x.length), bufs.map(() => src), n)).not.toThrow();
      delivered += n;
    }
    const s = b.engine.counters.snapshot();
    expect(sum(s.dropped) + s.rx.packets + sum(s.answered)).toBe(N);
    expect(b.tun.written.length).toBe(s.rx.packets);
    expect(b.tun.refused).toHaveLength(0);
    expect(s.tx.packets).toBe(0);
    expect(s.fixed['gso-segmented']).toBe(0);
    expect(sentBy(net, B).length).toBe(s.answered['arp-reply']);
    // the fuzz reaches deep: forwarded, answered and most reasons all happen
    expect(s.rx.packets).toBeGreaterThan(100);
    expect(s.answered['arp-reply']).toBeGreaterThan(0);
    for (const r of ['short-datagram', 'bad-flags', 'reserved-bits-set', 'wrong-vni', 'truncated-inner', 'wrong-dst-mac', 'unsupported-ethertype', 'malformed-inner-ipv4', 'malformed-inner-ipv6', 'spoofed-source', 'not-for-this-node', 'malformed-arp', 'arp-not-for-us', 'arp-ignored']) {
      expect(s.dropped[r], r).toBeGreaterThan(0);
    }
  });

  it('with a small TUN MTU (GSO reachable), every datagram moves exactly one counter by one, or gso-segmented by one and rx by the segment count', () => {
    const net = new FakeNetwork();
    const b = makeNode(net, B, { tunMtu: 120 }, false);
    const rnd = mulberry32(0xc0ffee);
    const src: Endpoint = { address: A.ip, port: 40000 };
    let segmented = 0;
    for (let i = 0; i < 5000; i++) {
      let d = randomDatagram(rnd, 600);
      if (i % 4 === 0) {
        // a well-formed TCP packet, mostly too big for the TUN
        const payload = Buffer.alloc(Math.floor(rnd() * 500));
        for (let k = 0; k < payload.length; k++) payload[k] = Math.floor(rnd() * 256);
        d = vxlanFrame({}, tcp4('10.244.1.5', '10.244.2.7', payload, Math.floor(rnd() * 4) * 4, Math.floor(rnd() * 256)));
      }
      const s0 = b.engine.counters.snapshot();
      const w0 = b.tun.written.length;
      b.engine.handleInbound([d], [d.length], [src], 1);
      const dd = delta(s0, b.engine.counters.snapshot());
      const keys = Object.keys(dd).filter((k) => k !== 'rx.bytes');
      if (dd['fixed.gso-segmented'] === 1) {
        segmented++;
        expect(keys.sort()).toEqual(['fixed.gso-segmented', 'rx.packets']);
        expect(dd['rx.packets']).toBeGreaterThanOrEqual(2);
        const segs = b.tun.written.slice(w0);
        expect(segs).toHaveLength(dd['rx.packets']!);
        for (const s of segs) {
          expect(s.length).toBeLessThanOrEqual(120);
          if (s[0]! >> 4 === 4) expect(ipv4HeaderOk(s)).toBe(true);
          expect(l4ChecksumOk(s)).toBe(true);
        }
      } else {
        const moved = keys.filter((k) => k !== 'fixed.checksum-completed');
        expect(moved, JSON.stringify(dd)).toHaveLength(1);
        expect(dd[moved[0]!]).toBe(1);
        expect(moved[0]).toMatch(/^(rx\.packets|dropped\.|answered\.)/);
      }
    }
    expect(segmented).toBeGreaterThan(100);
  });
});

/** TCP over IPv4 with `optLen` bytes of NOP options and the given flags; a valid checksum. */
function tcp4(src: string, dst: string, payload: Buffer, optLen: number, flags: number): Buffer {
  const thl = 20 + optLen;
  const buf = Buffer.alloc(20 + thl + payload.length, POISON);
  emitIpv4({ src: ip4(src), dst: ip4(dst), protocol: 6, ttl: 64, payloadLength: thl + payload.length, dontFragment: true, identification: 77 }, buf, 0);
  const t = 20;
  buf.writeUInt16BE(40000, t);
  buf.writeUInt16BE(5201, t + 2);
  buf.writeUInt32BE(0xfffff000, t + 4);
  buf.writeUInt32BE(1, t + 8);
  buf[t + 12] = (thl / 4) << 4;
  buf[t + 13] = flags;
  buf.writeUInt16BE(512, t + 14);
  buf.writeUInt16BE(0, t + 16);
  buf.writeUInt16BE(0, t + 18);
  buf.fill(1, t + 20, t + thl);
  payload.copy(buf, t + thl);
  const len = thl + payload.length;
  buf.writeUInt16BE(~onesSum(buf, t, len, onesSum(buf, 12, 8, 6 + len)) & 0xffff, t + 16);
  return buf;
}

// ---------------------------------------------------------------------------------------------

describe('engine: outbound errors written back into the TUN', () => {
  let net: FakeNetwork;
  let a: TestNode;
  const setup = (over: Partial<EngineOptions> = {}): void => {
    net = new FakeNetwork();
    a = makeNode(net, A, over);
    a.engine.setRoutes(routesTo([B, vtepOf(B)]));
  };

  async function sendFromPod(pkt: Buffer): Promise<void> {
    a.tun.inject(pkt);
    await until(() => a.tun.pending === 0, 'TUN read');
    await settle();
  }

  function checkIcmp4Error(reply: Buffer, orig: Buffer, type: number, code: number, quoted: number): void {
    expect(reply[0]).toBe(0x45);
    expect(reply.readUInt16BE(2)).toBe(reply.length);
    expect(reply[9]).toBe(1);
    expect(reply[8]).toBeGreaterThan(0);
    expect(ipv4HeaderOk(reply)).toBe(true);
    expect(reply.subarray(12, 16).equals(orig.subarray(16, 20))).toBe(true); // from the unreachable destination
    expect(reply.subarray(16, 20).equals(orig.subarray(12, 16))).toBe(true); // to the original source
    expect(reply[20]).toBe(type);
    expect(reply[21]).toBe(code);
    expect(onesSum(reply, 20, reply.length - 20)).toBe(0xffff);
    expect(reply.length).toBe(20 + 8 + quoted);
    expect(reply.subarray(28).equals(orig.subarray(0, quoted))).toBe(true);
  }

  it('no route (IPv4) -> ICMP net unreachable to the source, quoting the packet, valid checksums', async () => {
    setup();
    const pkt = icmpEcho4('10.244.1.5', '10.244.77.1');
    const s0 = a.engine.counters.snapshot();
    await sendFromPod(pkt);
    expect(net.log).toHaveLength(0);
    expect(a.tun.written).toHaveLength(1);
    const r = a.tun.written[0]!;
    checkIcmp4Error(r, pkt, 3, 0, pkt.length);
    expect(r.readUInt32BE(24)).toBe(0); // unused
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'answered.icmp-unreachable': 1 });
  });

  it('no route, large packet: the error quotes only as much as keeps it within 576 bytes', async () => {
    setup();
    const pkt = udp4('10.244.1.5', '10.244.77.1', 1000);
    await sendFromPod(pkt);
    const r = a.tun.written[0]!;
    expect(r.length).toBe(576);
    checkIcmp4Error(r, pkt, 3, 0, 576 - 28);
  });

  it('IPv4 with DF larger than maxInnerSize -> ICMP frag needed (3/4) carrying next-hop MTU = maxInnerSize', async () => {
    setup({ maxInnerSize: 1400 });
    const pkt = udp4('10.244.1.5', '10.244.2.7', 1401 - 28, { df: true });
    expect(pkt.length).toBe(1401);
    const s0 = a.engine.counters.snapshot();
    await sendFromPod(pkt);
    expect(net.log).toHaveLength(0);
    const r = a.tun.written[0]!;
    checkIcmp4Error(r, pkt, 3, 4, 548);
    expect(r.readUInt16BE(24)).toBe(0);
    expect(r.readUInt16BE(26)).toBe(1400);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'answered.icmp-too-big': 1 });
  });

  it('exactly maxInnerSize bytes is forwarded', async () => {
    setup({ maxInnerSize: 1400 });
    const pkt = udp4('10.244.1.5', '10.244.2.7', 1400 - 28, { df: true });
    await sendFromPod(pkt);
    expect(a.tun.written).toHaveLength(0);
    expect(net.log).toHaveLength(1);
    expect(net.log[0]!.bytes.length).toBe(1400 + 22);
  });

  it('IPv4 without DF larger than maxInnerSize -> dropped too-big, nothing written or sent', async () => {
    setup({ maxInnerSize: 1400 });
    const s0 = a.engine.counters.snapshot();
    await sendFromPod(udp4('10.244.1.5', '10.244.2.7', 1401 - 28));
    expect(a.tun.written).toHaveLength(0);
    expect(net.log).toHaveLength(0);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'dropped.too-big': 1 });
  });

  it('IPv6 larger than maxInnerSize -> ICMPv6 packet too big (type 2) with the MTU, valid checksum', async () => {
    setup({ maxInnerSize: 1400 });
    const pkt = udp6('fd00:244:1::5', 'fd00:244:2::7', 1420);
    const s0 = a.engine.counters.snapshot();
    await sendFromPod(pkt);
    expect(net.log).toHaveLength(0);
    const r = a.tun.written[0]!;
    expect(r[0]! >> 4).toBe(6);
    expect(r[6]).toBe(58);
    expect(r.readUInt16BE(4)).toBe(r.length - 40);
    expect(r.length).toBe(1280); // as much of the packet as fits the IPv6 minimum MTU
    expect(r.subarray(8, 24).equals(pkt.subarray(24, 40))).toBe(true);
    expect(r.subarray(24, 40).equals(pkt.subarray(8, 24))).toBe(true);
    expect(r[40]).toBe(2);
    expect(r[41]).toBe(0);
    expect(r.readUInt32BE(44)).toBe(1400);
    expect(l4ChecksumOk(r)).toBe(true);
    expect(r.subarray(48).equals(pkt.subarray(0, 1280 - 48))).toBe(true);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'answered.icmp-too-big': 1 });
  });

  it('no route (IPv6) -> ICMPv6 destination unreachable (1/0), valid checksum', async () => {
    setup();
    const pkt = icmpEcho6('fd00:244:1::5', 'fd00:244:77::1');
    const s0 = a.engine.counters.snapshot();
    await sendFromPod(pkt);
    const r = a.tun.written[0]!;
    expect(r[40]).toBe(1);
    expect(r[41]).toBe(0);
    expect(r.readUInt32BE(44)).toBe(0);
    expect(l4ChecksumOk(r)).toBe(true);
    expect(r.subarray(48).equals(pkt)).toBe(true);
    expect(r.subarray(8, 24).equals(ip6('fd00:244:77::1'))).toBe(true);
    expect(r.subarray(24, 40).equals(ip6('fd00:244:1::5'))).toBe(true);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'answered.icmp-unreachable': 1 });
  });

  it.each([
    ['an ICMPv4 error (3/3)', () => icmpError4('10.244.1.5', '10.244.77.1', 3, 3, udp4('10.244.77.1', '10.244.1.5', 8))],
    ['an ICMPv4 time exceeded', () => icmpError4('10.244.1.5', '10.244.77.1', 11, 0, udp4('10.244.77.1', '10.244.1.5', 8))],
    ['an ICMPv6 error (1/4)', () => {
      const inv = udp6('fd00:244:77::1', 'fd00:244:1::5', 60);
      const buf = Buffer.alloc(40 + 8 + inv.length, POISON);
      emitIpv6({ src: ip6('fd00:244:1::5'), dst: ip6('fd00:244:77::1'), nextHeader: 58, hopLimit: 64, payloadLength: 8 + inv.length }, buf, 0);
      emitIcmpv6({ kind: 'error', type: 1, code: 4, invoking: inv }, buf, 40, ip6('fd00:244:1::5'), ip6('fd00:244:77::1'));
      return buf;
    }],
    ['IPv6 to ff02::2 (multicast)', () => icmpEcho6('fd00:244:1::5', 'ff02::2')],
    ['IPv4 to 224.0.0.251 (multicast)', () => udp4('10.244.1.5', '224.0.0.251', 10)],
    ['IPv4 to 255.255.255.255', () => udp4('10.244.1.5', '255.255.255.255', 10)],
    ['IPv4 from 0.0.0.0', () => udp4('0.0.0.0', '10.244.77.1', 10)],
    ['IPv4 non-first fragment', () => { const p = udp4('10.244.1.5', '10.244.77.1', 10); p.writeUInt16BE(0x0010, 6); p.writeUInt16BE(0, 10); p.writeUInt16BE(~onesSum(p, 0, 20) & 0xffff, 10); return p; }],
  ] as const)('no ICMP error in reply to %s: dropped no-route, nothing written', async (_name, make) => {
    setup();
    const s0 = a.engine.counters.snapshot();
    await sendFromPod(make());
    expect(a.tun.written).toHaveLength(0);
    expect(net.log).toHaveLength(0);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'dropped.no-route': 1 });
  });

  it('rate limit: with icmpRatePerSecond 5, the 6th+ error of a burst is icmp-rate-limited; tokens come back with time', async () => {
    let now = 1_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    setup({ icmpRatePerSecond: 5 });
    for (let i = 0; i < 8; i++) a.tun.inject(icmpEcho4('10.244.1.5', `10.244.77.${i + 1}`));
    await until(() => a.tun.pending === 0, 'TUN read');
    await settle();
    let s = a.engine.counters.snapshot();
    expect(s.answered['icmp-unreachable']).toBe(5);
    expect(s.dropped['icmp-rate-limited']).toBe(3);
    expect(s.dropped['no-route']).toBe(0);
    expect(a.tun.written).toHaveLength(5);
    expect(a.tun.written.map((r) => ipv4ToString(r.readUInt32BE(12)))).toEqual(['10.244.77.1', '10.244.77.2', '10.244.77.3', '10.244.77.4', '10.244.77.5']);
    // frag-needed shares the budget
    a.tun.inject(udp4('10.244.1.5', '10.244.2.7', 1500, { df: true }));
    await until(() => a.tun.pending === 0, 'TUN read');
    await settle();
    expect(a.engine.counters.snapshot().dropped['icmp-rate-limited']).toBe(4);
    now += 1000; // a second later: 5 more (from other pods: 10.244.1.5 has spent its own burst but one)
    for (let i = 0; i < 7; i++) a.tun.inject(icmpEcho4(`10.244.1.${i + 10}`, `10.244.78.${i + 1}`));
    await until(() => a.tun.pending === 0, 'TUN read');
    await settle();
    s = a.engine.counters.snapshot();
    expect(s.answered['icmp-unreachable']).toBe(10);
    expect(s.dropped['icmp-rate-limited']).toBe(6);
    expect(a.tun.written).toHaveLength(10);
  });

  it.each([
    ['version 5', () => { const p = icmpEcho4('10.244.1.5', '10.244.2.7'); p[0] = 0x55; return p; }],
    ['version 0', () => Buffer.alloc(40)],
    ['empty', () => Buffer.alloc(0)],
    ['IPv4 truncated (totalLength beyond the bytes)', () => icmpEcho4('10.244.1.5', '10.244.2.7').subarray(0, 30)],
    ['IPv4 shorter than a header', () => icmpEcho4('10.244.1.5', '10.244.2.7').subarray(0, 12)],
    ['IPv4 IHL 3', () => { const p = icmpEcho4('10.244.1.5', '10.244.2.7'); p[0] = 0x43; return p; }],
    ['IPv6 truncated', () => icmpEcho6('fd00:244:1::5', 'fd00:244:2::7').subarray(0, 50)],
    ['IPv6 shorter than a header', () => icmpEcho6('fd00:244:1::5', 'fd00:244:2::7').subarray(0, 39)],
  ] as const)('malformed TUN packet (%s) -> tun-malformed, nothing sent or written', async (_name, make) => {
    setup();
    const s0 = a.engine.counters.snapshot();
    await sendFromPod(make());
    expect(a.tun.written).toHaveLength(0);
    expect(net.log).toHaveLength(0);
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({ 'dropped.tun-malformed': 1 });
  });

  it('a batch mixing forwarded, answered and dropped packets: each counted once, the good ones sent', async () => {
    setup({ maxInnerSize: 1400 });
    const good4 = icmpEcho4('10.244.1.5', '10.244.2.7');
    const good6 = icmpEcho6('fd00:244:1::5', 'fd00:244:2::7');
    const batch = [good4, icmpEcho4('10.244.1.5', '10.244.99.1'), Buffer.alloc(3), udp4('10.244.1.5', '10.244.2.7', 1500), good6, icmpEcho6('fd00:244:1::5', 'ff02::1')];
    const s0 = a.engine.counters.snapshot();
    for (const p of batch) a.tun.inject(p);
    await until(() => a.tun.pending === 0, 'TUN read');
    await settle();
    expect(delta(s0, a.engine.counters.snapshot())).toEqual({
      'tx.packets': 2,
      'tx.bytes': good4.length + good6.length,
      'answered.icmp-unreachable': 1,
      'dropped.tun-malformed': 1,
      'dropped.too-big': 1,
      'dropped.no-route': 1,
    });
    expect(net.log.map((d) => d.bytes.subarray(22).toString('hex'))).toEqual([good4.toString('hex'), good6.toString('hex')]);
    expect(a.tun.written).toHaveLength(1);
  });
});
