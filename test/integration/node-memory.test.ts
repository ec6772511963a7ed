/**
 * A node's memory (src/node/memory.ts): V8's young generation held at its initial size by default,
 * also with worker threads, and the node binary's start-up pages given back; V8's own growth and
 * the pages kept with VXTUN_NO_YOUNG_GEN_CAP=1 and VXTUN_KEEP_STARTUP_PAGES=1; traffic crosses
 * intact either way. And what a node with static peers loads: no registry client nor metrics
 * library it does not use (etcd3 and gRPC, the Kubernetes client, prom-client). No figure here is a
 * timing or a footprint target: those are measured by scripts/node-footprint.mjs.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../../src/tools/lab/netns.js';
import { controlRequest } from '../../src/control/socket.js';
import { Cluster, cliPath, type ClusterNode } from '../../src/tools/lab/cluster.js';
import type { CounterSnapshot } from '../../src/packet/counters.js';
import { repoRoot, requirePrerequisites, tcpTransfer, withEnv } from '../support/integration.js';

const MB = 1024 * 1024;

interface NodeInfo {
  features: Record<string, unknown>;
  memory: { rssBytes: number; heapUsedBytes: number; newSpaceBytes: number; releasedStartupBytes: number };
  engines: Array<{ txPackets: number; rxPackets: number }>;
}

const info = (n: ClusterNode): Promise<NodeInfo> => controlRequest(n.vxtun!.controlSocket, { cmd: 'info' }) as Promise<NodeInfo>;
const dropped = (c: CounterSnapshot): number => Object.values(c.dropped).reduce((x, y) => x + y, 0);

/** 30 MB each way with identical sha256 at both ends, every byte counted by the engines, nothing dropped. */
async function transferBothWays(cluster: Cluster, port: number): Promise<void> {
  const [a, b] = [cluster.node(1), cluster.node(2)];
  const [ca0, cb0] = [await a.vxtun!.counters(), await b.vxtun!.counters()];
  const there = await tcpTransfer(a.pod, b.pod, b.podIp, 30 * MB, port);
  expect(there.received).toEqual(there.sent);
  expect(there.received.bytes).toBe(30 * MB);
  const back = await tcpTransfer(b.pod, a.pod, a.podIp, 30 * MB, port + 1);
  expect(back.received).toEqual(back.sent);
  const [ca1, cb1] = [await a.vxtun!.counters(), await b.vxtun!.counters()];
  for (const [from0, from1, to0, to1] of [[ca0, ca1, cb0, cb1], [cb0, cb1, ca0, ca1]] as const) {
    expect(from1.tx.bytes - from0.tx.bytes).toBeGreaterThan(30 * MB);
    expect(to1.rx.bytes - to0.rx.bytes).toBeGreaterThan(30 * MB);
    // what one node sent as inner packets the other received: the tunnel lost nothing
    expect(to1.rx.packets - to0.rx.packets).toBe(from1.tx.packets - from0.tx.packets);
  }
  for (const [c0, c1] of [[ca0, ca1], [cb0, cb1]] as const) expect(dropped(c1)).toBe(dropped(c0));
}

/** A two-node vxtun cluster built before the describe block's tests and removed after them. */
function clusterForBlock(build: (topology: Topology) => Promise<Cluster>): () => Cluster {
  const topology = new Topology();
  let cluster: Cluster | undefined;
  beforeAll(async () => {
    requirePrerequisites();
    cluster = await build(topology);
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });
  return () => cluster!;
}

describe('young generation capped and start-up pages given back (the defaults), two workers', () => {
  const clusterNow = clusterForBlock((t) => Cluster.build(t, { kinds: ['vxtun', 'vxtun'], vxtunConfig: { datapath: { workers: 2 } } }));

  it('carries TCP intact through both engines while the main heap keeps its initial young generation, after the binary\'s start-up pages left', async () => {
    const cluster = clusterNow();
    await transferBothWays(cluster, 5401);
    for (const n of cluster.nodes) {
      const i = await info(n);
      expect(i.features).toMatchObject({ youngGenerationCap: true, workers: 2 });
      expect(i.engines).toHaveLength(2);
      // held at 1-4 MiB (seen); left to grow, the start-up alone takes it to 16 MiB
      expect(i.memory.newSpaceBytes).toBeGreaterThan(0);
      expect(i.memory.newSpaceBytes).toBeLessThanOrEqual(8 * MB);
      expect(i.memory.rssBytes).toBeGreaterThan(i.memory.heapUsedBytes);
      // given back before the node built (twice) and once it was up: 25-35 MiB in all (seen)
      expect(i.memory.releasedStartupBytes).toBeGreaterThan(8 * MB);
    }
  });
});

describe('young generation left to V8 and start-up pages kept (VXTUN_NO_YOUNG_GEN_CAP=1, VXTUN_KEEP_STARTUP_PAGES=1)', () => {
  const clusterNow = clusterForBlock((t) => withEnv({ VXTUN_NO_YOUNG_GEN_CAP: '1', VXTUN_KEEP_STARTUP_PAGES: '1' }, () => Cluster.build(t, { kinds: ['vxtun', 'vxtun'] })));

  it('carries TCP intact and says the cap is off and nothing was given back', async () => {
    const cluster = clusterNow();
    await transferBothWays(cluster, 5411);
    for (const n of cluster.nodes) {
      const i = await info(n);
      expect(i.features.youngGenerationCap).toBe(false);
      expect(i.memory.newSpaceBytes).toBeGreaterThan(0);
      expect(i.memory.releasedStartupBytes).toBe(0);
    }
    const status = JSON.parse((await cluster.node(1).ns.execOk([process.execPath, cliPath, 'status', '--json', '--control-socket', cluster.node(1).vxtun!.controlSocket])).stdout) as { info: NodeInfo };
    expect(Object.keys(status.info.memory).sort()).toEqual(['heapUsedBytes', 'newSpaceBytes', 'releasedStartupBytes', 'rssBytes']);
  });
});

describe('what `vxtun up` loads', () => {
  it('a node with static peers and no health server loads no etcd, gRPC, Kubernetes or Prometheus client', () => {
    requirePrerequisites([]);
    // The modules `vxtun up` imports before it reads the config, and the node builder with its static route source.
    const script = `
      import { createRequire } from 'node:module';
      await import(${JSON.stringify(`${repoRoot}dist/src/cli/up.js`)});
      const cache = Object.keys(createRequire(import.meta.url).cache);
      const packages = new Set(cache.map((f) => /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(f)?.[1]).filter(Boolean));
      process.stdout.write(JSON.stringify([...packages].sort()));`;
    const loaded = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' })) as string[];
    expect(loaded).toContain('pino'); // the probe sees the packages that are loaded
    for (const p of ['etcd3', '@grpc/grpc-js', 'protobufjs', '@kubernetes/client-node', 'prom-client']) expect(loaded).not.toContain(p);
  });
});
