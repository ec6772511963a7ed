#!/usr/bin/env node
/** The vxtun command line. Usage errors exit 2 with one line; runtime failures exit 1. */
import { Command, CommanderError, Option } from 'commander';
import { runUp } from './up.js';
import { runStatus } from './status.js';
import { runLab } from './lab.js';

const program = new Command();
program
  .name('vxtun')
  .description('A userspace VXLAN dataplane on a TUN device, wire-compatible with the Linux kernel and flannel')
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str.split('\n')[0]! + '\n') });

program
  .command('up')
  .description('run a node: TUN device, pod-network route, VXLAN over UDP')
  .requiredOption('-c, --config <file>', 'node config (JSON)')
  .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .addOption(new Option('--datapath <kind>', 'packet path: the best available, or the pure-TypeScript reference').choices(['auto', 'ts']).default('auto'))
  .option('--ip-masq', "install flannel's masquerade rules for pod traffic leaving the network (removed on exit)")
  .action(async (o: { config: string; logLevel: string; datapath: 'auto' | 'ts'; ipMasq?: boolean }) => {
    process.exitCode = await runUp(o);
  });

program
  .command('status')
  .description("show a running node's counters and routes")
  .option('-d, --device <name>', 'device of the node', 'vxtun0')
  .option('-s, --control-socket <path>', 'control socket (default /run/vxtun/<device>.sock)')
  .option('--json', 'print JSON')
  .action(async (o: { device: string; controlSocket?: string; json?: boolean }) => {
    process.exitCode = await runStatus(o);
  });

program
  .command('lab')
  .description('build a two-node cluster in network namespaces (one vxtun, one kernel VXLAN), ping across, tear down')
  .option('--keep', 'leave the lab running until Ctrl-C')
  .action(async (o: { keep?: boolean }) => {
    process.exitCode = await runLab(o);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else {
    process.stderr.write(`vxtun: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
