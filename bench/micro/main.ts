/**
 * `npm run bench:micro -- [--quick] [--json FILE] [--only NAME,...]`: every micro benchmark in
 * bench/micro/, one JSON file out (default bench-results/micro.json) and its chart next to it (.svg).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { runMicro } from './run.js';
import { renderMicroSvg } from './chart.js';

function fail(msg: string): never {
  process.stderr.write(`bench:micro: ${msg}\n`);
  process.exit(2);
}

const argv = process.argv.slice(2);
let quick = false;
let json = 'bench-results/micro.json';
let only: string[] | undefined;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === '--quick') quick = true;
  else if (a === '--json') json = argv[++i] ?? fail('--json needs a file name');
  else if (a === '--only') only = (argv[++i] ?? fail('--only needs benchmark names')).split(',').filter(Boolean);
  else fail(`unknown argument ${JSON.stringify(a)} (use --quick, --json FILE, --only NAME,...)`);
}
const result = await runMicro({ quick, only, progress: (l) => void process.stdout.write(`${l}\n`) });
const path = resolve(json);
mkdirSync(dirname(path), { recursive: true });
writeFileSync(path, JSON.stringify(result, null, 2) + '\n');
const chart = path.replace(/(\.json)?$/, '.svg');
writeFileSync(chart, renderMicroSvg(result));
process.stdout.write(`\nwrote ${path} and ${chart} (${result.results.length} cases; the machine is shared and noisy: compare ratios within one file)\n`);
