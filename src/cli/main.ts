#!/usr/bin/env node
/** The vxtun command line. Usage errors exit 2 with one line; runtime failures exit 1. */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { runUp } from './up.js';
import { runStatus } from './status.js';
import { runLab } from './lab.js';
import { runTrace, type TraceCliOptions } from './trace.js';
import { runLabUp, runLabExec, runLabTour, runLabDown, DEFAULT_LAB_DIR } from './lab-teach.js';
import { runBenchCommand, runBenchCompare, runBenchSoak } from './bench.js';

function parseWorkers(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 64) throw new InvalidArgumentError(`--workers: ${JSON.stringify(v)} is not an integer in 1..64`);
  return n;
}

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
  .addOption(new Option('--datapath <kind>', 'packet path: the best available, the native fast path, or the pure-TypeScript reference').choices(['auto', 'native', 'ts']).default('auto'))
  .addOption(new Option('--workers <n>', 'engines on their own threads and TUN queues (native path; default one per core, at most 4)').argParser(parseWorkers))
  .option('--ip-masq', "install flannel's masquerade rules for pod traffic leaving the network (removed on exit)")
  .option('--no-express', 'no express path: every packet through the JavaScript pipeline (native path; overrides datapath.express)')
  .option('--no-batch-scheduling', 'leave the threads at SCHED_OTHER (native path; overrides datapath.batchScheduling)')
  .action(async (o: { config: string; logLevel: string; datapath: 'auto' | 'native' | 'ts'; workers?: number; ipMasq?: boolean; express: boolean; batchScheduling: boolean }) => {
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
  .command('trace')
  .description("show each packet's journey through running nodes, layer by layer (control socket, root only)")
  .option('-d, --device <name>', 'device of the node', 'vxtun0')
  .option('-s, --socket <path>', 'control socket of a node; repeat to follow packets across nodes', (v: string, prev: string[] = []) => [...prev, v])
  .option('--host <ip>', 'only packets to or from this inner address')
  .option('--subnet <cidr>', 'only packets to or from this inner prefix')
  .option('--protocol <name>', 'only icmp, icmpv6, tcp, udp or arp')
  .option('--port <n>', 'only TCP/UDP packets to or from this inner port')
  .option('--peer <ip|mac>', 'only packets to or from this peer (underlay address or VTEP MAC)')
  .option('--verdict <v>', 'only drop, ok, or one verdict (e.g. wrong-vni, sent)')
  .option('--json', 'one JSON object per journey')
  .option('--lang <lang>', 'labels: en or zh', 'en')
  .option('--color <when>', 'auto, always or never', 'auto')
  .option('--pcap <file>', 'also write the packets to a pcapng file (inner and outer interfaces)')
  .option('--web', 'serve a live view of the path in the browser')
  .option('--web-port <n>', 'port of the web view (0 = any free one)', '8470')
  .option('--bind <address>', 'address of the web view', '127.0.0.1')
  .option('--count <n>', 'stop after this many journeys')
  .option('--duration <seconds>', 'stop after this long')
  .option('--max-rate <n>', 'journeys per second each node sends at most; past it whole batches go untraced (counted) so the dataplane keeps its speed (default 2000)')
  .action(async (o: TraceCliOptions) => {
    process.exitCode = await runTrace(o);
  });

const lab = program.command('lab').description('network-namespace labs: a quick two-node check (default), or a teaching lab (up, exec, tour, down)');
lab
  .command('run', { isDefault: true })
  .description('build a two-node cluster in network namespaces (one vxtun, one kernel VXLAN), ping across, tear down')
  .option('--keep', 'leave the lab running until Ctrl-C')
  .action(async (o: { keep?: boolean }) => {
    process.exitCode = await runLab(o);
  });
const stateDir = (): Option => new Option('--state-dir <dir>', 'where the lab keeps its state').default(DEFAULT_LAB_DIR);
lab
  .command('up')
  .description('start a teaching lab that stays up: nodes on vxtun or the kernel VXLAN, one CNI pod each')
  .option('-n, --nodes <n>', 'number of nodes (2-9)', '3')
  .option('-k, --kernel <list>', 'node numbers on the kernel VXLAN, e.g. 1 or 1,3, or none (default: the last node)')
  .addOption(stateDir())
  .action(async (o: { nodes: string; kernel?: string; stateDir: string }) => {
    process.exitCode = await runLabUp(o);
  });
lab
  .command('exec <target> [command...]')
  .description('run a command in a node (n1, n2, ...) or pod (pod1, pod2, ...) of the lab: vxtun lab exec pod1 -- ping 10.244.2.2')
  .addOption(stateDir())
  .action(async (target: string, command: string[], o: { stateDir: string }) => {
    process.exitCode = await runLabExec(target, command, o);
  });
lab
  .command('tour')
  .description('a guided ping across the lab: route table, VTEP table and the trace of that ping, step by step')
  .option('--lang <lang>', 'trace labels: en or zh', 'en')
  .option('--color <when>', 'auto, always or never', 'auto')
  .addOption(stateDir())
  .action(async (o: { stateDir: string; lang: string; color: string }) => {
    process.exitCode = await runLabTour(o);
  });
lab
  .command('down')
  .description('stop the lab: daemons, namespaces (and their links), state; nothing left behind')
  .addOption(stateDir())
  .action(async (o: { stateDir: string }) => {
    process.exitCode = await runLabDown(o);
  });

const bench = program
  .command('bench')
  .description('measure each dataplane (kernel VXLAN, veth, vxtun fast/TS, mixed, flannel udp) in namespaces; table, JSON and HTML report')
  .option('--quick', 'one short run per case (about a minute)')
  .option('--cases <list>', 'comma-separated cases: kernel, veth, vxtun-fast, vxtun-ts, mixed, flannel-udp, udp-proxy-c (kernel is always added)')
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

bench
  .command('soak')
  .description('memory under full load: one TCP stream through vxtun for minutes, RSS of every vxtun process sampled; text, JSON and HTML chart')
  .option('--minutes <n>', 'length of the load (default 10)')
  .option('--duration <seconds>', 'length of the load in seconds (overrides --minutes)')
  .option('--interval <n>', 'seconds between samples (default 10)')
  .option('--case <id>', 'which case carries the load (default vxtun-fast)')
  .option('--json <file>', 'result file (default bench-results/vxtun-soak-<time>.json)')
  .option('--html <file>', 'HTML chart (default: the JSON path with .html)')
  .action(async (_o: unknown, cmd: Command) => {
    // --json and --html are also the parent's options: commander hands them to `bench`.
    process.exitCode = await runBenchSoak(cmd.optsWithGlobals(), process.argv.slice(3));
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
