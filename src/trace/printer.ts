/**
 * The human form of a trace: one compact block per packet journey — a summary line in the order
 * the packet meets the layers (inner IP, route, peer, VXLAN, UDP, size, verdict), then one line per
 * observation point. A journey followed across two nodes prints as one story. Drops are red.
 */
import type { Journey, TraceEvent } from './journey.js';
import { labels, fill, type Lang, type Labels } from './i18n.js';
import type { InnerSummary } from './packet.js';
import type { Hop } from './hops.js';
import { transitMs, WallClock } from './time.js';
import { isAnswer, isDropReason, Outcome } from '../packet/counters.js';

/** What the trace client hands to a printer: one node's journey, or one datagram seen by sender and receiver. */
export type TraceItem = ({ kind: 'journey'; journey: Journey } | { kind: 'story'; sender: Journey; receiver: Journey; wire: string }) & {
  /** The whole path in time order, the kernel's hops included, when they were captured (vxtun trace --lab, lab tour). */
  hops?: Hop[];
};

export interface PrintOptions {
  lang?: Lang;
  color?: boolean;
  /** Shared by the items of one trace, so each host's times convert with one offset. */
  wall?: WallClock;
}

const OUTER_IPV4_UDP = 28; // what the OS adds around our datagram

const C = { red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m', dim: '\x1b[2m', bold: '\x1b[1m', reset: '\x1b[0m' };

function paint(on: boolean, code: string, text: string): string {
  return on ? `${code}${text}${C.reset}` : text;
}

/** Pads to a display width: CJK labels take two columns each, so zh columns line up too. */
function padLabel(text: string, width: number): string {
  let w = 0;
  for (const ch of text) w += ch.codePointAt(0)! >= 0x2e80 ? 2 : 1;
  return text + ' '.repeat(Math.max(0, width - w));
}

function clock(t: number): string {
  const d = new Date(t);
  const us = Math.floor((t % 1000) * 1000);
  return `${d.toISOString().slice(11, 19)}.${String(us).padStart(6, '0')}`;
}

/** "ICMP echo request 10.244.1.2 → 10.244.2.2 id 5 seq 1", "TCP 10.244.1.2:40000 → 10.244.2.2:5201". */
export function describeInner(i: InnerSummary | undefined, L: Labels): string {
  if (!i) return '?';
  if (i.family === 'arp') return `ARP ${i.arpOp === 2 ? L.arpReply : L.arpRequest} ${i.src} → ${i.dst}`;
  const p = i.protocol.toUpperCase();
  if ((i.protocol === 'icmp' || i.protocol === 'icmpv6') && i.icmpType !== undefined) {
    const echo: Record<number, string> = i.protocol === 'icmp' ? { 8: L.echoRequest, 0: L.echoReply } : { 128: L.echoRequest, 129: L.echoReply };
    const name = echo[i.icmpType];
    if (name) return `${p} ${name} ${i.src} → ${i.dst} id ${i.icmpId} seq ${i.icmpSeq}`;
    return `${p} ${L.icmpType} ${i.icmpType} ${L.icmpCode} ${i.icmpCode} ${i.src} → ${i.dst}`;
  }
  if (i.sport !== undefined) return `${p} ${i.src}:${i.sport} → ${i.dst}:${i.dport}`;
  return `${p} ${i.src} → ${i.dst}`;
}

function reasonText(verdict: string, ev: TraceEvent | undefined, j: Journey, L: Labels): string {
  const t = L.reasons[verdict];
  if (!t) return verdict;
  return `${verdict} — ${fill(t, { vni: ev?.vx?.vni, ourVni: j.node.vni, dstMac: ev?.vx?.innerDst, ourMac: j.node.vtepMac })}`;
}

function answerText(kind: string, cause: string | undefined, L: Labels): string {
  const why = cause !== undefined ? `${L.causes[cause] ?? cause} (${cause}): ` : '';
  return `${kind} — ${why}${L.answers[kind] ?? ''}`;
}

/** The packet's outcome in the counters' words: forwarded, answered (what and why) or dropped (reason). */
function verdictText(j: Journey, L: Labels, color: boolean): string {
  if (j.outcome === Outcome.Dropped) {
    const last = [...j.events].reverse().find((e) => e.point !== 'answer');
    return paint(color, C.red, `${L.dropped}: ${reasonText(j.verdict, last, j, L)}`);
  }
  if (j.outcome === Outcome.Answered) return paint(color, C.green, `${L.answered}: ${answerText(j.verdict, j.cause, L)}`);
  if (j.outcome === Outcome.Forwarded) return paint(color, C.green, L.forwarded);
  return L.verdicts[j.verdict] ?? j.verdict;
}

function find(j: Journey, point: string): TraceEvent | undefined {
  return j.events.find((e) => e.point === point);
}

/** The one-line story of a journey, in the order the packet meets the layers. */
export function summaryLine(j: Journey, o: PrintOptions = {}): string {
  const L = labels(o.lang ?? 'en');
  const color = o.color ?? false;
  const parts = [describeInner(j.inner, L)];
  if (j.direction === 'out') {
    const cls = find(j, 'classify');
    const send = find(j, 'udp-send');
    const enc = find(j, 'encap');
    if (cls?.peer) parts.push(`${L.route} ${cls.route ?? '?'} → ${L.node} ${cls.peer.address} (${L.vtep} ${cls.peer.vtepMac})`);
    if (enc?.vx) parts.push(`VXLAN vni ${enc.vx.vni}`);
    if (send) parts.push(`UDP ${send.local?.address ?? j.node.publicIp}:${send.local?.port ?? j.node.port} → ${send.remote?.address}:${send.remote?.port}`);
    parts.push(`${send ? send.length + OUTER_IPV4_UDP : j.inner?.length ?? j.events[0]!.length} B`);
  } else {
    const recv = find(j, 'udp-recv');
    if (recv) parts.push(`UDP ${recv.remote?.address}:${recv.remote?.port} → ${recv.local?.address ?? j.node.publicIp}:${recv.local?.port ?? j.node.port}`);
    if (recv?.vx) parts.push(`VXLAN vni ${recv.vx.vni}`);
    if (recv?.vx?.innerSrc) parts.push(`${L.from} ${L.vtep} ${recv.vx.innerSrc}`);
    if (find(j, 'tun-write')) parts.push(`→ ${j.node.device}`);
    parts.push(`${recv ? recv.length + OUTER_IPV4_UDP : j.events[0]!.length} B`);
  }
  parts.push(verdictText(j, L, color));
  const line = parts.join(' · ');
  return j.dropped ? paint(color, C.red, line) : line;
}

function eventLine(ev: TraceEvent, j: Journey, L: Labels, color: boolean): string {
  const name = padLabel(L.points[ev.point] ?? ev.point, 10);
  let text: string;
  const drop = isDropReason(ev.verdict);
  switch (ev.point) {
    case 'tun-read':
      text = `${j.node.device} → ${describeInner(j.inner, L)}${j.inner?.ttl !== undefined ? ` ttl ${j.inner.ttl}` : ''} · ${ev.length} B`;
      break;
    case 'classify':
      text = ev.peer
        ? `${L.route} ${ev.route ?? '?'} → ${L.node} ${ev.peer.address}:${ev.peer.port} (${L.vtep} ${ev.peer.vtepMac}, vni ${ev.peer.vni})`
        : ev.cause !== undefined
          ? `${ev.cause} — ${L.causes[ev.cause] ?? ''}`
          : L.noRoute;
      break;
    case 'encap':
      text = `VXLAN vni ${ev.vx?.vni} · ${L.innerEthernet} ${ev.vx?.innerSrc} → ${ev.vx?.innerDst} · +22 B = ${ev.length} B`;
      break;
    case 'udp-send':
      text = `UDP ${ev.local?.address}:${ev.local?.port} → ${ev.remote?.address}:${ev.remote?.port} · ${fill(L.onWire, { bytes: ev.length + OUTER_IPV4_UDP })}`;
      break;
    case 'udp-recv':
      text = `UDP ${ev.remote?.address}:${ev.remote?.port} → ${ev.local?.address}:${ev.local?.port} · ${fill(L.onWire, { bytes: ev.length + OUTER_IPV4_UDP })}${ev.vx ? ` · VXLAN ${L.flags} 0x${ev.vx.flags.toString(16).padStart(2, '0')} vni ${ev.vx.vni}` : ''}`;
      break;
    case 'decap':
      text = drop ? '' : `${L.checksPassed}${ev.fixes?.length ? ` · ${L.fixes}: ${ev.fixes.join(', ')}` : ''}`;
      break;
    case 'tun-write':
      text = `${describeInner(j.inner, L)} → ${j.node.device} · ${ev.length} B`;
      break;
    case 'answer':
      text = `${isAnswer(ev.verdict) ? `${L.answered}: ${ev.verdict} ` : ''}${ev.remote ? `→ ${ev.remote.address}:${ev.remote.port}` : `→ ${j.node.device}`}`;
      break;
    default:
      text = '';
  }
  if (drop) {
    const line = `${name} ${text ? `${text} · ` : ''}${L.dropped}: ${reasonText(ev.verdict, ev, j, L)}${ev.express ? ` · ${L.expressPath}` : ''}`;
    return paint(color, C.red, line);
  }
  const v = ev.point === 'answer' ? '' : ` · ${paint(color, C.green, isAnswer(ev.verdict) ? fill(L.answerWith, { kind: ev.verdict }) : L.verdicts[ev.verdict] ?? ev.verdict)}`;
  return `${name} ${text}${v}${ev.express ? ` · ${paint(color, C.dim, L.expressPath)}` : ''}`;
}

function nodeBlock(j: Journey, L: Labels, color: boolean, indent: string, wall: WallClock): string[] {
  const lines = [`${indent}${paint(color, C.dim, clock(wall.epochMs(j.node, j.events[0]?.t ?? 0)))} ${L.node} ${j.node.publicIp} (${j.node.device}, ${j.direction === 'out' ? L.out : L.in})`];
  for (const ev of j.events) lines.push(`${indent}  ${eventLine(ev, j, L, color)}`);
  return lines;
}

/** A story's one line: the inner packet, the two nodes, the VNI and where the packet ended. */
export function storyHead(item: Extract<TraceItem, { kind: 'story' }>, o: PrintOptions = {}): string {
  const L = labels(o.lang ?? 'en');
  const { sender: s, receiver: r } = item;
  const send = find(s, 'udp-send');
  return [describeInner(s.inner, L), `${L.node} ${s.node.publicIp} → ${L.node} ${r.node.publicIp}`, `VXLAN vni ${send?.vx?.vni ?? '?'}`, verdictText(r, L, o.color ?? false)].join(' · ');
}

/** The whole path, kernel hops included, one line per hop in time order (ms since the first). */
export function wholePathLines(hops: Hop[], L: Labels, color: boolean, indent: string): string[] {
  const t0 = hops[0]?.t ?? 0;
  const lines = [`${indent}${paint(color, C.bold, L.wholePath)}`];
  for (const h of hops) {
    const kernel = h.by === 'kernel';
    const where = kernel ? `${h.place === 'pod' ? `${L.pod} ` : ''}${h.point} ${h.direction === 'out' ? L.out : L.in}` : L.points[h.point] ?? h.point;
    const gloss = kernel && h.role ? L.hopRoles[h.role] ?? '' : '';
    const line = `${indent}  +${(h.t - t0).toFixed(3)} ms  ${padLabel(L.hopBy[h.by], 6)}  ${L.node} ${h.node}  ${padLabel(where, 22)} ${String(h.length).padStart(4)} B${gloss ? ` · ${gloss}` : ''}`;
    lines.push(kernel ? paint(color, C.dim, line) : line);
  }
  return lines;
}

/** The printed block for one item (ends without a newline). */
export function formatItem(item: TraceItem, o: PrintOptions = {}): string {
  const L = labels(o.lang ?? 'en');
  const wall = o.wall ?? new WallClock();
  const color = o.color ?? false;
  const untraced = (item.kind === 'journey' ? item.journey.untraced ?? 0 : (item.sender.untraced ?? 0) + (item.receiver.untraced ?? 0));
  const gap = untraced > 0 ? `${paint(color, C.yellow, `… ${fill(L.untraced, { n: untraced })}`)}\n` : '';
  if (item.kind === 'journey') {
    const j = item.journey;
    return gap + [paint(color, C.bold, summaryLine(j, o)), ...nodeBlock(j, L, color, '  ', wall), ...(item.hops ? wholePathLines(item.hops, L, color, '  ') : [])].join('\n');
  }
  const { sender: s, receiver: r } = item;
  const send = find(s, 'udp-send');
  const recv = find(r, 'udp-recv');
  const head = storyHead(item, o);
  const transit = send && recv ? transitMs(s.node, send.t, r.node, recv.t) : undefined;
  const latency = !send || !recv ? '' : transit !== undefined ? ` · ${transit.toFixed(3)} ms` : ` · ${L.clocksDiffer}`;
  const lines = [
    ...(gap ? [gap.trimEnd()] : []),
    paint(color, C.bold, `━━ ${head}`),
    ...nodeBlock(s, L, color, '  ', wall),
    `  ${paint(color, C.yellow, `${padLabel(L.underlay, 10)} UDP ${send?.local?.address}:${send?.local?.port} → ${recv?.local?.address}:${recv?.local?.port} · ${(send?.length ?? 0) + OUTER_IPV4_UDP} B · ${L.wire} ${item.wire}${latency}`)}`,
    ...nodeBlock(r, L, color, '  ', wall),
    ...(item.hops ? wholePathLines(item.hops, L, color, '  ') : []),
  ];
  return lines.join('\n');
}
