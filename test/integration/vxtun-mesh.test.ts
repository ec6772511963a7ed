/**
 * Issue 2, done-when (b): the same between two vxtun nodes, and among three vxtun nodes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { Topology } from '../../src/tools/lab/netns.js';
import { waitFor } from '../../src/tools/lab/exec.js';
import { controlRequest } from '../../src/control/socket.js';
import { Cluster, cliPath } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites, tcpTransfer, ping } from '../support/integration.js';
import { defaultWorkers } from '../../src/datapath/workers.js';

const MB = 1024 * 1024;

describe('vxtun <-> vxtun', () => {
  const topology = new Topology();
  let cluster: Cluster;
  beforeAll(async () => {
    requirePrerequisites();
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('pods ping each other both ways', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const ab = await ping(a.pod, b.podIp);
    expect(ab.code, ab.out).toBe(0);
    const ba = await ping(b.pod, a.podIp);
    expect(ba.code, ba.out).toBe(0);
  });

  it('50 MB of TCP each way arrives with an identical sha256', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const there = await tcpTransfer(a.pod, b.pod, b.podIp, 50 * MB, 5301);
    expect(there.received).toEqual(there.sent);
    expect(there.received.bytes).toBe(50 * MB);
    const back = await tcpTransfer(b.pod, a.pod, a.podIp, 50 * MB, 5302);
    expect(back.received).toEqual(back.sent);
    const ca = await a.vxtun!.counters();
    const cb = await b.vxtun!.counters();
    expect(ca.tx.bytes).toBeGreaterThan(50 * MB);
    expect(cb.rx.bytes).toBeGreaterThan(50 * MB);
    // vxtun sends finished checksums and MTU-sized packets: nothing to repair between two of them.
    expect(cb.fixed['checksum-completed']).toBe(0);
    expect(ca.fixed['gso-segmented']).toBe(0);
    for (const c of [ca, cb]) expect(Object.values(c.dropped).reduce((x, y) => x + y, 0)).toBe(0);
  });

  it('vxtun status shows the node, its counters and its routes', async () => {
    const [a, b] = [cluster.node(1), cluster.node(2)];
    const r = await a.ns.execOk([process.execPath, cliPath, 'status', '--control-socket', a.vxtun!.controlSocket]);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`vxtun0  subnet 10.244.1.0/24  vtep ${a.vtepMac}  vni 1  udp ${a.publicIp}:8472  mtu 1450`);
    expect(lines[1]).toBe(`datapath native  workers ${defaultWorkers()}  source ports flow-hashed over 32768-60999 (16 ports)  tun queue 500`); // the defaults
    expect(lines[2]).toBe('offloads udp-gso udp-gro tun-tso tun-uso'); // all of them on this kernel (6.2+ for USO)
    expect(lines[3]).toMatch(/^express tx \d+ rx \d+ packets   handed over \d+ out \d+ in$/); // on by default
    expect(lines[4]).toMatch(/^express thread \d+ wake-ups   to the event loop \d+   back \d+$/); // on with the express path
    expect(lines[5]).toMatch(/^express bulk in \d+ batches \d+ packets   out \d+ batches \d+ packets$/); // on with the express path
    expect(lines[6]).toMatch(/^forwarded out \d+ packets \d+ bytes   in \d+ packets \d+ bytes$/);
    expect(lines[7]).toMatch(/^answered  \d+  /);
    expect(lines[8]).toMatch(/^dropped   \d+  /);
    expect(lines).toContain(`  ${b.subnet} -> ${b.publicIp}:8472 vtep ${b.vtepMac} vni 1`);
    const json = JSON.parse((await a.ns.execOk([process.execPath, cliPath, 'status', '--json', '--control-socket', a.vxtun!.controlSocket])).stdout);
    expect(json.counters.tx.packets).toBeGreaterThan(0);
    expect(json.outcomes.forwarded.out).toBe(json.counters.tx.packets);
    expect(json.routes).toEqual([{ subnet: b.subnet, publicIp: b.publicIp, port: 8472, vtepMac: b.vtepMac, vni: 1 }]);
    const missing = await a.ns.exec([process.execPath, cliPath, 'status', '--control-socket', '/nonexistent.sock']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('vxtun: no node is running with control socket /nonexistent.sock (no such socket); is vxtun up running? name another with --device NAME (its socket /run/vxtun/netns-<inode>/NAME.sock) or --control-socket PATH');
  });

  it('stops cleanly on SIGTERM: exit 0, device and route gone', async () => {
    const a = cluster.node(1);
    expect((await a.ns.ip(['-j', 'route', 'show', '10.244.0.0/16'])).stdout).toContain('vxtun0');
    expect(await a.vxtun!.stop()).toBe(0);
    const links = (await a.ns.ip(['-j', 'link', 'show'])).stdout;
    expect(links).not.toContain('vxtun0');
    expect(JSON.parse((await a.ns.ip(['-j', 'route', 'show', '10.244.0.0/16'])).stdout)).toEqual([]);
  });
});

describe('three vxtun nodes', () => {
  const topology = new Topology();
  let cluster: Cluster;
  beforeAll(async () => {
    requirePrerequisites();
    cluster = await Cluster.build(topology, { kinds: ['vxtun', 'vxtun', 'vxtun'] });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await topology.destroy();
  });

  it('every pod pings every other pod', async () => {
    for (const from of cluster.nodes) {
      for (const to of cluster.nodes) {
        if (from === to) continue;
        const r = await ping(from.pod, to.podIp);
        expect(r.code, `${from.index} -> ${to.index}: ${r.out}`).toBe(0);
      }
    }
  });

  it('TCP between each pair arrives intact, and each node sent to the right peer', async () => {
    let port = 5401;
    for (const from of cluster.nodes) {
      const to = cluster.node((from.index % 3) + 1);
      const r = await tcpTransfer(from.pod, to.pod, to.podIp, 10 * MB, port++);
      expect(r.received, `${from.index} -> ${to.index}`).toEqual(r.sent);
    }
    for (const n of cluster.nodes) {
      const c = await n.vxtun!.counters();
      expect(c.tx.bytes).toBeGreaterThan(10 * MB);
      expect(c.rx.bytes).toBeGreaterThan(10 * MB);
    }
  });

  it('SIGHUP swaps the peers atomically while a transfer flows; a broken config changes nothing', async () => {
    const [a, b, c] = [cluster.node(1), cluster.node(2), cluster.node(3)];
    const original = readFileSync(a.vxtun!.configPath, 'utf8');
    const cfg = JSON.parse(original);
    const waitRoutes = async (n: number) =>
      waitFor(async () => ((await controlRequest(a.vxtun!.controlSocket, { cmd: 'routes' })) as unknown[]).length === n, { timeoutMs: 5000, what: `${n} routes` });
    // A 30 MB transfer to node 3 runs while node 1's table is swapped twice under it.
    const transfer = tcpTransfer(a.pod, c.pod, c.podIp, 30 * MB, 5451);
    writeFileSync(a.vxtun!.configPath, JSON.stringify({ ...cfg, peers: cfg.peers.filter((p: { publicIp: string }) => p.publicIp !== b.publicIp) }));
    a.vxtun!.child.kill('SIGHUP');
    await waitRoutes(1);
    const gone = await a.pod.exec(['ping', '-c', '1', '-W', '1', b.podIp]);
    expect(gone.stdout).toMatch(/Destination Net Unreachable/);
    writeFileSync(a.vxtun!.configPath, original);
    a.vxtun!.child.kill('SIGHUP');
    await waitRoutes(2);
    const r = await transfer;
    expect(r.received).toEqual(r.sent);
    expect((await ping(a.pod, b.podIp)).code).toBe(0);
    // A broken file on reload: refused, the running table stays.
    writeFileSync(a.vxtun!.configPath, '{ "publicIp": 7 }');
    a.vxtun!.child.kill('SIGHUP');
    await waitFor(() => a.vxtun!.output.join('').includes('reload refused'), { timeoutMs: 5000, what: 'reload refused log line' });
    expect(((await controlRequest(a.vxtun!.controlSocket, { cmd: 'routes' })) as unknown[]).length).toBe(2);
    expect((await ping(a.pod, b.podIp)).code).toBe(0);
    writeFileSync(a.vxtun!.configPath, original);
  });
});
