/**
 * `vxtun --version`: the package version, the commit it was built from (when run from a git
 * checkout, as `npm link` installs it) and whether the native addon is there and what it offers.
 * Reads files only: no addon call, no dataplane module loaded.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';
import { commitOf } from '../util/build-identity.js';

const ADDON = join('build', 'Release', 'vxtun_native.node');

export function versionText(root: string = packageRoot()): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const addon = existsSync(join(root, ADDON))
    ? `built (${ADDON}): native fast path — recvmmsg/sendmmsg, UDP GSO/GRO, TUN offloads, express path`
    : 'not built: the pure-TypeScript path only (npm install builds it)';
  return [`vxtun ${pkg.version}`, `commit ${commitOf(root)}`, `node ${process.version}`, `addon ${addon}`].join('\n');
}
