/**
 * How long a vxtun command takes from exec to exit: `--help`, `--version`, and `status` with no node
 * (the cheap commands people run by hand), against `node -e 0` (Node's own start, the floor).
 * Each round runs every case once, in a rotated order, so a swing in the machine's load hits all
 * alike; the report gives each case's median with min–max in ms, and its median excess over Node.
 * Give a second build's entry point to compare it in the same rounds (e.g. the previous commit's).
 *
 *   npm run build && node dist/bench/startup.bench.js [--rounds 15] [--other /path/to/old/dist/src/cli/main.js]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, other: { type: 'string' } } });
const rounds = Number(values.rounds);
const here = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const builds: Array<[string, string]> = [['this build', here], ...(values.other ? [['other build', values.other] as [string, string]] : [])];
const cases: Array<[string, string[]]> = [['node -e 0', ['-e', '0']]];
for (const [label, cli] of builds) {
  for (const args of [['--help'], ['--version'], ['status', '--control-socket', '/run/vxtun-startup-bench-none.sock']]) cases.push([`${label}: vxtun ${args[0]}`, [cli, ...args]]);
}

const samples = new Map<string, number[]>(cases.map(([name]) => [name, []]));
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < cases.length; k++) {
    const [name, args] = cases[(k + r) % cases.length]!;
    const t0 = process.hrtime.bigint();
    spawnSync(process.execPath, args, { stdio: 'ignore' });
    samples.get(name)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const floor = median(samples.get('node -e 0')!);
console.log(`exec to exit, ${rounds} rounds (ms): median (min–max), excess over node -e 0`);
for (const [name, xs] of samples) {
  const m = median(xs);
  console.log(`${name.padEnd(32)} ${m.toFixed(0).padStart(5)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})${name === 'node -e 0' ? '' : `   +${(m - floor).toFixed(0)}`}`);
}
