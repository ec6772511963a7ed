/**
 * UDP segmentation offload on the TUN (USO, Linux 6.2+), against the real kernel in namespaces.
 *  - write: a receiving vxtun node writes runs of one UDP flow's datagrams (equal sizes, a shorter
 *    last one, consecutive IPv4 ids) into its TUN as one UDP_L4 super-packet, which the kernel splits
 *    back into the same datagrams at the pod's socket (TUN counters UdpCoalescedWrites/Packets), from
 *    a vxtun peer and from a kernel VXLAN peer alike;
 *  - read: a pod sending with UDP_SEGMENT hands vxtun's TUN UDP super-packets, which the addon splits
 *    (UdpGsoPackets);
 *  - forced off by VXTUN_NO_TUN_USO=1 and by datapath.tunUso false: no UDP super-packet either way.
 * Every case sends 3000 datagrams in runs of 10 and compares the sha256 of the payloads received, in
 * order, with what was sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../../src/tools/lab/netns.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { Cluster, type ClusterNode, type NodeKind } from '../../src/tools/lab/cluster.js';
import { controlRequest } from '../../src/control/socket.js';
import { requirePrerequisites, toolsDir, withEnv } from '../support/integration.js';

interface NodeInfo {
  features: Record<string, boolean | number | string>;
  datapathCounters: { udp: Record<string, number>; tun: Record<string, number> };
}

const info = (n: ClusterNode): Promise<NodeInfo> => controlRequest(n.vxtun!.controlSocket, { cmd: 'info' }) as Promise<NodeInfo>;

const RUNS = 300;
const RUN_LENGTH = 10;
const SIZE = 1300;

/** Sends the flow from node 1's pod to node 2's; returns both ends' counts and sha256. */
async function udpRuns(a: ClusterNode, b: ClusterNode, port: number, how: 'plain' | 'gso'): Promise<{ sent: unknown; received: unknown }> {
  const count = RUNS * RUN_LENGTH;
  const sink = b.pod.spawn([process.execPath, `${toolsDir}udp-run.mjs`, 'recv', b.podIp, String(port), String(count), '3000']);
  let out = '';
  sink.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => sink.once('exit', () => resolve()));
  await waitFor(() => out.includes('listening'), { timeoutMs: 10_000, what: 'udp-run recv listening' });
  const src = await a.pod.execOk(
    [process.execPath, `${toolsDir}udp-run.mjs`, 'send', a.podIp, b.podIp, String(port), String(RUNS), String(RUN_LENGTH), String(SIZE), how],
    { timeoutMs: 60_000 },
  );
  await exited;
  const line = out.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`udp-run recv printed no result: ${out}`);
  return { sent: JSON.parse(src.stdout.trim()), received: JSON.parse(line) };
}

interface Case {
  name: string;
  kinds: [NodeKind, 'vxtun'];
  datapath?: Record<string, unknown>;
  env?: Record<string, string>;
  how: 'plain' | 'gso';
  check: (rx: NodeInfo, tx: NodeInfo | undefined) => void;
}

const cases: Case[] = [
  {
    name: 'vxtun → vxtun: the receiver writes runs of datagrams into its TUN as UDP super-packets',
    kinds: ['vxtun', 'vxtun'],
    how: 'plain',
    check: (rx) => {
      expect(rx.features.tunUso).toBe(true);
      const tun = rx.datapathCounters.tun;
      expect(tun.UdpCoalescedWrites).toBeGreaterThan(100);
      // runs of 10: most datagrams went in super-packets, several to each
      expect(tun.UdpCoalescedPackets).toBeGreaterThan(RUNS * RUN_LENGTH * 0.8);
      expect(tun.UdpCoalescedPackets).toBeGreaterThan(tun.UdpCoalescedWrites! * 4);
    },
  },
  {
    name: 'kernel VXLAN → vxtun: the same from a kernel peer',
    kinds: ['kernel', 'vxtun'],
    how: 'plain',
    check: (rx) => {
      const tun = rx.datapathCounters.tun;
      expect(tun.UdpCoalescedWrites).toBeGreaterThan(100);
      expect(tun.UdpCoalescedPackets).toBeGreaterThan(tun.UdpCoalescedWrites! * 4);
    },
  },
  {
    name: 'vxtun → vxtun, a UDP_SEGMENT sender: the sending node reads UDP super-packets from its TUN and splits them',
    kinds: ['vxtun', 'vxtun'],
    how: 'gso',
    check: (rx, tx) => {
      const read = tx!.datapathCounters.tun;
      expect(read.UdpGsoPackets).toBeGreaterThan(RUNS * 0.8); // one per run of 10 (the pod's sendmsg)
      expect(read.GsoSegments).toBeGreaterThanOrEqual(read.UdpGsoPackets! * RUN_LENGTH);
      expect(read.BadVnetHdr).toBe(0);
      expect(rx.datapathCounters.tun.UdpCoalescedWrites).toBeGreaterThan(100);
    },
  },
  {
    name: 'vxtun → vxtun, USO forced off by VXTUN_NO_TUN_USO=1',
    kinds: ['vxtun', 'vxtun'],
    env: { VXTUN_NO_TUN_USO: '1' },
    how: 'gso',
    check: (rx, tx) => {
      expect(rx.features).toMatchObject({ tunOffload: true, tunUso: false });
      expect(rx.datapathCounters.tun.UdpCoalescedWrites).toBe(0);
      expect(rx.datapathCounters.tun.Writes).toBeGreaterThanOrEqual(RUNS * RUN_LENGTH);
      // the kernel split the pod's super-datagrams before the TUN: none reached vxtun whole
      expect(tx!.datapathCounters.tun.UdpGsoPackets).toBe(0);
    },
  },
  {
    name: 'vxtun → vxtun, USO off by config (datapath.tunUso false)',
    kinds: ['vxtun', 'vxtun'],
    datapath: { tunUso: false },
    how: 'plain',
    check: (rx) => {
      expect(rx.features).toMatchObject({ tunOffload: true, tunUso: false });
      expect(rx.datapathCounters.tun.UdpCoalescedWrites).toBe(0);
    },
  },
];

for (const c of cases) {
  describe(c.name, () => {
    const topology = new Topology();
    let cluster: Cluster;
    beforeAll(async () => {
      requirePrerequisites(['ip', 'bridge', 'ping']);
      cluster = await withEnv(c.env, () => Cluster.build(topology, { kinds: c.kinds, vxtunConfig: { datapath: { kind: 'native', ...c.datapath } } }));
    });
    afterAll(async () => {
      await cluster?.destroy();
      await topology.destroy();
    });

    it(`${RUNS * RUN_LENGTH} datagrams in runs of ${RUN_LENGTH} arrive in order with an identical sha256, on the path asked for`, async () => {
      const [a, b] = [cluster.node(1), cluster.node(2)];
      const out = await udpRuns(a, b, 6001, c.how);
      expect(out.received).toEqual({ received: RUNS * RUN_LENGTH, sha256: (out.sent as { sha256: string }).sha256 });
      expect(out.sent).toMatchObject({ sent: RUNS * RUN_LENGTH });
      const counters = await b.vxtun!.counters();
      expect(counters.dropped['tun-write-failed']).toBe(0);
      c.check(await info(b), a.vxtun ? await info(a) : undefined);
    });
  });
}
