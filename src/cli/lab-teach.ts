/** `vxtun lab up | exec | tour | down`: the teaching lab that stays up between commands. */
import { spawn } from 'node:child_process';
import { labUp, labDown, readLabState, resolveTarget, LabError, DEFAULT_LAB_DIR } from '../tools/lab/teaching.js';
import { labTour } from '../tools/lab/tour.js';
import { usageError } from './usage-error.js';

function requireRootOr(cmd: string): number | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    process.stderr.write(`vxtun: vxtun lab ${cmd} must run as root (it creates network namespaces)\n`);
    return 1;
  }
  return undefined;
}

const say = (line: string): void => void process.stdout.write(`${line}\n`);

function fail(err: unknown): number {
  process.stderr.write(`vxtun: ${(err as Error).message}\n`);
  return 1;
}

export async function runLabUp(o: { nodes: string; kernel?: string; stateDir: string }): Promise<number> {
  const nodes = Number(o.nodes);
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 9) {
    return usageError(`--nodes: "${o.nodes}" is not a node count from 2 to 9`);
  }
  const kernelText = o.kernel ?? String(nodes);
  const kernel = kernelText === '' || kernelText === 'none' ? [] : kernelText.split(',').map((x) => Number(x.trim()));
  const bad = kernel.find((k) => !Number.isInteger(k) || k < 1 || k > nodes);
  if (bad !== undefined) {
    return usageError(`--kernel: "${kernelText}" must list node numbers from 1 to ${nodes} (e.g. 1 or 1,3), or none`);
  }
  const denied = requireRootOr('up');
  if (denied !== undefined) return denied;
  try {
    const state = await labUp({ nodes, kernel, dir: o.stateDir, progress: say });
    say('');
    const sd = state.dir === DEFAULT_LAB_DIR ? '' : ` --state-dir ${state.dir}`;
    say(`lab ${state.prefix} is up (state in ${state.dir}). Next:`);
    say(`  vxtun lab tour${sd}          a guided ping across nodes, step by step`);
    say(`  vxtun lab exec pod1${sd} -- ping -c 3 ${state.nodes[1]!.podIp}          run anything in a pod (pod<i>) or a node (n<i>)`);
    if (state.nodes.some((n) => n.controlSocket)) say(`  vxtun trace --lab${sd} [--web]          watch the packets, the kernel's hops included`);
    say(`  vxtun lab down${sd}          remove everything`);
    return 0;
  } catch (err) {
    return fail(err);
  }
}

export async function runLabExec(target: string, cmd: string[], o: { stateDir: string }): Promise<number> {
  const denied = requireRootOr('exec');
  if (denied !== undefined) return denied;
  const state = readLabState(o.stateDir);
  if (!state) return fail(new LabError(`no lab is up (no state in ${o.stateDir}): run vxtun lab up first`));
  if (cmd.length === 0) {
    return usageError('lab exec: give a command after --, e.g. vxtun lab exec pod1 -- ip addr');
  }
  let ns: string;
  try {
    ns = resolveTarget(state, target);
  } catch (err) {
    return usageError((err as Error).message);
  }
  return await new Promise<number>((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'inherit' });
    child.once('error', (err) => resolve(fail(err)));
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

export async function runLabTour(o: { stateDir: string; lang: string; color: string }): Promise<number> {
  const denied = requireRootOr('tour');
  if (denied !== undefined) return denied;
  if (o.lang !== 'en' && o.lang !== 'zh') {
    return usageError(`--lang: "${o.lang}" is not en or zh`);
  }
  const state = readLabState(o.stateDir);
  if (!state) return fail(new LabError(`no lab is up (no state in ${o.stateDir}): run vxtun lab up first`));
  try {
    const color = o.color === 'always' || (o.color === 'auto' && process.stdout.isTTY === true);
    return await labTour(state, { lang: o.lang, color });
  } catch (err) {
    return fail(err);
  }
}

export async function runLabDown(o: { stateDir: string }): Promise<number> {
  const denied = requireRootOr('down');
  if (denied !== undefined) return denied;
  try {
    const state = await labDown(o.stateDir, say);
    say(state ? `lab ${state.prefix} is down: nothing left behind` : `no lab is up (no state in ${o.stateDir})`);
    return 0;
  } catch (err) {
    return fail(err);
  }
}

export { DEFAULT_LAB_DIR };
