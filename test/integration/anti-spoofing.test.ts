/**
 * Issue 16, item 1: anti-spoofing with a vxtun node (node 1), a kernel-VXLAN peer set up as flanneld
 * sets up flannel.1 (node 2) and an underlay host that is no peer (198.18.0.9). Crafted VXLAN from the
 * non-peer and from the peer's own underlay address (a small UDP sender: test/tools/udp-send.mjs)
 * never reaches vxtun's TUN (tcpdump on vxtun0) and is counted under unknown-peer, spoofed-source and
 * not-for-this-node; an ARP request from the non-peer gets no reply; one crafted legitimate datagram
 * does reach the TUN (the capture sees what it should); pod traffic both ways is unaffected. Each
 * crafted datagram is sent on its own, so the addon's express path judges it first: its counters
 * show it forwarded only the legitimate one and handed every other to the engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, type Netns } from '../../src/tools/lab/netns.js';
import { Cluster, type ClusterNode } from '../../src/tools/lab/cluster.js';
import { controlRequest } from '../../src/control/socket.js';
import { capture } from '../support/capture.js';
import { requirePrerequisites, tcpTransfer, ping, toolsDir } from '../support/integration.js';
import { emitVxlan } from '../../src/packet/wire/vxlan.js';
import { emitEthernet, EtherType, macFromString } from '../../src/packet/wire/ethernet.js';
import { emitIpv4, ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { emitIpv6, ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { emitArp, ArpOp } from '../../src/packet/wire/arp.js';
import { completeL4Checksum } from '../../src/packet/wire/l4checksum.js';
import type { CounterSnapshot } from '../../src/packet/counters.js';

const MB = 1024 * 1024;
/** Every crafted inner packet is UDP to this port: what the TUN capture looks for. */
const MARK_PORT = 7777;
const STRANGER_IP = '198.18.0.9';

interface NodeInfo {
  features: { express?: boolean };
  datapathCounters: { express: Record<string, number> };
}
const info = (n: ClusterNode): Promise<NodeInfo> => controlRequest(n.vxtun!.controlSocket, { cmd: 'info' }) as Promise<NodeInfo>;

/** A VXLAN datagram (VNI 1) to vxtun's VTEP MAC from `srcMac`, carrying UDP to MARK_PORT from `src` to `dst` (IPv4 or IPv6). */
function vxlanUdp(srcMac: string, dstMac: string, src: string, dst: string, srcPort: number): Buffer {
  const v6 = src.includes(':');
  const ipLen = (v6 ? 40 : 20) + 8 + 16;
  const d = Buffer.alloc(22 + ipLen);
  emitVxlan({ vni: 1 }, d, 0);
  emitEthernet({ dst: macFromString(dstMac), src: macFromString(srcMac), etherType: v6 ? EtherType.IPV6 : EtherType.IPV4 }, d, 8);
  if (v6) emitIpv6({ src: ipv6FromString(src), dst: ipv6FromString(dst), nextHeader: 17, hopLimit: 64, payloadLength: 24 }, d, 22);
  else emitIpv4({ src: ipv4FromString(src), dst: ipv4FromString(dst), protocol: 17, ttl: 64, payloadLength: 24 }, d, 22);
  const udp = 22 + (v6 ? 40 : 20);
  d.writeUInt16BE(srcPort, udp);
  d.writeUInt16BE(MARK_PORT, udp + 2);
  d.writeUInt16BE(24, udp + 4);
  d.write('vxtun-anti-spoof', udp + 8);
  completeL4Checksum(d, 22, ipLen);
  return d;
}

/** A broadcast ARP request over VXLAN for `targetIp`, as a kernel VTEP sends one. */
function vxlanArp(senderMac: string, senderIp: string, targetIp: string): Buffer {
  const d = Buffer.alloc(22 + 28);
  emitVxlan({ vni: 1 }, d, 0);
  emitEthernet({ dst: Buffer.alloc(6, 0xff), src: macFromString(senderMac), etherType: EtherType.ARP }, d, 8);
  emitArp({ operation: ArpOp.REQUEST, senderMac: macFromString(senderMac), senderIp: ipv4FromString(senderIp), targetMac: Buffer.alloc(6), targetIp: ipv4FromString(targetIp) }, d, 22);
  return d;
}

/** Sends one datagram from `ns` to vxtun's VXLAN port: one process per datagram, so each arrives alone. */
async function sendFrom(ns: Netns, to: string, datagram: Buffer): Promise<void> {
  await ns.execOk([process.execPath, `${toolsDir}udp-send.mjs`, to, '8472', datagram.toString('hex')]);
}

function dropDelta(before: CounterSnapshot, after: CounterSnapshot, reason: string): number {
  return after.dropped[reason]! - before.dropped[reason]!;
}

describe('anti-spoofing: vxtun, a kernel flannel.1 peer and an underlay host that is no peer', () => {
  const topology = new Topology();
  let cluster: Cluster;
  let stranger: Netns;

  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'tcpdump']);
    // The kernel socket filter (datapath.peerFilter) would drop the non-peer's datagrams before the
    // policy sees them (loud-faults.test.ts covers it): off here, so the policy's own checks are judged.
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'kernel'], vxtunConfig: { datapath: { peerFilter: false } } });
    stranger = await topology.netns('x9');
    await cluster.underlay.attach(stranger, STRANGER_IP, { mtu: 1500 });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('spoofed and relayed packets from the non-peer and from the peer never reach the TUN and are counted by reason; ARP from the non-peer gets no reply; the express path forwards none of them', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    expect((await info(v)).features.express).toBe(true);
    const before = await v.vxtun!.counters();
    const expressBefore = (await info(v)).datapathCounters.express;
    const tunCap = await capture(v.ns, 'vxtun0', `udp port ${MARK_PORT}`, { flags: ['-n'] });
    const arpCap = await capture(stranger, 'eth0', `udp and src host ${v.publicIp}`, { flags: ['-n'] });

    let port = 40000;
    // From a host that is no peer: even a well-formed packet from the peer's subnet, IPv6, a relay, and ARP for our VTEP address.
    const fromStranger = [
      vxlanUdp(k.vtepMac, v.vtepMac, '10.244.2.5', v.podIp, port++),
      vxlanUdp(k.vtepMac, v.vtepMac, 'fd00:244:2::5', 'fd00:244:1::2', port++),
      vxlanUdp(k.vtepMac, v.vtepMac, '10.244.2.5', '10.244.3.7', port++),
      vxlanArp(k.vtepMac, k.vtepIp, v.vtepIp),
    ];
    for (const d of fromStranger) await sendFrom(stranger, v.publicIp, d);
    // From the peer's underlay address: sources outside its subnet (ours among them), IPv6 from a subnet not routed to it.
    const spoofedByPeer = [
      vxlanUdp(k.vtepMac, v.vtepMac, '10.244.7.5', v.podIp, port++),
      vxlanUdp(k.vtepMac, v.vtepMac, '10.244.1.9', v.podIp, port++),
      vxlanUdp(k.vtepMac, v.vtepMac, 'fd00:244:7::5', 'fd00:244:1::2', port++),
    ];
    for (const d of spoofedByPeer) await sendFrom(k.ns, v.publicIp, d);
    // From the peer, from its own subnet, but not for this node: to a third node, and into vxtun's underlay.
    const relayedByPeer = [vxlanUdp(k.vtepMac, v.vtepMac, '10.244.2.5', '10.244.3.7', port++), vxlanUdp(k.vtepMac, v.vtepMac, '10.244.2.5', v.publicIp, port++)];
    for (const d of relayedByPeer) await sendFrom(k.ns, v.publicIp, d);
    // The one legitimate crafted datagram: shows the capture sees what reaches the TUN.
    const legitPort = port++;
    await sendFrom(k.ns, v.publicIp, vxlanUdp(k.vtepMac, v.vtepMac, '10.244.2.5', v.podIp, legitPort));

    await new Promise((r) => setTimeout(r, 500));
    const tun = await tunCap.stop();
    const arp = await arpCap.stop();
    const after = await v.vxtun!.counters();
    const expressAfter = (await info(v)).datapathCounters.express;

    const seenOnTun = tun.stdout.split('\n').filter((l) => l.includes(`.${MARK_PORT}:`));
    expect(seenOnTun, tun.stdout).toHaveLength(1);
    expect(seenOnTun[0]).toContain(`10.244.2.5.${legitPort} > ${v.podIp}.${MARK_PORT}`);
    expect(dropDelta(before, after, 'unknown-peer')).toBe(fromStranger.length);
    expect(dropDelta(before, after, 'spoofed-source')).toBe(spoofedByPeer.length);
    expect(dropDelta(before, after, 'not-for-this-node')).toBe(relayedByPeer.length);
    // No ARP reply (nor anything else) went to the non-peer.
    expect(after.answered['arp-reply']! - before.answered['arp-reply']!).toBe(0);
    expect(arp.stdout.trim(), arp.stdout).toBe('');
    // The express path judged each lone datagram first: it forwarded only the legitimate one, handed the rest over.
    expect(expressAfter.RxPackets! - expressBefore.RxPackets!).toBe(1);
    expect(expressAfter.InHandedOver! - expressBefore.InHandedOver!).toBeGreaterThanOrEqual(fromStranger.length + spoofedByPeer.length + relayedByPeer.length);
  });

  it('legitimate traffic both ways is unaffected: pings, VTEP to VTEP, and 10 MB of TCP each way with identical sha256', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const before = await v.vxtun!.counters();
    expect((await ping(v.pod, k.podIp)).code).toBe(0);
    expect((await ping(k.pod, v.podIp)).code).toBe(0);
    expect((await ping(k.ns, v.vtepIp)).code).toBe(0);
    const there = await tcpTransfer(v.pod, k.pod, k.podIp, 10 * MB, 5301);
    expect(there.received).toEqual(there.sent);
    expect(there.sent.bytes).toBe(10 * MB);
    const back = await tcpTransfer(k.pod, v.pod, v.podIp, 10 * MB, 5302);
    expect(back.received).toEqual(back.sent);
    const after = await v.vxtun!.counters();
    for (const reason of ['unknown-peer', 'spoofed-source', 'not-for-this-node']) expect(dropDelta(before, after, reason), reason).toBe(0);
  });
});
