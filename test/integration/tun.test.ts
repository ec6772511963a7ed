/**
 * The Linux TUN device against the real kernel, inside a network namespace this test creates (and
 * always deletes). The vitest process stays in the root namespace; the device is opened by a child
 * `node` run under `ip netns exec`, importing the compiled dist/ output (run `npm run build` first).
 *
 * Checked: device creation, MTU/address/up and routes as `ip -j` reports them; EEXIST/ESRCH/EBUSY/EINVAL
 * errors; a batched read of kernel-routed packets; a real ping answered by a reply the child builds
 * (with a non-IP packet refused in the same write batch); close removes the device and the process exits.
 * Error paths: ENOENT with /dev/net/tun hidden (tmpfs over /dev/net in a private mount namespace)
 * and EPERM as an unprivileged user — both real failures of open()/TUNSETIFF, not simulations.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIST_LINUX = join(ROOT, 'dist/src/io/tun-linux.js');
const DIST_NATIVE = join(ROOT, 'dist/src/io/addon.js');
const NS = `vxt-tun-${process.pid}-${randomBytes(3).toString('hex')}`;
const HEAD = 64; // headroom the child reads into

interface Ev {
  type: string;
  [k: string]: unknown;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ipJson<T>(args: string[]): T {
  return JSON.parse(sh('ip', ['-n', NS, '-j', ...args])) as T;
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

const CHILD = `
import dgram from 'node:dgram';
import { openLinuxTun, addRoute, delRoute } from ${JSON.stringify(pathToFileURL(DIST_LINUX).href)};
import { requireNative } from ${JSON.stringify(pathToFileURL(DIST_NATIVE).href)};
const native = requireNative();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const err = (e) => ({ message: e.message, code: e.code, errno: e.errno, syscall: e.syscall });
const HEAD = ${HEAD};

const dev = openLinuxTun({ name: 'vxt0', mtu: 1400, ipv4: '10.244.7.0', prefixLen: 32 });
addRoute('10.244.9.0', 24, dev.name);
const errors = {};
try { addRoute('10.244.9.0', 24, dev.name); } catch (e) { errors.eexist = err(e); }
try { delRoute('10.244.8.0', 24, dev.name); } catch (e) { errors.esrch = err(e); }
try { native.tunOpen('vxt0'); } catch (e) { errors.ebusy = err(e); }
try { native.tunOpen('bad/name'); } catch (e) { errors.einval = err(e); }
// A second queue of a multi-queue device that disagrees about the virtio header is refused.
const q1 = native.tunOpen('vxtmq', { offload: true, multiQueue: true });
try { native.tunOpen('vxtmq', { offload: false, multiQueue: true }); } catch (e) { errors.queueMismatch = err(e); }
const q2 = native.tunOpen('vxtmq', { offload: true, multiQueue: true });
errors.queueAlike = { vnetHdr: q2.vnetHdr, offload: q2.offload };
native.close(q2.fd);
native.close(q1.fd);
addRoute('10.244.10.0', 24, dev.name);
delRoute('10.244.10.0', 24, dev.name);

// Which packets of a write batch the kernel refused, through each writer of an offload device (the
// addon's and the TypeScript one): junk (no IP version) between IPv4 headers the device takes
// (with a wrong header checksum, so the stack drops them quietly after the device took them).
const refusals = {};
for (const [name, offloadIn, addr] of [['vxtoffn', 'native', '10.244.12.0'], ['vxtofft', 'ts', '10.244.13.0']]) {
  const d = openLinuxTun({ name, mtu: 1400, ipv4: addr, prefixLen: 32, offload: true, offloadIn });
  const pk = Array.from({ length: 5 }, (_, i) => {
    const b = Buffer.alloc(HEAD + 20);
    if (i % 2 === 1) b.write('4500001400000000400100000af4090a0af4090b', HEAD, 'hex'); // checksum 0: wrong
    return b;
  });
  const refused = new Uint8Array(5);
  const written = d.write(pk, [20, 20, 20, 20, 20], HEAD, 5, undefined, refused);
  refusals[name] = { vnetHdr: d.features.vnetHdr, written, refused: [...refused] };
  d.close();
}
errors.refusals = refusals;

const bufs = Array.from({ length: 8 }, () => Buffer.alloc(HEAD + 1400));
const sizes = new Array(8).fill(0);

// A burst routed into the TUN before anyone reads: one readBatch must return it whole.
const sock = dgram.createSocket('udp4');
let sent = 0;
for (let i = 0; i < 5; i++) sock.send(Buffer.from('burst' + i), 9, '10.244.9.6', () => { if (++sent === 5) setTimeout(burstRead, 100); });

function burstRead() {
  sock.close();
  const n = dev.read(bufs, sizes, HEAD);
  const pkts = [];
  for (let i = 0; i < n; i++) pkts.push(bufs[i].subarray(HEAD, HEAD + sizes[i]).toString('hex'));
  const again = dev.read(bufs, sizes, HEAD);
  out({ type: 'ready', name: dev.name, mtu: dev.mtu, errors, burst: { n, pkts, again } });
  serve();
}

function serve() {
  const reply = [Buffer.alloc(HEAD + 1400), Buffer.alloc(HEAD + 1400)];
  let wakeups = 0;
  dev.start(() => {
    wakeups++;
    for (let n; (n = dev.read(bufs, sizes, HEAD)) > 0; ) {
      for (let i = 0; i < n; i++) {
        const p = bufs[i].subarray(HEAD, HEAD + sizes[i]);
        const ihl = (p[0] & 15) * 4;
        const echo = p.length >= ihl + 8 && p[0] >> 4 === 4 && p[9] === 1 && p[ihl] === 8;
        out({ type: echo ? 'echo' : 'other', hex: p.toString('hex') });
        if (!echo) continue;
        const q = reply[1].subarray(HEAD, HEAD + p.length);
        p.copy(q);
        p.copy(q, 12, 16, 20); // swap source and destination
        p.copy(q, 16, 12, 16);
        q.writeUInt16BE(0, 10);
        q.writeUInt16BE(~native.checksum(q, 0, ihl) & 0xffff, 10);
        const oldWord = q.readUInt16BE(ihl);
        const oldSum = q.readUInt16BE(ihl + 2);
        q[ihl] = 0; // echo reply
        const incr = native.csumIncremental(oldSum, oldWord, q.readUInt16BE(ihl));
        q.writeUInt16BE(0, ihl + 2);
        const full = ~native.checksum(q, ihl, q.length - ihl) & 0xffff;
        q.writeUInt16BE(incr, ihl + 2);
        reply[0].fill(0); // not IPv4/IPv6: the kernel refuses it with EINVAL, the batch goes on
        const refused = new Uint8Array(2);
        const written = dev.write(reply, [20, q.length], HEAD, 2, undefined, refused);
        out({ type: 'replied', written, refused: [...refused], incr, full, hex: q.toString('hex') });
      }
    }
  });
  process.stdin.resume();
  process.stdin.on('end', () => {
    dev.close();
    dev.close(); // idempotent
    out({ type: 'closed', wakeups, fd: dev.fd, readAfterClose: dev.read(bufs, sizes, HEAD) });
    // Nothing else is left on the event loop: the process must exit by itself.
  });
}
`;

const ERR_CHILD = `
import { requireNative } from ${JSON.stringify(pathToFileURL(DIST_NATIVE).href)};
try {
  const t = requireNative().tunOpen(process.argv[2]);
  console.log(JSON.stringify({ opened: t.name }));
} catch (e) {
  console.log(JSON.stringify({ message: e.message, code: e.code, errno: e.errno, syscall: e.syscall }));
}
`;

function hex(s: string): Buffer {
  return Buffer.from(s, 'hex');
}

function sum16(b: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

describe('Linux TUN device in a network namespace', () => {
  let dir = '';
  let child: ChildProcess | undefined;
  const events: Ev[] = [];
  let stderr = '';
  let exit: Promise<number | null> | undefined;
  const find = <T = Ev>(type: string): T | undefined => events.find((e) => e.type === type) as T | undefined;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('integration tests need root (network namespaces, TUN)');
    for (const f of [DIST_LINUX, DIST_NATIVE]) {
      if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build first`);
    }
    if (statSync(join(ROOT, 'src/io/tun-linux.ts')).mtimeMs > statSync(DIST_LINUX).mtimeMs)
      throw new Error('dist/ is older than src/io/tun-linux.ts: run npm run build first');
    if (!existsSync(join(ROOT, 'build/Release/vxtun_native.node')))
      throw new Error('vxtun native addon not built: run npm install (node-gyp)');

    dir = mkdtempSync(join(tmpdir(), 'vxtun-tun-'));
    chmodSync(dir, 0o755); // readable by the unprivileged user of the EPERM case
    writeFileSync(join(dir, 'child.mjs'), CHILD);
    writeFileSync(join(dir, 'err.mjs'), ERR_CHILD, { mode: 0o644 });
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);

    child = spawn('ip', ['netns', 'exec', NS, process.execPath, join(dir, 'child.mjs')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) events.push(JSON.parse(buf.slice(0, i)) as Ev);
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const c = child;
    exit = new Promise((resolve) => c.on('exit', (code) => resolve(code)));
    await Promise.race([
      waitFor(() => find('ready') !== undefined, 'the child to open the TUN'),
      exit.then((code) => {
        throw new Error(`child exited (${code}): ${stderr}`);
      }),
    ]);
  });

  afterAll(async () => {
    try {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      try {
        const pids = sh('ip', ['netns', 'pids', NS]).split('\n').filter(Boolean);
        for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* namespace already gone */
      }
    } finally {
      try {
        sh('ip', ['netns', 'del', NS]);
      } catch {
        /* not created */
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('creates vxt0 with mtu 1400, 10.244.7.0/32, up', () => {
    expect(find('ready')).toMatchObject({ name: 'vxt0', mtu: 1400 });
    const [link] = ipJson<Array<{ ifname: string; mtu: number; flags: string[]; link_type: string }>>(['link', 'show', 'dev', 'vxt0']);
    expect(link).toMatchObject({ ifname: 'vxt0', mtu: 1400, link_type: 'none' });
    expect(link!.flags).toContain('UP');
    expect(link!.flags).toContain('LOWER_UP'); // carrier: a reader is attached
    const [addr] = ipJson<Array<{ addr_info: Array<{ family: string; local: string; prefixlen: number }> }>>(['addr', 'show', 'dev', 'vxt0']);
    expect(addr!.addr_info.filter((a) => a.family === 'inet')).toEqual([
      expect.objectContaining({ local: '10.244.7.0', prefixlen: 32 }),
    ]);
  });

  it('has the route 10.244.9.0/24 dev vxt0 (and nothing classful left from SIOCSIFADDR)', () => {
    const routes = ipJson<Array<{ dst: string; dev: string; scope?: string }>>(['route', 'show']);
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.244.9.0/24', dev: 'vxt0', scope: 'link' }));
    expect(routes.map((r) => r.dst)).not.toContain('10.0.0.0/8');
    expect(routes.map((r) => r.dst)).not.toContain('10.244.10.0/24'); // added then deleted by the child
  });

  it('reports EEXIST, ESRCH, EBUSY and EINVAL with the errno name', () => {
    const { errors } = find<{ errors: Record<string, { message: string; code: string; syscall: string }> }>('ready')!;
    expect(errors.eexist).toMatchObject({ code: 'EEXIST', syscall: 'SIOCADDRT' });
    expect(errors.eexist!.message).toMatch(/^SIOCADDRT 10\.244\.9\.0\/24 dev vxt0: EEXIST \(File exists\)/);
    expect(errors.esrch).toMatchObject({ code: 'ESRCH', syscall: 'SIOCDELRT' });
    expect(errors.ebusy!.message).toMatch(/^TUNSETIFF vxt0: EBUSY \(Device or resource busy\)/);
    expect(errors.einval!.message).toMatch(/^TUNSETIFF bad\/name: EINVAL \(Invalid argument\)/);
  });

  it('refuses a second queue that disagrees with the device about the virtio header; takes one that agrees', () => {
    const { errors } = find<{ errors: Record<string, { message: string; code: string; syscall: string; vnetHdr?: boolean; offload?: boolean }> }>('ready')!;
    expect(errors.queueMismatch).toMatchObject({ code: 'EINVAL', syscall: 'TUNSETIFF' });
    expect(errors.queueMismatch!.message).toMatch(/^TUNSETIFF vxtmq: EINVAL \(Invalid argument\); the device's virtio header setting differs from this queue's/);
    expect(errors.queueAlike).toEqual({ vnetHdr: true, offload: true });
  });

  it('says which packets of a write batch the kernel refused, through the addon\'s offload writer and the TypeScript one', () => {
    const { errors } = find<{ errors: { refusals: Record<string, { vnetHdr: boolean; written: number; refused: number[] }> } }>('ready')!;
    for (const name of ['vxtoffn', 'vxtofft']) {
      // junk, IPv4, junk, IPv4, junk: the three without an IP version refused (EINVAL), the others taken
      expect(errors.refusals[name]).toEqual({ vnetHdr: true, written: 2, refused: [1, 0, 1, 0, 1] });
    }
  });

  it('reads a burst of kernel-routed packets in one batch, then EAGAIN → 0', () => {
    const { burst } = find<{ burst: { n: number; pkts: string[]; again: number } }>('ready')!;
    const udp = burst.pkts.map(hex).filter((p) => p[0]! >> 4 === 4 && p[9] === 17);
    expect(udp.map((p) => p.subarray(28).toString())).toEqual(['burst0', 'burst1', 'burst2', 'burst3', 'burst4']);
    for (const p of udp) {
      expect(p.subarray(16, 20).join('.')).toBe('10.244.9.6');
      expect(p.subarray(12, 16).join('.')).toBe('10.244.7.0');
      expect(p.readUInt16BE(2)).toBe(p.length);
    }
    expect(burst.n).toBe(burst.pkts.length);
    expect(burst.again).toBe(0);
  });

  it('answers a real ping: reads the echo request, writes a reply the kernel delivers', async () => {
    const ping = await run('ip', ['netns', 'exec', NS, 'ping', '-c1', '-W1', '10.244.9.5']);
    expect(ping.code, ping.out + ping.err).toBe(0);
    expect(ping.out).toMatch(/1 received/);

    const p = hex(find<{ hex: string }>('echo')!.hex);
    expect(p[0]).toBe(0x45);
    expect(p.readUInt16BE(2)).toBe(p.length);
    expect(p[9]).toBe(1); // ICMP
    expect(p.subarray(12, 16).join('.')).toBe('10.244.7.0');
    expect(p.subarray(16, 20).join('.')).toBe('10.244.9.5');
    expect(sum16(p, 0, 20)).toBe(0xffff); // header checksum valid
    expect(p[20]).toBe(8); // echo request
    expect(p[21]).toBe(0);
    expect(sum16(p, 20, p.length - 20)).toBe(0xffff); // ICMP checksum valid

    // The reply reaches ping before the child's report of it reaches us: wait for the report.
    await waitFor(() => find('replied') !== undefined, "the child's report of its reply");
    const replied = find<{ written: number; refused: number[]; incr: number; full: number; hex: string }>('replied')!;
    expect(replied.written).toBe(1); // the junk packet refused (EINVAL) and skipped, the reply accepted
    expect(replied.refused).toEqual([1, 0]); // and the write says which
    expect(replied.incr).toBe(replied.full); // RFC 1624 update == recomputation on a kernel-made packet
    const r = hex(replied.hex);
    expect(r.subarray(12, 16).join('.')).toBe('10.244.9.5');
    expect(r[20]).toBe(0);
    expect(sum16(r, 0, 20)).toBe(0xffff);
    expect(sum16(r, 20, r.length - 20)).toBe(0xffff);
  });

  it('close() removes the device and lets the process exit on its own', async () => {
    child!.stdin!.end();
    const code = await Promise.race([exit!, new Promise((r) => setTimeout(() => r('hung'), 10_000))]);
    expect(code, stderr).toBe(0);
    expect(find('closed')).toMatchObject({ fd: -1, readAfterClose: 0 });
    expect(find<{ wakeups: number }>('closed')!.wakeups).toBeGreaterThanOrEqual(1);
    const links = ipJson<Array<{ ifname: string }>>(['link', 'show']);
    expect(links.map((l) => l.ifname)).not.toContain('vxt0');
    const routes = ipJson<Array<{ dst: string }>>(['route', 'show']);
    expect(routes.map((r) => r.dst)).not.toContain('10.244.9.0/24');
  });

  it('open fails with ENOENT and a clear hint when /dev/net/tun is missing', async () => {
    const r = await run('ip', [
      'netns', 'exec', NS, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
      'mount -t tmpfs vxtun-test /dev/net && exec "$0" "$1" vxt1', process.execPath, join(dir, 'err.mjs'),
    ]);
    expect(r.err).toBe('');
    const e = JSON.parse(r.out) as { message: string; code: string; syscall: string };
    expect(e).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    expect(e.message).toMatch(/^open \/dev\/net\/tun: ENOENT \(No such file or directory\); the TUN driver is unavailable/);
    expect(existsSync('/dev/net/tun')).toBe(true); // the tmpfs stayed in the child's mount namespace
  });

  it('TUNSETIFF fails with EPERM for an unprivileged user', async () => {
    // Some hosts make /dev/net/tun 0600, so the open itself would fail (EACCES) before TUNSETIFF is
    // reached: in a mount namespace of its own the user gets a 0666 node of the same device.
    const r = await run('ip', [
      'netns', 'exec', NS, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
      'mount -t tmpfs vxtun-test /dev/net && mknod -m 666 /dev/net/tun c 10 200 && ' +
        'exec setpriv --reuid=65534 --regid=65534 --clear-groups "$0" "$1" vxt1',
      process.execPath, join(dir, 'err.mjs'),
    ]);
    const e = JSON.parse(r.out) as { message: string; code: string; errno: number };
    expect(e).toMatchObject({ code: 'EPERM', errno: -1 });
    expect(e.message).toMatch(/^TUNSETIFF vxt1: EPERM \(Operation not permitted\); needs root or CAP_NET_ADMIN/);
  });
});
