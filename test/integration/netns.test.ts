// The lab library against the real kernel: two flannel-style kernel VXLAN nodes, one pod each.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, processOutput, waitForOutput, type Netns } from '../../src/tools/lab/netns.js';
import { Underlay } from '../../src/tools/lab/underlay.js';
import { addKernelPeer, createKernelFlannelNode, setOffloads } from '../../src/tools/lab/kernel-flannel.js';
import { addPod } from '../../src/tools/lab/pods.js';
import { capture, parseTcpdump } from '../support/capture.js';
import { run } from '../../src/tools/lab/exec.js';
import { requirePrerequisites } from '../support/integration.js';

/** 'complete' | 'partial' (pseudo-header sum only) | 'bad' for the inner IPv4 TCP of a captured VXLAN frame. */
function innerTcpChecksumState(b: Buffer): string {
  const ip = 14 + 20 + 8 + 8 + 14;
  const l4 = ip + (b[ip]! & 15) * 4;
  const len = b.readUInt16BE(ip + 2) - (l4 - ip);
  const sum = (s: number, e: number, acc = 0) => {
    for (let i = s; i + 1 < e; i += 2) acc += b.readUInt16BE(i);
    if ((e - s) & 1) acc += b[e - 1]! << 8;
    return acc;
  };
  const fold = (x: number) => {
    while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
    return x;
  };
  const pseudo = sum(ip + 12, ip + 20) + 6 + len;
  if (fold(pseudo + sum(l4, l4 + len)) === 0xffff) return 'complete';
  return b.readUInt16BE(l4 + 16) === fold(pseudo) ? 'partial' : 'bad';
}

async function netnsNames(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

async function rootLinks(): Promise<string[]> {
  const r = await run(['ip', '-o', 'link', 'show']);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1]!.trim())
    .sort();
}

describe('lab: kernel flannel nodes in namespaces', () => {
  const topo = new Topology();
  let linksBefore: string[];
  let n1: Netns;
  let n2: Netns;
  let pod1: Netns;
  let pod2: Netns;
  let sleeper: number | undefined;

  beforeAll(async () => {
    // Root and the tools are prerequisites: missing, the suite fails (never skips).
    requirePrerequisites(['ip', 'bridge', 'ping', 'tcpdump', 'ethtool']);
    linksBefore = await rootLinks();
    const ul = await Underlay.create(topo);
    n1 = await topo.netns('n1');
    n2 = await topo.netns('n2');
    await ul.attach(n1, '198.18.0.1');
    await ul.attach(n2, '198.18.0.2');
    const k1 = await createKernelFlannelNode(n1, { publicIp: '198.18.0.1', subnet: '10.244.1.0/24', vtepMac: '0a:58:0a:f4:01:00' });
    const k2 = await createKernelFlannelNode(n2, { publicIp: '198.18.0.2', subnet: '10.244.2.0/24', vtepMac: '0a:58:0a:f4:02:00' });
    expect(k1.mtu).toBe(1450);
    await addKernelPeer(n1, { subnet: k2.subnet, publicIp: k2.publicIp, vtepMac: k2.vtepMac });
    await addKernelPeer(n2, { subnet: k1.subnet, publicIp: k1.publicIp, vtepMac: k1.vtepMac });
    pod1 = await addPod(n1, { name: 'pod1', gatewayCidr: '10.244.1.1/24', podIp: '10.244.1.2/24' });
    pod2 = await addPod(n2, { name: 'pod2', gatewayCidr: '10.244.2.1/24', podIp: '10.244.2.2/24' });
  });

  afterAll(async () => {
    await topo.destroy();
  });

  it('names every namespace after the run prefix', () => {
    expect(topo.namespaces.map((n) => n.name)).toEqual(
      ['ul', 'n1', 'n2', 'pod1', 'pod2'].map((s) => `${topo.prefix}-${s}`),
    );
  });

  it('programs flannel.1 like flanneld', async () => {
    const link = await n1.ip(['-d', 'link', 'show', 'flannel.1']);
    expect(link.stdout).toMatch(/vxlan id 1 local 198\.18\.0\.1 dev eth0 .*dstport 8472 nolearning/);
    expect(link.stdout).toContain('0a:58:0a:f4:01:00');
    expect((await n1.ip(['addr', 'show', 'flannel.1'])).stdout).toContain('inet 10.244.1.0/32');
    expect((await n1.ip(['neigh', 'show', 'dev', 'flannel.1'])).stdout).toMatch(/10\.244\.2\.0 lladdr 0a:58:0a:f4:02:00 PERMANENT/);
    expect((await n1.bridge(['fdb', 'show', 'dev', 'flannel.1'])).stdout).toMatch(/0a:58:0a:f4:02:00 dst 198\.18\.0\.2 self permanent/);
    expect((await n1.ip(['route', 'show', '10.244.2.0/24'])).stdout).toMatch(/via 10\.244\.2\.0 dev flannel\.1 onlink/);
    // Pods route only the pod network, never a default route.
    const routes = (await pod1.ip(['route', 'show'])).stdout;
    expect(routes).toContain('10.244.0.0/16 via 10.244.1.1 dev eth0');
    expect(routes).not.toMatch(/^default/m);
  });

  it('pod-to-pod ping works both ways', async () => {
    await pod1.execOk(['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.244.2.2']);
    await pod2.execOk(['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.244.1.2']);
  });

  it('captures the VXLAN frames on the underlay', async () => {
    const cap = await capture(n1, 'eth0', 'udp dst port 8472', { count: 1 });
    await pod1.execOk(['ping', '-c', '1', '-W', '2', '10.244.2.2']);
    const r = await cap.done;
    const [pkt] = parseTcpdump(r.stdout);
    expect(pkt).toBeDefined();
    const b = pkt!.bytes;
    expect(b.readUInt16BE(12)).toBe(0x0800); // outer IPv4
    expect(b.readUInt16BE(14 + 20 + 2)).toBe(8472); // UDP dst port
    expect(b[14 + 20 + 8]).toBe(0x08); // VXLAN I flag
    expect(b.readUIntBE(14 + 20 + 8 + 4, 3)).toBe(1); // VNI 1
    const inner = 14 + 20 + 8 + 8;
    expect(b.subarray(inner, inner + 6).toString('hex')).toBe('0a580af40200'); // inner dst = peer VTEP MAC
    expect(b.subarray(inner + 14 + 12, inner + 14 + 20).toString('hex')).toBe('0af401020af40202'); // 10.244.1.2 -> 10.244.2.2
  });

  it('pod TCP crosses the kernel tunnel with a partial inner checksum by default, complete with tx off', async () => {
    const synOnWire = async (): Promise<Buffer> => {
      const cap = await capture(n2, 'eth0', 'udp dst port 8472 and udp[28:2] = 0x0800 and udp[39] = 6', { count: 1 });
      // Port 9 is closed in pod2: the SYN crosses, an RST comes back, bash gives up at once.
      await pod1.exec(['bash', '-c', 'exec 3<>/dev/tcp/10.244.2.2/9'], { timeoutMs: 5000 });
      const timeout = setTimeout(() => void cap.stop(), 5000);
      const r = await cap.done;
      clearTimeout(timeout);
      const [pkt] = parseTcpdump(r.stdout);
      expect(pkt, r.stderr).toBeDefined();
      return pkt!.bytes;
    };
    expect(innerTcpChecksumState(await synOnWire())).toBe('partial');
    await setOffloads(n1, 'eth0', { tx: false });
    try {
      expect(innerTcpChecksumState(await synOnWire())).toBe('complete');
    } finally {
      await setOffloads(n1, 'eth0', { tx: true });
    }
  });

  it('refuses addresses outside the lab ranges', async () => {
    await expect(createKernelFlannelNode(n1, { publicIp: '192.168.1.1', subnet: '10.244.9.0/24', vtepMac: '0a:58:0a:f4:09:00', dev: 'flannel.9' })).rejects.toThrow(/198\.18\.0\.0\/15/);
    await expect(addKernelPeer(n1, { subnet: '10.1.0.0/24', publicIp: '198.18.0.9', vtepMac: '0a:58:0a:f4:09:00' })).rejects.toThrow(/10\.244\.0\.0\/16/);
  });

  it('destroy() removes every namespace, link and process, and is idempotent', async () => {
    const child = n1.spawn(['sh', '-c', 'echo ready in $(ip -o link show eth0 | cut -d" " -f2); exec sleep 600']);
    await waitForOutput(child, /ready in \S+/);
    expect(processOutput(child)).toMatch(/^ready in eth0/); // ran inside the node namespace
    sleeper = child.pid;
    expect(sleeper).toBeDefined();
    expect(await n1.pids()).toContain(sleeper);

    await topo.destroy();
    await topo.destroy();

    const names = await netnsNames();
    expect(names.filter((n) => n.includes(topo.id))).toEqual([]);
    expect(await rootLinks()).toEqual(linksBefore);
    expect(() => process.kill(sleeper!, 0)).toThrow();
  });
});
