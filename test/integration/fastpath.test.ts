/**
 * Issue 3, done-when: every fallback of the fast path is forced and traffic still flows intact
 * (sha256 of a TCP transfer both ways), and each run proves which path actually carried it from
 * the node's own counters — the native one with its offloads, the one with UDP GSO off, the one
 * with TUN offloads off, the pure-TypeScript path with its TypeScript TUN offloads and without — between
 * two vxtun nodes and with the kernel's VXLAN as the peer.
 */
import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../../src/tools/lab/netns.js';
import { capture, parseTcpdump, type TcpdumpPacket } from '../support/capture.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { Cluster, cliPath, type ClusterNode } from '../../src/tools/lab/cluster.js';
import { controlRequest } from '../../src/control/socket.js';
import { requirePrerequisites, tcpTransfer, toolsDir, withEnv, threadPolicies, threadNices, SCHED_OTHER, SCHED_BATCH } from '../support/integration.js';

const MB = 1024 * 1024;

interface NodeInfo {
  datapath: 'native' | 'ts';
  features: Record<string, boolean | number>;
  datapathCounters: { udp: Record<string, number>; tun: Record<string, number>; express: Record<string, number> };
  engines: Array<{ txPackets: number; rxPackets: number }>;
  pid: number;
}


const info = (n: ClusterNode): Promise<NodeInfo> => controlRequest(n.vxtun!.controlSocket, { cmd: 'info' }) as Promise<NodeInfo>;

interface Case {
  name: string;
  kinds: Array<'vxtun' | 'kernel'>;
  datapath: Record<string, unknown>;
  check: (i: NodeInfo) => void | Promise<void>;
  /** Also check the outer source ports node 1 sends from, on the wire: its pool, or the VXLAN port. */
  wireSourcePorts?: 'pool' | 'fixed';
  /** Extra `vxtun up` arguments. */
  args?: string[];
  /** Environment of the vxtun processes (forcing switches). */
  env?: Record<string, string>;
}

const cases: Case[] = [
  {
    name: 'defaults: native path, UDP GSO and TUN offloads on, one engine per core (one on two cores), flow-hashed source ports',
    kinds: ['vxtun', 'vxtun'],
    datapath: {},
    check: async (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features).toMatchObject({ recvmmsg: true, sendmmsg: true, udpGso: true, tunOffload: true, nativeChecksum: true, nativeEncap: true });
      expect(i.features.tunQueueLength).toBe(500); // the kernel's default, left alone
      expect(i.datapathCounters.udp.GsoSends).toBeGreaterThan(0);
      expect(i.datapathCounters.tun.GsoPackets).toBeGreaterThan(0); // super-packets read from the TUN
      expect(i.datapathCounters.tun.CoalescedWrites).toBeGreaterThan(0); // and written back whole
      // Busy inbound batches written by the addon whole (bulk inbound), every packet of them counted as the engine's.
      const x = i.datapathCounters.express;
      expect(i.features.bulkIn).toBe(true);
      expect(x.InBatches).toBeGreaterThan(100);
      expect(x.InBatchPackets).toBeGreaterThan(x.InBatches!);
      expect(x.RxPackets).toBeGreaterThanOrEqual(x.InBatchPackets!);
      expect(x.TunWriteFailed).toBe(0);
      // And busy outbound traffic read, segmented, encapsulated and sent by the addon (bulk outbound).
      expect(i.features.bulkOut).toBe(true);
      expect(x.OutBatches).toBeGreaterThan(100);
      expect(x.OutBatchPackets).toBeGreaterThan(x.OutBatches!);
      expect(x.TxPackets).toBeGreaterThanOrEqual(x.OutBatchPackets!);
      expect(x.SendFailed).toBe(0);
      const cores = availableParallelism();
      expect(i.features.workers).toBe(cores <= 2 ? 1 : Math.min(cores, 4)); // one engine per core, up to 4; one on two cores
      expect(i.features.batchScheduling).toBe(true);
      expect(i.features.inboundScheduling).toBe(true);
      expect(threadPolicies(i.pid).length).toBeGreaterThan(2); // main, V8 and libuv threads (and workers')
      // datapath.nice: by default the priority vxtun was started with, on every thread.
      expect(i.features.nice).toBe(0);
      expect(new Set(threadNices(i.pid))).toEqual(new Set([0]));
      // Every thread, any worker's too (inherited). An engine thread the transfers above flooded runs
      // SCHED_OTHER for a while (inbound-scheduling.ts) and is back at SCHED_BATCH once quiet.
      const allBatch = (): boolean => threadPolicies(i.pid).every((p) => p === SCHED_BATCH);
      await waitFor(allBatch, { timeoutMs: 3000, what: 'every thread at SCHED_BATCH' });
      const ports = String(i.features.sourcePorts).split(',').map(Number);
      expect(ports.length).toBe(16);
      for (const p of ports) expect(p >= 32768 && p <= 60999).toBe(true);
    },
    wireSourcePorts: 'pool',
  },
  {
    // On two cores the defaults run one engine: here flows must spread over two, each engine sending from its own pool.
    name: 'native path, 2 workers, flow-hashed source ports: flows spread over both engines',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    check: (i) => {
      expect(i.features.workers).toBe(2);
      expect(i.datapathCounters.udp.GsoSends).toBeGreaterThan(0);
    },
    wireSourcePorts: 'pool',
  },
  {
    // A short TUN transmit queue (datapath.tunQueueLength): the kernel drops what does not fit, the pods' TCP recovers.
    name: 'native path, a TUN queue of 16 packets instead of the kernel\'s 500',
    kinds: ['vxtun', 'vxtun'],
    datapath: { tunQueueLength: 16 },
    check: (i) => {
      expect(i.features.tunQueueLength).toBe(16); // read back from sysfs: what the kernel runs with
      expect(i.datapathCounters.tun.GsoPackets).toBeGreaterThan(0);
    },
    // (no burst of 48 UDP datagrams here: a ring of 16 drops most of it, which is the documented price)
  },
  {
    name: 'native path, UDP GSO forced off (2 workers: the switch reaches the worker too)',
    kinds: ['vxtun', 'vxtun'],
    datapath: { gso: false, sourcePorts: 'fixed', workers: 2 },
    check: (i) => {
      expect(i.features.sourcePorts).toBe('fixed');
      expect(i.datapath).toBe('native');
      expect(i.features.udpGso).toBe(false);
      expect(i.datapathCounters.udp.GsoSends).toBe(0);
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'native path, `--workers 1` (one core) and fixed source port',
    kinds: ['vxtun', 'vxtun'],
    datapath: { sourcePorts: 'fixed' },
    args: ['--workers', '1'],
    wireSourcePorts: 'fixed',
    check: (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features.sourcePorts).toBe('fixed');
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
    // Every worker queue must follow the first queue: the switch turns the virtio header off for the device.
    name: 'native path, TUN offloads forced off by VXTUN_NO_TUN_OFFLOAD=1, with 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    env: { VXTUN_NO_TUN_OFFLOAD: '1' },
    check: (i) => {
      expect(i.datapath).toBe('native');
      expect(i.features.tunOffload).toBe(false);
      expect(i.features.workers).toBe(2);
      expect(i.datapathCounters.tun.Reads).toBe(0);
      expect(i.datapathCounters.tun.BadVnetHdr).toBe(0);
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'native path, UDP GSO forced off by VXTUN_NO_GSO=1, 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    env: { VXTUN_NO_GSO: '1' },
    check: (i) => {
      expect(i.features.udpGso).toBe(false);
      expect(i.datapathCounters.udp.GsoSends).toBe(0);
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'native path, SCHED_BATCH forced off by VXTUN_NO_SCHED_BATCH=1, 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    env: { VXTUN_NO_SCHED_BATCH: '1' },
    check: (i) => {
      expect(i.features.batchScheduling).toBe(false);
      expect(i.features.inboundScheduling).toBe(false); // nothing to leave
      expect(new Set(threadPolicies(i.pid))).toEqual(new Set([SCHED_OTHER]));
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    // Every thread, the worker's and the express thread's too (made later: inherited).
    name: 'native path, datapath.nice -10: every thread at -10, 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { nice: -10, workers: 2 },
    check: (i) => {
      expect(i.features.nice).toBe(-10);
      expect(new Set(threadNices(i.pid))).toEqual(new Set([-10]));
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'native path, SCHED_BATCH switched off by vxtun up --no-batch-scheduling, 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    args: ['--no-batch-scheduling'],
    check: (i) => {
      expect(i.features.batchScheduling).toBe(false);
      expect(i.features.inboundScheduling).toBe(false); // nothing to leave
      expect(new Set(threadPolicies(i.pid))).toEqual(new Set([SCHED_OTHER]));
      expect(i.features.express).toBe(true); // only what was asked for is off
      expect(i.datapathCounters.udp.SendPackets).toBeGreaterThan(1000);
    },
  },
  {
    name: 'native path, TUN write coalescing forced off by VXTUN_NO_TUN_COALESCE=1, 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    env: { VXTUN_NO_TUN_COALESCE: '1' },
    check: (i) => {
      expect(i.features.tunOffload).toBe(true);
      expect(i.datapathCounters.tun.Writes).toBeGreaterThan(1000);
      expect(i.datapathCounters.tun.CoalescedWrites).toBe(0);
      expect(i.datapathCounters.tun.UdpCoalescedWrites).toBe(0);
    },
  },
  {
    // Every inbound batch through the JS pipeline again, on both engines.
    name: 'native path, bulk inbound forced off by VXTUN_NO_BULK_IN=1, 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    env: { VXTUN_NO_BULK_IN: '1' },
    check: (i) => {
      expect(i.features.express).toBe(true);
      expect(i.features.bulkIn).toBe(false);
      expect(i.features.bulkOut).toBe(true);
      expect(i.datapathCounters.express.InBatches).toBe(0);
      expect(i.datapathCounters.express.InHandedOver).toBeGreaterThan(100);
      expect(i.datapathCounters.tun.CoalescedWrites).toBeGreaterThan(0); // the pipeline's writes, coalesced as before
    },
  },
  {
    // Every busy outbound wake-up through the JS pipeline again, on both engines.
    name: 'native path, bulk outbound forced off by VXTUN_NO_BULK_OUT=1, 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { workers: 2 },
    env: { VXTUN_NO_BULK_OUT: '1' },
    check: (i) => {
      expect(i.features.bulkOut).toBe(false);
      expect(i.features.bulkIn).toBe(true);
      expect(i.datapathCounters.express.OutBatches).toBe(0);
      expect(i.datapathCounters.express.OutHandedOver).toBeGreaterThan(0); // wake-ups still reach the express path first
      expect(i.datapathCounters.udp.GsoSends).toBeGreaterThan(0); // the pipeline's sends, GSO as before
    },
  },
  {
    // Two messages per recvmmsg make a standing queue of two enough; a 1 µs target and 100 µs interval drop from it.
    name: 'native path, CoDel on the receive queue forced to drop (datapath.codel 1 µs / 100 µs, VXTUN_RECV_BATCH=2), 2 workers',
    kinds: ['vxtun', 'vxtun'],
    datapath: { codel: { targetUs: 1, intervalUs: 100 }, workers: 2 },
    env: { VXTUN_RECV_BATCH: '2' },
    check: async (i) => {
      expect(i.features.codel).toBe('1/100 µs');
      expect(i.datapathCounters.udp.CodelDrops).toBeGreaterThan(0);
    },
  },
  {
    name: 'pure-TypeScript path (the addon only for TUN syscalls), TUN offloads done in TypeScript',
    kinds: ['vxtun', 'vxtun'],
    datapath: { kind: 'ts' },
    check: (i) => {
      expect(i.datapath).toBe('ts');
      expect(i.features).toMatchObject({ recvmmsg: false, sendmmsg: false, udpGso: false, nativeChecksum: false, nativeEncap: false, tunOffload: true });
      expect(i.datapathCounters.tun.GsoPackets).toBeGreaterThan(0); // super-packets read from the TUN and cut in TypeScript
      expect(i.datapathCounters.tun.GsoSegments).toBeGreaterThan(i.datapathCounters.tun.GsoPackets!);
      expect(i.datapathCounters.tun.CoalescedWrites).toBeGreaterThan(0); // and segments written back as super-packets
      expect(i.datapathCounters.tun.BadVnetHdr).toBe(0);
    },
  },
  {
    name: 'pure-TypeScript path, TUN offloads forced off',
    kinds: ['vxtun', 'vxtun'],
    datapath: { kind: 'ts', tunOffload: false },
    check: (i) => {
      expect(i.datapath).toBe('ts');
      expect(i.features.tunOffload).toBe(false);
      expect(i.datapathCounters.tun.Reads).toBe(0); // the plain read path ran
      expect(i.datapathCounters.tun.Writes).toBe(0);
    },
  },
  {
    name: 'defaults (offloads, workers, flow-hashed source ports), kernel VXLAN as the peer',
    kinds: ['vxtun', 'kernel'],
    datapath: {},
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
    name: 'pure-TypeScript path with its TUN offloads, kernel VXLAN as the peer',
    kinds: ['vxtun', 'kernel'],
    datapath: { kind: 'ts' },
    check: (i) => {
      expect(i.datapath).toBe('ts');
      expect(i.features.tunOffload).toBe(true);
      expect(i.datapathCounters.tun.GsoPackets).toBeGreaterThan(0);
      expect(i.datapathCounters.tun.SuperWrites! + i.datapathCounters.tun.CoalescedWrites!).toBeGreaterThan(0);
      expect(i.datapathCounters.tun.BadVnetHdr).toBe(0);
    },
  },
];

interface Datagram {
  sourcePort: number;
  /** VXLAN header + inner Ethernet + inner IPv4 packet. */
  payload: Buffer;
}

/**
 * The VXLAN datagrams in captured frames (outer Ethernet + IPv4 + UDP). A UDP GSO send crosses a
 * veth whole, so one captured frame may carry several datagrams back to back; each is VXLAN + inner
 * Ethernet + an inner IPv4 packet whose total length says where the next one starts.
 */
function vxlanDatagrams(frames: TcpdumpPacket[]): Datagram[] {
  const out: Datagram[] = [];
  for (const f of frames) {
    if (f.bytes.length < 14 + 20 + 8) continue; // the tail of a dump still being printed
    const sourcePort = f.bytes.readUInt16BE(14 + 20);
    let rest = f.bytes.subarray(14 + 20 + 8);
    while (rest.length >= 8 + 14 + 20) {
      const size = 8 + 14 + rest.readUInt16BE(8 + 14 + 2);
      out.push({ sourcePort, payload: rest.subarray(0, size) });
      rest = rest.subarray(size);
    }
  }
  return out;
}

for (const c of cases) {
  describe(c.name, () => {
    const topology = new Topology();
    let cluster: Cluster;
    beforeAll(async () => {
      requirePrerequisites();
      cluster = await withEnv(c.env, () => Cluster.build(topology, { kinds: c.kinds, vxtunConfig: { datapath: c.datapath }, ...(c.args ? { vxtunArgs: c.args } : {}) }));
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
        // one TCP flow, then 24 UDP flows (2 datagrams each), as node 2's underlay sees them from node 1
        const INNER = 8 + 14; // VXLAN, inner Ethernet
        const captured = async (filter: string, want: number, send: () => Promise<void>): Promise<Datagram[]> => {
          // small frames, large buffer: with tcpdump's default 256 KB snapshot its ring holds few frames and drops under load
          const cap = await capture(b.ns, 'eth0', filter, { snaplen: 16384, flags: ['-xx', '-n', '-B', '16384'] });
          let text = '';
          cap.child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
          await send();
          await waitFor(() => vxlanDatagrams(parseTcpdump(text)).length >= want, { timeoutMs: 5000, what: `${want} datagrams on the wire` }).catch(() => {});
          return vxlanDatagrams(parseTcpdump((await cap.stop()).stdout));
        };
        // inner protocol byte at udp[8 + 22 + 9], inner destination port at udp[8 + 22 + 20 + 2] (of a super-packet's first datagram)
        const tcp = (
          await captured('udp dst port 8472 and src host 198.18.0.1 and udp[39] = 6 and udp[52:2] = 5503', 10, async () => {
            const flow = await tcpTransfer(a.pod, b.pod, b.podIp, 1 * MB, 5503);
            expect(flow.received).toEqual(flow.sent);
          })
        ).filter((d) => d.payload[INNER + 9] === 6 && d.payload.readUInt16BE(INNER + 22) === 5503);
        const udp = (
          await captured('udp dst port 8472 and src host 198.18.0.1 and udp[39] = 17 and udp[52:2] = 9', 48, async () => {
            await a.pod.execOk([process.execPath, `${toolsDir}udp-flows.mjs`, b.podIp, '9', '24', '2']);
          })
        ).filter((d) => d.payload[INNER + 9] === 17 && d.payload.readUInt16BE(INNER + 22) === 9);
        const sport = (d: Datagram): number => d.sourcePort;
        expect(tcp.length).toBeGreaterThanOrEqual(10);
        expect(udp.length).toBe(48);
        // the start-up log and `vxtun status` say how many workers run and how source ports are chosen
        const workers = Number((await info(a)).features.workers);
        const mode = c.wireSourcePorts === 'fixed' ? 'fixed 8472' : 'flow-hashed over 32768-60999 (16 ports)';
        const status = await a.ns.execOk([process.execPath, cliPath, 'status', '--control-socket', a.vxtun!.controlSocket]);
        expect(status.stdout.split('\n')[1]).toBe(`datapath native  workers ${workers}  source ports ${mode}  tun queue 500`);
        const upLog = a.vxtun!.output.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'vxtun up');
        expect(upLog).toMatchObject({ workers, sourcePorts: mode });
        if (c.wireSourcePorts === 'fixed') {
          expect([...new Set([...tcp, ...udp].map(sport))]).toEqual([8472]); // every datagram from the bound port
        } else {
          const pool = String((await info(a)).features.sourcePorts).split(',').map(Number);
          expect(new Set(tcp.map(sport)).size).toBe(1); // one TCP flow keeps one source port
          expect(pool).toContain(sport(tcp[0]!));
          const portOfFlow = new Map<number, Set<number>>();
          for (const d of udp) portOfFlow.set(d.payload.readUInt16BE(INNER + 20), (portOfFlow.get(d.payload.readUInt16BE(INNER + 20)) ?? new Set()).add(sport(d)));
          expect(portOfFlow.size).toBe(24);
          for (const ports of portOfFlow.values()) expect(ports.size).toBe(1); // each flow keeps its port
          const used = new Set(udp.map(sport));
          for (const p of used) expect(pool).toContain(p);
          expect(used.size).toBeGreaterThanOrEqual(6); // and the flows spread (24 over 16 ports: ~12 expected)
          // and over node 1's engines: the kernel picks a TUN queue per flow (24 flows all on one queue: p = 2^-23 for 2)
          const engines = (await info(a)).engines;
          expect(engines).toHaveLength(workers);
          for (const e of engines) expect(e.txPackets).toBeGreaterThan(0);
        }
      }
      for (const n of cluster.nodes) {
        if (!n.vxtun) continue;
        await c.check(await info(n));
        const counters = await n.vxtun.counters();
        expect(counters.tx.bytes).toBeGreaterThan(30 * MB);
        expect(counters.rx.bytes).toBeGreaterThan(30 * MB);
      }
    });
  });
}
