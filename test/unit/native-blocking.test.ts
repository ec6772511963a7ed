/**
 * The addon's setBlocking (fcntl O_NONBLOCK), which only the bench's naive dataplane uses: the
 * flag as the kernel reports it in /proc/self/fdinfo, and the errno error for a bad descriptor.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireNative, type NativeErrnoError } from '../../src/io/addon.js';

const native = requireNative();

function nonBlocking(fd: number): boolean {
  const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!;
  return (parseInt(flags, 8) & constants.O_NONBLOCK) !== 0;
}

describe('setBlocking', () => {
  it('clears and sets O_NONBLOCK on the open file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxtun-blocking-'));
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      expect(nonBlocking(fd)).toBe(true);
      native.setBlocking(fd, true);
      expect(nonBlocking(fd)).toBe(false);
      native.setBlocking(fd, false);
      expect(nonBlocking(fd)).toBe(true);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the errno for a descriptor that is not open, and refuses a non-boolean', () => {
    let err: NativeErrnoError | undefined;
    try {
      native.setBlocking(1_000_000, true);
    } catch (e) {
      err = e as NativeErrnoError;
    }
    expect(err?.message).toMatch(/^fcntl fd 1000000: EBADF \(/);
    expect(err).toMatchObject({ code: 'EBADF', syscall: 'fcntl' });
    expect(() => native.setBlocking(0, 'yes' as unknown as boolean)).toThrow(TypeError);
  });
});
