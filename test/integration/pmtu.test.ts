/**
 * Issue 2, done-when (d): path-MTU discovery through vxtun. The vxtun device is given MTU 1500
 * on a 1500-byte underlay, so packets the underlay cannot carry reach vxtun itself, which must
 * answer fragmentation-needed with the tunnel MTU (1450); pods have 1500-byte links.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../../src/tools/lab/netns.js';
import { Cluster } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites, tcpTransfer } from '../support/integration.js';

const MB = 1024 * 1024;

describe('path-MTU discovery through vxtun', () => {
  const topology = new Topology();
  let cluster: Cluster;
  beforeAll(async () => {
    requirePrerequisites();
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'kernel'], podMtu: 1500, vxtunDeviceMtu: 1500 });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('a DF ping larger than the tunnel MTU gets fragmentation-needed with mtu 1450', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    const before = await v.vxtun!.counters();
    // 1472 bytes of ICMP data = a 1500-byte packet: fits the pod link and the TUN, not the tunnel.
    const r = await v.pod.exec(['ping', '-M', 'do', '-s', '1472', '-c', '1', '-W', '2', k.podIp]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Frag needed and DF set \(mtu = 1450\)|message too long, mtu=1450/i);
    const after = await v.vxtun!.counters();
    expect(after.answered['icmp-too-big']! - before.answered['icmp-too-big']!).toBe(1);
    // Now the pod knows the path MTU: the same size is refused locally, a fitting one passes.
    const fits = await v.pod.exec(['ping', '-M', 'do', '-s', '1422', '-c', '1', '-W', '2', k.podIp]);
    expect(fits.code, fits.stdout).toBe(0);
  });

  it('a TCP transfer with a 1500-byte pod link completes through the 1450-byte tunnel', async () => {
    const [v, k] = [cluster.node(1), cluster.node(2)];
    // Fresh pod route cache: forget what the ping taught.
    await v.pod.ip(['route', 'flush', 'cache']);
    const before = await v.vxtun!.counters();
    const r = await tcpTransfer(v.pod, k.pod, k.podIp, 20 * MB, 5501);
    expect(r.received).toEqual(r.sent);
    const back = await tcpTransfer(k.pod, v.pod, v.podIp, 20 * MB, 5502);
    expect(back.received).toEqual(back.sent);
    const after = await v.vxtun!.counters();
    expect(after.dropped['too-big']! - before.dropped['too-big']!).toBe(0);
  });
});
