/**
 * Which build is running: the git commit of the package root when it is a checkout (as `npm link`
 * installs it), else a note saying why there is none. `vxtun --version` and bench results show it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export function commitOf(root: string): string {
  if (!existsSync(join(root, '.git'))) return 'unknown (not a git checkout)';
  try {
    const sha = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty === '' ? sha : `${sha} (modified)`;
  } catch {
    return 'unknown (git unavailable)';
  }
}
