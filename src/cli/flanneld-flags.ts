/**
 * flanneld's flags on `vxtun up` (flannel's main.go: same names, meanings and defaults), and its
 * FLANNELD_<FLAG_UPPER_SNAKE> environment variables, which fill in the flags not given on the command
 * line (flagutil.SetFlagsFromEnv). Go spells flags with one dash or two and bools as `--flag=false`:
 * goArgs() rewrites those to commander's spelling before parsing. A flag with no meaning for vxtun is
 * accepted and named in one warning line.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { FlanneldOptions } from '../node/flanneld.js';

type Kind = 'string' | 'int' | 'bool' | 'list';

interface FlagDef {
  name: string;
  kind: Kind;
  help: string;
  /** flanneld's default, shown in the help (applied in src/node/flanneld.ts, where a config file may say otherwise). */
  shownDefault?: string;
  range?: [number, number];
  /** Accepted for compatibility only. */
  ignored?: true;
}

const FLAGS: FlagDef[] = [
  { name: 'etcd-endpoints', kind: 'string', help: 'a comma-delimited list of etcd endpoints', shownDefault: 'http://127.0.0.1:4001,http://127.0.0.1:2379' },
  { name: 'etcd-prefix', kind: 'string', help: 'etcd prefix', shownDefault: '/coreos.com/network' },
  { name: 'etcd-keyfile', kind: 'string', help: 'SSL key file used to secure etcd communication' },
  { name: 'etcd-certfile', kind: 'string', help: 'SSL certification file used to secure etcd communication' },
  { name: 'etcd-cafile', kind: 'string', help: 'SSL Certificate Authority file used to secure etcd communication' },
  { name: 'etcd-username', kind: 'string', help: 'username for BasicAuth to etcd' },
  { name: 'etcd-password', kind: 'string', help: 'password for BasicAuth to etcd' },
  { name: 'iface', kind: 'list', help: 'interface to use (IP or name) for inter-host communication; repeat to try each in order (default: the default route\'s interface)' },
  { name: 'iface-regex', kind: 'list', help: 'regex matching the interface (name or IP) to use; repeatable, checked after --iface' },
  { name: 'iface-can-reach', kind: 'string', help: "the interface `ip route get <address>` would use" },
  { name: 'public-ip', kind: 'string', help: 'IP accessible by other nodes for inter-host communication' },
  { name: 'public-ipv6', kind: 'string', help: 'IPv6 accessible by other nodes for inter-host communication' },
  { name: 'subnet-file', kind: 'string', help: 'filename where env variables (subnet, MTU, ...) will be written to', shownDefault: '/run/flannel/subnet.env' },
  { name: 'subnet-lease-renew-margin', kind: 'int', help: 'subnet lease renewal margin, in minutes, ranging from 1 to 1439', shownDefault: '60', range: [1, 1439] },
  { name: 'kube-subnet-mgr', kind: 'bool', help: 'contact the Kubernetes API for subnet assignment instead of etcd' },
  { name: 'kube-api-url', kind: 'string', help: 'Kubernetes API server URL (not needed in a pod)' },
  { name: 'kubeconfig-file', kind: 'string', help: 'kubeconfig file location (not needed in a pod)' },
  { name: 'kube-annotation-prefix', kind: 'string', help: 'Kubernetes annotation prefix', shownDefault: 'flannel.alpha.coreos.com' },
  { name: 'net-config-path', kind: 'string', help: 'path to the network configuration file (--kube-subnet-mgr)', shownDefault: '/etc/kube-flannel/net-conf.json' },
  { name: 'set-node-network-unavailable', kind: 'bool', help: 'set NetworkUnavailable=False on the node once ready (--kube-subnet-mgr)', shownDefault: 'true' },
  { name: 'healthz-ip', kind: 'string', help: 'the IP address for the healthz server to listen', shownDefault: '0.0.0.0' },
  { name: 'healthz-port', kind: 'int', help: 'the port for the healthz server to listen (0 to disable): /healthz, /readyz, /metrics', shownDefault: '0', range: [0, 65535] },
  { name: 'iptables-resync', kind: 'int', help: 'resync period for the masquerade rules, in seconds', shownDefault: '5', range: [1, 86400] },
  { name: 'iptables-forward-rules', kind: 'bool', help: 'accepted for flanneld compatibility; vxtun adds no FORWARD rules', ignored: true },
  { name: 'use-multi-cluster-cidr', kind: 'bool', help: 'accepted for flanneld compatibility (MultiClusterCIDR is not supported)', ignored: true },
  { name: 'persistent-mac', kind: 'bool', help: 'accepted for flanneld compatibility (vxtun derives or keeps the VTEP MAC anyway)', ignored: true },
  { name: 'vmodule', kind: 'string', help: 'accepted for flanneld compatibility (klog per-module verbosity)', ignored: true },
  { name: 'log_backtrace_at', kind: 'string', help: 'accepted for flanneld compatibility (klog)', ignored: true },
];

const camel = (name: string): string => name.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
export const envName = (name: string): string => `FLANNELD_${name.replace(/-/g, '_').toUpperCase()}`;

/** Go's strconv.ParseBool. */
function parseGoBool(flag: string, v: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new InvalidArgumentError(`--${flag}: ${JSON.stringify(v)} is not a boolean`);
}

function parseInt10(def: FlagDef, v: string): number {
  const n = Number(v);
  const [lo, hi] = def.range ?? [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
  if (!/^-?\d+$/.test(v.trim()) || n < lo || n > hi) throw new InvalidArgumentError(`--${def.name}: ${JSON.stringify(v)} is not an integer in ${lo}..${hi}`);
  return n;
}

function parseValue(def: FlagDef, v: string, prev: unknown): unknown {
  switch (def.kind) {
    case 'bool':
      return parseGoBool(def.name, v);
    case 'int':
      return parseInt10(def, v);
    case 'list':
      return [...((prev as string[] | undefined) ?? []), v];
    default:
      return v;
  }
}

/** Adds flanneld's flags to `up`. */
export function addFlanneldFlags(cmd: Command): Command {
  for (const def of FLAGS) {
    const spelling = def.kind === 'bool' ? `--${def.name} [bool]` : `--${def.name} <${def.kind === 'int' ? 'n' : 'value'}>`;
    const help = `${def.help} (flanneld; env ${envName(def.name)}${def.shownDefault !== undefined ? `; default ${def.shownDefault}` : ''})`;
    const opt = new Option(spelling, help).argParser((v: string, prev: unknown) => parseValue(def, v, prev));
    if (def.kind === 'bool') opt.preset('true');
    cmd.addOption(opt);
  }
  cmd.addOption(new Option('-v, --v <level>', "klog verbosity (flanneld's -v): 0 is info, 1-4 debug, 5 and more trace; --log-level wins").argParser((v: string) => parseInt10({ name: 'v', kind: 'int', help: '', range: [0, 10] }, v)));
  return cmd;
}

/** commander's preset for a bare `--bool` is the string 'true' (the parser is not called for it). */
function normalise(def: FlagDef, v: unknown): unknown {
  return def.kind === 'bool' && typeof v === 'string' ? parseGoBool(def.name, v) : v;
}

/**
 * The flanneld flags as given: the command line first, FLANNELD_* for the rest (an empty variable
 * counts as unset, as in flanneld). Warnings for flags vxtun accepts but does not act on.
 */
export function flanneldOptions(cmd: Command, env: Record<string, string | undefined>): { options: FlanneldOptions; warnings: string[] } {
  const options: Record<string, unknown> = {};
  const warnings: string[] = [];
  for (const def of FLAGS) {
    const key = camel(def.name);
    let value = cmd.getOptionValueSource(key) === 'cli' ? normalise(def, cmd.getOptionValue(key)) : undefined;
    const fromEnv = env[envName(def.name)];
    if (value === undefined && fromEnv !== undefined && fromEnv !== '') {
      try {
        value = parseValue(def, fromEnv, undefined);
      } catch (err) {
        cmd.error(`error: ${envName(def.name)}: ${(err as Error).message.replace(/^--[a-z-_]+: /, '')}`, { exitCode: 2 });
      }
    }
    if (value === undefined) continue;
    if (def.ignored) warnings.push(`--${def.name}: accepted for flanneld compatibility, has no effect in vxtun`);
    else options[key] = value;
  }
  return { options: options as FlanneldOptions, warnings };
}

/** `-v` as a log level, unless --log-level was given. */
export function logLevelFromVerbosity(cmd: Command, env: Record<string, string | undefined>): string | undefined {
  if (cmd.getOptionValueSource('logLevel') === 'cli') return undefined;
  let v = cmd.getOptionValue('v') as number | undefined;
  if (v === undefined && env.FLANNELD_V) v = Number(env.FLANNELD_V);
  if (v === undefined || !Number.isFinite(v)) return undefined;
  return v <= 0 ? 'info' : v < 5 ? 'debug' : 'trace';
}

const KNOWN = new Set(FLAGS.map((f) => f.name));
const BOOLS = new Set(FLAGS.filter((f) => f.kind === 'bool').map((f) => f.name));

/**
 * Go's spellings to commander's: `-iface=eth0` and `-iface eth0` -> `--iface …`, `-v=2` -> `-v 2`,
 * `--ip-masq=false` -> `--ip-masq false` (commander's optional value). Other words are left alone.
 */
export function goArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const arg of args) {
    const m = /^--?([a-z][a-z0-9_-]*)(?:=(.*))?$/.exec(arg);
    if (!m) {
      out.push(arg);
      continue;
    }
    const [, name, value] = m as unknown as [string, string, string | undefined];
    if (name === 'v' && value !== undefined) out.push('-v', value);
    else if (KNOWN.has(name) || name === 'ip-masq') {
      if (value === undefined) out.push(`--${name}`);
      else if (BOOLS.has(name) || name === 'ip-masq') out.push(`--${name}`, value);
      else out.push(`--${name}=${value}`);
    } else out.push(arg);
  }
  return out;
}
