/**
 * Issue 2, done-when: bad input on the underlay (short datagrams, wrong flags, reserved bits set,
 * wrong VNI, frames for another MAC, truncated or garbage inner packets) is dropped and counted by
 * reason, and the node keeps forwarding. A real process on the underlay sends the garbage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../../src/tools/lab/netns.js';
import { Cluster } from '../../src/tools/lab/cluster.js';
import { emitVxlan } from '../../src/packet/wire/vxlan.js';
import { emitEthernet, macFromString, EtherType } from '../../src/packet/wire/ethernet.js';
import { emitIpv4, IpProtocol, ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { emitArp, ArpOp } from '../../src/packet/wire/arp.js';
import { requirePrerequisites, toolsDir, ping } from './support.js';

/** A VXLAN datagram: header with `vni` and flags, inner Ethernet, then `inner`. */
function datagram(opts: { vni?: number; flags?: number; reserved?: [number, number]; dst: string; src: string; etherType: number; inner: Buffer }): Buffer {
  const b = Buffer.alloc(8 + 14 + opts.inner.length);
  emitVxlan({ vni: opts.vni ?? 1 }, b, 0);
  if (opts.flags !== undefined) b[0] = opts.flags;
  if (opts.reserved) b[opts.reserved[0]] = opts.reserved[1];
  emitEthernet({ dst: macFromString(opts.dst), src: macFromString(opts.src), etherType: opts.etherType }, b, 8);
  opts.inner.copy(b, 22);
  return b;
}

function icmpEcho(src: string, dst: string): Buffer {
  const p = Buffer.alloc(20 + 8 + 16, 0x5a);
  emitIpv4({ src: ipv4FromString(src), dst: ipv4FromString(dst), protocol: IpProtocol.ICMP, ttl: 64, payloadLength: 24 }, p, 0);
  p.writeUInt32BE(0x08000000, 20); // echo request, checksum left wrong on purpose: vxtun does not judge L4
  return p;
}

describe('bad input on the underlay', () => {
  const topology = new Topology();
  let cluster: Cluster;
  beforeAll(async () => {
    requirePrerequisites();
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'kernel'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('is dropped and counted by reason, and forwarding goes on', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const ok = { dst: v.vtepMac, src: k.vtepMac };
    const good = icmpEcho(k.podIp, v.podIp);
    const arp = Buffer.alloc(28);
    emitArp({ operation: ArpOp.REQUEST, senderMac: macFromString(k.vtepMac), senderIp: ipv4FromString(k.vtepIp), targetMac: Buffer.alloc(6), targetIp: ipv4FromString('10.244.1.77') }, arp, 0);
    const badIhl = Buffer.from(good);
    badIhl[0] = 0x43;
    const badVersion = Buffer.from(good);
    badVersion[0] = 0x55;
    const cases: Array<[reason: string, payloads: Buffer[]]> = [
      ['short-datagram', [Buffer.alloc(0), Buffer.from([0x08]), Buffer.from('0800000000000100', 'hex').subarray(0, 7)]],
      ['bad-flags', [datagram({ ...ok, etherType: EtherType.IPV4, inner: good, flags: 0x0c }), datagram({ ...ok, etherType: EtherType.IPV4, inner: good, flags: 0x00 })]],
      ['reserved-bits-set', [1, 2, 3, 7].map((i) => datagram({ ...ok, etherType: EtherType.IPV4, inner: good, reserved: [i, 0x01] }))],
      ['wrong-vni', [datagram({ ...ok, etherType: EtherType.IPV4, inner: good, vni: 2 }), datagram({ ...ok, etherType: EtherType.IPV4, inner: good, vni: 0xffffff })]],
      ['truncated-inner', [datagram({ ...ok, etherType: EtherType.IPV4, inner: good }).subarray(0, 8 + 13)]],
      ['wrong-dst-mac', [datagram({ dst: '0a:58:0a:f4:09:00', src: k.vtepMac, etherType: EtherType.IPV4, inner: good })]],
      ['unsupported-ethertype', [datagram({ ...ok, etherType: 0x88cc, inner: good })]],
      ['malformed-inner-ipv4', [
        datagram({ ...ok, etherType: EtherType.IPV4, inner: good.subarray(0, 12) }),
        datagram({ ...ok, etherType: EtherType.IPV4, inner: badIhl }),
        datagram({ ...ok, etherType: EtherType.IPV4, inner: badVersion }),
        datagram({ ...ok, etherType: EtherType.IPV4, inner: good.subarray(0, 30) }), // totalLength says 44
      ]],
      ['malformed-inner-ipv6', [datagram({ ...ok, etherType: EtherType.IPV6, inner: Buffer.alloc(39, 0x60) })]],
      ['malformed-arp', [datagram({ dst: 'ff:ff:ff:ff:ff:ff', src: k.vtepMac, etherType: EtherType.ARP, inner: arp.subarray(0, 20) })]],
      ['arp-not-for-us', [datagram({ dst: 'ff:ff:ff:ff:ff:ff', src: k.vtepMac, etherType: EtherType.ARP, inner: arp })]],
    ];
    const before = await v.vxtun!.counters();
    const all = cases.flatMap(([, p]) => p);
    const sent = await k.ns.execOk([process.execPath, `${toolsDir}udp-send.mjs`, v.publicIp, '8472', ...all.map((b) => b.toString('hex'))]);
    expect(sent.code).toBe(0);
    // The datagrams are in flight on a local bridge: wait until all of them are accounted for.
    let after = before;
    const deadline = Date.now() + 5000;
    const droppedDelta = (): number =>
      Object.keys(after.dropped).reduce((n, r) => n + after.dropped[r]! - before.dropped[r]!, 0);
    while (droppedDelta() < all.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      after = await v.vxtun!.counters();
    }
    for (const [reason, payloads] of cases) {
      expect(after.dropped[reason]! - before.dropped[reason]!, reason).toBe(payloads.length);
    }
    expect(droppedDelta()).toBe(all.length);
    expect(after.rx.packets).toBe(before.rx.packets);
    // Still forwarding, both ways.
    expect((await ping(k.pod, v.podIp)).code).toBe(0);
    expect((await ping(v.pod, k.podIp)).code).toBe(0);
  });
});
