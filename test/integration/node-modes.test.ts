/**
 * Issue 15, done-when: `vxtun up` assembles the node through one builder in every mode. SIGHUP in
 * registry mode (etcd) and in a static config with `subnetEnv` leaves the node running and
 * forwarding with nothing torn down (subnet.env, masquerade rules, device); both modes accept the
 * same `datapath` section and answer `info` with the same fields, UDP and TUN counters included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VxtunProcess, cliPath } from '../../src/tools/lab/cluster.js';
import { waitFor, sleep } from '../../src/tools/lab/exec.js';
import { CNI_PATH, type CniPod } from '../../src/tools/lab/cni.js';
import { controlRequest } from '../../src/control/socket.js';
import type { InfoReply } from '../../src/node/control-api.js';
import { FlannelLab, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites, ping, tcpTransfer } from '../support/integration.js';

/** Settings whose effect `info` shows: every datagram from the VXLAN port, and two engines. */
const DATAPATH = { sourcePorts: 'fixed', workers: 2 };

describe('one node builder: registry mode and static modes', () => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];
  let registry: LabNode[] = [];
  let flannelStatic: LabNode[] = [];
  let plain: LabNode;
  const pods = new Map<LabNode, CniPod>();

  /** A static flannel node (peers in the file, subnet.env, masquerade rules). */
  const startStatic = async (i: number, peer: number): Promise<LabNode> => {
    const ns = await lab.nodeNamespace(i);
    const config = {
      publicIp: `198.18.0.${i}`,
      network: '10.244.0.0/16',
      subnet: `10.244.${i}.0/24`,
      backend: { type: 'vxlan', vtepMac: `0a:58:0a:f4:${i.toString(16).padStart(2, '0')}:00` },
      peers: [{ subnet: `10.244.${peer}.0/24`, publicIp: `198.18.0.${peer}`, vtepMac: `0a:58:0a:f4:${peer.toString(16).padStart(2, '0')}:00` }],
      subnetEnv: join(lab.dir, `static${i}.env`),
      ipMasq: true,
      datapath: DATAPATH,
    };
    return { index: i, ns, publicIp: config.publicIp, subnetEnv: config.subnetEnv, vxtun: VxtunProcess.start(ns, config, lab.dir), config };
  };

  const info = async (n: LabNode): Promise<InfoReply> => (await controlRequest(n.vxtun.controlSocket, { cmd: 'info' })) as InfoReply;
  const alive = (n: LabNode): boolean => n.vxtun.child.exitCode === null && n.vxtun.child.signalCode === null;
  const masqRules = async (n: LabNode): Promise<string[]> => (await n.ns.execOk(['iptables', '-t', 'nat', '-S'])).stdout.split('\n').filter((l) => l.includes('flanneld masq'));
  const links = async (n: LabNode): Promise<string[]> => (JSON.parse((await n.ns.ip(['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname);

  beforeAll(async () => {
    requirePrerequisites(['ip', 'ping', 'iptables', 'etcd', 'etcdctl', `${CNI_PATH}/bridge`, `${CNI_PATH}/host-local`]);
    await lab.init();
    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    registry = [await lab.startNode(1, 'v3', { datapath: DATAPATH, ipMasq: true }), await lab.startNode(2, 'v3', { datapath: DATAPATH, ipMasq: true })];
    flannelStatic = [await startStatic(13, 14), await startStatic(14, 13)];
    // A plain static node (config.ts: peers, no subnet.env), for the shape of its `info`.
    const ns = await lab.nodeNamespace(21);
    const config = { publicIp: '198.18.0.21', network: '10.244.0.0/16', subnet: '10.244.21.0/24', peers: [], datapath: DATAPATH };
    plain = { index: 21, ns, publicIp: config.publicIp, subnetEnv: '', vxtun: VxtunProcess.start(ns, config, lab.dir), config };
    nodes.push(...registry, ...flannelStatic, plain);
    await Promise.all(nodes.map((n) => n.vxtun.ready(60_000)));
    for (const n of [...registry, ...flannelStatic]) pods.set(n, await lab.addPod(n));
  }, 180_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  it('every mode takes the same datapath section and answers info with the same fields, UDP and TUN counters included', async () => {
    const replies = await Promise.all([registry[0]!, flannelStatic[0]!, plain].map(info));
    const shape = (r: InfoReply): Record<string, string[]> => ({
      top: Object.keys(r).sort(),
      features: Object.keys(r.features).sort(),
      datapathCounters: Object.keys(r.datapathCounters).sort(),
      udp: Object.keys(r.datapathCounters.udp).sort(),
      tun: Object.keys(r.datapathCounters.tun).sort(),
      express: Object.keys(r.datapathCounters.express).sort(),
    });
    const [a, b, c] = replies.map(shape);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(a!.datapathCounters).toEqual(['express', 'tun', 'udp']);
    expect(a!.udp!.length).toBeGreaterThan(0);
    expect(a!.tun!.length).toBeGreaterThan(0);
    for (const r of replies) {
      // the datapath section took effect in each mode
      expect(r.features).toMatchObject({ sourcePorts: 'fixed', workers: 2 });
      expect(r.engines).toHaveLength(2);
      expect(r.backend).toBe('vxlan');
    }
    expect(replies.map((r) => r.lease === null)).toEqual([false, false, true]);
    // pings crossed the registry node: its UDP and TUN counters count them
    expect((await ping(pods.get(registry[0]!)!.ns, pods.get(registry[1]!)!.ip)).code).toBe(0);
    const after = await info(registry[0]!);
    expect(after.datapathCounters.udp.RecvPackets! + after.datapathCounters.express.RxPackets!).toBeGreaterThan(0);
    const status = await registry[0]!.ns.execOk([process.execPath, cliPath, 'status', '--control-socket', registry[0]!.vxtun.controlSocket]);
    expect(status.stdout.split('\n')[1]).toBe('datapath native  workers 2  source ports fixed 8472  tun queue 500');
  });

  for (const mode of ['registry (etcd)', 'static with subnetEnv'] as const) {
    it(`${mode}: SIGHUP leaves the node running and forwarding, nothing torn down`, async () => {
      const [a, b] = mode === 'registry (etcd)' ? registry : flannelStatic;
      const envBefore = readFileSync(a!.subnetEnv, 'utf8');
      const rulesBefore = await masqRules(a!);
      expect(rulesBefore.length).toBeGreaterThan(0);
      const routesBefore = await controlRequest(a!.vxtun.controlSocket, { cmd: 'routes' });
      a!.vxtun.child.kill('SIGHUP');
      const said = mode === 'registry (etcd)' ? 'the registry is the source of routes' : 'reload: peers replaced';
      await waitFor(() => a!.vxtun.output.join('').includes(said) || !alive(a!), { timeoutMs: 5000, what: `"${said}" logged` });
      await sleep(500);
      expect(alive(a!), a!.vxtun.output.join('').split('\n').slice(-5).join('\n')).toBe(true);
      expect(existsSync(a!.subnetEnv)).toBe(true);
      expect(readFileSync(a!.subnetEnv, 'utf8')).toBe(envBefore);
      expect(await masqRules(a!)).toEqual(rulesBefore);
      expect(await links(a!)).toContain('vxtun0');
      expect(await controlRequest(a!.vxtun.controlSocket, { cmd: 'routes' })).toEqual(routesBefore);
      const from = pods.get(a!)!;
      const to = pods.get(b!)!;
      const r = await ping(from.ns, to.ip);
      expect(r.code, r.out).toBe(0);
      const t = await tcpTransfer(from.ns, to.ns, to.ip, 2_000_000, mode === 'registry (etcd)' ? 5601 : 5602);
      expect(t.received).toEqual(t.sent);
    });
  }

  it('static with subnetEnv: SIGHUP re-reads the peers from the file; a broken file changes nothing', async () => {
    const [a, b] = flannelStatic;
    const routes = async (): Promise<string[]> => ((await controlRequest(a!.vxtun.controlSocket, { cmd: 'routes' })) as Array<{ subnet: string }>).map((r) => r.subnet);
    const original = readFileSync(a!.vxtun.configPath, 'utf8');
    const cfg = JSON.parse(original) as Record<string, unknown>;
    try {
      writeFileSync(a!.vxtun.configPath, JSON.stringify({ ...cfg, peers: [] }));
      a!.vxtun.child.kill('SIGHUP');
      await waitFor(async () => (await routes()).length === 0, { timeoutMs: 5000, what: 'the peer gone from the routes' });
      expect((await pods.get(a!)!.ns.exec(['ping', '-c', '1', '-W', '1', pods.get(b!)!.ip])).stdout).toMatch(/Destination Net Unreachable/);
      writeFileSync(a!.vxtun.configPath, '{ "publicIp": 7 }');
      a!.vxtun.child.kill('SIGHUP');
      await waitFor(() => a!.vxtun.output.join('').includes('reload refused'), { timeoutMs: 5000, what: 'reload refused' });
      expect(await routes()).toEqual([]);
      writeFileSync(a!.vxtun.configPath, original);
      a!.vxtun.child.kill('SIGHUP');
      await waitFor(async () => (await routes()).length === 1, { timeoutMs: 5000, what: 'the peer back' });
      expect(await routes()).toEqual(['10.244.14.0/24']);
      expect((await ping(pods.get(a!)!.ns, pods.get(b!)!.ip)).code).toBe(0);
      expect(alive(a!)).toBe(true);
    } finally {
      writeFileSync(a!.vxtun.configPath, original);
    }
  });

  it('SIGTERM still tears every mode down: device and masquerade rules gone, subnet.env kept (as flanneld keeps it), exit 0', async () => {
    for (const n of [registry[0]!, flannelStatic[0]!]) {
      const env = readFileSync(n.subnetEnv, 'utf8');
      expect(await n.vxtun.stop()).toBe(0);
      expect(await links(n)).not.toContain('vxtun0');
      expect(readFileSync(n.subnetEnv, 'utf8')).toBe(env);
      expect(await masqRules(n)).toEqual([]);
    }
  });
});
