// The engine's per-batch arrays keep their length from batch to batch and carry a count instead
// (Engine `groups`, `outBufs`; Pipeline.sendToPeer): a batch smaller than the one before must
// still send and write exactly its own packets, never a stale entry left past its count. And the
// engine allocates (next to) nothing per packet, the reason for all this (V8's young generation
// grew with that garbage, and the RSS with it).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { requireNative } from '../../src/io/addon.js';
import type { Observation } from '../../src/datapath/observe.js';
import { Engine, HEADROOM } from '../../src/datapath/engine.js';
import { RouteTable, type Vtep } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import type { TunDevice } from '../../src/io/tun-device.js';
import type { Bind, Endpoint } from '../../src/io/bind.js';
import { emitIpv4, ipv4FromString, IpProtocol } from '../../src/packet/wire/ipv4.js';
import { emitVxlan, VXLAN_HEADER_LEN } from '../../src/packet/wire/vxlan.js';
import { emitEthernet, EtherType, macFromString } from '../../src/packet/wire/ethernet.js';

const OUR_MAC = macFromString('0a:58:0a:f4:01:00');
const cidr = (s: string): Cidr => {
  const c = parseCidr(s);
  if (typeof c === 'string') throw new Error(c);
  return c;
};
const peer = (n: number): Vtep => ({ endpoint: { address: `198.18.0.${n}`, port: 8472 }, vtepMac: macFromString(`0a:58:0a:f4:0${n}:00`), vni: 1 });
const PEER2 = peer(2);
const PEER3 = peer(3);

/** A TUN and a Bind that record what they were handed: the first `count` entries, as the interfaces say. */
function recordingEnds(): { tun: TunDevice; bind: Bind; sent: { to: string; ids: number[] }[]; written: number[][] } {
  const sent: { to: string; ids: number[] }[] = [];
  const written: number[][] = [];
  const tun: TunDevice = {
    name: 'rec0',
    mtu: 1450,
    read: () => 0,
    write: (bufs, _sizes, offset, count) => {
      written.push(bufs.slice(0, count).map((b) => b.readUInt16BE(offset + 4)));
      return count;
    },
    start: () => {},
    close: () => {},
  };
  const bind: Bind = {
    local: { address: '198.18.0.1', port: 8472 },
    send: (bufs, _sizes, offset, count, dst: Endpoint) => {
      // The IPv4 identification of each inner packet, after the 50-byte encap header.
      sent.push({ to: dst.address, ids: bufs.slice(0, count).map((b) => b.readUInt16BE(offset + HEADROOM + 4)) });
      return count;
    },
    start: () => {},
    close: async () => {},
  };
  return { tun, bind, sent, written };
}

/** The engine on the TS encap, or with the addon's batch encap as the native datapath gives it. */
function engine(encap: 'ts' | 'native' = 'ts'): { engine: Engine; points: Map<string, number> } & ReturnType<typeof recordingEnds> {
  const ends = recordingEnds();
  const native = encap === 'native' ? { encapBatch: requireNative().encapBatch } : {};
  const e = new Engine(ends.tun, ends.bind, { vni: 1, vtepMac: OUR_MAC, vtepIp: ipv4FromString('10.244.1.0'), localSubnets: [{ family: 4, addr: ipv4FromString('10.244.1.0'), prefixLen: 24 }], port: 8472, maxInnerSize: 1450, tunMtu: 1450, batchSize: 64, ...native });
  // Observation points counted, as a trace would see them (emptied by the test after each batch).
  const points = new Map<string, number>();
  e.setObserver((o: Observation) => points.set(`${o.point} ${o.verdict}`, (points.get(`${o.point} ${o.verdict}`) ?? 0) + 1));
  e.setRoutes(
    new RouteTable([
      { prefix: cidr('10.244.2.0/24'), target: PEER2 },
      { prefix: cidr('10.244.3.0/24'), target: PEER3 },
    ]),
  );
  return { engine: e, points, ...ends };
}

/** An IPv4/UDP packet to 10.244.<node>.2 with identification `id`, at `offset` (to us, node 1, from node 2's subnet). */
function inner(buf: Buffer, offset: number, node: number, id: number): number {
  emitIpv4({ src: ipv4FromString(node === 1 ? '10.244.2.2' : '10.244.1.2'), dst: ipv4FromString(`10.244.${node}.2`), protocol: IpProtocol.UDP, ttl: 64, payloadLength: 28, identification: id }, buf, offset);
  buf.fill(0, offset + 20, offset + 48); // UDP with checksum 0: none (IPv4)
  buf.writeUInt16BE(28, offset + 24);
  return 48;
}

/** VXLAN datagrams from node 2 carrying IPv4/UDP packets to 10.244.1.2 with these identifications. */
function datagrams(ids: number[]): { bufs: Buffer[]; sizes: number[] } {
  const bufs = ids.map(() => Buffer.alloc(HEADROOM + 64));
  const sizes = ids.map((id, i) => {
    emitVxlan({ vni: 1 }, bufs[i]!, 0);
    emitEthernet({ dst: OUR_MAC, src: PEER2.vtepMac, etherType: EtherType.IPV4 }, bufs[i]!, VXLAN_HEADER_LEN);
    return HEADROOM + inner(bufs[i]!, HEADROOM, 1, id);
  });
  return { bufs, sizes };
}

describe('batches smaller than the one before', () => {
  for (const encap of ['ts', 'native'] as const) {
  it(`outbound (${encap} encap): each peer gets exactly this batch’s packets, in order, and a trace sees each once`, () => {
    const { engine: e, sent, points } = engine(encap);
    const seen = (): Record<string, number> => {
      const r = Object.fromEntries(points);
      points.clear();
      return r;
    };
    const each = (n: number): Record<string, number> => ({ 'tun-read ok': n, 'classify ok': n, 'encap ok': n, 'udp-send sent': n });
    const batch = (nodes: number[], firstId: number): void => {
      const bufs = nodes.map(() => Buffer.alloc(HEADROOM + 64));
      const sizes = nodes.map((n, i) => inner(bufs[i]!, HEADROOM, n, firstId + i));
      e.handleOutbound(bufs, sizes, nodes.length);
    };
    // Per batch, one send per peer (in whichever order the engine keeps its peers).
    const sends = (): { to: string; ids: number[] }[] => sent.splice(0).sort((a, b) => a.to.localeCompare(b.to));
    batch([2, 3, 2, 2, 3, 2, 2, 3], 100);
    expect(sends()).toEqual([
      { to: '198.18.0.2', ids: [100, 102, 103, 105, 106] },
      { to: '198.18.0.3', ids: [101, 104, 107] },
    ]);
    expect(seen()).toEqual(each(8));
    batch([3, 2], 200);
    expect(sends()).toEqual([
      { to: '198.18.0.2', ids: [201] },
      { to: '198.18.0.3', ids: [200] },
    ]);
    expect(seen()).toEqual(each(2));
    batch([2], 300);
    expect(sends()).toEqual([{ to: '198.18.0.2', ids: [300] }]);
    expect(seen()).toEqual(each(1));
    // A peer absent from the batch before, then the same routes as a new table (groups start over).
    batch([3, 3], 400);
    expect(sends()).toEqual([{ to: '198.18.0.3', ids: [400, 401] }]);
    e.setRoutes(new RouteTable([{ prefix: cidr('10.244.2.0/24'), target: PEER2 }, { prefix: cidr('10.244.3.0/24'), target: PEER3 }]));
    batch([2, 3, 2], 500);
    expect(sends()).toEqual([
      { to: '198.18.0.2', ids: [500, 502] },
      { to: '198.18.0.3', ids: [501] },
    ]);
    expect(seen()).toEqual({ 'tun-read ok': 5, 'classify ok': 5, 'encap ok': 5, 'udp-send sent': 5 });
    expect(e.counters.snapshot().tx.packets).toBe(16);
  });
  }

  it('inbound: the TUN write gets exactly this batch’s packets', () => {
    const { engine: e, written, points } = engine();
    const traced: Record<string, number>[] = [];
    const batch = (ids: number[]): void => {
      const { bufs, sizes } = datagrams(ids);
      e.handleInbound(bufs, sizes, ids.map(() => PEER2.endpoint), ids.length);
      traced.push(Object.fromEntries(points));
      points.clear();
    };
    batch([1, 2, 3, 4, 5, 6]);
    batch([7, 8]);
    batch([9]);
    expect(written).toEqual([[1, 2, 3, 4, 5, 6], [7, 8], [9]]);
    const each = (n: number): Record<string, number> => ({ 'udp-recv ok': n, 'decap ok': n, 'tun-write forwarded': n });
    expect(traced).toEqual([each(6), each(2), each(1)]);
    expect(e.counters.snapshot().rx.packets).toBe(9);
  });

  it('inbound: the packet the TUN refuses mid-batch is the one a trace marks refused (the device says which), not the last', () => {
    for (const marks of [true, false]) {
      const { engine: e, tun } = engine();
      // The device skips the packet with identification 2 and goes on, as the kernel's EINVAL has it.
      tun.write = (bufs, _sizes, offset, count, _gso, refused) => {
        let n = 0;
        for (let k = 0; k < count; k++) {
          if (bufs[k]!.readUInt16BE(offset + 4) === 2) {
            if (marks && refused) refused[k] = 1;
            continue;
          }
          n++;
        }
        return n;
      };
      const verdicts: Array<[number, string]> = [];
      e.setObserver((o) => {
        if (o.point === 'tun-write') verdicts.push([o.buf.readUInt16BE(o.offset + 4), o.verdict]);
      });
      const ids = [1, 2, 3];
      const { bufs, sizes } = datagrams(ids);
      e.handleInbound(bufs, sizes, ids.map(() => PEER2.endpoint), ids.length);
      // A device that only counts is read the old way: the first ones went (what the count alone says).
      expect({ marks, verdicts }).toEqual({ marks, verdicts: [[1, 'forwarded'], [2, marks ? 'tun-write-failed' : 'forwarded'], [3, marks ? 'forwarded' : 'tun-write-failed']] });
      const snap = e.counters.snapshot();
      expect(snap.rx.packets).toBe(2);
      expect(snap.dropped['tun-write-failed']).toBe(1);
    }
  });
});

describe('garbage per packet', () => {
  it('encap (TS and native) and decap of 1400-byte packets allocate under 16 heap bytes per packet', () => {
    // In a child with a young generation that cannot fill during a measuring window (see the tool).
    const tool = fileURLToPath(new URL('../tools/engine-alloc.mjs', import.meta.url));
    // The tool runs the compiled engine: refuse to judge a build older than the source.
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const built = statSync(`${root}dist/src/datapath/engine.js`, { throwIfNoEntry: false })?.mtimeMs ?? 0;
    const sources = ['src/datapath/engine.ts', 'src/datapath/pipeline.ts', 'bench/micro/encap-decap.bench.ts', ...readdirSync(`${root}src/packet/wire`).map((f) => `src/packet/wire/${f}`)];
    for (const f of sources) if (statSync(`${root}${f}`).mtimeMs > built) throw new Error(`dist/ is older than ${f} (or missing): run npm run build first`);
    const out = execFileSync(process.execPath, ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64', tool], { encoding: 'utf8', timeout: 60_000 });
    const perPacket = JSON.parse(out) as Record<string, number>;
    // Before the views were reused and the batch arrays kept: 186, 74 and 302 bytes.
    expect(Object.keys(perPacket).sort()).toEqual(['decap ts 1400B', 'encap native 1400B', 'encap ts 1400B']);
    for (const [name, bytes] of Object.entries(perPacket)) expect({ name, bytes: bytes < 16 ? 'under 16' : bytes }).toEqual({ name, bytes: 'under 16' });
  });
});
