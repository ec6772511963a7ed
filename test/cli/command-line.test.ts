/**
 * The command line as people meet it: --version, one-line errors that keep commander's suggestion,
 * an unknown flag named before a missing required one, a Chinese hint under a usage error for a reader of Chinese, unknown lab commands named as such, status
 * with no node, completion scripts bash really loads, a man page man really renders, and an entry
 * point that runs through a PATH symlink (what `npm link` / `npm install -g .` make). No root needed.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, symlinkSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { untranslatedWords } from '../support/untranslated.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');

function vxtun(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  // An English locale unless a test says otherwise: usage errors add a Chinese hint for a zh one.
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, LC_ALL: '', LC_MESSAGES: '', LANG: 'C.UTF-8', ...env }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('vxtun command line', () => {
  it('--version names the version, the commit, node and the addon', () => {
    const r = vxtun(['--version']);
    expect(r.code).toBe(0);
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`vxtun ${version}`);
    const head = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim();
    expect(lines[1]).toMatch(new RegExp(`^commit ${head}( \\(modified\\))?$`));
    expect(lines[2]).toBe(`node ${process.version}`);
    expect(lines[3]).toMatch(/^addon (built|not built)/);
  });

  it('a mistyped command is one line with the suggestion, exit 2', () => {
    const r = vxtun(['stauts']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: unknown command 'stauts' (Did you mean status?)\n");
  });

  it('an unknown flag is named before a missing config (a config file or flanneld flags)', () => {
    const r = vxtun(['up', '--no-such-flag=x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: unknown option '--no-such-flag=x'\n");
    const missing = vxtun(['up']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("error: give a node config (-c, --config <file>) or flanneld's flags (e.g. --etcd-endpoints, --kube-subnet-mgr)\n");
    // A flanneld flag with a bad value: one line naming it, exit 2, before anything else.
    const margin = vxtun(['up', '--subnet-lease-renew-margin=0']);
    expect(margin.code).toBe(2);
    expect(margin.stderr).toBe(`error: option '--subnet-lease-renew-margin <n>' argument '0' is invalid. --subnet-lease-renew-margin: "0" is not an integer in 1..1439\n`);
  });

  it('a usage error keeps its English line and adds a Chinese hint for --lang zh or a zh locale', () => {
    const count = vxtun(['trace', '--lang', 'zh', '--count', 'x']);
    expect(count.code).toBe(2);
    expect(count.stderr).toBe('vxtun: --count: "x" is not a positive integer\n提示：参数 --count 的值 `x` 无效；运行 `vxtun trace --help` 查看它接受的值。\n');
    const typo = vxtun(['lab', 'tuor'], { LANG: 'zh_CN.UTF-8' });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe("error: unknown command 'tuor' for 'vxtun lab' (Did you mean tour?)\n提示：没有 `tuor` 这个命令（拼写错误？）；运行 `vxtun lab --help` 查看全部命令。\n");
    const flag = vxtun(['trace', '--lang=zh', '--no-such']);
    expect(flag.stderr).toBe("error: unknown option '--no-such'\n提示：没有 --no-such 这个参数（拼写错误？）；运行 `vxtun trace --help` 查看全部参数。\n");
    const choice = vxtun(['up', '--datapath', 'fast'], { LC_ALL: 'zh_TW.UTF-8' });
    expect(choice.code).toBe(2);
    expect(choice.stderr).toMatch(/^error: option '--datapath <kind>' argument 'fast' is invalid\. [^\n]*\n提示：参数 --datapath 的值 `fast` 无效；运行 `vxtun up --help` 查看它接受的值。\n$/);
    const nodes = vxtun(['lab', 'up', '--nodes', '12', '--lang', 'zh']);
    expect(nodes.stderr).toMatch(/^error: unknown option '--lang'\n提示：没有 --lang 这个参数/); // lab up has no --lang: named as unknown, in Chinese too
    for (const r of [count, typo, flag, choice]) expect(untranslatedWords(r.stderr.split('\n')[1]!)).toEqual([]);
    expect(vxtun(['trace', '--lab', '--socket', '/nonexistent.sock']).stderr).toBe("vxtun: --lab traces the lab's own nodes: give --lab or --socket, not both\n");
    // a reader of English sees the one line only
    expect(vxtun(['trace', '--count', 'x']).stderr).toBe('vxtun: --count: "x" is not a positive integer\n');
    expect(vxtun(['lab', 'tuor']).stderr).toBe("error: unknown command 'tuor' for 'vxtun lab' (Did you mean tour?)\n");
  });

  it('an unknown lab command is named as such, with the nearest one', () => {
    const r = vxtun(['lab', 'tuor']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: unknown command 'tuor' for 'vxtun lab' (Did you mean tour?)\n");
    const far = vxtun(['lab', 'xyzzy']);
    expect(far.stderr).toBe("error: unknown command 'xyzzy' for 'vxtun lab' (commands: run, up, exec, tour, down)\n");
  });

  it('status with no node says which socket it tried and how to name another', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxtun-cli-'));
    try {
      const sock = join(dir, 'none.sock');
      const r = vxtun(['status', '--control-socket', sock]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `vxtun: no node is running with control socket ${sock} (no such socket); is vxtun up running? name another with --device NAME (its socket /run/vxtun/netns-<inode>/NAME.sock) or --control-socket PATH\n`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bash completion loads in bash and completes subcommands and flags from the definitions', () => {
    const script = vxtun(['completion', 'bash']).stdout;
    const complete = (line: string): string[] => {
      const words = line.split(' ');
      const out = execFileSync(
        'bash',
        ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _vxtun_complete; printf '%s\\n' "\${COMPREPLY[@]}"`],
        { encoding: 'utf8' },
      );
      return out.split('\n').filter(Boolean).sort();
    };
    expect(complete('vxtun st')).toEqual(['status']);
    expect(complete('vxtun lab t')).toEqual(['tour']);
    expect(complete('vxtun trace --pc')).toEqual(['--pcap']);
    expect(complete('vxtun bench compare --a')).toEqual(['--allow-different-machines']);
    expect(vxtun(['completion', 'zsh']).stdout).toMatch(/^#compdef vxtun\n/);
    const bad = vxtun(['completion', 'fish']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: completion: shell "fish" is not bash or zsh\n');
  });

  it('the man page renders with man and documents every command', () => {
    const page = vxtun(['man']).stdout;
    const rendered = execFileSync('man', ['-l', '-'], { input: page, encoding: 'utf8', env: { ...process.env, MANWIDTH: '200' } });
    const text = rendered.replace(/.\x08/g, ''); // man's overstrike bold and underline
    for (const c of ['vxtun up', 'vxtun status', 'vxtun trace', 'vxtun lab tour', 'vxtun bench compare', 'vxtun completion']) expect(text).toContain(c);
    expect(text).toContain('--control-socket');
    expect(text).not.toMatch(/\\-|\\e/);
  });

  it('the entry point is executable and runs through a PATH symlink, as npm link installs it', () => {
    expect(statSync(cli).mode & 0o111).toBe(0o111);
    const bin = mkdtempSync(join(tmpdir(), 'vxtun-bin-'));
    try {
      symlinkSync(cli, join(bin, 'vxtun'));
      const out = execFileSync('vxtun', ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      expect(out.split('\n')[0]).toMatch(/^vxtun \d+\.\d+\.\d+/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
