/**
 * The native fast path against the TypeScript reference path:
 *  - the engine with the addon's checksum and with the TS one turns the same random datagrams
 *    (finished and CHECKSUM_PARTIAL checksums, GSO super-packets, garbage) into byte-identical TUN
 *    writes and the same counters, and the same random TUN packets into identical frames;
 *  - NativeBind (recvmmsg/sendmmsg, UDP GSO) and DgramBind put identical datagrams on a real socket
 *    on loopback, and NativeBind hands over exactly what a real socket sent, with its source.
 * Needs no root; a missing addon fails (requireNative), never skips.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { Engine, HEADROOM } from '../../src/datapath/engine.js';
import { RouteTable } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { FakeNetwork } from '../../src/io/bind-fake.js';
import { NativeBind, UdpCounter } from '../../src/io/bind-native.js';
import { DgramBind } from '../../src/io/bind-dgram.js';
import type { Endpoint } from '../../src/io/bind.js';
import { RecordingTun } from '../support/recording-tun.js';
import { internetChecksum, onesSum, type OnesSumFn } from '../../src/packet/wire/checksum.js';
import { setPartialL4Checksum } from '../../src/packet/wire/l4checksum.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { xorshift32 as rng } from '../support/random.js';

const native = requireNative();
const nativeSum: OnesSumFn = (buf, offset, length, initial = 0) => native.checksum(buf, offset, length, initial);

const MY_MAC = '0a:58:0a:f4:02:00';
const PEER_MAC = '0a:58:0a:f4:01:00';
const TUN_MTU = 1450;

/** A random TCP or UDP over IPv4 packet from 10.244.1.x to 10.244.2.y, checksums finished. */
function randomIpPacket(next: () => number, payloadLength: number, tcp: boolean): Buffer {
  const l4h = tcp ? 20 : 8;
  const p = Buffer.alloc(20 + l4h + payloadLength);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(next() & 0xffff, 4);
  p.writeUInt16BE(0x4000, 6);
  p[8] = 64;
  p[9] = tcp ? 6 : 17;
  p.writeUInt32BE(ipv4FromString(`10.244.1.${1 + (next() % 250)}`), 12);
  p.writeUInt32BE(ipv4FromString(`10.244.2.${1 + (next() % 250)}`), 16);
  p.writeUInt16BE(internetChecksum(p, 0, 20), 10);
  p.writeUInt16BE(next() & 0xffff, 20);
  p.writeUInt16BE(next() & 0xffff, 22);
  if (tcp) {
    p.writeUInt32BE(next() >>> 0, 24);
    p.writeUInt32BE(next() >>> 0, 28);
    p[32] = 5 << 4;
    p[33] = 0x10 | (next() & 1 ? 0x08 : 0);
    p.writeUInt16BE(next() & 0xffff, 34);
  } else {
    p.writeUInt16BE(8 + payloadLength, 24);
  }
  for (let i = 20 + l4h; i < p.length; i++) p[i] = next() & 0xff;
  const csumAt = 20 + (tcp ? 16 : 6);
  const pseudo = onesSum(p, 12, 8, p[9]! + p.length - 20);
  let c = internetChecksum(p, 20, p.length - 20, pseudo);
  if (!tcp && c === 0) c = 0xffff;
  p.writeUInt16BE(c, csumAt);
  return p;
}

function vxlanDatagram(inner: Buffer): Buffer {
  const d = Buffer.alloc(HEADROOM + inner.length);
  d[0] = 0x08;
  d.writeUIntBE(1, 4, 3); // VNI 1
  macFromString(MY_MAC).copy(d, 8);
  macFromString(PEER_MAC).copy(d, 14);
  d.writeUInt16BE(0x0800, 20);
  inner.copy(d, HEADROOM);
  return d;
}

function makeEngine(sum: OnesSumFn | undefined): { engine: Engine; tun: RecordingTun; net: FakeNetwork } {
  const net = new FakeNetwork();
  const tun = new RecordingTun(TUN_MTU);
  const bind = net.bind('198.18.0.2', 8472);
  const engine = new Engine(tun, bind, {
    vni: 1,
    vtepMac: macFromString(MY_MAC),
    vtepIp: ipv4FromString('10.244.2.0'),
    localSubnets: [{ family: 4, addr: ipv4FromString('10.244.2.0'), prefixLen: 24 }],
    port: 8472,
    maxInnerSize: TUN_MTU,
    tunMtu: TUN_MTU,
    ...(sum ? { onesSum: sum, encapBatch: native.encapBatch } : {}),
  });
  const cidr = parseCidr('10.244.1.0/24') as Cidr;
  engine.setRoutes(new RouteTable([{ prefix: cidr, target: { endpoint: { address: '198.18.0.1', port: 8472 }, vtepMac: macFromString(PEER_MAC), vni: 1 } }]));
  return { engine, tun, net };
}

describe('engine: native checksum vs TS reference', () => {
  it('turns 3000 random datagrams into byte-identical TUN writes and the same counters', () => {
    const next = rng(0xd1ff);
    const datagrams: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const kind = next() % 6;
      const tcp = kind !== 1;
      // kind 4: a kernel peer's unsegmented super-packet; others MTU-sized or smaller
      const payload = kind === 4 ? 1500 + (next() % 60000) : next() % (TUN_MTU - 40 + 1);
      const inner = randomIpPacket(next, payload, tcp);
      if (kind === 2 || kind === 4) setPartialL4Checksum(inner, 0, inner.length);
      if (kind === 3) inner[20 + (next() % (inner.length - 20))]! ^= 0xff; // a wrong checksum: left to the receiver
      const d = vxlanDatagram(inner);
      if (kind === 5 && next() % 4 === 0) d[next() % d.length]! ^= 1 << (next() % 8); // header damage
      datagrams.push(d);
    }
    const ts = makeEngine(undefined);
    const nat = makeEngine(nativeSum);
    const src: Endpoint = { address: '198.18.0.1', port: 40000 };
    for (let i = 0; i < datagrams.length; i += 64) {
      const batch = datagrams.slice(i, i + 64);
      // each engine gets its own copy: the inbound stage repairs in place
      for (const e of [ts, nat]) {
        const bufs = batch.map((b) => Buffer.from(b));
        e.engine.handleInbound(bufs, bufs.map((b) => b.length), bufs.map(() => src), bufs.length);
      }
    }
    expect(nat.tun.written.length).toBe(ts.tun.written.length);
    expect(ts.tun.written.length).toBeGreaterThan(3000); // super-packets became several writes
    for (let i = 0; i < ts.tun.written.length; i++) {
      if (!nat.tun.written[i]!.equals(ts.tun.written[i]!)) throw new Error(`TUN write ${i} differs`);
    }
    expect(nat.engine.counters.snapshot()).toEqual(ts.engine.counters.snapshot());
    const snap = ts.engine.counters.snapshot();
    expect(snap.fixed['checksum-completed']).toBeGreaterThan(300);
    expect(snap.fixed['gso-segmented']).toBeGreaterThan(300);
  });

  it('turns random TUN packets into byte-identical VXLAN frames', () => {
    const next = rng(0xe4ca);
    const ts = makeEngine(undefined);
    const nat = makeEngine(nativeSum);
    for (let round = 0; round < 20; round++) {
      const packets = Array.from({ length: 64 }, () => {
        const p = randomIpPacket(next, next() % (TUN_MTU - 40), next() & 1 ? true : false);
        // reply direction: 10.244.2.x -> 10.244.1.y so the route to the peer applies
        const s = p.readUInt32BE(12);
        p.writeUInt32BE(p.readUInt32BE(16), 12);
        p.writeUInt32BE(s, 16);
        return p;
      });
      for (const e of [ts, nat]) {
        const bufs = packets.map((p) => {
          const b = Buffer.alloc(HEADROOM + TUN_MTU + 64, 0xa5);
          p.copy(b, HEADROOM);
          return b;
        });
        e.engine.handleOutbound(bufs, packets.map((p) => p.length), packets.length);
      }
    }
    expect(nat.net.log.length).toBe(20 * 64);
    expect(nat.net.log.map((d) => d.bytes.toString('hex'))).toEqual(ts.net.log.map((d) => d.bytes.toString('hex')));
  });
});

describe('NativeBind on loopback (recvmmsg/sendmmsg, UDP GSO)', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  const receiver = (): Promise<Receiver> => loopbackReceiver(open);

  /** A batch as the engine makes one: runs of equal-sized datagrams with a short one between. */
  function batch(next: () => number): { bufs: Buffer[]; sizes: number[] } {
    const bufs: Buffer[] = [];
    const sizes: number[] = [];
    // 60 datagrams: what a default-sized receive buffer (net.core.rmem_default) holds at once
    for (let i = 0; i < 60; i++) {
      const size = i % 13 === 12 ? 1 + (next() % 1000) : 1200;
      const b = Buffer.alloc(size + 8, 0xa5);
      for (let k = 4; k < 4 + size; k++) b[k] = next() & 0xff;
      bufs.push(b);
      sizes.push(size);
    }
    return { bufs, sizes };
  }

  for (const gso of [true, false]) {
    it(`sends the same datagrams as DgramBind, in order (gso ${gso})`, async () => {
      const { bufs, sizes } = batch(rng(gso ? 7 : 8));
      const rxNative = await receiver();
      const rxDgram = await receiver();
      const nb = NativeBind.open('127.0.0.1', 0, { gso });
      open.push(nb);
      const db = await DgramBind.open('127.0.0.1', 0);
      open.push(db);
      expect(nb.send(bufs, sizes, 4, bufs.length, { address: '127.0.0.1', port: rxNative.port })).toBe(60);
      db.send(bufs, sizes, 4, bufs.length, { address: '127.0.0.1', port: rxDgram.port });
      await rxNative.until(60);
      await rxDgram.until(60);
      expect(rxNative.got.length).toBe(60);
      expect(rxNative.got.map((b) => b.toString('hex'))).toEqual(rxDgram.got.map((b) => b.toString('hex')));
      expect(nb.counters[UdpCounter.SendPackets]).toBe(60);
      if (gso) {
        expect(nb.features.gso).toBe(true); // Linux >= 4.18 has UDP_SEGMENT
        // runs of 12 full datagrams, each closed by a short one: 5 GSO messages, not 60 sends
        expect(nb.counters[UdpCounter.GsoSends]).toBe(5);
        expect(nb.counters[UdpCounter.GsoSegments]).toBe(60);
      } else {
        expect(nb.counters[UdpCounter.GsoSends]).toBe(0);
      }
    });
  }

  it('hands over exactly what a socket sent, with its source, in batches', async () => {
    const nb = NativeBind.open('127.0.0.1', 0);
    open.push(nb);
    const sender = dgram.createSocket('udp4');
    await new Promise<void>((r) => sender.bind(0, '127.0.0.1', () => r()));
    open.push({ close: () => new Promise<void>((r) => sender.close(() => r())) });
    const got: Array<{ hex: string; src: Endpoint }> = [];
    let batches = 0;
    nb.start((bufs, sizes, srcs, count) => {
      batches++;
      for (let i = 0; i < count; i++) got.push({ hex: bufs[i]!.subarray(0, sizes[i]!).toString('hex'), src: { ...srcs[i]! } });
    });
    const next = rng(99);
    const sent: string[] = [];
    for (let i = 0; i < 300; i++) {
      const b = Buffer.alloc(1 + (next() % 9000));
      for (let k = 0; k < b.length; k++) b[k] = next() & 0xff;
      sent.push(b.toString('hex'));
      sender.send(b, nb.local.port, '127.0.0.1');
    }
    for (let i = 0; i < 400 && got.length < 300; i++) await new Promise((r) => setTimeout(r, 5));
    expect(got.map((g) => g.hex)).toEqual(sent);
    for (const g of got) expect(g.src).toEqual({ address: '127.0.0.1', port: sender.address().port });
    expect(nb.counters[UdpCounter.RecvPackets]).toBe(300);
    expect(batches).toBeLessThan(300);
  });

  it('sends more datagrams than one sendmmsg takes (256) in order, the later calls from its own array', async () => {
    const rx = await receiver();
    rx.sock.setRecvBufferSize(400 * 1024); // 600 small datagrams at once
    const nb = NativeBind.open('127.0.0.1', 0, { gso: false });
    open.push(nb);
    const next = rng(21);
    const send = (n: number): string[] => {
      const bufs = Array.from({ length: n }, () => Buffer.from(Array.from({ length: 4 + 1 + (next() % 40) }, () => next() & 0xff)));
      expect(nb.send(bufs, bufs.map((b) => b.length - 4), 4, n, { address: '127.0.0.1', port: rx.port })).toBe(n);
      return bufs.map((b) => b.subarray(4).toString('hex'));
    };
    // A long call, then a shorter one that still needs a second sendmmsg: nothing of the first may come back.
    const sent = [...send(520), ...send(270)];
    await rx.until(sent.length);
    expect(rx.got.map((b) => b.toString('hex'))).toEqual(sent);
  });

  it('names each datagram’s own sender when senders alternate (two ports, two addresses)', async () => {
    const nb = NativeBind.open('127.0.0.1', 0);
    open.push(nb);
    const got: Endpoint[] = [];
    nb.start((_bufs, _sizes, srcs, count) => {
      for (let i = 0; i < count; i++) got.push({ ...srcs[i]! });
    });
    const senders = await alternatingSenders(open);
    const expected = sendAlternating(senders, nb.local.port, 90);
    for (let i = 0; i < 400 && got.length < 90; i++) await new Promise((r) => setTimeout(r, 5));
    expect(got).toEqual(expected);
  });

  it('flow-hashed source ports (RFC 7348 §5): one port per inner flow, flows spread over the pool, order kept', async () => {
    const rx = await receiver();
    const srcPortOf: Array<{ flow: number; seq: number; port: number }> = [];
    rx.sock.removeAllListeners('message');
    rx.sock.on('message', (m, rinfo) => srcPortOf.push({ flow: m.readUInt16BE(22 + 20), seq: m.readUInt32BE(22 + 24), port: rinfo.port }));
    const nb = NativeBind.open('127.0.0.1', 0, { sourcePorts: { min: 41000, max: 41999, sockets: 8 } });
    open.push(nb);
    expect(nb.sourcePorts.length).toBe(8);
    for (const p of nb.sourcePorts) expect(p >= 41000 && p <= 41999).toBe(true);
    const next = rng(5);
    // 32 flows (TCP source port = flow id), 4 datagrams each, interleaved, in one batch
    const bufs: Buffer[] = [];
    for (let seq = 0; seq < 4; seq++) {
      for (let flow = 0; flow < 32; flow++) {
        const inner = randomIpPacket(next, 100, true);
        inner.writeUInt32BE(ipv4FromString('10.244.1.5'), 12);
        inner.writeUInt32BE(ipv4FromString('10.244.2.7'), 16);
        inner.writeUInt16BE(flow, 20);
        inner.writeUInt16BE(80, 22);
        inner.writeUInt32BE(seq, 24);
        bufs.push(vxlanDatagram(inner));
      }
    }
    expect(nb.send(bufs, bufs.map((b) => b.length), 0, bufs.length, { address: '127.0.0.1', port: rx.port })).toBe(128);
    for (let i = 0; i < 400 && srcPortOf.length < 128; i++) await new Promise((r) => setTimeout(r, 5));
    expect(srcPortOf.length).toBe(128);
    const portOfFlow = new Map<number, number>();
    const lastSeq = new Map<number, number>();
    for (const d of srcPortOf) {
      expect(nb.sourcePorts).toContain(d.port);
      if (portOfFlow.has(d.flow)) expect(d.port).toBe(portOfFlow.get(d.flow));
      portOfFlow.set(d.flow, d.port);
      expect(d.seq).toBe((lastSeq.get(d.flow) ?? -1) + 1); // in order within the flow
      lastSeq.set(d.flow, d.seq);
    }
    expect(new Set(portOfFlow.values()).size).toBeGreaterThanOrEqual(5); // 32 flows over 8 ports
  });

  it('refuses a port in use with the errno name', async () => {
    const a = NativeBind.open('127.0.0.1', 0);
    open.push(a);
    expect(() => NativeBind.open('127.0.0.1', a.local.port)).toThrow(`cannot bind UDP 127.0.0.1:${a.local.port}: EADDRINUSE`);
  });
});

/** A plain UDP socket on 127.0.0.1 that keeps what arrives; `until(n)` waits (up to 2 s) for n datagrams. */
interface Receiver {
  sock: dgram.Socket;
  port: number;
  got: Buffer[];
  until: (n: number) => Promise<void>;
}
async function loopbackReceiver(open: Array<{ close(): unknown }>): Promise<Receiver> {
  const sock = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  sock.on('message', (m) => got.push(m));
  open.push({ close: () => new Promise<void>((r) => sock.close(() => r())) });
  const until = async (n: number): Promise<void> => {
    for (let i = 0; i < 400 && got.length < n; i++) await new Promise((r) => setTimeout(r, 5));
  };
  return { sock, port: sock.address().port, got, until };
}

/** Three UDP senders on loopback: two ports on 127.0.0.1, one on 127.0.0.2. */
async function alternatingSenders(open: Array<{ close(): unknown }>): Promise<dgram.Socket[]> {
  const senders: dgram.Socket[] = [];
  for (const address of ['127.0.0.1', '127.0.0.1', '127.0.0.2']) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, address, () => r()));
    open.push({ close: () => new Promise<void>((r) => s.close(() => r())) });
    senders.push(s);
  }
  return senders;
}

/** `n` one-byte datagrams to `port`, from the senders in turn (two from one, then one from the next, …); who sent each, in order. */
function sendAlternating(senders: dgram.Socket[], port: number, n: number): Endpoint[] {
  const from: Endpoint[] = [];
  for (let i = 0; i < n; i++) {
    const s = senders[Math.floor(i / 2) % senders.length]!;
    s.send(Buffer.from([i]), port, '127.0.0.1');
    const a = s.address();
    from.push({ address: a.address, port: a.port });
  }
  return from;
}

describe('DgramBind on loopback (the ts path’s Bind)', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  const receiver = (): Promise<Receiver> => loopbackReceiver(open);

  /** Ten datagrams of 1 to 1000 random bytes, each at offset 4 of its buffer. */
  function batch(next: () => number): { bufs: Buffer[]; sizes: number[] } {
    const sizes = Array.from({ length: 10 }, () => 1 + (next() % 1000));
    const bufs = sizes.map((size) => {
      const b = Buffer.alloc(size + 8, 0xa5);
      for (let k = 4; k < 4 + size; k++) b[k] = next() & 0xff;
      return b;
    });
    return { bufs, sizes };
  }
  const payloads = (bufs: Buffer[], sizes: number[]): string[] => bufs.map((b, i) => b.subarray(4, 4 + sizes[i]!).toString('hex'));

  it('DgramBind sends to an IPv4 peer without a DNS lookup per datagram (and the bytes still arrive)', async () => {
    // dgram's default resolves every send's address (dns.lookup and a nextTick, even for a literal).
    const rx = await receiver();
    const lookup = vi.spyOn(dns, 'lookup');
    try {
      const db = await DgramBind.open('127.0.0.1', 0);
      open.push(db);
      const { bufs, sizes } = batch(rng(11));
      expect(db.send(bufs, sizes, 4, 10, { address: '127.0.0.1', port: rx.port })).toBe(10);
      await rx.until(10);
      expect(rx.got.map((b) => b.toString('hex'))).toEqual(payloads(bufs, sizes));
      expect(lookup).not.toHaveBeenCalled();
    } finally {
      lookup.mockRestore();
    }
  });

  it('still resolves a peer given by name (localhost), as dgram would', async () => {
    const rx = await receiver();
    const db = await DgramBind.open('127.0.0.1', 0);
    open.push(db);
    const { bufs, sizes } = batch(rng(12));
    expect(db.send(bufs, sizes, 4, 10, { address: 'localhost', port: rx.port })).toBe(10);
    await rx.until(10);
    // Each send resolves the name on its own, and the answers may come back in any order.
    expect(rx.got.map((b) => b.toString('hex')).sort()).toEqual(payloads(bufs, sizes).sort());
  });

  it('names each datagram’s own sender when senders alternate (two ports, two addresses)', async () => {
    const db = await DgramBind.open('127.0.0.1', 0);
    open.push(db);
    const got: Endpoint[] = [];
    db.start((_bufs, _sizes, srcs, count) => {
      for (let i = 0; i < count; i++) got.push({ ...srcs[i]! });
    });
    const expected = sendAlternating(await alternatingSenders(open), db.local.port, 90);
    for (let i = 0; i < 400 && got.length < 90; i++) await new Promise((r) => setTimeout(r, 5));
    expect(got).toEqual(expected);
  });
});
