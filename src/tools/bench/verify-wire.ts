/**
 * A bench case's check before it is measured: it carries traffic pod to pod, and the underlay
 * carries it in the encapsulation the case claims. Pings go from the client to the server while
 * tcpdump captures on the client node's underlay bridge port; tshark decodes the capture and every
 * echo request and reply must appear inside the expected protocol stack (for WireGuard, whose inner
 * packets are encrypted: as transport-data messages, with no ICMP in the clear).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from '../lab/netns.js';
import { waitForOutput } from '../lab/netns.js';
import type { Underlay } from '../lab/underlay.js';
import { runOk, sleep } from '../lab/exec.js';

/** What a case's pod-to-pod packets look like on the underlay, as tshark names the layers. */
export interface WireStack {
  /** For messages: e.g. "VXLAN (udp 8472)". */
  name: string;
  /** tshark `frame.protocols` of one echo request or reply, from the Ethernet header down to ICMP (or to the last visible layer). */
  protocols: string;
  /** The outer UDP destination port, both ways (none: not in UDP). */
  udpPort?: number;
  /** tshark `-d` decode-as rules for ports it does not know by default. */
  decodeAs: string[];
  /** false when the inner packet is encrypted: then the frames are counted, not the ICMP inside. */
  innerVisible: boolean;
}

export const WIRE = {
  vxlan: (port = 8472): WireStack => ({ name: `VXLAN (udp ${port})`, protocols: 'eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp', udpPort: port, decodeAs: [`udp.port==${port},vxlan`], innerVisible: true }),
  geneve: (port = 6081): WireStack => ({ name: `Geneve (udp ${port})`, protocols: 'eth:ethertype:ip:udp:geneve:eth:ethertype:ip:icmp', udpPort: port, decodeAs: [`udp.port==${port},geneve`], innerVisible: true }),
  ipip: (): WireStack => ({ name: 'IP in IP (ip.proto 4)', protocols: 'eth:ethertype:ip:ip:icmp', decodeAs: [], innerVisible: true }),
  /** Raw IPv4 in UDP: FOU (ipproto 4), and flannel's udp backend format. */
  ipInUdp: (port: number, name: string): WireStack => ({ name: `${name} (raw IP in udp ${port})`, protocols: 'eth:ethertype:ip:udp:ip:icmp', udpPort: port, decodeAs: [`udp.port==${port},ip`], innerVisible: true }),
  wireguard: (port = 51820): WireStack => ({ name: `WireGuard (udp ${port})`, protocols: 'eth:ethertype:ip:udp:wg', udpPort: port, decodeAs: [`udp.port==${port},wg`], innerVisible: false }),
  plain: (): WireStack => ({ name: 'plain ICMP (no encapsulation)', protocols: 'eth:ethertype:ip:icmp', decodeAs: [], innerVisible: true }),
};

export interface VerifyWireOptions {
  underlay: Underlay;
  /** The node namespace of the client (its underlay port is where the capture runs). */
  clientNode: Netns;
  client: Netns;
  serverIp: string;
  stack: WireStack;
  /** Echo requests that must all come back (default 3). */
  pings?: number;
}

interface Frame {
  protocols: string;
  src: string;
  dst: string;
  icmpType: string;
  wgType: string;
  /** The outermost UDP header's destination port ('' when none). */
  udpDstPort: string;
}

/** tshark's multi-valued fields are comma-separated, outermost first: the innermost is the last. */
const innermost = (field: string): string => field.split(',').pop() ?? '';

export async function verifyWire(o: VerifyWireOptions): Promise<void> {
  const pings = o.pings ?? 3;
  // One ping first, not counted: neighbour resolution and learning (OVS's tunnel ARP, vxtun's peers) settle here.
  await o.client.exec(['ping', '-c', '1', '-W', '2', o.serverIp]);
  const dir = mkdtempSync(join(tmpdir(), 'vxtun-verify-'));
  const file = join(dir, 'wire.pcap');
  const iface = o.underlay.portOf(o.clientNode);
  try {
    const tcpdump = o.underlay.ns.spawn(['tcpdump', '--immediate-mode', '-i', iface, '-n', '-U', '-w', file]);
    const exited = new Promise<void>((resolve) => tcpdump.once('close', () => resolve()));
    await waitForOutput(tcpdump, /listening on/, { timeoutMs: 10_000 });
    const ping = await o.client.exec(['ping', '-c', String(pings), '-i', '0.2', '-W', '2', o.serverIp]);
    // The last reply reaches ping and tcpdump at the same moment: give tcpdump time to write it.
    await sleep(250);
    tcpdump.kill('SIGINT');
    await exited;
    const received = Number(/(\d+) received/.exec(ping.stdout)?.[1] ?? 0);
    if (received < pings) throw new Error(`verify: ${received} of ${pings} pings from the client pod to ${o.serverIp} came back`);
    await checkWire(file, { stack: o.stack, serverIp: o.serverIp, pings, where: `on underlay port ${iface}` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The ports of every stack above, so that what a capture holds is named even when it is not what was claimed. */
const KNOWN_PORTS = ['udp.port==8472,vxlan', 'udp.port==6081,geneve', 'udp.port==8285,ip', 'udp.port==51820,wg'];

async function decode(file: string, stack: WireStack): Promise<Frame[]> {
  const decodeAs = [...new Set([...KNOWN_PORTS.filter((k) => !stack.decodeAs.some((d) => d.split(',')[0] === k.split(',')[0])), ...stack.decodeAs])];
  const args = ['tshark', '-n', '-r', file, ...decodeAs.flatMap((d) => ['-d', d]), '-T', 'fields', '-e', 'frame.protocols', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'icmp.type', '-e', 'wg.type', '-e', 'udp.dstport'];
  const r = await runOk(args);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [protocols = '', src = '', dst = '', icmpType = '', wgType = '', udpDstPort = ''] = line.split('\t');
      return { protocols, src: innermost(src), dst: innermost(dst), icmpType: innermost(icmpType), wgType, udpDstPort: udpDstPort.split(',')[0]! };
    });
}

export interface WireCheck {
  stack: WireStack;
  serverIp: string;
  /** Echo requests sent, all answered. */
  pings: number;
  /** Where the capture was taken, for messages. */
  where: string;
}

/** Checks a capture (pcap file) of `pings` echoes to `serverIp` and back against the stack claimed; rejects naming what it saw. */
export async function checkWire(file: string, c: WireCheck): Promise<void> {
  const frames = await decode(file, c.stack);
  const { stack, serverIp, pings, where } = c;
  const inStack = frames.filter(
    (f) => (f.protocols === stack.protocols || f.protocols.startsWith(`${stack.protocols}:`)) && (stack.udpPort === undefined || f.udpDstPort === String(stack.udpPort)),
  );
  const seen = [...new Set(frames.map((f) => f.protocols))].join(', ') || 'nothing';
  if (stack.innerVisible) {
    const requests = inStack.filter((f) => f.icmpType === '8' && f.dst === serverIp).length;
    const replies = inStack.filter((f) => f.icmpType === '0' && f.src === serverIp).length;
    if (requests < pings || replies < pings) {
      throw new Error(`verify: expected ${pings} echo requests and replies in ${stack.name} ${where}, saw ${requests} and ${replies} (stacks seen: ${seen})`);
    }
    // Encapsulating cases: the pods' packets never cross the underlay bare.
    if (stack.protocols !== WIRE.plain().protocols) {
      const bare = frames.filter((f) => /^eth:ethertype:ip:icmp(:data)?$/.test(f.protocols) && (f.dst === serverIp || f.src === serverIp));
      if (bare.length > 0) throw new Error(`verify: ${bare.length} pod packets crossed ${where} unencapsulated, expected ${stack.name}`);
    }
  } else {
    const data = inStack.filter((f) => f.wgType.split(',').includes('4')).length;
    if (data < 2 * pings) throw new Error(`verify: expected at least ${2 * pings} ${stack.name} transport-data messages ${where}, saw ${data} (stacks seen: ${seen})`);
    const clear = frames.filter((f) => f.protocols.includes(':icmp') && (f.dst === serverIp || f.src === serverIp));
    if (clear.length > 0) throw new Error(`verify: ${clear.length} pod ICMP packets visible in the clear ${where}, expected them encrypted in ${stack.name}`);
  }
}
