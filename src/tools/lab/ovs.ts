/**
 * Open vSwitch as a lab node: an ovsdb-server and an ovs-vswitchd of the node's own, started inside
 * its namespace with every run, database and log file in `dir` (OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR,
 * OVS_SYSCONFDIR), so it neither needs nor touches a system-wide Open vSwitch. Both run in the
 * foreground under the topology, which stops them. Meant for the userspace datapath
 * (`datapath_type=netdev`), which needs no kernel module.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { processOutput, type Netns } from './netns.js';
import { runOk, waitFor, type ExecResult } from './exec.js';

export class OvsNode {
  private constructor(
    readonly ns: Netns,
    readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
    readonly ovsdbServer: ChildProcess,
    readonly vswitchd: ChildProcess,
  ) {}

  private static dbSocket = (dir: string): string => join(dir, 'db.sock');
  private static vswitchdControl = (dir: string): string => join(dir, 'ovs-vswitchd.ctl');

  /** Creates the database in `dir` and starts ovsdb-server and ovs-vswitchd in `ns`; resolves once both answer. */
  static async start(ns: Netns, dir: string): Promise<OvsNode> {
    mkdirSync(dir, { recursive: true });
    const env = { ...process.env, OVS_RUNDIR: dir, OVS_DBDIR: dir, OVS_LOGDIR: dir, OVS_SYSCONFDIR: dir };
    const db = join(dir, 'conf.db');
    await runOk(['ovsdb-tool', 'create', db], { env }); // the schema: the installed vswitch.ovsschema
    const ovsdbServer = ns.spawn(['ovsdb-server', db, `--remote=punix:${OvsNode.dbSocket(dir)}`, `--unixctl=${join(dir, 'ovsdb-server.ctl')}`, `--log-file=${join(dir, 'ovsdb-server.log')}`], { env });
    await waitUntilExists(ovsdbServer, OvsNode.dbSocket(dir), 'ovsdb-server');
    await runOk(['ovs-vsctl', `--db=unix:${OvsNode.dbSocket(dir)}`, '--no-wait', 'init'], { env });
    const vswitchd = ns.spawn(['ovs-vswitchd', `unix:${OvsNode.dbSocket(dir)}`, `--unixctl=${OvsNode.vswitchdControl(dir)}`, `--log-file=${join(dir, 'ovs-vswitchd.log')}`], { env });
    await waitUntilExists(vswitchd, OvsNode.vswitchdControl(dir), 'ovs-vswitchd');
    return new OvsNode(ns, dir, env, ovsdbServer, vswitchd);
  }

  /** `ovs-vsctl` on this node's database; waits (up to 10 s) until ovs-vswitchd has applied the change. */
  vsctl(args: string[]): Promise<ExecResult> {
    return runOk(['ovs-vsctl', `--db=unix:${OvsNode.dbSocket(this.dir)}`, '--timeout=10', ...args], { env: this.env });
  }

  /** `ovs-ofctl <command> <bridge> ...args` through the bridge's management socket in this node's run directory. */
  ofctl(command: string, bridge: string, args: string[]): Promise<ExecResult> {
    return runOk(['ovs-ofctl', command, `unix:${join(this.dir, `${bridge}.mgmt`)}`, ...args], { env: this.env });
  }

  /** `ovs-appctl` to this node's ovs-vswitchd (e.g. `tnl/arp/set`, `ovs/route/show`). */
  appctl(args: string[]): Promise<ExecResult> {
    return runOk(['ovs-appctl', '-t', OvsNode.vswitchdControl(this.dir), ...args], { env: this.env });
  }
}

async function waitUntilExists(child: ChildProcess, path: string, what: string): Promise<void> {
  await waitFor(
    () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited: ${processOutput(child).trim().split('\n').pop()}`);
      return existsSync(path);
    },
    { timeoutMs: 10_000, what: `${what}'s socket ${path}` },
  );
}
