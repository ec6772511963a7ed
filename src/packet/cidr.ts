/**
 * IPv4/IPv6 prefixes for the control side (config, routes). Addresses are kept in the forms the
 * hot path compares cheaply: IPv4 as an unsigned 32-bit number, IPv6 as 16 bytes.
 */
import { ipv4FromString, ipv4ToString, isIpv4String } from './wire/ipv4.js';
import { ipv6FromString, ipv6ToString, isIpv6String } from './wire/ipv6.js';

export type Cidr =
  | { family: 4; addr: number; prefixLen: number }
  | { family: 6; addr: Buffer; prefixLen: number };

/** Parses "10.244.0.0/16" or "fd00::/64"; returns an error message instead of throwing. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return 'expected address/prefix-length';
  const addrText = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return `bad prefix length "${lenText}"`;
  const prefixLen = Number(lenText);
  if (isIpv4String(addrText)) {
    if (prefixLen > 32) return `prefix length ${prefixLen} is over 32`;
    const addr = ipv4FromString(addrText);
    if ((addr & ipv4Mask(prefixLen)) >>> 0 !== addr) return `host bits set (network is ${ipv4ToString((addr & ipv4Mask(prefixLen)) >>> 0)}/${prefixLen})`;
    return { family: 4, addr, prefixLen };
  }
  if (isIpv6String(addrText)) {
    if (prefixLen > 128) return `prefix length ${prefixLen} is over 128`;
    const addr = ipv6FromString(addrText);
    const masked = maskIpv6(addr, prefixLen);
    if (!masked.equals(addr)) return `host bits set (network is ${ipv6ToString(masked)}/${prefixLen})`;
    return { family: 6, addr, prefixLen };
  }
  return `"${addrText}" is not an IPv4 or IPv6 address`;
}

export function ipv4Mask(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

export function maskIpv6(addr: Uint8Array, prefixLen: number): Buffer {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    out[i] = addr[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

export function cidrToString(c: Cidr): string {
  return c.family === 4 ? `${ipv4ToString(c.addr)}/${c.prefixLen}` : `${ipv6ToString(c.addr)}/${c.prefixLen}`;
}

/** True when `inner` lies wholly inside `outer` (same family). */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefixLen < outer.prefixLen) return false;
  if (outer.family === 4 && inner.family === 4) return ((inner.addr & ipv4Mask(outer.prefixLen)) >>> 0) === outer.addr;
  return maskIpv6(inner.addr as Buffer, outer.prefixLen).equals(outer.addr as Buffer);
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}
