/**
 * `vxtun lab tour`: a guided walk through a running teaching lab. For a ping from a pod on a vxtun
 * node to a pod on another node it shows, step by step and in plain words, what decides the
 * packet's path: the pod's route, subnet.env and the CNI bridge, the node's route into the TUN,
 * the VTEP table (and on a kernel node the route/neighbour/FDB entries flanneld would program),
 * then the live trace of that very ping, each observation point explained with its real numbers.
 */
import { readFileSync } from 'node:fs';
import { run } from './exec.js';
import type { LabNodeState, LabState } from './teaching.js';
import { controlRequest } from '../../control/socket.js';
import { formatItem, describeInner, type TraceItem } from '../../trace/printer.js';
import type { Journey } from '../../trace/journey.js';
import { outcomeTotals, type CounterSnapshot } from '../../packet/counters.js';
import { labels, type Lang } from '../../trace/i18n.js';
import { WallClock } from '../../trace/time.js';
import { tourText, type TourText } from './tour-text.js';
import { labCapturePlaces, traceOnePing } from './kernel-hops.js';
import { DEFAULT_LAB_DIR } from './state-dir.js';

export interface TourOptions {
  lang?: Lang;
  color?: boolean;
  say?: (line: string) => void;
}

const OUTER = 28;

function indent(text: string, pad = '    '): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `${pad}${l}`)
    .join('\n');
}

async function show(say: (l: string) => void, ns: string, cmd: string[], T: TourText): Promise<string> {
  const r = await run(['ip', 'netns', 'exec', ns, ...cmd]);
  say(`  $ ${cmd.join(' ')}        ${T.inNs(ns)}`);
  say(indent(r.stdout || r.stderr || T.nothing));
  return r.stdout;
}

/** Plain words for each step of one node's journey, with the numbers it actually had. */
export function explainJourney(j: Journey, lang: Lang = 'en'): string[] {
  const L = labels(lang);
  const T = tourText(lang);
  const out: string[] = [];
  const inner = describeInner(j.inner, L);
  for (const e of j.events) {
    switch (e.point) {
      case 'tun-read':
        out.push(T.tunRead({ node: j.node.publicIp, inner, length: e.length, device: j.node.device }));
        break;
      case 'classify':
        if (e.peer) out.push(T.classify({ route: e.route, peer: e.peer.address, mac: e.peer.vtepMac, vni: e.peer.vni }));
        else out.push(T.classifyNone({ verdict: e.verdict }));
        break;
      case 'encap':
        out.push(T.encap({ vni: e.vx?.vni, src: e.vx?.innerSrc, dst: e.vx?.innerDst, before: e.length - 22, after: e.length }));
        break;
      case 'udp-send':
        out.push(
          T.udpSend({ local: `${e.local?.address}:${e.local?.port}`, remote: `${e.remote?.address}:${e.remote?.port}`, wire: e.length + OUTER }) +
            (e.local?.port === j.node.port ? T.portFixed : T.portHashed({ port: e.local?.port })),
        );
        break;
      case 'udp-recv':
        out.push(T.udpRecv({ node: j.node.publicIp, wire: e.length + OUTER, remote: `${e.remote?.address}:${e.remote?.port}`, port: e.local?.port }) + (e.remote?.port !== e.local?.port ? T.recvHashed : lang === 'zh' ? '。' : '.'));
        break;
      case 'decap':
        out.push(
          e.verdict === 'ok'
            ? T.decapOk({ vni: e.vx?.vni, mac: e.vx?.innerDst, fixes: e.fixes?.length ? T.fixedWith({ fixes: e.fixes.join(', ') }) : '' })
            : T.decapDropped({ verdict: e.verdict, why: L.reasons[e.verdict] ?? '' }),
        );
        break;
      case 'tun-write':
        out.push(T.tunWrite({ length: e.length, device: j.node.device }));
        break;
      case 'answer':
        out.push(T.answer({ verdict: e.verdict }));
        break;
    }
  }
  return out;
}

/** Plain words for the whole path: who saw which hop, on which clock, and why tun-write may come last. */
export function explainHops(item: TraceItem, lang: Lang = 'en'): string[] {
  const T = tourText(lang);
  const hops = item.hops ?? [];
  const kernel = hops.filter((h) => h.by === 'kernel');
  const out = [T.kernelHops({ n: kernel.length, devices: [...new Set(kernel.map((h) => h.point))].join(', ') })];
  // vxtun stamps tun-write when the write returned; the kernel may have carried the packet to the pod within that call.
  const write = hops.findIndex((h) => h.by === 'vxtun' && h.point === 'tun-write');
  if (write > 0 && hops.slice(0, write).some((h) => h.by === 'kernel' && h.node === hops[write]!.node && h.role === 'pod' && h.direction === 'in')) out.push(T.tunWriteLate);
  return out;
}

function pickPairs(state: LabState): Array<[LabNodeState, LabNodeState]> {
  const src = state.nodes.find((n) => n.kind === 'vxtun') ?? state.nodes[0]!;
  const pairs: Array<[LabNodeState, LabNodeState]> = [];
  const vx = state.nodes.find((n) => n !== src && n.kind === 'vxtun');
  const k = state.nodes.find((n) => n !== src && n.kind === 'kernel');
  if (vx) pairs.push([src, vx]);
  if (k) pairs.push([src, k]);
  return pairs;
}

export async function labTour(state: LabState, o: TourOptions = {}): Promise<number> {
  const say = o.say ?? ((l: string) => void process.stdout.write(`${l}\n`));
  const lang = o.lang ?? 'en';
  const T = tourText(lang);
  const sockets = state.nodes.filter((n) => n.kind === 'vxtun' && n.controlSocket).map((n) => n.controlSocket!);
  const pairs = pickPairs(state);
  if (pairs.length === 0) {
    say(T.needTwo);
    return 1;
  }
  let code = 0;
  say(T.header({ prefix: state.prefix, nodes: state.nodes.map((n) => T.node({ index: n.index, kind: T.kind(n.kind), ip: n.publicIp })).join(' · ') }));
  for (const [from, to] of pairs) {
    say('');
    say(`════ ${T.pingTitle({ from: from.index, fromKind: T.kind(from.kind), to: to.index, toKind: T.kind(to.kind), src: from.podIp, dst: to.podIp })}`);

    say('');
    say(T.step1);
    await show(say, from.pod, ['ip', 'route'], T);
    say(T.step1Env);
    say(indent(readFileSync(from.subnetEnv, 'utf8')));

    say('');
    say(T.step2({ node: from.index, where: from.kind === 'vxtun' ? T.step2Tun : T.step2Kernel }));
    await show(say, from.ns, ['ip', 'route', 'get', to.podIp], T);

    say('');
    say(T.step3);
    if (from.kind === 'vxtun') {
      const routes = (await controlRequest(from.controlSocket!, { cmd: 'routes' })) as Array<Record<string, unknown>>;
      say(T.step3Vxtun({ node: from.index }));
      for (const r of routes) say(`    ${String(r.subnet).padEnd(16)} → ${labels(lang).node} ${r.publicIp}:${r.port}  VTEP ${r.vtepMac}  vni ${r.vni}${r.subnet === to.subnet ? `   ${T.thisPing}` : ''}`);
    }
    if (to.kind === 'kernel') {
      say(T.step3Kernel({ node: to.index }));
      await show(say, to.ns, ['ip', 'route', 'show', 'dev', 'flannel.1'], T);
      await show(say, to.ns, ['ip', 'neigh', 'show', 'dev', 'flannel.1'], T);
      await show(say, to.ns, ['bridge', 'fdb', 'show', 'dev', 'flannel.1'], T);
    }

    say('');
    say(T.step4({ command: `vxtun trace --lab${state.dir === DEFAULT_LAB_DIR ? '' : ` --state-dir ${state.dir}`} --host ${to.podIp}` }));
    if (sockets.length === 0) {
      say(T.noVxtunNode);
      const ping = await run(['ip', 'netns', 'exec', from.pod, 'ping', '-c', '1', '-W', '2', to.podIp]);
      say(indent(ping.stdout.split('\n').slice(1, 2).join('\n')));
      if (ping.code !== 0) code = 1;
      continue;
    }
    // The kernel's hops too: a packet socket in every namespace of the lab (pods and nodes).
    const { ping, items } = await traceOnePing({ sockets, places: labCapturePlaces(state), fromPod: from.pod, to: to.podIp, onNoCapture: (why) => say(T.noKernelHops({ why })) });
    say(`  $ ping -c 1 ${to.podIp}        ${T.inNs(from.pod)}`);
    say(indent(ping.stdout.split('\n').slice(1, 2).join('\n')));
    if (ping.code !== 0) code = 1;
    const wall = new WallClock();
    for (const item of items) {
      say('');
      say(indent(formatItem(item, { lang, color: o.color ?? false, wall }), '  '));
      say('');
      const journeys = item.kind === 'journey' ? [item.journey] : [item.sender, item.receiver];
      for (const j of journeys) for (const line of explainJourney(j, lang)) say(`    · ${line}`);
      if (item.kind === 'journey' && item.journey.direction === 'out' && to.kind === 'kernel') say(`    · ${T.kernelTakesOver({ node: to.index })}`);
      if (item.hops) for (const line of explainHops(item, lang)) say(`    · ${line}`);
    }
    if (items.length === 0) {
      say(T.noPacket);
      code = 1;
    }
  }

  say('');
  say(T.step5);
  for (const n of state.nodes.filter((x) => x.kind === 'vxtun')) {
    const c = (await controlRequest(n.controlSocket!, { cmd: 'counters' })) as CounterSnapshot;
    const totals = outcomeTotals(c);
    const drops = Object.entries(c.dropped).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ') || '0';
    say(T.counted({ node: n.index, out: totals.forwarded.out, in: totals.forwarded.in, answered: totals.answered, drops }));
  }
  say('');
  say(code === 0 ? T.done : T.failed);
  return code;
}
