/**
 * The control socket replaces only what is its own: a stale socket left by a killed node is
 * replaced; a live one is refused as in use; anything else at that path (a regular file, a
 * directory, a symbolic link) is refused with one line naming it (exit 2) and left as it was.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, lstatSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer, controlRequest } from '../../src/control/socket.js';
import { HostError } from '../../src/control/host.js';

const dir = mkdtempSync(join(tmpdir(), 'vxtun-socket-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function refusal(path: string): Promise<HostError> {
  const err = await ControlServer.listen(path, () => ({})).then(
    async (s) => {
      await s.close();
      throw new Error(`listened on ${path}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostError);
  return err as HostError;
}

describe('ControlServer.listen', () => {
  it('leaves a regular file at its path intact (content and inode) and refuses with exit 2', async () => {
    const path = join(dir, 'file.sock');
    writeFileSync(path, 'not yours\n');
    const ino = statSync(path).ino;
    const err = await refusal(path);
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(`config: controlSocket: ${JSON.stringify(path)} is a regular file, not a socket: refusing to replace it`);
    expect(readFileSync(path, 'utf8')).toBe('not yours\n');
    expect(statSync(path).ino).toBe(ino);
  });

  it('leaves a directory and a symbolic link alone', async () => {
    const d = join(dir, 'dir.sock');
    mkdirSync(d);
    writeFileSync(join(d, 'inside'), 'x');
    expect((await refusal(d)).message).toContain('is a directory, not a socket');
    expect(readFileSync(join(d, 'inside'), 'utf8')).toBe('x');
    const link = join(dir, 'link.sock');
    symlinkSync(join(dir, 'elsewhere'), link);
    expect((await refusal(link)).message).toContain('is a symbolic link, not a socket');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(join(dir, 'elsewhere'));
  });

  it('replaces a stale socket and refuses a live one', async () => {
    const path = join(dir, 'stale.sock');
    // A socket file nobody listens on any more: what a node killed with SIGKILL leaves.
    const child = spawn(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('up'))", path], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise<void>((r) => child.once('exit', () => r()));
    expect(lstatSync(path).isSocket()).toBe(true);
    const server = await ControlServer.listen(path, () => ({ ok: true }));
    expect(await controlRequest(path, { cmd: 'x' })).toEqual({ ok: true });
    await expect(ControlServer.listen(path, () => ({}))).rejects.toThrow(`control socket ${path} is in use`);
    await server.close();
  });
});
