/**
 * Issue 5, done-when: two vxtun nodes on flannel's udp backend (Backend.Type "udp" in the registry)
 * carry pod traffic; the wire carries the raw inner IPv4 packet in UDP 8285 with the outer DF bit
 * set and the inner TTL decremented (checksum still right); the lease is {"PublicIP","PublicIPv6":null};
 * the TUN MTU is underlay − 28 (FLANNEL_MTU 1472).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VxtunProcess, cliPath } from '../../src/tools/lab/cluster.js';
import { capture, parseTcpdump } from '../support/capture.js';
import { CNI_PATH, type CniPod } from '../../src/tools/lab/cni.js';
import { parseSubnetEnv } from '../../src/control/subnet-env.js';
import { internetChecksum } from '../../src/packet/wire/checksum.js';
import { FlannelLab, PREFIX, type LabNode } from '../support/flannel-lab.js';
import { requirePrerequisites, ping, tcpTransfer } from '../support/integration.js';

describe("flannel's udp backend", () => {
  const lab = new FlannelLab();
  const nodes: LabNode[] = [];
  const pods: CniPod[] = [];

  beforeAll(async () => {
    requirePrerequisites(['ip', 'ping', 'tcpdump', 'etcd', 'etcdctl', `${CNI_PATH}/bridge`]);
    await lab.init();
    await lab.putNetworkConfig({ Network: '10.244.0.0/16', Backend: { Type: 'udp', Port: 8285 } });
    nodes.push(await lab.startNode(1, 'v3'), await lab.startNode(2, 'v3'));
    await Promise.all(nodes.map((n) => n.vxtun.ready(60_000)));
    for (const n of nodes) pods.push(await lab.addPod(n));
  }, 120_000);
  afterAll(async () => {
    await lab.destroy(nodes);
  }, 60_000);

  it('writes the udp lease value and MTU underlay − 28', async () => {
    const info = await lab.info(nodes[0]!);
    expect(info.backend).toBe('udp');
    expect(info.mtu).toBe(1472);
    const value = (await lab.etcd.etcdctl(['get', `${PREFIX}/subnets/${info.subnet.replace('/', '-')}`, '--print-value-only'])).stdout.trim();
    expect(value).toBe('{"PublicIP":"198.18.0.1","PublicIPv6":null}');
    expect(parseSubnetEnv(readFileSync(nodes[0]!.subnetEnv, 'utf8')).FLANNEL_MTU).toBe('1472');
  });

  it('pods ping and move TCP data both ways; the wire carries raw IPv4 in UDP 8285, DF set, TTL decremented', async () => {
    const cap = await capture(nodes[0]!.ns, 'eth0', 'udp and dst port 8285 and src host 198.18.0.1', { flags: ['-xx', '-n', '-v'], count: 2 });
    const r = await ping(pods[0]!.ns, pods[1]!.ip);
    expect(r.code, r.out).toBe(0);
    // pod (64) -> node 1 forwards (63) -> vxtun decrements (62) | vxtun on node 2 (61) -> node 2 forwards (60)
    expect(r.out).toMatch(/ttl=60/);
    const packets = parseTcpdump((await cap.done).stdout);
    expect(packets.length).toBe(2);
    for (const p of packets) {
      expect(p.summary.join(' ')).toMatch(/flags \[DF\]/);
      const b = p.bytes;
      expect(b.readUInt16BE(12)).toBe(0x0800); // Ethernet -> IPv4
      const outerLen = (b[14]! & 0x0f) * 4;
      const udp = 14 + outerLen;
      expect(b.readUInt16BE(udp)).toBe(8285);
      expect(b.readUInt16BE(udp + 2)).toBe(8285);
      const inner = b.subarray(udp + 8);
      expect(inner[0]).toBe(0x45); // the payload is an IPv4 header, nothing in front of it
      expect(inner.readUInt16BE(2)).toBe(inner.length);
      expect([...inner.subarray(16, 20)].join('.')).toBe(pods[1]!.ip);
      expect(inner[8]).toBe(62);
      expect(internetChecksum(inner, 0, 20)).toBe(0);
    }
    const there = await tcpTransfer(pods[0]!.ns, pods[1]!.ns, pods[1]!.ip, 4_000_000, 5401);
    expect(there.received).toEqual(there.sent);
    const back = await tcpTransfer(pods[1]!.ns, pods[0]!.ns, pods[0]!.ip, 4_000_000, 5402);
    expect(back.received).toEqual(back.sent);
    // flanneld's udp backend sends from 8285: the fixed port, whatever the vxlan default is
    const status = await nodes[0]!.ns.execOk([process.execPath, cliPath, 'status', '--control-socket', nodes[0]!.vxtun.controlSocket]);
    expect(status.stdout.split('\n')[1]).toBe('datapath native  workers 1  source ports fixed 8285  tun queue 500');
  });

  it('static mode (peers in the file, no registry) speaks the same udp wire format', async () => {
    const mk = async (i: number, peer: number): Promise<LabNode> => {
      const ns = await lab.nodeNamespace(i);
      const config = {
        publicIp: `198.18.0.${i}`,
        network: '10.244.0.0/16',
        subnet: `10.244.${i}.0/24`,
        backend: { type: 'udp', port: 8285 },
        peers: [{ subnet: `10.244.${peer}.0/24`, publicIp: `198.18.0.${peer}` }],
        subnetEnv: join(lab.dir, `static${i}.env`),
      };
      const vxtun = VxtunProcess.start(ns, config, lab.dir);
      await vxtun.ready();
      return { index: i, ns, publicIp: config.publicIp, subnetEnv: config.subnetEnv, vxtun, config };
    };
    const a = await mk(13, 14);
    nodes.push(a);
    const b = await mk(14, 13);
    nodes.push(b);
    const pa = await lab.addPod(a);
    const pb = await lab.addPod(b);
    expect(pa.ip.startsWith('10.244.13.')).toBe(true);
    const r = await ping(pa.ns, pb.ip);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/ttl=60/);
  });
});
