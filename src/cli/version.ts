/**
 * `vxtun --version`: the package version, the commit it was built from (when run from a git
 * checkout, as `npm link` installs it) and whether the native addon is there and what it offers.
 * Reads files only: no addon call, no dataplane module loaded.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';

const ADDON = join('build', 'Release', 'vxtun_native.node');

function commitOf(root: string): string {
  if (!existsSync(join(root, '.git'))) return 'unknown (not a git checkout)';
  try {
    const sha = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty === '' ? sha : `${sha} (modified)`;
  } catch {
    return 'unknown (git unavailable)';
  }
}

export function versionText(root: string = packageRoot()): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const addon = existsSync(join(root, ADDON))
    ? `built (${ADDON}): native fast path — recvmmsg/sendmmsg, UDP GSO/GRO, TUN offloads, express path`
    : 'not built: the pure-TypeScript path only (npm install builds it)';
  return [`vxtun ${pkg.version}`, `commit ${commitOf(root)}`, `node ${process.version}`, `addon ${addon}`].join('\n');
}
