/** The manual page, in roff, made from the command definitions (`vxtun man | man -l -`). */
import type { Command, Option } from 'commander';

/** roff-escapes a line of text: backslashes, and a leading dot or quote that roff would take as a request. */
function esc(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/, '\\&$1');
}

function optionLines(options: readonly Option[]): string[] {
  return options.flatMap((o) => ['.TP', `.B ${esc(o.flags)}`, esc(o.description + (o.defaultValue !== undefined && o.defaultValue !== false && o.defaultValue !== true ? ` (default: ${String(o.defaultValue)})` : ''))]);
}

function commandLines(cmd: Command, path: string[]): string[] {
  const full = [...path, cmd.name()];
  const args = cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)).join(' ');
  const lines = ['.SS', `.B ${esc(full.join(' '))}${args ? ` ${esc(args)}` : ''}`, esc(cmd.description()), ...optionLines(cmd.options)];
  return [...lines, ...cmd.commands.flatMap((c) => commandLines(c, full))];
}

export function manPage(program: Command, date = new Date()): string {
  const name = program.name();
  const lines = [
    `.TH ${name.toUpperCase()} 8 "${date.toISOString().slice(0, 10)}" "${name}" "System Administration"`,
    '.SH NAME',
    `${name} \\- ${esc(program.description())}`,
    '.SH SYNOPSIS',
    `.B ${name}`,
    '.I command',
    '[options]',
    '.SH DESCRIPTION',
    esc(program.description()) + '.',
    'Usage errors exit with status 2 and one line naming the flag or value; runtime failures exit with status 1.',
    '.SH OPTIONS',
    ...optionLines(program.options),
    '.SH COMMANDS',
    ...program.commands.flatMap((c) => commandLines(c, [name])),
    '.SH SEE ALSO',
    '.BR ip (8),',
    '.BR bridge (8),',
    '.BR flanneld (8)',
  ];
  return `${lines.join('\n')}\n`;
}
