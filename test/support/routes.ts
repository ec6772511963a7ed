// Route tables for unit tests: prefixes and peer VTEPs from text.
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import type { Route, Vtep } from '../../src/packet/routes.js';

export const cidr = (s: string): Cidr => {
  const c = parseCidr(s);
  if (typeof c === 'string') throw new Error(`${s}: ${c}`);
  return c;
};
export const mac = (s: string): Buffer => Buffer.from(s.replace(/:/g, ''), 'hex');
export const vtep = (address: string, port: number, m: string, vni: number): Vtep => ({ endpoint: { address, port }, vtepMac: mac(m), vni });

export const P2 = vtep('198.18.0.2', 8472, '0a:58:0a:f4:02:00', 1);
export const P3 = vtep('198.18.0.3', 4789, '0a:58:0a:f4:03:00', 0x123456);
/** Reachable over IPv6 only: the express path leaves it to the engine. */
export const P6 = vtep('2001:db8::4', 8472, '0a:58:0a:f4:04:00', 1);
/** Overlapping prefixes (a /25 inside a /24 going elsewhere), a peer with an IPv6 endpoint, an inner-IPv6 route. */
export const MIXED_ROUTES: Route<Vtep>[] = [
  { prefix: cidr('10.244.2.0/24'), target: P2 },
  { prefix: cidr('10.244.3.0/24'), target: P3 },
  { prefix: cidr('10.244.3.128/25'), target: P2 },
  { prefix: cidr('10.244.4.0/24'), target: P6 },
  { prefix: cidr('fd00:4::/64'), target: P6 },
];
