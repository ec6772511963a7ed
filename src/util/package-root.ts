import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding vxtun's package.json. Code runs both compiled (dist/src/...) and from
 * source under vitest (src/...), so paths to the addon or the CLI are found from here, not
 * from the caller's own location.
 */
export function packageRoot(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('vxtun package root not found');
    dir = up;
  }
}
