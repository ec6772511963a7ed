/** tcpdump in a lab namespace, and the parser of its -x/-xx output: what tests assert bytes on the wire with. */
import { Netns } from '../../src/tools/lab/netns.js';
import { type ChildProcess } from 'node:child_process';

export interface CaptureOptions {
  /** Stop after this many packets (`-c`). */
  count?: number;
  /** tcpdump flags; default `-xx -n` (hex including the link-layer header, no name lookups). */
  flags?: string[];
  /** Write a pcap file instead of printing (`-w file -U`). */
  file?: string;
  snaplen?: number;
}

export interface CaptureResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

export interface Capture {
  child: ChildProcess;
  /** Resolves when tcpdump exits on its own (e.g. after `count` packets). */
  done: Promise<CaptureResult>;
  /** Stops tcpdump (SIGINT, it flushes) and returns its output. */
  stop(): Promise<CaptureResult>;
}

/** Starts tcpdump in `ns` on `iface`; resolves once it is listening. */
export async function capture(ns: Netns, iface: string, filter: string | string[], opts: CaptureOptions = {}): Promise<Capture> {
  // --immediate-mode: without it packets wait in the kernel's ring buffer and a stop() loses them.
  const args = ['tcpdump', '--immediate-mode', '-i', iface, '-l', ...(opts.flags ?? ['-xx', '-n'])];
  if (opts.count !== undefined) args.push('-c', String(opts.count));
  if (opts.snaplen !== undefined) args.push('-s', String(opts.snaplen));
  if (opts.file !== undefined) args.push('-U', '-w', opts.file);
  args.push(...(Array.isArray(filter) ? filter : filter.split(/\s+/).filter(Boolean)));
  const child = ns.spawn(args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (/listening on/.test(stderr)) resolve();
    });
    child.once('exit', () => reject(new Error(`tcpdump exited before listening: ${stderr.trim()}`)));
  });
  const done = new Promise<CaptureResult>((resolve) => {
    child.once('close', (code) => resolve({ stdout, stderr, code }));
  });
  await listening;
  return {
    child,
    done,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        const r = await done;
        clearTimeout(t);
        return r;
      }
      return done;
    },
  };
}

export interface TcpdumpPacket {
  /** Summary line(s) before the hex dump (the first starts with the timestamp unless -t). */
  summary: string[];
  /** The `0x0000:  ....` lines verbatim. */
  hexLines: string[];
  bytes: Buffer;
}

// The packet's own dump lines start with exactly one tab; -vv decoders may print deeper-indented
// dumps (e.g. of an ICMPv6 option) that belong to the summary. (-X's ASCII column is not supported.)
const HEX_LINE = /^\t0x([0-9a-f]{4}):((?:\s+[0-9a-f]{2,4})+)\s*$/i;

/**
 * Splits `tcpdump -x/-xx` output (optionally -v/-vv) into packets: summary lines, then the
 * `\t0x0000:  ....` dump; a summary line after dump lines starts the next packet.
 */
export function parseTcpdump(text: string): TcpdumpPacket[] {
  const packets: TcpdumpPacket[] = [];
  let cur: { summary: string[]; hexLines: string[]; chunks: Buffer[]; next: number } | undefined;
  const flush = () => {
    if (cur) packets.push({ summary: cur.summary, hexLines: cur.hexLines, bytes: Buffer.concat(cur.chunks) });
    cur = undefined;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = HEX_LINE.exec(line);
    if (m) {
      if (!cur) throw new Error(`hex line without a summary: ${line}`);
      const offset = parseInt(m[1]!, 16);
      if (offset !== cur.next) throw new Error(`hex offset 0x${m[1]} where 0x${cur.next.toString(16)} was expected`);
      const hex = m[2]!.replace(/\s+/g, '');
      if (hex.length % 2 !== 0) throw new Error(`odd hex digit count: ${line}`);
      const chunk = Buffer.from(hex, 'hex');
      cur.chunks.push(chunk);
      cur.hexLines.push(line);
      cur.next += chunk.length;
      continue;
    }
    if (cur && cur.hexLines.length > 0) flush();
    cur ??= { summary: [], hexLines: [], chunks: [], next: 0 };
    cur.summary.push(line);
  }
  flush();
  return packets;
}
