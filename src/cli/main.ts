#!/usr/bin/env node
/**
 * The vxtun command line. Usage errors exit 2 with one line (commander's suggestion kept; a Chinese
 * hint under it for a reader of Chinese, usage-error.ts);
 * runtime failures exit 1. Each subcommand's module is imported when that subcommand runs, so
 * `--help`, `--version` and `status` load neither the dataplane nor a registry client.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { TraceCliOptions } from './trace.js';
import type { runBenchCommand } from './bench.js';
import { versionText } from './version.js';
import { addFlanneldFlags, flanneldOptions, logLevelFromVerbosity, goArgs } from './flanneld-flags.js';
import { DEFAULT_LAB_DIR } from '../tools/lab/state-dir.js';
import { hintFor } from './usage-error.js';
import { capYoungGeneration, releaseStartupPages } from '../node/memory.js';

function parseWorkers(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 64) throw new InvalidArgumentError(`--workers: ${JSON.stringify(v)} is not an integer in 1..64`);
  return n;
}

const program = new Command();
program
  .name('vxtun')
  .description('A userspace VXLAN dataplane on a TUN device, wire-compatible with the Linux kernel and flannel')
  .version(versionText(), '-V, --version', 'version, commit and addon')
  .exitOverride()
  .showSuggestionAfterError()
  // One line per error: commander's message with its "(Did you mean …?)" joined on.
  .configureOutput({ outputError: (str, write) => write(oneLine(str) + hintFor(str)) });

/** `error: unknown command 'stauts'\n(Did you mean status?)\n` -> one line. */
function oneLine(text: string): string {
  return `${text.split('\n').map((l) => l.trim()).filter(Boolean).join(' ')}\n`;
}

const up = program
  .command('up')
  .description("run a node: TUN device, pod-network route, VXLAN over UDP; from a config file, flanneld's flags (and FLANNELD_* variables), or both (flags win)")
  .option('-c, --config <file>', 'node config (JSON); optional with flanneld flags')
  .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .addOption(new Option('--datapath <kind>', 'packet path: the best available, the native fast path, or the pure-TypeScript reference').choices(['auto', 'native', 'ts']).default('auto'))
  .addOption(new Option('--workers <n>', 'engines on their own threads and TUN queues (native path; default one per core up to 4, one on two cores or fewer)').argParser(parseWorkers))
  .addOption(new Option('--ip-masq [bool]', "install flannel's masquerade rules for pod traffic leaving the network (flanneld; env FLANNELD_IP_MASQ; without it, rules a previous run left are removed)").preset('true'))
  .option('--no-express', 'no express path: every packet through the JavaScript pipeline (native path; overrides datapath.express)')
  .option('--no-batch-scheduling', 'leave the threads at SCHED_OTHER (native path; overrides datapath.batchScheduling)');
addFlanneldFlags(up).action(async (o: { config?: string; logLevel: string; datapath: 'auto' | 'native' | 'ts'; workers?: number; ipMasq?: string; express: boolean; batchScheduling: boolean }, cmd: Command) => {
  // Before the node's modules load: their loading is what would grow V8's young generation first.
  capYoungGeneration();
  releaseStartupPages(); // Node's bootstrap: see below
  const { options: flanneld, warnings } = flanneldOptions(cmd, process.env);
  const ipMasqText = o.ipMasq ?? (process.env.FLANNELD_IP_MASQ || undefined);
  let ipMasq: boolean | undefined;
  if (ipMasqText !== undefined) {
    if (!/^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$/.test(ipMasqText)) cmd.error(`error: --ip-masq: ${JSON.stringify(ipMasqText)} is not a boolean`, { exitCode: 2 });
    ipMasq = /^(1|t|T|TRUE|true|True)$/.test(ipMasqText);
  }
  const { hasFlanneldFlags } = await import('../node/flanneld.js');
  if (o.config === undefined && !hasFlanneldFlags(flanneld) && ipMasq === undefined) {
    cmd.error("error: give a node config (-c, --config <file>) or flanneld's flags (e.g. --etcd-endpoints, --kube-subnet-mgr)", { exitCode: 2 });
  }
  for (const w of warnings) process.stderr.write(`vxtun: warning: ${w}\n`);
  const { runUp } = await import('./up.js');
  // Node's bootstrap, then the loading of the node's modules, each touch much of the binary once: give
  // it back after each (run.ts does it again once the node is up), so start-up sets no peak of RSS.
  releaseStartupPages();
  const { ipMasq: _text, ...rest } = o;
  process.exitCode = await runUp({ ...rest, logLevel: logLevelFromVerbosity(cmd, process.env) ?? o.logLevel, ...(ipMasq !== undefined ? { ipMasq } : {}), flanneld });
});

program
  .command('status')
  .description("show a running node's counters and routes")
  .option('-d, --device <name>', 'device of the node', 'vxtun0')
  .option('-s, --control-socket <path>', 'control socket (default /run/vxtun/netns-<inode>/<device>.sock: one per network namespace)')
  .option('--json', 'print JSON')
  .action(async (o: { device: string; controlSocket?: string; json?: boolean }) => {
    const { runStatus } = await import('./status.js');
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
  .option('--verdict <v>', 'only forwarded, answered, dropped, or one verdict (e.g. wrong-vni, icmp-unreachable, sent)')
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
  .option('--lab', "trace the teaching lab's vxtun nodes, with the kernel's hops (pod eth0, veth, cni0, TUN, flannel.1, underlay eth0) seen by packet sockets in its namespaces")
  .option('--state-dir <dir>', 'with --lab: where the lab keeps its state', DEFAULT_LAB_DIR)
  .action(async (o: TraceCliOptions) => {
    const { runTrace } = await import('./trace.js');
    process.exitCode = await runTrace(o);
  });

const lab = program.command('lab').description('network-namespace labs: a quick two-node check (default), or a teaching lab (up, exec, tour, down)');
const labRun = async (o: { keep?: boolean }): Promise<void> => {
  const { runLab } = await import('./lab.js');
  process.exitCode = await runLab(o);
};
lab
  .command('run')
  .description('build a two-node cluster in network namespaces (one vxtun, one kernel VXLAN), ping across, tear down (the default)')
  .option('--keep', 'leave the lab running until Ctrl-C')
  .action(labRun);
// `vxtun lab` alone runs the quick check; any other word is an unknown lab command, named as such.
lab
  .usage('[options] [command]')
  .argument('[command]')
  .option('--keep', 'with no command: leave the lab running until Ctrl-C')
  .action(async (word: string | undefined, o: { keep?: boolean }, cmd: Command) => {
    if (word !== undefined) cmd.error(unknownSubcommand(cmd, word), { exitCode: 2, code: 'commander.unknownCommand' });
    await labRun(o);
  });
const stateDir = (): Option => new Option('--state-dir <dir>', 'where the lab keeps its state').default(DEFAULT_LAB_DIR);
lab
  .command('up')
  .description('start a teaching lab that stays up: nodes on vxtun or the kernel VXLAN, one CNI pod each')
  .option('-n, --nodes <n>', 'number of nodes (2-9)', '3')
  .option('-k, --kernel <list>', 'node numbers on the kernel VXLAN, e.g. 1 or 1,3, or none (default: the last node)')
  .addOption(stateDir())
  .action(async (o: { nodes: string; kernel?: string; stateDir: string }) => {
    const { runLabUp } = await import('./lab-teach.js');
    process.exitCode = await runLabUp(o);
  });
lab
  .command('exec <target> [command...]')
  .description('run a command in a node (n1, n2, ...) or pod (pod1, pod2, ...) of the lab: vxtun lab exec pod1 -- ping 10.244.2.2')
  .addOption(stateDir())
  .action(async (target: string, command: string[], o: { stateDir: string }) => {
    const { runLabExec } = await import('./lab-teach.js');
    process.exitCode = await runLabExec(target, command, o);
  });
lab
  .command('tour')
  .description('a guided ping across the lab: route table, VTEP table and the trace of that ping, step by step')
  .option('--lang <lang>', 'trace labels: en or zh', 'en')
  .option('--color <when>', 'auto, always or never', 'auto')
  .addOption(stateDir())
  .action(async (o: { stateDir: string; lang: string; color: string }) => {
    const { runLabTour } = await import('./lab-teach.js');
    process.exitCode = await runLabTour(o);
  });
lab
  .command('down')
  .description('stop the lab: daemons, namespaces (and their links), state; nothing left behind')
  .addOption(stateDir())
  .action(async (o: { stateDir: string }) => {
    const { runLabDown } = await import('./lab-teach.js');
    process.exitCode = await runLabDown(o);
  });

const bench = program
  .command('bench')
  .description('measure each dataplane (kernel VXLAN, veth, vxtun fast/TS, mixed, flannel udp, ...) in namespaces, in interleaved rounds; table, JSON and HTML report')
  .option('--quick', 'kernel, vxtun-fast and ovs-userspace, one round on the link wire (about a minute)')
  .option('--cases <list>', 'comma-separated cases (kernel is always added; default every case)')
  .option('--wire <mode>', 'underlay: veth, link (offloads off, GRO on, as a NIC) or both side by side (default both, --quick link)')
  .option('--mtu <n>', 'underlay MTU: 1500 or 9000 (default 1500)')
  .option('--runs <n>', 'measured rounds: each case once per round (default 5, --quick 1)')
  .option('--seconds <n>', 'seconds per iperf3 and netperf measurement (default 1)')
  .option('--streams <n>', 'TCP streams of the multi-stream test (default 4)')
  .option('--udp-sizes <list>', 'UDP payload sizes in bytes (default 64,512,1350)')
  .option('--netem <params>', 'tc netem on the underlay bridge ports, e.g. "delay 1ms loss 0.1%"')
  .option('--json <file>', 'result file (default bench-results/vxtun-bench-<time>.json)')
  .option('--html <file>', 'HTML report (default: the JSON path with .html)')
  .option('--pin', 'pin the iperf3 client and server to different CPUs (taskset)')
  .action(async (o: Parameters<typeof runBenchCommand>[0]) => {
    const { runBenchCommand } = await import('./bench.js');
    process.exitCode = await runBenchCommand(o, process.argv.slice(3));
  });
bench
  .command('compare <a> <b>')
  .description('show the change between two bench result files, better/worse/~ by a Mann-Whitney U test (refuses different machines unless --allow-different-machines)')
  .option('--allow-different-machines', 'compare results from different machines anyway (the output says so)')
  .action(async (a: string, b: string, o: { allowDifferentMachines?: boolean }) => {
    const { runBenchCompare } = await import('./bench.js');
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
    const { runBenchSoak } = await import('./bench.js');
    process.exitCode = await runBenchSoak(cmd.optsWithGlobals(), process.argv.slice(3));
  });

program
  .command('completion')
  .description('print a shell completion script: eval "$(vxtun completion bash)", or zsh')
  .argument('<shell>', 'bash or zsh')
  .action(async (shell: string, _o: unknown, cmd: Command) => {
    const { completionScript } = await import('./completion.js');
    const script = completionScript(program, shell);
    if (script === undefined) cmd.error(`error: completion: shell ${JSON.stringify(shell)} is not bash or zsh`, { exitCode: 2 });
    process.stdout.write(script!);
  });

program
  .command('man')
  .description('print the manual page (roff), made from these command definitions: vxtun man | man -l -')
  .action(async () => {
    const { manPage } = await import('./manpage.js');
    process.stdout.write(manPage(program));
  });

/** "error: unknown command 'tuor' for 'vxtun lab' (Did you mean tour?)": commander's wording and its suggestion. */
function unknownSubcommand(parent: Command, word: string): string {
  const names = parent.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  const near = names.filter((n) => editDistance(n, word) <= Math.max(1, Math.floor(n.length / 3)));
  const hint = near.length > 0 ? ` (Did you mean ${near.join(', ')}?)` : ` (commands: ${names.join(', ')})`;
  return `error: unknown command '${word}' for 'vxtun ${parent.name()}'${hint}`;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

try {
  // flanneld's Go spellings (-iface=x, --ip-masq=false) for `up` only.
  const argv = process.argv[2] === 'up' ? [...process.argv.slice(0, 3), ...goArgs(process.argv.slice(3))] : process.argv;
  await program.parseAsync(argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else {
    process.stderr.write(`vxtun: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
