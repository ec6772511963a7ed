/**
 * Issue 2, done-when: `vxtun up` with a broken config exits 2 with one line naming the field,
 * and leaves no device behind; host problems (not root, no /dev/net/tun, port taken) get one
 * clear line too, and nothing the user had is touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology, type Netns } from '../../src/tools/lab/netns.js';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites } from '../support/integration.js';

const valid = {
  publicIp: '198.18.0.1',
  network: '10.244.0.0/16',
  subnet: '10.244.1.0/24',
  device: { name: 'vxtun0' },
  backend: { type: 'vxlan', vni: 1, port: 8472, vtepMac: '0a:58:0a:f4:01:00' },
  peers: [{ subnet: '10.244.2.0/24', publicIp: '198.18.0.2', vtepMac: '0a:58:0a:f4:02:00' }],
};

describe('vxtun up: refusals', () => {
  const topology = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-cli-'));
  let ns: Netns;
  let n = 0;

  beforeAll(async () => {
    requirePrerequisites(['ip', 'setpriv', 'unshare', 'mount']);
    ns = await topology.netns('cli');
    // A veth pair with both ends inside: the kernel here has no dummy driver.
    await ns.ip(['link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul1']);
    await ns.ip(['addr', 'add', '198.18.0.1/24', 'dev', 'ul0']);
    await ns.ip(['link', 'set', 'ul0', 'up']);
  });
  afterAll(async () => {
    await topology.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  async function up(config: unknown, prefix: string[] = []): Promise<{ code: number | null; stderr: string; stdout: string }> {
    const file = join(dir, `c${n++}.json`);
    if (config !== undefined) writeFileSync(file, typeof config === 'string' ? config : JSON.stringify({ controlSocket: join(dir, `s${n}.sock`), ...(config as object) }));
    const r = await ns.exec([...prefix, process.execPath, cliPath, 'up', '--config', file], { timeoutMs: 20_000 });
    return { code: r.code, stderr: r.stderr, stdout: r.stdout };
  }

  async function linkNames(): Promise<string[]> {
    return (JSON.parse((await ns.ip(['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
  }

  const broken: Array<[what: string, config: unknown, mustMention: string[]]> = [
    ['bad CIDR', { ...valid, network: '10.244.0.0/33' }, ['network', '10.244.0.0/33']],
    ['host bits in CIDR', { ...valid, subnet: '10.244.1.7/24' }, ['subnet', '10.244.1.7/24']],
    ['subnet outside network', { ...valid, subnet: '10.245.1.0/24' }, ['subnet', '10.245.1.0/24', '10.244.0.0/16']],
    ['unknown key', { ...valid, bogus: true }, ['unknown key', 'bogus']],
    ['unknown nested key', { ...valid, backend: { ...valid.backend, vnid: 3 } }, ['backend', 'vnid']],
    ['VNI out of range', { ...valid, backend: { ...valid.backend, vni: 16777216 } }, ['backend.vni', '16777216']],
    ['bad MAC', { ...valid, backend: { ...valid.backend, vtepMac: '0a:58:zz:f4:01:00' } }, ['backend.vtepMac', '0a:58:zz:f4:01:00']],
    ['peer outside network', { ...valid, peers: [{ ...valid.peers[0], subnet: '10.9.0.0/24' }] }, ['peers[0].subnet', '10.9.0.0/24']],
    ['missing publicIp', { ...valid, publicIp: undefined }, ['publicIp', 'required']],
    ['publicIp not on this host', { ...valid, publicIp: '198.18.0.99' }, ['publicIp', '198.18.0.99']],
    ['not JSON', '{ "publicIp": ', ['not valid JSON']],
  ];

  for (const [what, config, mention] of broken) {
    it(`${what}: exit 2, one line naming the field and value, no device`, async () => {
      const r = await up(config);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      for (const m of mention) expect(lines[0]).toContain(m);
      expect(await linkNames()).toEqual(['lo', 'ul0', 'ul1']);
    });
  }

  it('missing file: exit 2, names the file', async () => {
    const r = await ns.exec([process.execPath, cliPath, 'up', '--config', join(dir, 'nope.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^vxtun: config: cannot read .*nope\.json: no such file$/);
  });

  it('usage errors exit 2 with one line', async () => {
    const r = await ns.exec([process.execPath, cliPath, 'up']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--config');
    const bogus = await ns.exec([process.execPath, cliPath, 'frobnicate']);
    expect(bogus.code).toBe(2);
  });

  it('a device of that name already there: exit 2, and the existing device is left alone', async () => {
    await ns.ip(['link', 'add', 'vxtun0', 'type', 'bridge']);
    try {
      const r = await up(valid);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('device.name: "vxtun0" already exists');
      expect(await linkNames()).toEqual(['lo', 'ul0', 'ul1', 'vxtun0']);
    } finally {
      await ns.ip(['link', 'del', 'vxtun0']);
    }
  });

  it('UDP port taken: exit 1 with the errno, and the TUN it had made is gone', async () => {
    // A kernel VXLAN device listening on 8472 in the same namespace holds the port.
    await ns.ip(['link', 'add', 'vx0', 'type', 'vxlan', 'id', '9', 'dstport', '8472', 'local', '198.18.0.1', 'dev', 'ul0']);
    await ns.ip(['link', 'set', 'vx0', 'up']);
    try {
      const r = await up(valid);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toMatch(/^vxtun: cannot bind UDP 198\.18\.0\.1:8472: EADDRINUSE$/);
      expect(await linkNames()).toEqual(['lo', 'ul0', 'ul1', 'vx0']);
      expect((await ns.ip(['route', 'show', '10.244.0.0/16'])).stdout).toBe('');
    } finally {
      await ns.ip(['link', 'del', 'vx0']);
    }
  });

  it('not root: exit 1, says so, nothing made', async () => {
    const r = await up(valid, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('vxtun: vxtun up must run as root (it creates a TUN device and routes)');
    expect(await linkNames()).toEqual(['lo', 'ul0', 'ul1']);
  });

  it('no native addon (VXTUN_NO_NATIVE=1): exit 1, one line saying the TUN needs it, nothing made', async () => {
    const r = await up(valid, ['env', 'VXTUN_NO_NATIVE=1']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('vxtun: cannot open TUN vxtun0: vxtun native addon disabled by VXTUN_NO_NATIVE=1');
    expect(await linkNames()).toEqual(['lo', 'ul0', 'ul1']);
  });

  it('a regular file named as the control socket: exit 2 with one line naming it, the file untouched, nothing made', async () => {
    const path = join(dir, 'precious.txt');
    writeFileSync(path, 'operator data\n');
    const before = statSync(path);
    const r = await up({ ...valid, controlSocket: path });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`vxtun: config: controlSocket: ${JSON.stringify(path)} is a regular file, not a socket: refusing to replace it\n`);
    const after = statSync(path);
    expect(readFileSync(path, 'utf8')).toBe('operator data\n');
    expect([after.ino, after.size, after.mtimeMs, after.isFile()]).toEqual([before.ino, before.size, before.mtimeMs, true]);
    expect(await linkNames()).toEqual(['lo', 'ul0', 'ul1']);
  });

  it('no /dev/net/tun: exit 1, says so', async () => {
    const file = join(dir, 'tunless.json');
    writeFileSync(file, JSON.stringify({ ...valid, controlSocket: join(dir, 'tunless.sock') }));
    // A private mount namespace with an empty tmpfs over /dev/net: the host's /dev is untouched.
    const r = await ns.exec(['unshare', '-m', 'sh', '-c', `mount -t tmpfs none /dev/net && exec "${process.execPath}" "${cliPath}" up --config "${file}"`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^vxtun: \/dev\/net\/tun is missing/);
    expect(await linkNames()).toEqual(['lo', 'ul0', 'ul1']);
  });
});
