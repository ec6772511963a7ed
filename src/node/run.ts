/**
 * A node's life and its one signal policy, the same in every mode: SIGINT and SIGTERM tear the node
 * down (also while it is still starting: a wait for the registry gives up); SIGHUP never stops it —
 * it re-reads what can be re-read (static peers) and says so where nothing can (a registry is the
 * source of routes). Resolves to the process exit code: 0 after a clean stop, 1 when the node could
 * not go on or start, 2 for a config fault (one line, before anything on the host changed).
 */
import pino from 'pino';
import { UndoStack } from '../util/undo.js';
import { ConfigError } from '../control/config.js';
import { HostError } from '../control/host.js';
import { FlannelConfigError } from '../control/flannel.js';
import { RegistryError } from '../control/registry/registry.js';
import type { NodeSpec } from './spec.js';
import { buildNode, type RunningNode } from './build.js';
import { StartAborted } from './route-source.js';
import { sdNotify } from './health.js';
import { capYoungGeneration, releaseStartupPages, startupPagesError } from './memory.js';

/** The one line and exit code for a refusal to start. */
export function startFailure(err: unknown): { line: string; code: number } {
  const message = (err as Error).message;
  if (err instanceof ConfigError) return { line: message, code: 2 };
  if (err instanceof HostError) return { line: message, code: err.exitCode };
  if (err instanceof FlannelConfigError) return { line: `registry: ${message}`, code: 2 };
  if (err instanceof RegistryError) return { line: err.field ? `config: ${err.field}: ${message}` : `registry: ${message}`, code: 2 };
  return { line: message, code: 1 };
}

export async function runNode(spec: NodeSpec, logLevel: string): Promise<number> {
  capYoungGeneration(); // before the engines and workers start (the CLI's `up` does it before loading modules)
  const log = pino({ level: logLevel, base: { device: spec.device.name } });
  const undo = new UndoStack((err) => log.warn({ err: err.message }, 'teardown step failed'));
  let node: RunningNode | undefined;
  let stopping: { reason: string; code: number } | undefined;
  let wake: (() => void) | undefined;
  const stop = (reason: string, code: number): void => {
    if (stopping) return;
    stopping = { reason, code };
    wake?.();
  };
  const onInt = (): void => stop('SIGINT', 0);
  const onTerm = (): void => stop('SIGTERM', 0);
  const onHup = (): void => {
    if (stopping) return;
    if (node) node.reload();
    else log.info('SIGHUP while starting: nothing to reload yet');
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  const finish = async (): Promise<void> => {
    await undo.runAll();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
  };

  try {
    node = await buildNode(spec, { log, undo, aborted: () => stopping !== undefined, fatal: (err) => stop(err.message, 1) });
  } catch (err) {
    await finish();
    if (err instanceof StartAborted) return 0;
    const { line, code } = startFailure(err);
    process.stderr.write(`vxtun: ${line}\n`);
    return code;
  }
  log.info(node.summary, 'vxtun up');
  const releasedBytes = releaseStartupPages();
  const releaseError = startupPagesError();
  if (releaseError !== undefined) log.warn({ err: releaseError, releasedStartupMiB: +(releasedBytes / 2 ** 20).toFixed(1) }, "could not give back all of Node's start-up pages: the RSS stays higher");
  else if (releasedBytes > 0) log.debug({ releasedStartupMiB: +(releasedBytes / 2 ** 20).toFixed(1) }, "Node's start-up pages given back");
  // flanneld notifies once subnet.env is written and the backend runs: so does the builder's return.
  sdNotify('READY=1', log);

  await new Promise<void>((resolve) => {
    wake = resolve;
    if (stopping) resolve();
  });
  const { reason, code } = stopping!;
  sdNotify('STOPPING=1', log);
  log.info({ signal: reason, counters: node.counters() }, spec.flannel ? 'vxtun stopping (the lease stays in the registry, subnet.env on disk)' : 'vxtun stopping');
  await finish();
  log.info('vxtun down');
  return code;
}
