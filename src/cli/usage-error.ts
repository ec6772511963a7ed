/**
 * Usage errors (exit 2): one English line naming the flag and value — what scripts and issue reports
 * match on — and, for a reader of Chinese (`--lang zh` on the command line, or LC_ALL / LC_MESSAGES /
 * LANG naming a zh locale), a Chinese hint under it that names the same flag and value.
 */

/** Whether the person at the terminal reads Chinese: `--lang zh`, or a zh locale. */
export function readsChinese(argv: readonly string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): boolean {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') break;
    if (argv[i] === '--lang=zh' || (argv[i] === '--lang' && argv[i + 1] === 'zh')) return true;
  }
  const locale = env.LC_ALL || env.LC_MESSAGES || env.LANG || '';
  return /^zh([_.@-]|$)/i.test(locale);
}

/** "vxtun lab tour": the command words before the first flag, for the `--help` the hint points at. */
function commandOf(argv: readonly string[]): string {
  const words: string[] = [];
  for (const a of argv) {
    if (a.startsWith('-') || words.length >= 2) break;
    words.push(a);
  }
  return ['vxtun', ...words].join(' ');
}

/** The Chinese hint for an English usage error (commander's or vxtun's own wording). */
export function chineseHint(message: string, argv: readonly string[] = process.argv.slice(2)): string {
  const help = `运行 \`${commandOf(argv)} --help\``;
  let m = /unknown command '([^']+)'/.exec(message);
  if (m) {
    const at = argv.indexOf(m[1]!);
    return `提示：没有 \`${m[1]}\` 这个命令（拼写错误？）；运行 \`${commandOf(at >= 0 ? argv.slice(0, at) : [])} --help\` 查看全部命令。`;
  }
  m = /unknown option '([^'=]+)/.exec(message);
  if (m) return `提示：没有 ${m[1]} 这个参数（拼写错误？）；${help} 查看全部参数。`;
  m = /option '(?:-\w, )?(--[\w-]+)[^']*' argument missing/.exec(message);
  if (m) return `提示：参数 ${m[1]} 需要一个值；${help} 查看用法。`;
  m = /option '(?:-\w, )?(--[\w-]+)[^']*' argument '([^']*)' is invalid/.exec(message);
  if (m) return `提示：参数 ${m[1]} 的值 \`${m[2]}\` 无效；${help} 查看它接受的值。`;
  m = /missing required argument '([^']+)'/.exec(message);
  if (m) return `提示：缺少参数 ${m[1]}；${help} 查看用法。`;
  m = /^(?:error: |vxtun: )?(--[\w-]+)[: ]+"([^"]*)"/.exec(message);
  if (m) return `提示：参数 ${m[1]} 的值 \`${m[2]}\` 无效；${help} 查看它接受的值。`;
  m = /^(?:error: |vxtun: )?(--[\w-]+)/.exec(message);
  if (m) return `提示：参数 ${m[1]} 有误（见上一行）；${help} 查看用法。`;
  return `提示：命令行有误（见上一行）；${help} 查看用法。`;
}

/** The hint line (with its newline) to write under `message`, or '' for a reader of English. */
export function hintFor(message: string): string {
  return readsChinese() ? `${chineseHint(message)}\n` : '';
}

/** Writes a usage error (and the hint) to stderr; returns the exit code 2. */
export function usageError(message: string): number {
  process.stderr.write(`vxtun: ${message}\n${hintFor(message)}`);
  return 2;
}
