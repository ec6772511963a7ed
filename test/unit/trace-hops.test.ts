/**
 * The whole path's pieces without a lab: a kernel hop's capture line read back, the same inner packet
 * recognised inside a VXLAN datagram and after a router hop (TTL and checksum changed), and the
 * merge into one time order that keeps a journey's own order where times tie.
 */
import { describe, expect, it } from 'vitest';
import { fingerprintOfIpv4, KernelHopPool, mergeHops, withKernelHops, type KernelHop } from '../../src/trace/hops.js';
import { parseCaptureLine } from '../../src/tools/lab/kernel-hops.js';
import type { Journey } from '../../src/trace/journey.js';
import type { TraceItem } from '../../src/trace/printer.js';

// ICMP echo request 10.244.2.9 → 10.244.1.2, id 0xabcd seq 1, TTL 64
const inner = Buffer.from('4500001c00010000400100000af402090af4010208000000abcd0001', 'hex');
const afterRouter = Buffer.from(inner);
afterRouter[8] = 63; // TTL
afterRouter.writeUInt16BE(0x1234, 10); // header checksum
const vxlanPayload = Buffer.concat([Buffer.from('0800000000000100', 'hex'), Buffer.from('0a58f4010200' + '0a58f4020200' + '0800', 'hex'), afterRouter]);
const udp = Buffer.from([0x04, 0xd2, 0x21, 0x18, 0, vxlanPayload.length + 8, 0, 0]); // 1234 → 8472
const outerHeader = Buffer.from('45000000000040004011000' + '0c6120002c6120001', 'hex');
outerHeader.writeUInt16BE(20 + udp.length + vxlanPayload.length, 2);
const outer = Buffer.concat([outerHeader, udp, vxlanPayload]);

describe('kernel hops', () => {
  it('knows one inner packet as itself, after a router hop, and inside a VXLAN datagram', () => {
    const a = fingerprintOfIpv4(inner);
    expect(a).toEqual({ fingerprint: expect.any(String), outer: false });
    expect(fingerprintOfIpv4(afterRouter)?.fingerprint).toBe(a!.fingerprint);
    expect(fingerprintOfIpv4(outer)).toEqual({ fingerprint: a!.fingerprint, outer: true });
    // UDP on another port is not VXLAN: its own packet, not the one inside
    const other = Buffer.from(outer);
    other.writeUInt16BE(4789, 22);
    expect(fingerprintOfIpv4(other)?.fingerprint).not.toBe(a!.fingerprint);
    expect(fingerprintOfIpv4(Buffer.from('6000', 'hex'))).toBeUndefined();
  });

  it('reads the capturer\'s lines: monotonic ns to ms, direction, device and what the device is', () => {
    const node = { ns: 'vxt-x-n1', node: '198.18.0.1', place: 'node' as const };
    expect(parseCaptureLine(`1234567890123 out eth0 ${outer.length} ${outer.toString('hex')}`, node)).toEqual({
      node: '198.18.0.1', place: 'node', device: 'eth0', role: 'underlay', direction: 'out', t: 1234567.890123, length: outer.length, fingerprint: fingerprintOfIpv4(inner)!.fingerprint,
    });
    const roles = ['veth3f2a', 'cni0', 'vxtun0', 'flannel.1', 'lo'].map((d) => parseCaptureLine(`1 in ${d} 28 ${inner.toString('hex')}`, node)?.role);
    expect(roles).toEqual(['veth', 'bridge', 'tun', 'vxlan', 'other']);
    expect(parseCaptureLine(`1 in eth0 28 ${inner.toString('hex')}`, { ...node, place: 'pod' })?.role).toBe('pod');
    expect(parseCaptureLine('ready', node)).toBeUndefined();
    expect(parseCaptureLine('12 sideways eth0 28 4500', node)).toBeUndefined();
  });

  it('merges vxtun\'s events and the kernel\'s hops into one time order; ties keep the kernel hop first, then the journey\'s own order', () => {
    const fp = fingerprintOfIpv4(inner)!.fingerprint;
    const hop = (t: number, device: string, direction: 'in' | 'out'): KernelHop => ({ node: '198.18.0.1', place: 'node', device, role: 'other', direction, t, length: 28, fingerprint: fp });
    const journey: Journey = {
      id: 1,
      node: { device: 'vxtun0', publicIp: '198.18.0.1', port: 8472, vni: 1, vtepMac: '0a:58:f4:01:00:00', subnet: '10.244.1.0/24' },
      direction: 'out',
      events: ['tun-read', 'classify', 'encap', 'udp-send'].map((point) => ({ point: point as 'tun-read', verdict: 'ok', t: 10, length: 28, vxlan: point === 'encap' || point === 'udp-send', bytes: inner.toString('base64') })),
      verdict: 'sent',
      dropped: false,
      peers: [],
    };
    journey.events[0]!.vxlan = false;
    const merged = mergeHops([journey], [hop(12, 'eth0', 'out'), hop(5, 'vxtun0', 'out'), hop(10, 'cni0', 'in')]);
    expect(merged.map((h) => `${h.by} ${h.point}`)).toEqual(['kernel vxtun0', 'kernel cni0', 'vxtun tun-read', 'vxtun classify', 'vxtun encap', 'vxtun udp-send', 'kernel eth0']);

    // the pool hands a journey the hops of its packet near its time, once
    const pool = new KernelHopPool();
    for (const h of [hop(5, 'vxtun0', 'out'), hop(9_000, 'vxtun0', 'out'), { ...hop(6, 'cni0', 'in'), fingerprint: 'another packet' }]) pool.add(h);
    const item = withKernelHops<TraceItem>({ kind: 'journey', journey }, pool);
    expect(item.hops?.filter((h) => h.by === 'kernel').map((h) => `${h.point} ${h.t}`)).toEqual(['vxtun0 5']);
    expect(withKernelHops<TraceItem>({ kind: 'journey', journey }, pool).hops).toBeUndefined(); // taken already

    // bounded: bulk traffic nobody traces cannot grow it without end (the newest stay)
    const small = new KernelHopPool(10_000, 100);
    for (let t = 0; t < 1000; t++) small.add(hop(t, 'cni0', 'in'));
    const kept = small.take(fp, 0, 1000);
    expect(kept.length).toBeLessThanOrEqual(100);
    expect(kept.at(-1)?.t).toBe(999);
  });
});
