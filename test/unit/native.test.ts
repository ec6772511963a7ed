/**
 * The native addon against plain TS: checksum over every length and offset, RFC 1624 updates,
 * batched read/write on a FIFO, uv poll readiness. Needs no root. A missing addon FAILS these tests
 * (requireNative throws at import time) — it never skips them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, requireNative, type NativeErrnoError } from '../../src/io/addon.js';
import { onesSum, checksumUpdate } from '../../src/packet/wire/checksum.js';
import { xorshift32 as rng } from '../support/random.js';

const native = requireNative();

function randomBytes(n: number, next: () => number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = next() & 0xff;
  return b;
}

/** The naive RFC 1071 reference: big-endian words, odd byte padded with zero, end-around carry. */
function naiveSum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < length; i += 2) {
    const hi = buf[offset + i]!;
    const lo = i + 1 < length ? buf[offset + i + 1]! : 0;
    sum += hi * 256 + lo;
  }
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

describe('native checksum', () => {
  const MAX = 9001;
  const seed = 0x5eed1071;

  it('matches the naive reference for every length 0..9001 at offsets 0..7 (random bytes)', () => {
    const next = rng(seed);
    const buf = randomBytes(MAX + 8 + 3, next);
    let mismatches = 0;
    for (let offset = 0; offset < 8; offset++) {
      for (let length = 0; length <= MAX; length++) {
        const want = naiveSum(buf, offset, length);
        const got = native.checksum(buf, offset, length);
        if (got !== want && mismatches++ < 5) {
          expect.soft(got, `seed ${seed} offset ${offset} length ${length}`).toBe(want);
        }
      }
    }
    expect(mismatches).toBe(0);
  });

  it('matches with a random 32-bit initial partial sum, and the TS onesSum agrees', () => {
    const next = rng(seed ^ 0xabcdef);
    const buf = randomBytes(MAX + 8 + 3, next);
    let mismatches = 0;
    for (let offset = 0; offset < 8; offset++) {
      for (let length = 0; length <= MAX; length++) {
        const r = next();
        const initial = length % 5 === 0 ? 0xffffffff : length % 5 === 1 ? r & 0xffff : r;
        const want = naiveSum(buf, offset, length, initial);
        const got = native.checksum(buf, offset, length, initial);
        const ts = onesSum(buf, offset, length, initial);
        if ((got !== want || ts !== want) && mismatches++ < 5) {
          expect.soft({ got, ts }, `offset ${offset} length ${length} initial ${initial}`).toEqual({ got: want, ts: want });
        }
      }
    }
    expect(mismatches).toBe(0);
  });

  it('folds carries correctly on all-0xff and all-zero data', () => {
    const ones = Buffer.alloc(MAX + 8, 0xff);
    const zeros = Buffer.alloc(MAX + 8, 0);
    for (let offset = 0; offset < 8; offset++) {
      for (let length = 0; length <= MAX; length += length < 100 ? 1 : 37) {
        expect(native.checksum(ones, offset, length)).toBe(naiveSum(ones, offset, length));
        expect(native.checksum(zeros, offset, length)).toBe(0);
        expect(native.checksum(zeros, offset, length, 0x1234)).toBe(0x1234);
      }
    }
    expect(native.checksum(Buffer.alloc(0), 0, 0, 0xffffffff)).toBe(0xffff);
  });

  it('accepts a Uint8Array view and honours its byteOffset', () => {
    const next = rng(7);
    const backing = randomBytes(100, next);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 3, 60);
    expect(native.checksum(view, 1, 50)).toBe(naiveSum(backing, 4, 50));
  });

  it('a valid IPv4 header sums to 0xffff', () => {
    // 45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7 (the Wikipedia example)
    const h = Buffer.from('450000730000400040 11b861c0a80001c0a800c7'.replace(/ /g, ''), 'hex');
    expect(native.checksum(h, 0, 20)).toBe(0xffff);
    h.writeUInt16BE(0, 10);
    expect(~native.checksum(h, 0, 20) & 0xffff).toBe(0xb861);
  });

  it('rejects out-of-range arguments with RangeError/TypeError', () => {
    const b = Buffer.alloc(10);
    expect(() => native.checksum(b, 0, 11)).toThrow(RangeError);
    expect(() => native.checksum(b, 11, 0)).toThrow(RangeError);
    expect(() => native.checksum(b, 4, 7)).toThrow(RangeError);
    expect(() => native.checksum(b, -1, 1)).toThrow(RangeError);
    expect(() => native.checksum(b, 0, 1, -1)).toThrow(RangeError);
    expect(() => native.checksum('x' as unknown as Buffer, 0, 0)).toThrow(TypeError);
    expect(() => native.checksum(new Uint16Array(4) as unknown as Buffer, 0, 0)).toThrow(TypeError);
  });
});

describe('native csumIncremental (RFC 1624 eqn. 3)', () => {
  it('equals recomputation after changing one word of random IPv4 headers', () => {
    const next = rng(0x1624);
    for (let iter = 0; iter < 100_000; iter++) {
      const h = randomBytes(20, next);
      h[0] = 0x45;
      h.writeUInt16BE(0, 10);
      const old = ~native.checksum(h, 0, 20) & 0xffff;
      h.writeUInt16BE(old, 10);
      let word = next() % 9;
      if (word >= 5) word++; // any 16-bit word but the checksum itself (index 5)
      const oldWord = h.readUInt16BE(word * 2);
      const newWord = iter % 7 === 0 ? (iter % 2 ? 0xffff : 0) : next() & 0xffff;
      const incr = native.csumIncremental(old, oldWord, newWord);
      h.writeUInt16BE(newWord, word * 2);
      h.writeUInt16BE(0, 10);
      const full = ~native.checksum(h, 0, 20) & 0xffff;
      if (incr !== full) expect({ iter, incr }).toEqual({ iter, incr: full });
      expect(checksumUpdate(old, oldWord, newWord)).toBe(incr);
    }
  });

  it('TTL decrement example', () => {
    const h = Buffer.from('4500005400004000400100000a02000a0a030005', 'hex');
    const c = ~native.checksum(h, 0, 20) & 0xffff;
    const oldWord = h.readUInt16BE(8);
    h[8] = h[8]! - 1;
    const want = ~naiveSum(h, 0, 20) & 0xffff;
    expect(native.csumIncremental(c, oldWord, h.readUInt16BE(8))).toBe(want);
  });

  it('rejects non-16-bit values', () => {
    expect(() => native.csumIncremental(0x10000, 0, 0)).toThrow(RangeError);
    expect(() => native.csumIncremental(0, -1, 0)).toThrow(RangeError);
    expect(() => native.csumIncremental(0, 0, 1.5)).toThrow(RangeError);
  });
});

describe('native readBatch / writeBatch / poll on a FIFO', () => {
  let dir: string;
  let fifo: string;
  // One O_RDWR|O_NONBLOCK descriptor on a FIFO is both its reader and its writer.
  let fd = -1;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vxtun-native-'));
    fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
  });
  afterAll(() => {
    if (fd >= 0) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns 0 on EAGAIN and leaves sizes alone', () => {
    const sizes = new Int32Array([-7, -7]);
    expect(native.readBatch(fd, [Buffer.alloc(16), Buffer.alloc(16)], 0, sizes)).toBe(0);
    expect([...sizes]).toEqual([-7, -7]);
    expect(native.readBatch(fd, [], 0, [])).toBe(0);
  });

  it('writes at offset, reads into buffers at offset, fills sizes, stops at EAGAIN', () => {
    const off = 5;
    const src = [Buffer.alloc(20, 0xee), Buffer.alloc(20, 0xee)];
    src[0]!.write('hello', off);
    src[1]!.write('world!', off);
    expect(native.writeBatch(fd, src, [5, 6], off, 2)).toBe(2);
    // A FIFO is a byte stream: 11 bytes, read with 4 bytes of room per buffer -> 4, 4, 3, then EAGAIN.
    const bufs = Array.from({ length: 6 }, () => Buffer.alloc(off + 4, 0xaa));
    const sizes = new Int32Array(6);
    expect(native.readBatch(fd, bufs, off, sizes)).toBe(3);
    expect([...sizes]).toEqual([4, 4, 3, 0, 0, 0]);
    const got = Buffer.concat(bufs.slice(0, 3).map((b, i) => b.subarray(off, off + sizes[i]!)));
    expect(got.toString()).toBe('helloworld!');
    for (const b of bufs) expect(b.subarray(0, off).every((x) => x === 0xaa)).toBe(true); // headroom untouched
    expect(bufs[3]!.every((x) => x === 0xaa)).toBe(true);
    expect(native.readBatch(fd, bufs, off, sizes)).toBe(0);
  });

  it('sizes may be a plain array; count limits the write', () => {
    const bufs = [Buffer.from('abc'), Buffer.from('def'), Buffer.from('ghi')];
    expect(native.writeBatch(fd, bufs, [3, 2, 3], 0, 2)).toBe(2);
    const sizes: number[] = [];
    const out = [Buffer.alloc(64)];
    expect(native.readBatch(fd, out, 0, sizes)).toBe(1);
    expect(sizes).toEqual([5]);
    expect(out[0]!.subarray(0, 5).toString()).toBe('abcde');
    expect(native.writeBatch(fd, bufs, [3, 3, 3], 0, 0)).toBe(0);
  });

  it('stops with a partial count when the pipe fills (EAGAIN on write)', () => {
    const big = Buffer.alloc(65536, 1);
    const bufs = Array.from({ length: 64 }, () => big);
    const sizes = new Int32Array(64).fill(big.length);
    const n = native.writeBatch(fd, bufs, sizes, 0, 64);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(64); // default pipe capacity is 64 KiB .. 1 MiB
    const rb = Array.from({ length: 32 }, () => Buffer.alloc(65536));
    const rs = new Int32Array(32);
    let total = 0;
    for (let k; (k = native.readBatch(fd, rb, 0, rs)) > 0; ) for (let i = 0; i < k; i++) total += rs[i]!;
    // The last write that went may have been partial (a non-blocking pipe write larger than PIPE_BUF).
    expect(total).toBeGreaterThan((n - 1) * 65536);
    expect(total).toBeLessThanOrEqual(n * 65536);
  });

  it('validates arguments before touching the fd', () => {
    const b = [Buffer.alloc(8)];
    expect(() => native.readBatch(fd, b, 8, new Int32Array(1))).toThrow(/no room/);
    expect(() => native.readBatch(fd, b, 0, new Int32Array(0))).toThrow(RangeError);
    expect(() => native.readBatch(fd, b, 0, new Uint32Array(1) as unknown as Int32Array)).toThrow(TypeError);
    expect(() => native.readBatch(fd, ['x' as unknown as Buffer], 0, [0])).toThrow(TypeError);
    expect(() => native.writeBatch(fd, b, [9], 0, 1)).toThrow(/exceeds/);
    expect(() => native.writeBatch(fd, b, [4], 5, 1)).toThrow(RangeError);
    expect(() => native.writeBatch(fd, b, [1], 0, 2)).toThrow(RangeError);
    expect(() => native.readBatch(-1, b, 0, [0])).toThrow(RangeError);
  });

  it('reports errors with the errno name, code, errno and syscall', () => {
    // A descriptor number far above any open one: EBADF without risking someone else's fd.
    const bad = 1_000_000;
    let err: NativeErrnoError | undefined;
    try {
      native.readBatch(bad, [Buffer.alloc(8)], 0, [0]);
    } catch (e) {
      err = e as NativeErrnoError;
    }
    expect(err?.message).toBe('read fd 1000000: EBADF (Bad file descriptor)');
    expect(err).toMatchObject({ code: 'EBADF', errno: -9, syscall: 'read' });
    expect(() => native.writeBatch(bad, [Buffer.alloc(8)], [8], 0, 1)).toThrow(/^write fd 1000000: EBADF/);
    expect(() => native.close(bad)).toThrow(/^close fd 1000000: EBADF \(Bad file descriptor\)$/);
    expect(() => native.pollStart(bad, () => {})).toThrow(/^uv_poll_init fd 1000000: EBADF/);
  });

  it('pollStart calls back on readiness (level-triggered, no spinning), pollStop ends it', async () => {
    let calls = 0;
    const bufs = [Buffer.alloc(64)];
    const sizes = new Int32Array(1);
    let drained = 0;
    const big = Buffer.alloc(64 * 3, 7);
    let resolveRead: () => void = () => {};
    const read = new Promise<void>((r) => (resolveRead = r));
    const handle = native.pollStart(fd, () => {
      calls++;
      // Read only one byte-chunk per wake-up: level triggering must bring us back until it is empty.
      const n = native.readBatch(fd, bufs, 0, sizes);
      drained += n ? sizes[0]! : 0;
      if (drained === big.length) resolveRead();
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(0); // nothing to read: no callbacks at all

    writeSync(fd, big);
    await read;
    expect(drained).toBe(big.length);
    expect(calls).toBe(3);
    const after = calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(after); // drained: silent again

    native.pollStop(handle);
    native.pollStop(handle); // idempotent
    writeSync(fd, Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(after);
    expect(native.readBatch(fd, bufs, 0, sizes)).toBe(1);
    expect(() => native.pollStop({} as never)).toThrow(TypeError);
  });

  it('pollStop from inside the callback is safe', async () => {
    let calls = 0;
    const done = new Promise<void>((resolve) => {
      const h = native.pollStart(fd, () => {
        calls++;
        native.pollStop(h);
        setTimeout(resolve, 30);
      });
    });
    writeSync(fd, Buffer.from('y'));
    await done;
    expect(calls).toBe(1); // not drained, but stopped: no second call
    expect(native.readBatch(fd, [Buffer.alloc(8)], 0, [0])).toBe(1);
  });

  it('a process with a stopped poll exits; an active poll keeps it alive; a worker may exit with one active', async () => {
    const addon = fileURLToPath(new URL('../../build/Release/vxtun_native.node', import.meta.url));
    const script = join(dir, 'exit.cjs');
    const fifo2 = join(dir, 'fifo2'); // its own FIFO: nothing the children write reaches this process's fd
    execFileSync('mkfifo', [fifo2]);
    writeFileSync(
      script,
      `const { Worker, isMainThread } = require('node:worker_threads');
       const mode = isMainThread ? process.argv[2] : 'in-worker';
       if (mode === 'worker') {
         // Workers that exit (or are terminated) with a poll still active: the addon must close it
         // before Node unloads the library. Any mistake here is a segfault or an abort.
         (async () => {
           for (let i = 0; i < 10; i++) {
             const w = new Worker(__filename);
             if (i % 2) setTimeout(() => w.terminate(), i * 5);
             await new Promise((r) => w.on('exit', r));
           }
         })();
       } else {
         const a = require(${JSON.stringify(addon)});
         const fs = require('node:fs');
         const fd = fs.openSync(${JSON.stringify(fifo2)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
         const h = a.pollStart(fd, () => a.readBatch(fd, [Buffer.alloc(64)], 0, [0]));
         if (mode === 'stop') a.pollStop(h);
         else if (mode === 'active') setTimeout(() => { console.log('alive'); a.pollStop(h); }, 300);
         else { fs.writeSync(fd, 'w'); setTimeout(() => process.exit(0), 20); }
       }
       if (isMainThread) process.on('exit', () => console.log('exit'));`,
    );
    const run = (mode: string) =>
      new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => {
        const c = spawn(process.execPath, [script, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        const kill = setTimeout(() => c.kill('SIGKILL'), 20_000);
        c.on('exit', (code, signal) => {
          clearTimeout(kill);
          resolve({ code, signal, out: out.trim() });
        });
      });
    expect(await run('stop')).toEqual({ code: 0, signal: null, out: 'exit' });
    // The active poll kept it running until pollStop.
    expect(await run('active')).toEqual({ code: 0, signal: null, out: 'alive\nexit' });
    expect(await run('worker')).toEqual({ code: 0, signal: null, out: 'exit' });
  });

  it('close(fd) closes a descriptor', () => {
    const fd2 = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    native.close(fd2);
    expect(() => fstatSync(fd2)).toThrow(/EBADF/);
  });
});

describe('native tunOpen / linkConfigure / routes: argument checks (no syscalls)', () => {
  it('rejects names longer than 15 bytes before opening anything', () => {
    expect(() => native.tunOpen('a'.repeat(16))).toThrow(/longer than 15 bytes/);
    expect(() => native.linkConfigure('b'.repeat(16), {})).toThrow(RangeError);
  });
  it('rejects bad addresses and prefixes', () => {
    expect(() => native.linkConfigure('x0', { ipv4: '10.244.1' })).toThrow(/not an IPv4 address/);
    expect(() => native.linkConfigure('x0', { prefixLen: 24 })).toThrow(/needs ipv4/);
    expect(() => native.linkConfigure('x0', { mtu: 20 })).toThrow(RangeError);
    expect(() => native.linkConfigure('x0', { txQueueLen: 0 })).toThrow(/txQueueLen must be an integer in \[1, 100000\]/);
    expect(() => native.linkConfigure('x0', { txQueueLen: 1.5 })).toThrow(RangeError);
    expect(() => native.routeAdd('10.244.9.0', 33, 'x0')).toThrow(RangeError);
    expect(() => native.routeDel('fe80::1', 24, 'x0')).toThrow(TypeError);
  });
});

describe('native TUN queue handles', () => {
  it('tunQueueRead, tunQueuePending and expressOpen take only a tunQueueOpen handle; a queue without vnetHdr is not read here', () => {
    const sizes = new Int32Array(1);
    const counters = new Float64Array(64);
    expect(() => native.tunQueueRead({} as never, [Buffer.alloc(64)], 0, sizes, counters)).toThrow(/^tunQueueRead: queue must come from tunQueueOpen$/);
    expect(() => native.tunQueuePending(7 as never)).toThrow(/^tunQueuePending: queue must come from tunQueueOpen$/);
    expect(() => native.expressOpen({ tunQueue: {} } as never)).toThrow(/^expressOpen: tunQueue: queue must come from tunQueueOpen$/);
    const plain = native.tunQueueOpen(1000000, false);
    expect(() => native.tunQueueRead(plain, [Buffer.alloc(64)], 0, sizes, counters)).toThrow(/opened without vnetHdr/);
    expect(native.tunQueuePending(plain)).toBe(false);
  });
});

describe('loader', () => {
  it('VXTUN_NO_NATIVE=1 selects the fallback', () => {
    const saved = process.env.VXTUN_NO_NATIVE;
    try {
      process.env.VXTUN_NO_NATIVE = '1';
      expect(loadNative()).toBeUndefined();
      expect(() => requireNative()).toThrow(/VXTUN_NO_NATIVE=1/);
    } finally {
      if (saved === undefined) delete process.env.VXTUN_NO_NATIVE;
      else process.env.VXTUN_NO_NATIVE = saved;
    }
    expect(loadNative()).toBe(native);
  });
});
