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
import { TraceSession } from '../../trace/client.js';
import { formatItem, describeInner, type TraceItem } from '../../trace/printer.js';
import type { Journey } from '../../trace/journey.js';
import type { CounterSnapshot } from '../../packet/counters.js';
import { labels, type Lang } from '../../trace/i18n.js';

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

async function show(say: (l: string) => void, ns: string, cmd: string[]): Promise<string> {
  const r = await run(['ip', 'netns', 'exec', ns, ...cmd]);
  say(`  $ ${cmd.join(' ')}        # in ${ns}`);
  say(indent(r.stdout || r.stderr || '(nothing)'));
  return r.stdout;
}

/** Plain words for each step of one node's journey, with the numbers it actually had. */
export function explainJourney(j: Journey, L = labels('en')): string[] {
  const out: string[] = [];
  const inner = describeInner(j.inner, L);
  for (const e of j.events) {
    switch (e.point) {
      case 'tun-read':
        out.push(`tun-read: the kernel on ${j.node.publicIp} routed the pod's packet (${inner}, ${e.length} bytes) into ${j.node.device}; vxtun read it from the TUN device.`);
        break;
      case 'classify':
        if (e.peer) out.push(`classify: longest-prefix match on the destination: route ${e.route} belongs to node ${e.peer.address}, whose VTEP MAC is ${e.peer.vtepMac} (VNI ${e.peer.vni}).`);
        else out.push(`classify: no route for the destination: ${e.verdict}.`);
        break;
      case 'encap':
        out.push(`encap: vxtun wrote 8 bytes of VXLAN (I flag, VNI ${e.vx?.vni}) and 14 bytes of inner Ethernet (${e.vx?.innerSrc} → ${e.vx?.innerDst}) in front of the packet: ${e.length - 22} → ${e.length} bytes.`);
        break;
      case 'udp-send':
        out.push(
          `udp-send: one UDP datagram from ${e.local?.address}:${e.local?.port} to ${e.remote?.address}:${e.remote?.port}; the kernel adds outer IPv4 + UDP (28 bytes), so ${e.length + OUTER} bytes cross the underlay. ` +
            (e.local?.port === j.node.port
              ? `The source port is the node's own VXLAN port: this node keeps it fixed ("sourcePorts": "fixed"; by default vxtun, like the kernel, picks a port from a hash of the inner flow, so routers can spread flows over paths).`
              : `The source port ${e.local?.port} comes from a hash of the inner flow, so routers can spread flows over paths (RFC 7348).`),
        );
        break;
      case 'udp-recv':
        out.push(
          `udp-recv: node ${j.node.publicIp} received ${e.length + OUTER} bytes from ${e.remote?.address}:${e.remote?.port} on port ${e.local?.port}` +
            (e.remote?.port !== e.local?.port ? ` (the sender picked its source port from a hash of the inner flow, as the kernel and vxtun do by default).` : '.'),
        );
        break;
      case 'decap':
        out.push(
          e.verdict === 'ok'
            ? `decap: the checks passed — I flag set, VNI ${e.vx?.vni} is ours, inner destination MAC ${e.vx?.innerDst} is our VTEP, the inner IP header holds together${e.fixes?.length ? `; fixed: ${e.fixes.join(', ')}` : ''}. The 22 outer-most bytes are dropped.`
            : `decap: dropped (${e.verdict}): ${L.reasons[e.verdict] ?? ''}`,
        );
        break;
      case 'tun-write':
        out.push(`tun-write: the inner packet (${e.length} bytes) was written into ${j.node.device}; the kernel routes it on to the pod over cni0.`);
        break;
      case 'answer':
        out.push(`answer: vxtun answered itself: ${e.verdict}.`);
        break;
    }
  }
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
  const sockets = state.nodes.filter((n) => n.kind === 'vxtun' && n.controlSocket).map((n) => n.controlSocket!);
  const pairs = pickPairs(state);
  if (pairs.length === 0) {
    say('the tour needs at least two nodes');
    return 1;
  }
  let code = 0;
  say(`vxtun lab tour · lab ${state.prefix} · ${state.nodes.map((n) => `node ${n.index} ${n.kind} ${n.publicIp}`).join(' · ')}`);
  for (const [from, to] of pairs) {
    say('');
    say(`════ a ping from the pod on node ${from.index} (${from.kind}) to the pod on node ${to.index} (${to.kind}): ${from.podIp} → ${to.podIp}`);

    say('');
    say(`Step 1 · the pod. It knows nothing about VXLAN: its route sends the whole pod network to its gateway, the cni0 bridge on its node.`);
    await show(say, from.pod, ['ip', 'route']);
    say(`  The CNI bridge plugin made that route, the pod's address and cni0, from the node's subnet.env (what flanneld writes):`);
    say(indent(readFileSync(from.subnetEnv, 'utf8')));

    say('');
    say(`Step 2 · node ${from.index}'s route table. The destination is in another node's subnet, so the kernel sends it to ${from.kind === 'vxtun' ? 'the TUN device vxtun0: from here on vxtun handles it' : 'flannel.1, the kernel VXLAN device'}.`);
    await show(say, from.ns, ['ip', 'route', 'get', to.podIp]);

    say('');
    say(`Step 3 · the VTEP table: which node owns which pod subnet, and the MAC of its VXLAN endpoint.`);
    if (from.kind === 'vxtun') {
      const routes = (await controlRequest(from.controlSocket!, { cmd: 'routes' })) as Array<Record<string, unknown>>;
      say(`  vxtun on node ${from.index} (vxtun status):`);
      for (const r of routes) say(`    ${String(r.subnet).padEnd(16)} → node ${r.publicIp}:${r.port}  VTEP ${r.vtepMac}  vni ${r.vni}${r.subnet === to.subnet ? '   ← this ping' : ''}`);
    }
    if (to.kind === 'kernel') {
      say(`  On node ${to.index} the kernel keeps the same table as flanneld programs it, in three places — route, neighbour (ARP), forwarding database:`);
      await show(say, to.ns, ['ip', 'route', 'show', 'dev', 'flannel.1']);
      await show(say, to.ns, ['ip', 'neigh', 'show', 'dev', 'flannel.1']);
      await show(say, to.ns, ['bridge', 'fdb', 'show', 'dev', 'flannel.1']);
    }

    say('');
    say(`Step 4 · the trace of one ping, layer by layer (vxtun trace${sockets.map((s) => ` --socket ${s}`).join('')} --host ${to.podIp}):`);
    if (sockets.length === 0) {
      say('  (every node here runs the kernel VXLAN: there is no vxtun node to trace — bring the lab up with a vxtun node to see this step)');
      const ping = await run(['ip', 'netns', 'exec', from.pod, 'ping', '-c', '1', '-W', '2', to.podIp]);
      say(indent(ping.stdout.split('\n').slice(1, 2).join('\n')));
      if (ping.code !== 0) code = 1;
      continue;
    }
    const items: TraceItem[] = [];
    const session = await TraceSession.connect({ sockets, filter: { host: to.podIp, protocol: 'icmp' }, onItem: (i) => items.push(i), windowMs: 300 });
    const ping = await run(['ip', 'netns', 'exec', from.pod, 'ping', '-c', '1', '-W', '2', to.podIp]);
    const want = 2; // the request and the reply (each a story, or a journey when one end is a kernel node)
    const deadline = Date.now() + 3000;
    while (items.length < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 350)); // let a lone journey's pairing window pass
    session.close();
    say(`  $ ping -c 1 ${to.podIp}        # in ${from.pod}`);
    say(indent(ping.stdout.split('\n').slice(1, 2).join('\n')));
    if (ping.code !== 0) code = 1;
    for (const item of items) {
      say('');
      say(indent(formatItem(item, { lang, color: o.color ?? false }), '  '));
      say('');
      const journeys = item.kind === 'journey' ? [item.journey] : [item.sender, item.receiver];
      for (const j of journeys) for (const line of explainJourney(j)) say(`    · ${line}`);
      if (item.kind === 'journey' && item.journey.direction === 'out' && to.kind === 'kernel') {
        say(`    · then node ${to.index}'s kernel VXLAN device takes the datagram: it checks the VNI, strips the headers and routes the packet to its pod — the same steps, in the kernel.`);
      }
    }
    if (items.length === 0) {
      say('  (no packet was traced)');
      code = 1;
    }
  }

  say('');
  say('Step 5 · what the vxtun nodes counted (vxtun status): every packet ends forwarded, answered or dropped under a named reason.');
  for (const n of state.nodes.filter((x) => x.kind === 'vxtun')) {
    const c = (await controlRequest(n.controlSocket!, { cmd: 'counters' })) as CounterSnapshot;
    const drops = Object.entries(c.dropped).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
    say(`    node ${n.index}: tx ${c.tx.packets} packets, rx ${c.rx.packets} packets, dropped: ${drops}`);
  }
  say('');
  say(code === 0 ? 'tour done: try `vxtun lab exec pod1 -- ping ...` with `vxtun trace --socket ...` or `--web` beside it; `vxtun lab down` when finished.' : 'tour FAILED: a ping did not cross');
  return code;
}
