#!/usr/bin/env node
/** The vxtun command line. Usage errors exit 2 with one line; runtime failures exit 1. */
import { Command, CommanderError, Option } from 'commander';
import { runUp } from './up.js';
import { runStatus } from './status.js';
import { runLab } from './lab.js';
import { runBenchCommand, runBenchCompare } from './bench.js';

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
  .action(async (o: { config: string; logLevel: string; datapath: 'auto' | 'ts' }) => {
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

const bench = program
  .command('bench')
  .description('measure each dataplane (kernel VXLAN, veth, vxtun fast/TS, mixed, flannel udp) in namespaces; table, JSON and HTML report')
  .option('--quick', 'one short run per case (about a minute)')
  .option('--cases <list>', 'comma-separated cases: kernel, veth, vxtun-fast, vxtun-ts, mixed, flannel-udp (kernel is always added)')
  .option('--runs <n>', 'measured runs per case (default 3, --quick 1)')
  .option('--seconds <n>', 'seconds per iperf3 measurement (default 5, --quick 1)')
  .option('--json <file>', 'result file (default bench-results/vxtun-bench-<time>.json)')
  .option('--html <file>', 'HTML report (default: the JSON path with .html)')
  .option('--pin', 'pin the iperf3 client and server to different CPUs (taskset)')
  .action(async (o: Parameters<typeof runBenchCommand>[0]) => {
    process.exitCode = await runBenchCommand(o, process.argv.slice(3));
  });
bench
  .command('compare <a> <b>')
  .description('show the change between two bench result files (refuses different machines unless --force)')
  .option('--force', 'compare results from different machines anyway (the output says so)')
  .action((a: string, b: string, o: { force?: boolean }) => {
    process.exitCode = runBenchCompare(a, b, o);
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
