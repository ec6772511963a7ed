/**
 * Issue 16, fuzzing: a vxtun node receives a seeded stream of hostile VXLAN from a peer's namespace —
 * random bytes, and kernel-captured datagrams readdressed to it, then with bytes changed, cut short
 * or extended (test/tools/udp-hostile.mjs). Afterwards the node is alive, forwards a ping both
 * ways, and its inbound counters account for every datagram: written to the TUN, answered (ARP) or
 * dropped under an inbound reason. scripts/asan-check.sh runs this test against the addon built
 * with AddressSanitizer and UndefinedBehaviorSanitizer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology } from '../../src/tools/lab/netns.js';
import { Cluster } from '../../src/tools/lab/cluster.js';
import { DropReason, type CounterSnapshot } from '../../src/packet/counters.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import { listKernelFixtures, loadTcpdumpHex } from '../fixtures/load.js';
import { ping, requirePrerequisites, toolsDir } from './support.js';

const COUNT = Number(process.env.HOSTILE_COUNT ?? 20_000);

/** Drop reasons of the inbound path (underlay -> TUN): DropReason from ShortDatagram on. */
const INBOUND_REASONS = Object.values(DropReason).slice(Object.values(DropReason).indexOf(DropReason.ShortDatagram));

/** Datagrams taken off the port: written to the TUN, answered with ARP, or dropped inbound. */
function inboundOutcomes(s: CounterSnapshot): number {
  return s.rx.packets + (s.answered['arp-reply'] ?? 0) + INBOUND_REASONS.reduce((n, r) => n + (s.dropped[r] ?? 0), 0);
}

/** The kernel captures' VXLAN datagrams (not the GSO one: a super-packet is several packets written), addressed to `mac`/`ip`. */
function seeds(mac: string, ip: string): Buffer[] {
  return listKernelFixtures()
    .filter((n) => n.startsWith('vxlan-') && n !== 'vxlan-tcp-gso')
    .map((n) => {
      const f = loadTcpdumpHex(n).bytes;
      const d = Buffer.from(f.subarray(14 + (f[14]! & 0x0f) * 4 + 8));
      if (d[8]! !== 0xff) macFromString(mac).copy(d, 8);
      if (d.readUInt16BE(20) === 0x0800) d.writeUInt32BE(ipv4FromString(ip), 22 + 16);
      return d;
    });
}

describe('a hostile stream of VXLAN', () => {
  const topology = new Topology();
  let cluster: Cluster;
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-hostile-'));
  beforeAll(async () => {
    requirePrerequisites();
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'kernel'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`leaves the node alive and forwarding, every one of ${COUNT} datagrams counted`, async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const seedsFile = join(dir, 'seeds.hex');
    writeFileSync(seedsFile, seeds(v.vtepMac, v.podIp).map((b) => b.toString('hex')).join('\n'));
    const before = await v.vxtun!.counters();
    const r = await k.ns.execOk([process.execPath, `${toolsDir}udp-hostile.mjs`, v.publicIp, '8472', seedsFile, String(COUNT), '16'], { timeoutMs: 120_000 });
    expect(Number(r.stdout.trim())).toBe(COUNT);
    let after = before;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      after = await v.vxtun!.counters();
      if (inboundOutcomes(after) - inboundOutcomes(before) >= COUNT) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(inboundOutcomes(after) - inboundOutcomes(before)).toBe(COUNT);
    // The stream reached past the first checks: some were forwarded, some dropped deep inside.
    expect(after.rx.packets - before.rx.packets).toBeGreaterThan(0);
    expect(after.dropped['malformed-inner-ipv4']! - before.dropped['malformed-inner-ipv4']!).toBeGreaterThan(0);
    expect((await ping(k.pod, v.podIp)).code).toBe(0);
    expect((await ping(v.pod, k.podIp)).code).toBe(0);
    const status = await v.vxtun!.counters();
    expect(status.rx.packets).toBeGreaterThan(after.rx.packets);
  });
});
