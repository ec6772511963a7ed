/**
 * Issue 6, done-when 5: `vxtun lab up/exec/tour/down` as separate commands (the state file ties
 * them together): pods made by the real CNI plugins (bridge + host-local) from each node's
 * subnet.env, a mixed vxtun/kernel cluster, the tour's route table, VTEP table and trace, and
 * after `down` no namespace, link, process or file left behind. Plain `vxtun lab` is covered by lab.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/tools/lab/exec.js';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { labDown, type LabState } from '../../src/tools/lab/teaching.js';
import { requirePrerequisites } from '../support/integration.js';
import { narrativeLines, untranslatedWords } from '../support/untranslated.js';

const vxtun = (args: string[], timeoutMs = 60_000) => run([process.execPath, cliPath, ...args], { timeoutMs });
/** Alive and not merely a zombie waiting for init (the daemons were re-parented when `lab up` exited). */
const running = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const linkNames = async (): Promise<string[]> => (JSON.parse((await run(['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();

describe('vxtun lab up / exec / tour / down', () => {
  const parent = mkdtempSync(join(tmpdir(), 'vxtun-labteach-'));
  const dir = join(parent, 'lab');
  const sd = ['--state-dir', dir];
  let state: LabState;
  let linksBefore: string[] = [];

  afterAll(async () => {
    await labDown(dir).catch(() => {}); // only if a test failed half-way
    rmSync(parent, { recursive: true, force: true });
  });

  it('up: three nodes (node 3 on the kernel VXLAN), CNI pods from subnet.env, state recorded', async () => {
    requirePrerequisites(['ip', 'bridge', 'ping', '/usr/lib/cni/bridge', '/usr/lib/cni/host-local']);
    linksBefore = await linkNames();
    const r = await vxtun(['lab', 'up', '--nodes', '3', '--kernel', '3', ...sd]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LabState;
    expect(state.nodes.map((n) => n.kind)).toEqual(['vxtun', 'vxtun', 'kernel']);
    expect(state.namespaces).toHaveLength(7); // underlay, 3 nodes, 3 pods
    expect(r.stdout).toContain(`vxtun lab ${state.prefix}: 3 nodes (n1 vxtun, n2 vxtun, n3 kernel)`);
    for (const n of state.nodes) {
      expect(readFileSync(n.subnetEnv, 'utf8')).toBe(`FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.${n.index}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`);
      // host-local handed out the first free address of the subnet and recorded it in its data dir
      expect(n.podIp).toBe(`10.244.${n.index}.2`);
      expect(readdirSync(join(dir, `n${n.index}`, 'cni', 'cbr0'))).toContain(n.podIp);
      const addr = JSON.parse((await run(['ip', '-n', n.pod, '-j', 'addr', 'show', 'eth0'])).stdout)[0];
      expect(addr.mtu).toBe(1450);
      expect(addr.addr_info.filter((a: { family: string }) => a.family === 'inet')).toMatchObject([{ local: n.podIp, prefixlen: 24 }]);
      const bridge = JSON.parse((await run(['ip', '-n', n.ns, '-j', 'addr', 'show', 'cni0'])).stdout)[0];
      expect(bridge.addr_info.filter((a: { family: string }) => a.family === 'inet')).toMatchObject([{ local: `10.244.${n.index}.1`, prefixlen: 24 }]);
      expect((await run(['ip', '-n', n.pod, 'route', 'show', '10.244.0.0/16'])).stdout).toContain(`via 10.244.${n.index}.1 dev eth0`);
      expect((await run(['ip', '-n', n.pod, 'route', 'show', 'default'])).stdout.trim()).toBe('');
    }
    const again = await vxtun(['lab', 'up', '--nodes', '2', ...sd]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`vxtun: a lab is already up (${state.prefix}, state in ${dir}): run vxtun lab down first`);
  });

  it('exec: runs in a pod or node, passes the exit code; pods reach each other across vxtun and kernel nodes', async () => {
    for (const [from, to] of [
      ['pod1', '10.244.2.2'],
      ['pod1', '10.244.3.2'],
      ['pod3', '10.244.2.2'],
    ] as const) {
      const r = await vxtun(['lab', 'exec', from, ...sd, '--', 'ping', '-c', '1', '-W', '2', to]);
      expect(r.code, `${from} -> ${to}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('1 received');
    }
    const link = await vxtun(['lab', 'exec', 'n1', ...sd, '--', 'ip', 'link', 'show', 'vxtun0']);
    expect(link.code).toBe(0);
    expect(link.stdout).toContain('vxtun0');
    expect((await vxtun(['lab', 'exec', 'n2', ...sd, '--', 'false'])).code).toBe(1);
    const bad = await vxtun(['lab', 'exec', 'pod7', ...sd, '--', 'true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no node or pod "pod7"');
  });

  it('tour: route table, VTEP table and the trace of the ping, step by step', async () => {
    const r = await vxtun(['lab', 'tour', ...sd, '--color', 'never']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toContain('a ping from the pod on node 1 (vxtun) to the pod on node 2 (vxtun): 10.244.1.2 → 10.244.2.2');
    expect(out).toContain('a ping from the pod on node 1 (vxtun) to the pod on node 3 (kernel): 10.244.1.2 → 10.244.3.2');
    expect(out).toMatch(/10\.244\.0\.0\/16 via 10\.244\.1\.1 dev eth0/); // the pod's route
    expect(out).toMatch(/10\.244\.2\.2 dev vxtun0 src 10\.244\.1\.0/); // node 1: into the TUN
    expect(out).toMatch(/10\.244\.2\.0\/24 +→ node 198\.18\.0\.2:8472 {2}VTEP 0a:58:0a:f4:02:00 {2}vni 1 {3}← this ping/);
    expect(out).toContain('0a:58:0a:f4:01:00 dst 198.18.0.1 self permanent'); // node 3's FDB
    expect(out).toContain('10.244.1.0 lladdr 0a:58:0a:f4:01:00 PERMANENT'); // node 3's neighbour
    // the trace of the ping: across both vxtun nodes as one story, pod addresses unmasqueraded
    expect(out).toMatch(/━━ ICMP echo request 10\.244\.1\.2 → 10\.244\.2\.2 id \d+ seq 1 · node 198\.18\.0\.1 → node 198\.18\.0\.2 · VXLAN vni 1 · forwarded/);
    // sent from the flow-hashed source port (the default), named in the line and explained
    const sport = /ICMP echo request 10\.244\.1\.2 → 10\.244\.3\.2 id \d+ seq 1 · route 10\.244\.3\.0\/24 → node 198\.18\.0\.3 \(vtep 0a:58:0a:f4:03:00\) · VXLAN vni 1 · UDP 198\.18\.0\.1:(\d+) → 198\.18\.0\.3:8472 · 134 B · forwarded/.exec(out)?.[1];
    expect(Number(sport) >= 32768 && Number(sport) <= 60999, out).toBe(true);
    expect(out).toContain(`The source port ${sport} comes from a hash of the inner flow, so routers can spread flows over paths (RFC 7348).`);
    expect(out).toMatch(/ICMP echo reply 10\.244\.3\.2 → 10\.244\.1\.2 .* · from vtep 0a:58:0a:f4:03:00 · → vxtun0 · 134 B · forwarded/);
    // and explained in plain words, with the numbers the packet had
    expect(out).toContain('· classify: longest-prefix match on the destination: route 10.244.2.0/24 belongs to node 198.18.0.2, whose VTEP MAC is 0a:58:0a:f4:02:00 (VNI 1).');
    expect(out).toContain('in front of the packet: 84 → 106 bytes.');
    expect(out).toContain('so 134 bytes cross the underlay.');
    expect(out).toMatch(/node 1: forwarded \d+ out, \d+ in · answered \d+ · dropped: 0/);
    // the whole path: the kernel's hops (packet sockets in the lab's namespaces) among vxtun's points, one clock
    expect(out).toMatch(/\+\d+\.\d{3} ms {2}kernel {2}node 198\.18\.0\.1 {2}pod eth0 out +84 B · the pod's eth0, its end of the veth pair/);
    expect(out).toMatch(/kernel {2}node 198\.18\.0\.1 {2}veth\S+ in +84 B · the node's end of the pod's veth pair, a port of cni0/);
    expect(out).toMatch(/kernel {2}node 198\.18\.0\.2 {2}vxtun0 in +84 B · the TUN device between the kernel and vxtun/);
    expect(out).toMatch(/kernel {2}node 198\.18\.0\.3 {2}flannel\.1 in +84 B · the kernel VXLAN device/);
    expect(out).toMatch(/kernel {2}node 198\.18\.0\.3 {2}eth0 out +134 B · the underlay interface: the outer datagram/);
    expect(out).toMatch(/vxtun {3}node 198\.18\.0\.1 {2}udp-send +106 B/);
    expect(out).toContain('· kernel hops: a packet socket in each namespace of the lab saw the packet');
    const blocks = out.split('whole path in time order').slice(1);
    expect(blocks).toHaveLength(4); // request and reply, to node 2 and to node 3
    for (const b of blocks) {
      const times = [...b.matchAll(/^ +\+(\d+\.\d{3}) ms /gm)].map((m) => Number(m[1]));
      expect(times.length).toBeGreaterThanOrEqual(13); // the fewest: kernel node 3 to node 1
      expect(times).toEqual([...times].sort((x, y) => x - y));
    }
  });

  it('tour --lang zh: every sentence in Chinese (no English word outside protocol, tool and counter names)', async () => {
    const r = await vxtun(['lab', 'tour', ...sd, '--color', 'never', '--lang', 'zh']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toContain('从节点 1（vxtun）上的 Pod ping 节点 3（内核 VXLAN）上的 Pod：10.244.1.2 → 10.244.3.2');
    expect(out).toMatch(/封装：vxtun 在数据包前写入 8 字节 VXLAN 头（I 标志，VNI 1）和 14 字节内层以太网头/);
    expect(out).toMatch(/UDP发送 +UDP 198\.18\.0\.1:\d+ → 198\.18\.0\.2:8472 · 线路上 134 字节 · 已发送/);
    expect(out).toMatch(/节点 1：已转发 发出 \d+、收到 \d+ · 已应答 \d+ · 已丢弃：0/);
    const lines = narrativeLines(out);
    expect(lines.length).toBeGreaterThan(40);
    const english = lines.flatMap((l) => untranslatedWords(l).map((w) => `${w} in: ${l.trim()}`));
    expect(english).toEqual([]);
  });

  it('down: no namespace, link, process or file left behind', async () => {
    const pids = state.nodes.filter((n) => n.pid).map((n) => n.pid!);
    expect(pids).toHaveLength(2);
    const r = await vxtun(['lab', 'down', ...sd]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`lab ${state.prefix} is down: nothing left behind`);
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(state.prefix);
    for (const pid of pids) expect(running(pid), `pid ${pid}`).toBe(false);
    expect((await run(['pgrep', '-f', dir])).stdout.trim()).toBe('');
    expect(await linkNames()).toEqual(linksBefore);
    expect(existsSync(dir)).toBe(false);
    const twice = await vxtun(['lab', 'down', ...sd]);
    expect(twice.code).toBe(0);
    expect(twice.stdout).toContain('no lab is up');
  });
});
