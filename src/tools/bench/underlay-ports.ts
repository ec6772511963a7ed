/**
 * The underlay of a built case, found by the lab's naming (`<prefix>-ul` holds the bridge; its
 * veth ports lead to the nodes' eth0), so every case built on the lab's Underlay is covered
 * without its cooperation: the offloads each end really has (`ethtool -k`) for the result file,
 * and `tc netem` on the bridge ports when asked.
 */
import type { Netns } from '../lab/netns.js';
import type { BuiltCase } from './built-case.js';
import type { UnderlayPortRecord } from './schema.js';

/** The `ethtool -k` features the result records: segmentation, receive coalescing, checksums. */
export const OFFLOAD_FEATURES = [
  'tcp-segmentation-offload',
  'generic-segmentation-offload',
  'generic-receive-offload',
  'tx-udp-segmentation',
  'tx-udp_tnl-segmentation',
  'tx-udp_tnl-csum-segmentation',
  'rx-gro-list',
  'rx-udp-gro-forwarding',
  'tx-checksumming',
  'rx-checksumming',
] as const;

export interface UnderlayLink {
  ns: Netns;
  ifname: string;
  side: 'bridge' | 'node';
}

/** `ip -o link` lines of veth devices: name, peer index and the peer's namespace name. */
function parseVeths(text: string): { ifname: string; peerIndex: number | null; peerNs: string | null }[] {
  return text
    .split('\n')
    .filter((l) => l.includes('link/ether'))
    .map((l) => {
      const m = /^\d+:\s+([^@:\s]+)(?:@if(\d+))?:/.exec(l);
      const ns = /link-netns\s+(\S+)/.exec(l);
      return { ifname: m?.[1] ?? '', peerIndex: m?.[2] ? Number(m[2]) : null, peerNs: ns?.[1] ?? null };
    })
    .filter((v) => v.ifname !== '');
}

/** Both ends of every underlay port of a case: the bridge side, then the node side. Empty when the case has no `<prefix>-ul`. */
export async function underlayLinks(built: BuiltCase): Promise<UnderlayLink[]> {
  const namespaces = built.client.topology?.namespaces ?? [];
  const ul = namespaces.find((n) => n.name === `${built.namespacePrefix}-ul`);
  if (!ul) return [];
  const r = await ul.exec(['ip', '-o', 'link', 'show', 'type', 'veth']);
  if (r.code !== 0) return [];
  const links: UnderlayLink[] = [];
  for (const v of parseVeths(r.stdout)) {
    links.push({ ns: ul, ifname: v.ifname, side: 'bridge' });
    if (v.peerNs === null || v.peerIndex === null) continue;
    const peerNs = namespaces.find((n) => n.name === v.peerNs);
    if (!peerNs) continue;
    const p = await peerNs.exec(['ip', '-o', 'link', 'show']);
    const peer = p.stdout.split('\n').map((l) => /^(\d+):\s+([^@:\s]+)/.exec(l)).find((m) => m && Number(m[1]) === v.peerIndex);
    if (peer) links.push({ ns: peerNs, ifname: peer[2]!, side: 'node' });
  }
  return links;
}

/** `ethtool -k` of each link, reduced to OFFLOAD_FEATURES ("on", "off", "off [fixed]", …). */
export async function recordOffloads(links: readonly UnderlayLink[]): Promise<UnderlayPortRecord[]> {
  const out: UnderlayPortRecord[] = [];
  for (const l of links) {
    const r = await l.ns.exec(['ethtool', '-k', l.ifname]);
    const offloads: Record<string, string> = {};
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*([a-z0-9_-]+):\s*(.+)$/.exec(line);
      if (m && (OFFLOAD_FEATURES as readonly string[]).includes(m[1]!)) offloads[m[1]!] = m[2]!.trim();
    }
    if (r.code !== 0) offloads['error'] = (r.stderr.trim().split('\n')[0] ?? `ethtool exit ${r.code}`) || `ethtool exit ${r.code}`;
    out.push({ namespace: l.ns.name, ifname: l.ifname, side: l.side, offloads });
  }
  return out;
}

/**
 * `tc qdisc replace … root netem <args>` on every bridge port: each direction leaves the bridge
 * through one port, so each packet meets the emulation once (a 1 ms delay adds 2 ms to an RTT).
 */
export async function applyNetem(links: readonly UnderlayLink[], netem: string): Promise<void> {
  const ports = links.filter((l) => l.side === 'bridge');
  if (ports.length === 0) throw new NetemError(`--netem ${JSON.stringify(netem)}: this case has no lab underlay bridge to apply it to`);
  for (const p of ports) {
    const r = await p.ns.exec(['tc', 'qdisc', 'replace', 'dev', p.ifname, 'root', 'netem', ...netem.split(/\s+/).filter(Boolean)]);
    if (r.code !== 0) {
      const why = r.stderr.trim().split('\n')[0] || `exit ${r.code}`;
      const hint = /qdisc kind is unknown/i.test(why) ? ' (this kernel has no sch_netem)' : '';
      throw new NetemError(`--netem ${JSON.stringify(netem)}: tc refused it on the underlay: ${why}${hint}`);
    }
  }
}

/** netem could not be applied: the same for every case, so the bench stops rather than measure without it. */
export class NetemError extends Error {}
