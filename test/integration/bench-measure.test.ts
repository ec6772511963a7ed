/**
 * The bench's iperf3 client asks again when the server is still busy with the test before (seen on a
 * loaded machine: "the server is busy running a test"), so a round is not lost to the server's
 * bookkeeping — and still reports a server that never frees up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, type Netns } from '../../src/tools/lab/netns.js';
import { Underlay } from '../../src/tools/lab/underlay.js';
import { startIperfServer, iperfTcp, IPERF_PORT } from '../../src/tools/bench/measure.js';
import { requirePrerequisites } from '../support/integration.js';

describe('bench iperf3 client against a busy server', () => {
  const topology = new Topology();
  let client: Netns;
  let server: Netns;
  beforeAll(async () => {
    requirePrerequisites(['ip', 'iperf3']);
    const ul = await Underlay.create(topology);
    client = await topology.netns('c');
    server = await topology.netns('s');
    await ul.attach(client, '198.18.0.1');
    await ul.attach(server, '198.18.0.2');
    await startIperfServer(server, '198.18.0.2');
  });
  afterAll(async () => {
    await topology.destroy();
  });

  const busyFor = (seconds: number) => client.exec(['iperf3', '-c', '198.18.0.2', '-p', String(IPERF_PORT), '-t', String(seconds), '-b', '10M'], { timeoutMs: 30_000 });

  it('measures once the test before has ended (asked again after a second)', async () => {
    const other = busyFor(1.5);
    await new Promise((r) => setTimeout(r, 400)); // the other test holds the server
    const r = await iperfTcp(client, '198.18.0.2', 1, 1);
    expect(r.ok, r.ok ? '' : r.error).toBe(true);
    if (r.ok) expect(r.value.bytes).toBeGreaterThan(0);
    expect((await other).code).toBe(0);
  });

  it('reports a server busy for longer than the retries wait', async () => {
    const other = busyFor(6);
    await new Promise((r) => setTimeout(r, 400));
    const r = await iperfTcp(client, '198.18.0.2', 1, 1);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/busy/);
    await other;
  });
});
