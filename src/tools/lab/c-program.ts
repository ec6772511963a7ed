/**
 * Small C programs of the lab (under bench/, one .c file each): built with gcc on first use and cached under
 * build/<name>/<hash of the source and flags>/, so an edited source is rebuilt and an unchanged one never.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';
import { packageRoot } from '../../util/package-root.js';

const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror'];

/**
 * Path of the compiled `source` (relative to the package root), building it if this exact source has
 * not been built yet. Concurrent callers (tests and a bench at once) each compile to their own file
 * and rename: no torn binary. `what` names the program in errors.
 */
export async function buildCProgram(source: string, name: string, what: string): Promise<string> {
  const root = packageRoot();
  const hash = createHash('sha256').update(readFileSync(join(root, source))).update(CFLAGS.join(' '));
  const dir = join(root, 'build', name, hash.digest('hex').slice(0, 16));
  const binary = join(dir, name);
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  const cc = await run(['gcc', ...CFLAGS, '-o', tmp, join(root, source)], { timeoutMs: 120_000 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error(`gcc not found: ${what} is built from source (install gcc: scripts/install-deps.sh)`);
    throw err;
  });
  if (cc.code !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`building ${what} failed (gcc exit ${cc.code}): ${cc.stderr.trim().split('\n').slice(0, 5).join(' | ')}`);
  }
  renameSync(tmp, binary);
  return binary;
}
