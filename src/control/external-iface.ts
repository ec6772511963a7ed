/**
 * Which interface carries the overlay, chosen as flanneld chooses it (main.go, pkg/ipmatch):
 * each --iface (a name or one of its addresses) in order, then each --iface-regex (matched against
 * names and addresses), then --iface-can-reach (the interface `ip route get` picks); with none of
 * them, the interface holding --public-ip, else the default route's interface. Its first IPv4
 * address is the node's public IP unless --public-ip says otherwise.
 */
import { execFileSync } from 'node:child_process';
import { HostError } from './host.js';

export interface ExternalIfaceWanted {
  iface?: readonly string[];
  ifaceRegex?: readonly string[];
  ifaceCanReach?: string;
  publicIp?: string;
}

export interface ExternalIface {
  iface: string;
  /** The interface's first IPv4 address (or --public-ip when that is one of its addresses). */
  address: string;
}

interface Link {
  ifname: string;
  addr_info?: Array<{ family?: string; local?: string }>;
}

function ipJson<T>(args: string[]): T {
  return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as T;
}

function v4Addresses(link: Link): string[] {
  return (link.addr_info ?? []).filter((a) => a.family === 'inet' && a.local).map((a) => a.local!);
}

function pick(link: Link | undefined, publicIp: string | undefined): ExternalIface | undefined {
  if (!link) return undefined;
  const addrs = v4Addresses(link);
  if (addrs.length === 0) return undefined;
  return { iface: link.ifname, address: publicIp && addrs.includes(publicIp) ? publicIp : addrs[0]! };
}

/** The default route's interface, as flanneld's GetDefaultGatewayInterface finds it. */
function defaultRouteIface(): string | undefined {
  const routes = ipJson<Array<{ dev?: string }>>(['-4', 'route', 'show', 'default']);
  return routes.find((r) => r.dev)?.dev;
}

export function findExternalIface(wanted: ExternalIfaceWanted): ExternalIface {
  const links = ipJson<Link[]>(['addr', 'show']);
  const byName = (name: string): Link | undefined => links.find((l) => l.ifname === name);
  const byAddress = (addr: string): Link | undefined => links.find((l) => v4Addresses(l).includes(addr));
  const { publicIp } = wanted;
  const explicit = (wanted.iface?.length ?? 0) > 0 || (wanted.ifaceRegex?.length ?? 0) > 0 || wanted.ifaceCanReach !== undefined;
  if (!explicit) {
    if (publicIp) {
      const found = pick(byAddress(publicIp), publicIp);
      if (found) return found;
      throw new HostError(`--public-ip: "${publicIp}" is not an address of any interface on this host`, 2);
    }
    const dev = defaultRouteIface();
    const found = dev ? pick(byName(dev), undefined) : undefined;
    if (!found) throw new HostError(dev ? `--iface: the default route's interface ${dev} has no IPv4 address` : '--iface: no default route to pick the interface from: give --iface or --public-ip', 1);
    return found;
  }
  for (const spec of wanted.iface ?? []) {
    const found = pick(byName(spec) ?? byAddress(spec), publicIp);
    if (found) return found;
  }
  for (const source of wanted.ifaceRegex ?? []) {
    let re: RegExp;
    try {
      re = new RegExp(source);
    } catch {
      throw new HostError(`--iface-regex: ${JSON.stringify(source)} is not a regular expression`, 2);
    }
    for (const link of links) {
      if (re.test(link.ifname) || v4Addresses(link).some((a) => re.test(a))) {
        const found = pick(link, publicIp);
        if (found) return found;
      }
    }
  }
  if (wanted.ifaceCanReach !== undefined) {
    let dev: string | undefined;
    try {
      dev = ipJson<Array<{ dev?: string }>>(['-4', 'route', 'get', wanted.ifaceCanReach])[0]?.dev;
    } catch {
      // unroutable: falls through to the refusal below
    }
    const found = dev ? pick(byName(dev), publicIp) : undefined;
    if (found) return found;
  }
  const asked = [...(wanted.iface ?? []).map((i) => `--iface=${i}`), ...(wanted.ifaceRegex ?? []).map((r) => `--iface-regex=${r}`), ...(wanted.ifaceCanReach !== undefined ? [`--iface-can-reach=${wanted.ifaceCanReach}`] : [])];
  throw new HostError(`${asked.join(' ')}: no interface with an IPv4 address matches`, 2);
}
