/**
 * `vxtun trace`: attach to running nodes over their control sockets and show each packet's
 * journey, layer by layer; `--json` for machines, `--pcap FILE` for Wireshark, `--web` for the
 * browser view. Two or more `--socket`s follow packets across nodes.
 */
import { TraceSession } from '../trace/client.js';
import { defaultControlSocket } from '../control/socket-path.js';
import { validateFilter, FilterError, type TraceFilter } from '../trace/filter.js';
import { formatItem, type TraceItem } from '../trace/printer.js';
import { PcapngWriter } from '../trace/pcapng.js';
import { WallClock } from '../trace/time.js';
import { labels, type Lang } from '../trace/i18n.js';
import { readLabState, DEFAULT_LAB_DIR } from '../tools/lab/teaching.js';
import { KernelHopCapture, labCapturePlaces } from '../tools/lab/kernel-hops.js';
import { usageError } from './usage-error.js';

export interface TraceCliOptions {
  device: string;
  socket?: string[];
  host?: string;
  subnet?: string;
  protocol?: string;
  port?: string;
  peer?: string;
  verdict?: string;
  json?: boolean;
  lang: string;
  color: string;
  pcap?: string;
  web?: boolean;
  webPort: string;
  bind: string;
  count?: string;
  duration?: string;
  maxRate?: string;
  lab?: boolean;
  stateDir?: string;
}

const KERNEL_HOPS_SETTLE_MS = 150;


export async function runTrace(o: TraceCliOptions): Promise<number> {
  let filter: TraceFilter;
  try {
    filter = validateFilter({
      ...(o.host !== undefined ? { host: o.host } : {}),
      ...(o.subnet !== undefined ? { subnet: o.subnet } : {}),
      ...(o.protocol !== undefined ? { protocol: o.protocol } : {}),
      ...(o.port !== undefined ? { port: /^\d+$/.test(o.port) ? Number(o.port) : (o.port as unknown as number) } : {}),
      ...(o.peer !== undefined ? { peer: o.peer } : {}),
      ...(o.verdict !== undefined ? { verdict: o.verdict } : {}),
    });
  } catch (err) {
    if (err instanceof FilterError) return usageError(`--${err.message}`);
    throw err;
  }
  if (o.lang !== 'en' && o.lang !== 'zh') return usageError(`--lang: "${o.lang}" is not en or zh`);
  if (!['auto', 'always', 'never'].includes(o.color)) return usageError(`--color: "${o.color}" is not auto, always or never`);
  const count = o.count !== undefined ? Number(o.count) : undefined;
  if (count !== undefined && (!Number.isInteger(count) || count < 1)) return usageError(`--count: "${o.count}" is not a positive integer`);
  const duration = o.duration !== undefined ? Number(o.duration) : undefined;
  if (duration !== undefined && !(duration > 0)) return usageError(`--duration: "${o.duration}" is not a positive number of seconds`);
  const maxRate = o.maxRate !== undefined ? Number(o.maxRate) : undefined;
  if (maxRate !== undefined && (!Number.isInteger(maxRate) || maxRate < 1)) return usageError(`--max-rate: "${o.maxRate}" is not a positive whole number of journeys per second`);
  const webPort = Number(o.webPort);
  if (!Number.isInteger(webPort) || webPort < 0 || webPort > 65535) return usageError(`--web-port: "${o.webPort}" is not a port number`);

  let sockets = o.socket && o.socket.length > 0 ? o.socket : [defaultControlSocket(o.device)];
  let capture: KernelHopCapture | undefined;
  if (o.lab && o.socket && o.socket.length > 0) return usageError('--lab traces the lab\'s own nodes: give --lab or --socket, not both');
  if (o.lab) {
    const state = readLabState(o.stateDir ?? DEFAULT_LAB_DIR);
    if (!state) return usageError(`--lab: no lab is up (no state in ${o.stateDir ?? DEFAULT_LAB_DIR}): run vxtun lab up first`);
    sockets = state.nodes.filter((n) => n.controlSocket !== undefined).map((n) => n.controlSocket!);
    if (sockets.length === 0) return usageError(`--lab: lab ${state.prefix} has no vxtun node to trace`);
    try {
      capture = await KernelHopCapture.start(labCapturePlaces(state));
    } catch (err) {
      process.stderr.write(`vxtun: --lab: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const color = o.color === 'always' || (o.color === 'auto' && process.stdout.isTTY === true && !process.env.NO_COLOR);
  const lang = o.lang as Lang;
  const wall = new WallClock();
  let pcap: PcapngWriter | undefined;
  let seen = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => (finish = r));
  let web: { push(item: TraceItem): void; close(): Promise<void>; url: string } | undefined;

  const show = (item: TraceItem): void => {
    if (count !== undefined && seen >= count) return;
    seen++;
    pcap?.write(item);
    web?.push(item);
    if (o.json) process.stdout.write(`${JSON.stringify(item)}\n`);
    else process.stdout.write(`${formatItem(item, { lang, color, wall })}\n\n`);
    if (count !== undefined && seen >= count) finish();
  };
  // A journey is reported once its packet crossed; the kernel's last hops (into the pod) follow within
  // microseconds, and their capturer's line a little later: wait that out before merging.
  const onItem = capture === undefined ? show : (item: TraceItem): void => void setTimeout(() => show(capture!.attach(item)), KERNEL_HOPS_SETTLE_MS);

  let session: TraceSession;
  try {
    session = await TraceSession.connect({ sockets, filter, bytes: o.pcap !== undefined || o.web === true || capture !== undefined, ...(maxRate !== undefined ? { maxRate } : {}), onItem });
  } catch (err) {
    capture?.close();
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' || code === 'ECONNREFUSED' ? `${labels(lang).noNodeHint}\n` : '';
    process.stderr.write(`vxtun: ${(err as Error).message}\n${hint}`);
    return 1;
  }
  try {
    if (o.pcap !== undefined) pcap = new PcapngWriter(o.pcap);
    if (o.web) {
      const { startWebView } = await import('../trace/web.js');
      web = await startWebView({ sockets, sources: session.sources, host: o.bind, port: webPort });
      process.stderr.write(`vxtun trace: web view on ${web.url}${lang === 'zh' ? '&lang=zh' : ''}\n`);
    }
  } catch (err) {
    session.close();
    capture?.close();
    process.stderr.write(`vxtun: ${(err as Error).message}\n`);
    return 1;
  }
  const nodes = session.sources.map((s) => `${s.node.publicIp} (${s.node.device})`).join(', ');
  process.stderr.write(`vxtun trace: attached to ${nodes}${Object.keys(filter).length ? ` · filter ${JSON.stringify(filter)}` : ''} · Ctrl-C to stop\n`);

  const onSignal = (): void => finish();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const timer = duration !== undefined ? setTimeout(finish, duration * 1000) : undefined;
  await Promise.race([done, session.ended]);
  if (timer) clearTimeout(timer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  session.close();
  if (capture) await new Promise((r) => setTimeout(r, KERNEL_HOPS_SETTLE_MS)); // the last items' merge
  capture?.close();
  pcap?.close();
  await web?.close();
  if (pcap) process.stderr.write(`vxtun trace: wrote ${pcap.packets} packets to ${pcap.path} (read with: tshark -r ${pcap.path} -d udp.port==8472,vxlan)\n`);
  return 0;
}
