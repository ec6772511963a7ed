/**
 * Issue 3, UDP flood target: an engine thread runs SCHED_BATCH (idle round trips stay on one CPU)
 * except while the underlay floods it, when it runs SCHED_OTHER so it is scheduled as soon as woken
 * and hands the pod small bursts its socket can take (src/datapath/inbound-scheduling.ts). Checked on
 * real nodes under an iperf3 UDP flood: the receiving node's thread switches and comes back, the
 * sending node (which receives next to nothing) never switches, and VXTUN_NO_INBOUND_SCHED=1 keeps
 * every thread at SCHED_BATCH. What it buys is measured by the benchmark, not here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, waitForOutput } from '../../src/tools/lab/netns.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { Cluster, type ClusterNode } from '../../src/tools/lab/cluster.js';
import { controlRequest } from '../../src/control/socket.js';
import { requirePrerequisites, withEnv, threadPolicies, SCHED_BATCH, SCHED_OTHER } from '../support/integration.js';

const features = async (n: ClusterNode): Promise<Record<string, unknown>> => ((await controlRequest(n.vxtun!.controlSocket, { cmd: 'info' })) as { features: Record<string, unknown> }).features;

/** The policy of each thread of a process, by thread id. */
function policiesByTid(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      m.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]));
    } catch {
      // a thread that exited since the listing
    }
  }
  return m;
}

/**
 * Runs a UDP flood of 1350-byte datagrams from node 1's pod to node 2's (3 s, from an ephemeral
 * port unless `cport`), sampling both nodes' thread policies every 25 ms; `switched` collects the
 * receiving node's threads seen at SCHED_OTHER.
 */
async function floodAndSample(cluster: Cluster, port: number, opts: { seconds?: number; cport?: number } = {}): Promise<{ receiver: Set<number>[]; sender: Set<number>[]; delivered: number; switched: Set<number> }> {
  const [a, b] = [cluster.node(1), cluster.node(2)];
  const server = b.pod.spawn(['iperf3', '-s', '-1', '--forceflush', '-B', b.podIp, '-p', String(port)]);
  await waitForOutput(server, /listening/, { timeoutMs: 10_000 });
  const receiver: Set<number>[] = [];
  const sender: Set<number>[] = [];
  const switched = new Set<number>();
  let flooding = true;
  const sampling = (async () => {
    while (flooding) {
      const byTid = policiesByTid(b.vxtun!.child.pid!);
      receiver.push(new Set(byTid.values()));
      for (const [tid, p] of byTid) if (p === SCHED_OTHER) switched.add(tid);
      sender.push(new Set(threadPolicies(a.vxtun!.child.pid!)));
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const cport = opts.cport !== undefined ? ['--cport', String(opts.cport)] : [];
  const client = await a.pod.execOk(['iperf3', '-c', b.podIp, '-p', String(port), ...cport, '-u', '-b', '0', '-l', '1350', '-t', String(opts.seconds ?? 3), '-J'], { timeoutMs: 30_000 });
  flooding = false;
  await sampling;
  const sum = (JSON.parse(client.stdout) as { end: { sum: { packets: number; lost_packets: number } } }).end.sum;
  return { receiver, sender, delivered: sum.packets - sum.lost_packets, switched };
}

const allBatch = (pid: number): boolean => threadPolicies(pid).every((p) => p === SCHED_BATCH);

describe('an engine thread follows its inbound load (default)', () => {
  const topology = new Topology();
  let cluster: Cluster;
  beforeAll(async () => {
    requirePrerequisites(['ip', 'iperf3']);
    // Two engines per node: the main thread's and a worker's, each on its own TUN queue and socket.
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'], vxtunArgs: ['--workers', '2'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('the receiving node turns SCHED_OTHER under a UDP flood, the sender stays SCHED_BATCH, and both are all SCHED_BATCH once quiet', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    expect(await features(b)).toMatchObject({ batchScheduling: true, inboundScheduling: true });
    expect(allBatch(b.vxtun!.child.pid!)).toBe(true); // idle: nothing switched yet
    const r = await floodAndSample(cluster, 5901);
    expect(r.delivered).toBeGreaterThan(1000);
    expect(r.receiver.some((s) => s.has(SCHED_OTHER))).toBe(true);
    // One engine thread carries the flow; the rest of the process stays as it was.
    for (const s of r.receiver) expect(s.has(SCHED_BATCH)).toBe(true);
    expect(r.sender.filter((s) => s.has(SCHED_OTHER))).toEqual([]);
    await waitFor(() => allBatch(b.vxtun!.child.pid!), { timeoutMs: 2000, what: "node 2's threads back at SCHED_BATCH" });
    expect(allBatch(a.vxtun!.child.pid!)).toBe(true);
    // and idle traffic afterwards does not switch it again
    await a.pod.execOk(['ping', '-c', '5', '-i', '0.05', b.podIp]);
    expect(allBatch(b.vxtun!.child.pid!)).toBe(true);
  });

  it('each engine thread switches for itself: the main thread and the worker, whichever the flood reaches', async () => {
    const b = cluster.node(2);
    const pid = b.vxtun!.child.pid!;
    // Which engine a flow reaches is the receiving socket's SO_REUSEPORT hash of the outer ports,
    // which follow the inner flow: new client ports until both engines were flooded (each flood
    // misses one of two engines with p = 1/2: twelve floods miss one of them with p = 2^-11).
    const seen = new Set<number>();
    for (let k = 0; k < 12 && !(seen.has(pid) && [...seen].some((t) => t !== pid)); k++) {
      const r = await floodAndSample(cluster, 5903 + k, { seconds: 1, cport: 41000 + k });
      expect(r.delivered).toBeGreaterThan(1000);
      // one engine carries one flow: never both at once
      expect(r.switched.size).toBe(1);
      for (const t of r.switched) seen.add(t);
      await waitFor(() => allBatch(pid), { timeoutMs: 2000, what: "node 2's threads back at SCHED_BATCH" });
    }
    expect(seen.has(pid)).toBe(true); // the main thread's engine
    expect([...seen].filter((t) => t !== pid)).toHaveLength(1); // and the worker's
  });
});

describe('VXTUN_NO_INBOUND_SCHED=1', () => {
  const topology = new Topology();
  let cluster: Cluster;
  beforeAll(async () => {
    requirePrerequisites(['ip', 'iperf3']);
    cluster = await withEnv({ VXTUN_NO_INBOUND_SCHED: '1' }, () => Cluster.build(topology, { kinds: ['vxtun', 'vxtun'] }));
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('keeps every thread at SCHED_BATCH under the same flood', async () => {
    const b = cluster.node(2);
    expect(await features(b)).toMatchObject({ batchScheduling: true, inboundScheduling: false });
    const r = await floodAndSample(cluster, 5902);
    expect(r.delivered).toBeGreaterThan(1000);
    expect(r.receiver.length).toBeGreaterThan(20);
    expect(r.receiver.filter((s) => s.has(SCHED_OTHER))).toEqual([]);
  });
});
