/**
 * vxtun's udp backend against a second implementation of flannel's udp wire format: a C udp proxy in
 * flannel's udp-backend design (one read and one sendto per packet), written for vxtun — not
 * flannel's code (bench/udp-proxy-c, src/tools/lab/udp-proxy-c.ts). Node 1 runs vxtun (static peers,
 * backend udp), nodes 2 and 3 run the C proxy; the wire is checked byte by byte, pods ping and move
 * TCP data (sha256 compared) vxtun ↔ C both ways and C ↔ C (the bench's `udp-proxy-c` case), and the
 * proxy's drops are counted by reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology, processOutput, type Netns } from '../../src/tools/lab/netns.js';
import { Underlay } from '../../src/tools/lab/underlay.js';
import { addPod } from '../../src/tools/lab/pods.js';
import { capture, parseTcpdump } from '../support/capture.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { VxtunProcess } from '../../src/tools/lab/cluster.js';
import { UdpProxyCNode, buildUdpProxyC, parseUdpProxyCCounters } from '../../src/tools/lab/udp-proxy-c.js';
import { emitIpv4, ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { internetChecksum } from '../../src/packet/wire/checksum.js';
import { requirePrerequisites, ping, tcpTransfer, toolsDir } from '../support/integration.js';

const NETWORK = '10.244.0.0/16';
const leaseOf = (i: number): string => `10.244.${i}.0/24`;
const publicIpOf = (i: number): string => `198.18.0.${i}`;
const podIpOf = (i: number): string => `10.244.${i}.2`;
/** The MTU of a flannel udp network on a 1500-byte underlay (FLANNEL_MTU): what the CNI plugin gives pods. */
const UDP_MTU = 1472;

/** A 28-byte IPv4/UDP packet to `dst` as the C proxy would receive it in a datagram. */
function innerPacket(dst: string, ttl: number): Buffer {
  const b = Buffer.alloc(28);
  emitIpv4({ src: ipv4FromString(podIpOf(1)), dst: ipv4FromString(dst), protocol: 17, ttl, payloadLength: 8 }, b, 0);
  return b;
}

describe("vxtun's udp backend ↔ a C udp proxy in flannel's udp-backend design (written for vxtun)", () => {
  const topology = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-udp-proxy-c-'));
  topology.atDestroy(() => rmSync(dir, { recursive: true, force: true }));
  const nodes: Netns[] = [];
  const pods: Netns[] = [];
  let vxtun: VxtunProcess;
  const proxies: UdpProxyCNode[] = [];
  const peersOf = (i: number) => [1, 2, 3].filter((j) => j !== i).map((j) => ({ subnet: leaseOf(j), publicIp: publicIpOf(j) }));

  beforeAll(async () => {
    requirePrerequisites(['ip', 'ping', 'tcpdump', 'gcc']);
    await buildUdpProxyC();
    const underlay = await Underlay.create(topology);
    for (const i of [1, 2, 3]) {
      const ns = await topology.netns(`n${i}`);
      await underlay.attach(ns, publicIpOf(i));
      nodes.push(ns);
      pods.push(await addPod(ns, { name: `n${i}pod`, gatewayCidr: `10.244.${i}.1/24`, podIp: `${podIpOf(i)}/24`, mtu: UDP_MTU }));
    }
    vxtun = VxtunProcess.start(nodes[0]!, { publicIp: publicIpOf(1), network: NETWORK, subnet: leaseOf(1), backend: { type: 'udp', port: 8285 }, peers: peersOf(1), subnetEnv: join(dir, 'n1.env') }, dir);
    await vxtun.ready();
    for (const i of [2, 3]) proxies.push(await UdpProxyCNode.start(nodes[i - 1]!, { publicIp: publicIpOf(i), subnet: leaseOf(i), network: NETWORK, peers: peersOf(i) }));
  }, 120_000);

  afterAll(async () => {
    await vxtun?.stop();
    await Promise.all(proxies.map((p) => p.stop()));
    await topology.destroy();
  }, 60_000);

  it('the proxy node is laid out as a flannel udp node: flannel0 with <lease>.0/16, MTU underlay − 28, the network routed into it', async () => {
    expect(proxies[0]!.device).toBe('flannel0');
    const addr = JSON.parse((await nodes[1]!.ip(['-4', '-j', 'addr', 'show', 'dev', 'flannel0'])).stdout) as { mtu: number; addr_info: { local: string; prefixlen: number }[] }[];
    expect(addr[0]!.mtu).toBe(UDP_MTU);
    expect(addr[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.244.2.0/16']);
    const route = (await nodes[1]!.ip(['route', 'get', podIpOf(1)])).stdout;
    expect(route).toMatch(/dev flannel0/);
  });

  it('the C proxy sends the bare inner IPv4 packet from and to UDP 8285, TTL decremented with a valid header checksum', async () => {
    const cap = await capture(nodes[1]!, 'eth0', `udp and src host ${publicIpOf(2)} and dst host ${publicIpOf(1)}`, { count: 2 });
    const r = await ping(pods[1]!, podIpOf(1));
    expect(r.code, r.out).toBe(0);
    const packets = parseTcpdump((await cap.done).stdout);
    expect(packets.length).toBe(2);
    for (const p of packets) {
      const b = p.bytes;
      expect(b.readUInt16BE(12)).toBe(0x0800);
      const udp = 14 + (b[14]! & 0x0f) * 4;
      expect(b.readUInt16BE(udp)).toBe(8285);
      expect(b.readUInt16BE(udp + 2)).toBe(8285);
      const inner = b.subarray(udp + 8);
      expect(b.readUInt16BE(udp + 4)).toBe(8 + inner.length);
      expect(inner[0]).toBe(0x45); // nothing in front of the IPv4 header
      expect(inner.readUInt16BE(2)).toBe(inner.length);
      expect([...inner.subarray(12, 16)].join('.')).toBe(podIpOf(2));
      expect([...inner.subarray(16, 20)].join('.')).toBe(podIpOf(1));
      expect(inner[8]).toBe(62); // pod (64) -> node 2 forwards (63) -> the proxy (62)
      expect(internetChecksum(inner, 0, 20)).toBe(0);
    }
  });

  it('pods ping vxtun → C and C → vxtun; each proxy hop decrements the inner TTL', async () => {
    // pod (64) -> node forwards (63) -> sending proxy (62) | receiving proxy (61) -> node forwards (60), both ways
    const there = await ping(pods[0]!, podIpOf(2));
    expect(there.code, there.out).toBe(0);
    expect(there.out).toMatch(/ttl=60/);
    const back = await ping(pods[1]!, podIpOf(1));
    expect(back.code, back.out).toBe(0);
    expect(back.out).toMatch(/ttl=60/);
  });

  it('TCP data crosses vxtun → C and C → vxtun intact (sha256), counted by vxtun and by the proxy both ways', async () => {
    const before = await vxtun.counters();
    const proxyBefore = await proxies[0]!.counters();
    const there = await tcpTransfer(pods[0]!, pods[1]!, podIpOf(2), 4_000_000, 5411);
    expect(there.received).toEqual(there.sent);
    expect(there.received.bytes).toBe(4_000_000);
    const back = await tcpTransfer(pods[1]!, pods[0]!, podIpOf(1), 4_000_000, 5412);
    expect(back.received).toEqual(back.sent);
    expect(back.received.bytes).toBe(4_000_000);
    const after = await vxtun.counters();
    const proxyAfter = await proxies[0]!.counters();
    // 4 MB each way in ≤ 1472-byte packets: at least ~2,800 data packets in each direction through each end.
    expect(after.tx.packets - before.tx.packets).toBeGreaterThan(2_800);
    expect(after.rx.packets - before.rx.packets).toBeGreaterThan(2_800);
    expect(proxyAfter.tx.packets - proxyBefore.tx.packets).toBeGreaterThan(2_800);
    expect(proxyAfter.rx.packets - proxyBefore.rx.packets).toBeGreaterThan(2_800);
    expect(after.dropped['malformed-inner-ipv4'] ?? 0).toBe(before.dropped['malformed-inner-ipv4'] ?? 0);
    for (const reason of ['malformed-inner-ipv4', 'ttl-expired', 'no-route']) expect(proxyAfter.dropped[reason], reason).toBe(proxyBefore.dropped[reason]);
  });

  it('C ↔ C (both nodes on the C proxy) carries ping and TCP data (the bench case udp-proxy-c)', async () => {
    const r = await ping(pods[1]!, podIpOf(3));
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/ttl=60/);
    const t = await tcpTransfer(pods[2]!, pods[1]!, podIpOf(2), 4_000_000, 5413);
    expect(t.received).toEqual(t.sent);
    expect(t.received.bytes).toBe(4_000_000);
  });

  it('drops what it cannot forward under named counters and keeps running: no-route, malformed-inner-ipv4, ttl-expired', async () => {
    const proxy = proxies[1]!;
    const before = await proxy.counters();
    // 10.244.9.0/24 is inside the network (routed into flannel0) but no peer holds it.
    const lost = await ping(pods[2]!, '10.244.9.2');
    expect(lost.code).not.toBe(0);
    const badChecksum = innerPacket(podIpOf(3), 64);
    badChecksum.writeUInt8(badChecksum.readUInt8(10) ^ 0xff, 10);
    const longerThanDatagram = innerPacket(podIpOf(3), 64);
    longerThanDatagram.writeUInt16BE(100, 2);
    const datagrams = [Buffer.from('not an ip packet'), badChecksum, longerThanDatagram, innerPacket(podIpOf(3), 1)];
    await nodes[0]!.execOk([process.execPath, `${toolsDir}udp-send.mjs`, publicIpOf(3), '8285', ...datagrams.map((d) => d.toString('hex'))]);
    // The datagrams may still sit in the proxy's socket when it is first asked: ask until they are all counted.
    let after = before;
    const counted = (reason: string): number => after.dropped[reason]! - before.dropped[reason]!;
    // A timeout is left to the exact expectations below, which say what was counted.
    await waitFor(async () => ((after = await proxy.counters()), counted('malformed-inner-ipv4') + counted('ttl-expired') >= 4), { timeoutMs: 5000 }).catch(() => {});
    expect(counted('no-route')).toBe(2);
    expect(counted('malformed-inner-ipv4')).toBe(3);
    expect(counted('ttl-expired')).toBe(1);
    expect(after.rx).toEqual(before.rx);
    const still = await ping(pods[2]!, podIpOf(2));
    expect(still.code, still.out).toBe(0);
  });

  it('refuses a public IP the node does not have with one line naming it (exit 2), leaving no device behind', async () => {
    const binary = await buildUdpProxyC();
    const r = await nodes[1]!.exec([binary, '--public-ip', '198.18.0.99', '--tun-ip', '10.244.9.0/16']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('udp-proxy-c: --public-ip: "198.18.0.99": not an address of any interface on this host');
    expect((await nodes[1]!.exec(['ip', 'link', 'show', 'flannel1'])).code).not.toBe(0);
  });

  it('SIGTERM stops the proxy (exit 0) with its final counters, and flannel0 and its route go with it', async () => {
    const p = proxies.pop()!;
    expect(await p.stop()).toBe(0);
    const final = /counters at stop: (.*)/.exec(processOutput(p.child));
    expect(final, processOutput(p.child)).not.toBeNull();
    expect(parseUdpProxyCCounters(final![1]!).dropped['no-route']).toBeGreaterThanOrEqual(2);
    expect(processOutput(p.child)).toMatch(/udp-proxy-c stopped\n$/);
    expect((await nodes[2]!.exec(['ip', 'link', 'show', 'flannel0'])).code).not.toBe(0);
    expect((await nodes[2]!.exec(['ip', 'route', 'show', NETWORK])).stdout.trim()).toBe('');
  });
});
