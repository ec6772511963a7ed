// Property tests (fast-check) for the engine's outbound and inbound stages, through the in-process
// fakes: whatever packets the TUN hands it and whatever datagrams reach its port (random bytes and
// the kernel captures mutated), the engine never throws and every input ends forwarded, answered or
// dropped under a counted reason: the counters' differences add up to the inputs, and what they
// say went out is what the fakes saw go out. (A kernel peer's super-packet is one input and
// several packets written, rx counting each: the trace observer's decap points say which inputs
// were forwarded.)
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Engine } from '../../src/datapath/engine.js';
import type { CounterSnapshot } from '../../src/packet/counters.js';
import { RouteTable } from '../../src/packet/routes.js';
import { parseCidr } from '../../src/packet/cidr.js';
import { createFakeTun, type FakeTun } from '../../src/io/tun-fake.js';
import { FakeNetwork, type FakeBind } from '../../src/io/bind-fake.js';
import type { Endpoint } from '../../src/io/bind.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { emitEthernet, EtherType, macFromString } from '../../src/packet/wire/ethernet.js';
import { emitVxlan } from '../../src/packet/wire/vxlan.js';
import { ArpOp, emitArp } from '../../src/packet/wire/arp.js';
import { kernelFrames, mutated, packetBytes } from '../support/fuzz-arbitraries.js';

const PORT = 8472;
const A = { ip: '198.18.0.1', subnet: '10.244.1.0/24', vtep: '10.244.1.0', mac: '0a:58:0a:f4:01:00' };
const B = { ip: '198.18.0.2', subnet: '10.244.2.0/24', vtep: '10.244.2.0', mac: '0a:58:0a:f4:02:00' };
const STRANGER: Endpoint = { address: '198.18.0.9', port: PORT };

interface Node {
  tun: FakeTun;
  bind: FakeBind;
  engine: Engine;
}
const open: Node[] = [];
async function closeAll(): Promise<void> {
  for (const n of open.splice(0)) {
    n.engine.stop();
    n.tun.device.close();
    await n.bind.close();
  }
}
afterEach(closeAll);

/** A node with a route to the other one's subnet (IPv4 and fd00:244:N::/64). */
function node(net: FakeNetwork, self: typeof A, peer: typeof A): Node {
  const tun = createFakeTun(`fake-${self.ip}`, 1450);
  const bind = net.bind(self.ip, PORT);
  const own = [parseCidr(self.subnet), parseCidr(`fd00:244:${self.subnet.split('.')[2]}::/64`)].map((c) => {
    if (typeof c === 'string') throw new Error(c);
    return c;
  });
  const engine = new Engine(tun.device, bind, { vni: 1, vtepMac: macFromString(self.mac), vtepIp: ipv4FromString(self.vtep), localSubnets: own, port: PORT, maxInnerSize: 1450, tunMtu: 1450 });
  const target = { endpoint: { address: peer.ip, port: PORT }, vtepMac: macFromString(peer.mac), vni: 1 };
  const n6 = peer.subnet.split('.')[2];
  const routes = [parseCidr(peer.subnet), parseCidr(`fd00:244:${n6}::/64`)].map((prefix) => {
    if (typeof prefix === 'string') throw new Error(prefix);
    return { prefix, target };
  });
  engine.setRoutes(new RouteTable(routes));
  engine.start();
  const n = { tun, bind, engine };
  open.push(n);
  return n;
}

/** Inputs accounted for: `forwarded`, answered, dropped by reason. */
function outcomes(before: CounterSnapshot, after: CounterSnapshot, forwarded: number): number {
  let n = forwarded;
  for (const k of Object.keys(after.answered)) n += after.answered[k]! - before.answered[k]!;
  for (const k of Object.keys(after.dropped)) n += after.dropped[k]! - before.dropped[k]!;
  return n;
}

async function settle(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setImmediate(r));
  // A few more turns: a second outcome for one input would show now.
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

/** The inner packets (IP, ARP) of the captures, as the kernel would route them into a TUN. */
const innerPackets = kernelFrames.filter((f) => f.length > 64 && f.readUInt16BE(12) === 0x0800 && f[23] === 17).map((f) => f.subarray(14 + (f[14]! & 0x0f) * 4 + 8 + 22));
/** The VXLAN datagrams of the captures. */
const datagrams = kernelFrames.filter((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 17).map((f) => f.subarray(14 + (f[14]! & 0x0f) * 4 + 8));

/** A capture's inner packet readdressed to go from A's pod network to B's. */
function readdressed(p: Buffer): Buffer {
  const b = Buffer.from(p);
  if (b.length >= 20 && b[0]! >> 4 === 4) {
    b.writeUInt32BE(ipv4FromString('10.244.1.5'), 12);
    b.writeUInt32BE(ipv4FromString('10.244.2.7'), 16);
  }
  return b;
}

const outboundPacket = fc.oneof(packetBytes, mutated(innerPackets), mutated(innerPackets.map(readdressed)));
/** An ARP request over VXLAN for B's VTEP address: answered when a peer sends it (rare among mutated captures, so given outright). */
function arpForB(): Buffer {
  const d = Buffer.alloc(8 + 14 + 28);
  emitVxlan({ vni: 1 }, d, 0);
  emitEthernet({ dst: Buffer.alloc(6, 0xff), src: macFromString(A.mac), etherType: EtherType.ARP }, d, 8);
  emitArp({ operation: ArpOp.REQUEST, senderMac: macFromString(A.mac), senderIp: ipv4FromString(A.vtep), targetMac: Buffer.alloc(6), targetIp: ipv4FromString(B.vtep) }, d, 22);
  return d;
}
const inboundDatagram = fc.oneof({ arbitrary: packetBytes, weight: 4 }, { arbitrary: mutated(datagrams), weight: 4 }, { arbitrary: fc.constant(arpForB()), weight: 1 });
const sender = fc.constantFrom<Endpoint>({ address: A.ip, port: PORT }, { address: A.ip, port: 40001 }, STRANGER);

/** What the runs of a property reached, so a property that never forwards or answers fails. */
const reached = { forwarded: 0, answered: 0, dropped: 0 };
function tally(before: CounterSnapshot, after: CounterSnapshot, forwarded: number): void {
  reached.forwarded += forwarded;
  reached.answered += outcomes(before, after, 0) - droppedBetween(before, after);
  reached.dropped += droppedBetween(before, after);
}
const droppedBetween = (before: CounterSnapshot, after: CounterSnapshot): number =>
  Object.keys(after.dropped).reduce((n, k) => n + after.dropped[k]! - before.dropped[k]!, 0);

describe('engine properties', () => {
  afterEach(() => {
    expect(reached.forwarded).toBeGreaterThan(0);
    expect(reached.answered).toBeGreaterThan(0);
    expect(reached.dropped).toBeGreaterThan(0);
    Object.assign(reached, { forwarded: 0, answered: 0, dropped: 0 });
  });

  it('outbound: every packet read from the TUN is forwarded, answered or dropped under a counted reason, once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(outboundPacket, { minLength: 1, maxLength: 24 }), async (packets) => {
        const net = new FakeNetwork();
        const a = node(net, A, B);
        const before = a.engine.counters.snapshot();
        for (const p of packets) a.tun.inject(p);
        const tx = (): number => a.engine.counters.snapshot().tx.packets - before.tx.packets;
        await settle(() => outcomes(before, a.engine.counters.snapshot(), tx()) >= packets.length);
        const after = a.engine.counters.snapshot();
        expect(outcomes(before, after, tx())).toBe(packets.length);
        tally(before, after, tx());
        expect(net.log.filter((d) => d.src.address === A.ip).length).toBe(after.tx.packets - before.tx.packets);
        const answered = Object.keys(after.answered).reduce((n, k) => n + after.answered[k]! - before.answered[k]!, 0);
        expect(a.tun.written.length).toBe(answered);
        await closeAll();
      }),
      { numRuns: 150 },
    );
  });

  it('inbound: every datagram reaching the port is forwarded, answered or dropped under a counted reason, once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(inboundDatagram, sender), { minLength: 1, maxLength: 24 }), async (inputs) => {
        const net = new FakeNetwork();
        const b = node(net, B, A);
        let decapped = 0;
        b.engine.setObserver((e) => {
          if (e.point === 'decap' && e.verdict === 'ok') decapped++;
        });
        const before = b.engine.counters.snapshot();
        for (const [d, src] of inputs) net.inject(src, { address: B.ip, port: PORT }, d);
        await settle(() => outcomes(before, b.engine.counters.snapshot(), decapped) >= inputs.length);
        const after = b.engine.counters.snapshot();
        // Each forwarded input once, and the ARP replies (decapped too) once as answered.
        const arpReplies = after.answered['arp-reply']! - before.answered['arp-reply']!;
        expect(outcomes(before, after, decapped - arpReplies)).toBe(inputs.length);
        tally(before, after, decapped - arpReplies);
        expect(after.rx.packets - before.rx.packets).toBeGreaterThanOrEqual(decapped - arpReplies);
        expect(b.tun.written.length).toBe(after.rx.packets - before.rx.packets);
        expect(net.log.filter((d) => d.src.address === B.ip).length).toBe(arpReplies + after.tx.packets - before.tx.packets);
        await closeAll();
      }),
      { numRuns: 150 },
    );
  });
});
