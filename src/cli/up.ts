/**
 * `vxtun up [--config FILE] [flanneld flags]`: the node spec from the file, flanneld's flags and the switches (nothing on the host
 * changes if either is wrong), then the node, built and run by src/node/ the same way in every mode.
 */
import { requireRoot } from '../control/host.js';
import { nodeSpecFrom, type UpFlags, type NodeSpec } from '../node/spec.js';
import type { FlanneldOptions } from '../node/flanneld.js';
import { runNode, startFailure } from '../node/run.js';

export interface UpOptions extends UpFlags {
  config?: string;
  logLevel: string;
  flanneld: FlanneldOptions;
}

/** Runs the node until a signal; resolves to the process exit code. */
export async function runUp(opts: UpOptions): Promise<number> {
  let spec: NodeSpec;
  try {
    // Without root nothing else can be checked meaningfully (the config may be unreadable too).
    requireRoot();
    const { config, logLevel: _l, flanneld, ...flags } = opts;
    spec = nodeSpecFrom({ ...(config !== undefined ? { config } : {}), flags, flanneld });
  } catch (err) {
    const { line, code } = startFailure(err);
    process.stderr.write(`vxtun: ${line}\n`);
    return code;
  }
  return runNode(spec, opts.logLevel);
}
