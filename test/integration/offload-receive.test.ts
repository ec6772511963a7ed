/**
 * Issue 3, offloads on the receive side, against the real kernel in namespaces:
 *  - a kernel VXLAN peer (flannel.1 as flanneld makes it, offloads at their defaults) sends TCP
 *    super-packets whole; vxtun writes them whole into its TUN behind a virtio_net_hdr (counted
 *    gso-passed-whole and by the TUN's SuperWrites), and with TUN offloads off segments them itself;
 *  - a vxtun peer sends UDP_SEGMENT super-datagrams; the receiver's UDP_GRO socket takes each as
 *    one message and splits it (GroReceives/GroSegments), and with GRO off by config or by
 *    VXTUN_NO_UDP_GRO=1 receives them one datagram at a time.
 * Every case moves 20 MB of TCP into the vxtun node's pod and compares sha256 at both ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../../src/tools/lab/netns.js';
import { Cluster, type ClusterNode } from '../../src/tools/lab/cluster.js';
import { controlRequest } from '../../src/control/socket.js';
import type { CounterSnapshot } from '../../src/packet/counters.js';
import { requirePrerequisites, tcpTransfer, withEnv } from '../support/integration.js';

const MB = 1024 * 1024;

interface NodeInfo {
  datapath: 'native' | 'ts';
  features: Record<string, boolean | number | string>;
  datapathCounters: { udp: Record<string, number>; tun: Record<string, number> };
}

const info = (n: ClusterNode): Promise<NodeInfo> => controlRequest(n.vxtun!.controlSocket, { cmd: 'info' }) as Promise<NodeInfo>;

interface Case {
  name: string;
  /** Node 1 sends, node 2 (always vxtun) receives. */
  sender: 'vxtun' | 'kernel';
  datapath: Record<string, unknown>;
  env?: Record<string, string>;
  check: (rx: NodeInfo, counters: CounterSnapshot, tx: NodeInfo | undefined) => void;
}

const cases: Case[] = [
  {
    name: 'kernel VXLAN → vxtun: super-packets written whole into the TUN (virtio_net_hdr)',
    sender: 'kernel',
    datapath: {},
    check: (rx, c) => {
      expect(rx.features).toMatchObject({ tunOffload: true, udpGro: true });
      expect(c.fixed['gso-passed-whole']).toBeGreaterThan(10);
      expect(c.fixed['gso-segmented']).toBe(0);
      expect(rx.datapathCounters.tun.SuperWrites).toBe(c.fixed['gso-passed-whole']);
      // the kernel's tunnel GSO is not UDP GRO: nothing to split on this path
      expect(rx.datapathCounters.udp.GroReceives).toBe(0);
    },
  },
  {
    name: 'kernel VXLAN → vxtun, TUN offloads forced off: super-packets segmented in TypeScript',
    sender: 'kernel',
    datapath: { tunOffload: false },
    check: (rx, c) => {
      expect(rx.features.tunOffload).toBe(false);
      expect(c.fixed['gso-segmented']).toBeGreaterThan(10);
      expect(c.fixed['gso-passed-whole']).toBe(0);
      expect(rx.datapathCounters.tun.SuperWrites).toBe(0);
    },
  },
  {
    name: 'vxtun → vxtun: UDP_SEGMENT super-datagrams arrive whole at the UDP_GRO socket and are split',
    sender: 'vxtun',
    datapath: {},
    check: (rx, _c, tx) => {
      expect(rx.features.udpGro).toBe(true);
      const udp = rx.datapathCounters.udp;
      expect(udp.GroReceives).toBeGreaterThan(100);
      expect(udp.GroSegments).toBeGreaterThan(udp.GroReceives! * 2);
      // the sender's super-datagrams arrived as such (equal when the socket buffer never overflowed)
      const sent = tx!.datapathCounters.udp;
      expect(udp.GroReceives).toBeLessThanOrEqual(sent.GsoSends!);
      expect(udp.GroReceives).toBeGreaterThan(sent.GsoSends! / 2);
      expect(udp.RecvCalls).toBeLessThan(udp.RecvPackets! / 4);
    },
  },
  {
    name: 'vxtun → vxtun, UDP GRO off by config (datapath.gro false)',
    sender: 'vxtun',
    datapath: { gro: false },
    check: (rx, _c, tx) => {
      expect(rx.features.udpGro).toBe(false);
      expect(rx.datapathCounters.udp.GroReceives).toBe(0);
      expect(tx!.datapathCounters.udp.GsoSends).toBeGreaterThan(100); // super-datagrams were sent, and split by the kernel
      expect(rx.datapathCounters.udp.RecvPackets).toBeGreaterThan(10_000);
    },
  },
  {
    name: 'vxtun → vxtun, UDP GRO forced off by VXTUN_NO_UDP_GRO=1',
    sender: 'vxtun',
    datapath: {},
    env: { VXTUN_NO_UDP_GRO: '1' },
    check: (rx) => {
      expect(rx.features.udpGro).toBe(false);
      expect(rx.datapathCounters.udp.GroReceives).toBe(0);
      expect(rx.datapathCounters.udp.RecvPackets).toBeGreaterThan(10_000);
    },
  },
];

for (const c of cases) {
  describe(c.name, () => {
    const topology = new Topology();
    let cluster: Cluster;
    beforeAll(async () => {
      requirePrerequisites(['ip', 'bridge', 'ping', 'ethtool']);
      cluster = await withEnv(c.env, () => Cluster.build(topology, { kinds: [c.sender, 'vxtun'], vxtunConfig: { datapath: { kind: 'native', ...c.datapath } } }));
    });
    afterAll(async () => {
      await cluster?.destroy();
      await topology.destroy();
    });

    it('20 MB of TCP into the vxtun pod arrives with an identical sha256, on the path asked for', async () => {
      const [a, b] = [cluster.node(1), cluster.node(2)];
      const out = await tcpTransfer(a.pod, b.pod, b.podIp, 20 * MB, 5601);
      expect(out.received).toEqual(out.sent);
      expect(out.received.bytes).toBe(20 * MB);
      const counters = await b.vxtun!.counters();
      expect(counters.rx.bytes).toBeGreaterThan(20 * MB);
      expect(counters.dropped['tun-write-failed']).toBe(0);
      c.check(await info(b), counters, a.vxtun ? await info(a) : undefined);
    });
  });
}

// With several workers the kernel spreads flows over the SO_REUSEPORT sockets by the outer source
// port (a hash of the inner flow), so a worker thread's engine writes kernel super-packets into its
// own TUN queue: 16 flows make it all but certain (2 × 2^-16 odds otherwise) that both engines do.
describe('kernel VXLAN → vxtun with 2 workers: super-packets written whole on every queue', () => {
  const topology = new Topology();
  let cluster: Cluster;
  beforeAll(async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', 'ethtool']);
    cluster = await Cluster.build(topology, { kinds: ['kernel', 'vxtun'], vxtunConfig: { datapath: { kind: 'native', workers: 2 } } });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('16 TCP flows of 2 MB arrive intact; both engines carried them; none was segmented in TypeScript', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const outs = await Promise.all(Array.from({ length: 16 }, (_, i) => tcpTransfer(a.pod, b.pod, b.podIp, 2 * MB, 5700 + i)));
    for (const out of outs) expect(out.received).toEqual(out.sent);
    const rx = (await info(b)) as NodeInfo & { engines: { rxPackets: number }[] };
    expect(rx.engines).toHaveLength(2);
    for (const e of rx.engines) expect(e.rxPackets).toBeGreaterThan(50);
    const counters = await b.vxtun!.counters();
    expect(counters.fixed['gso-passed-whole']).toBeGreaterThan(10);
    expect(counters.fixed['gso-segmented']).toBe(0);
    expect(rx.datapathCounters.tun.SuperWrites).toBe(counters.fixed['gso-passed-whole']);
  });
});
