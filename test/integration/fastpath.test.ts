/**
 * Issue 3, done-when: every fallback of the fast path is forced and traffic still flows intact
 * (sha256 of a TCP transfer both ways), and each run proves which path actually carried it from
 * the node's own counters — the native one with its offloads, the one with UDP GSO off, the one
 * with TUN offloads off, the pure-TypeScript path — between two vxtun nodes and with the kernel's
 * VXLAN as the peer.
 */
import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, capture, parseTcpdump } from '../../src/lab/netns.js';
import { Cluster, type ClusterNode } from '../../src/lab/cluster.js';
import { controlRequest } from '../../src/control/socket.js';
import { requirePrerequisites, tcpTransfer } from './support.js';

const MB = 1024 * 1024;

interface NodeInfo {
  datapath: 'native' | 'ts';
  features: Record<string, boolean | number>;
  datapathCounters: { udp: Record<string, number>; tun: Record<string, number> };
}

const info = (n: ClusterNode): Promise<NodeInfo> => controlRequest(n.vxtun!.controlSocket, { cmd: 'info' }) as Promise<NodeInfo>;

interface Case {
  name: string;
  kinds: Array<'vxtun' | 'kernel'>;
  datapath: Record<string, unknown>;
  check: (i: NodeInfo) => void;
  /** Also check the outer source ports node 1 sends from, on the wire: its pool, or the VXLAN port. */
  wireSourcePorts?: 'pool' | 'fixed';
}

const cases: Case[] = [
  {
    name: 'native path, UDP GSO and TUN offloads on, flow-hashed source ports, one worker per core',
    kinds: ['vxtun', 'vxtun'],
    datapath: { sourcePorts: {}, workers: availableParallelism() },
    check: (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features).toMatchObject({ recvmmsg: true, sendmmsg: true, udpGso: true, tunOffload: true, nativeChecksum: true, nativeEncap: true });
      expect(i.datapathCounters.udp.GsoSends).toBeGreaterThan(0);
      expect(i.datapathCounters.tun.GsoPackets).toBeGreaterThan(0); // super-packets read from the TUN
      expect(i.datapathCounters.tun.CoalescedWrites).toBeGreaterThan(0); // and written back whole
      expect(i.features.workers).toBe(availableParallelism()); // asked for one engine per core
      const ports = String(i.features.sourcePorts).split(',').map(Number);
      expect(ports.length).toBe(16);
      for (const p of ports) expect(p >= 32768 && p <= 60999).toBe(true);
    },
    wireSourcePorts: 'pool',
  },
  {
    name: 'native path, UDP GSO forced off',
    kinds: ['vxtun', 'vxtun'],
    datapath: { gso: false, sourcePorts: 'fixed' },
    check: (i) => {
      expect(i.features.sourcePorts).toBe('fixed');
      expect(i.datapath).toBe('native');
      expect(i.features.udpGso).toBe(false);
      expect(i.datapathCounters.udp.GsoSends).toBe(0);
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'native path, one worker (single core; the default)',
    kinds: ['vxtun', 'vxtun'],
    datapath: {},
    wireSourcePorts: 'fixed',
    check: (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features.sourcePorts).toBe('fixed'); // the default
      expect(i.features.workers).toBe(1);
      expect(i.features.tunOffload).toBe(true);
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'native path, TUN offloads forced off',
    kinds: ['vxtun', 'vxtun'],
    datapath: { tunOffload: false },
    check: (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features.tunOffload).toBe(false);
      expect(i.datapathCounters.tun.Reads).toBe(0); // the plain read path ran
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'pure-TypeScript path (no addon on the data path)',
    kinds: ['vxtun', 'vxtun'],
    datapath: { kind: 'ts' },
    check: (i) => {
      expect(i.datapath).toBe('ts');
      expect(i.features).toMatchObject({ recvmmsg: false, sendmmsg: false, udpGso: false, nativeChecksum: false, nativeEncap: false, tunOffload: false });
    },
  },
  {
    name: 'native path with offloads and flow-hashed source ports, kernel VXLAN as the peer',
    kinds: ['vxtun', 'kernel'],
    datapath: { sourcePorts: {} },
    check: (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features.tunOffload).toBe(true);
      expect(i.datapathCounters.tun.GsoPackets).toBeGreaterThan(0);
    },
  },
  {
    name: 'native path with every offload off, kernel VXLAN as the peer',
    kinds: ['vxtun', 'kernel'],
    datapath: { gso: false, tunOffload: false, sourcePorts: 'fixed' },
    check: (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features).toMatchObject({ udpGso: false, tunOffload: false, sourcePorts: 'fixed' });
      expect(i.datapathCounters.udp.GsoSends).toBe(0);
    },
  },
  {
    name: 'pure-TypeScript path, kernel VXLAN as the peer',
    kinds: ['vxtun', 'kernel'],
    datapath: { kind: 'ts' },
    check: (i) => {
      expect(i.datapath).toBe('ts');
      expect(i.features.tunOffload).toBe(false);
    },
  },
];

for (const c of cases) {
  describe(c.name, () => {
    const topology = new Topology();
    let cluster: Cluster;
    beforeAll(async () => {
      requirePrerequisites();
      cluster = await Cluster.build(topology, { kinds: c.kinds, vxtunConfig: { datapath: c.datapath } });
    });
    afterAll(async () => {
      await cluster?.destroy();
      await topology.destroy();
    });

    it('30 MB of TCP each way arrives with an identical sha256, on the path asked for', async () => {
      const [a, b] = [cluster.node(1), cluster.node(2)];
      const there = await tcpTransfer(a.pod, b.pod, b.podIp, 30 * MB, 5501);
      expect(there.received).toEqual(there.sent);
      expect(there.received.bytes).toBe(30 * MB);
      const back = await tcpTransfer(b.pod, a.pod, a.podIp, 30 * MB, 5502);
      expect(back.received).toEqual(back.sent);
      if (c.wireSourcePorts) {
        const cap = await capture(b.ns, 'eth0', 'udp dst port 8472 and src host 198.18.0.1', { count: 20 });
        const flow = await tcpTransfer(a.pod, b.pod, b.podIp, 1 * MB, 5503);
        expect(flow.received).toEqual(flow.sent);
        await Promise.race([cap.done, new Promise((r) => setTimeout(r, 5000))]);
        const packets = parseTcpdump((await cap.stop()).stdout);
        expect(packets.length).toBeGreaterThanOrEqual(10);
        const sports = new Set(packets.map((p) => p.bytes.readUInt16BE(14 + 20)));
        if (c.wireSourcePorts === 'fixed') expect([...sports]).toEqual([8472]);
        else {
          const pool = String((await info(a)).features.sourcePorts).split(',').map(Number);
          expect(sports.size).toBe(1); // one TCP flow keeps one source port
          expect(pool).toContain([...sports][0]);
        }
      }
      for (const n of cluster.nodes) {
        if (!n.vxtun) continue;
        c.check(await info(n));
        const counters = await n.vxtun.counters();
        expect(counters.tx.bytes).toBeGreaterThan(30 * MB);
        expect(counters.rx.bytes).toBeGreaterThan(30 * MB);
      }
    });
  });
}
