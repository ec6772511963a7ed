/** Longest-prefix match of an inner destination, as the engine does per packet (1, 100, 10 000 routes). */
import { RouteTable, type Route } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { ipv6FromString } from '../../src/packet/wire/ipv6.js';
import type { MicroBenchmark, MicroCase } from './harness.js';

const COUNTS = [1, 100, 10_000];
/** Destinations looked up per call: spread over the table so the probes are not one hot key. */
const LOOKUPS = 256;

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (typeof c === 'string') throw new Error(`${text}: ${c}`);
  return c;
}

/** Subnet k of a flannel-like network: 10.(k/256).(k%256).0/24, fd00:0:<k>::/64. */
function subnet4(k: number): string {
  return `10.${(k >> 8) & 255}.${k & 255}.0/24`;
}
function subnet6(k: number): string {
  return `fd00:0:${k.toString(16)}::/64`;
}

const benchmark: MicroBenchmark = {
  name: 'route-lookup',
  description: 'RouteTable.lookup4/lookup6 with /24 (IPv4) or /64 (IPv6) peer subnets plus one /32 or /128 host route',
  cases() {
    const cases: MicroCase[] = [];
    for (const count of COUNTS) {
      // flannel tables hold one prefix length; a host route adds a second, so lookups do two probes.
      const v4: Route<number>[] = Array.from({ length: count }, (_, k) => ({ prefix: cidr(subnet4(k)), target: k }));
      v4.push({ prefix: cidr('10.255.255.1/32'), target: -1 });
      const v6: Route<number>[] = Array.from({ length: count }, (_, k) => ({ prefix: cidr(subnet6(k)), target: k }));
      v6.push({ prefix: cidr('fd00:ffff::1/128'), target: -1 });
      const t4 = new RouteTable(v4);
      const t6 = new RouteTable(v6);
      const dst4 = Array.from({ length: LOOKUPS }, (_, i) => {
        const k = (i * 7919) % count;
        return (((10 << 24) | (((k >> 8) & 255) << 16) | ((k & 255) << 8) | 2) >>> 0);
      });
      const dst6 = Array.from({ length: LOOKUPS }, (_, i) => ipv6FromString(`fd00:0:${((i * 7919) % count).toString(16)}::2`));
      let sink = 0;
      cases.push({
        name: `ipv4 ${count} routes`,
        params: { family: 'ipv4', routes: count },
        packetsPerOp: LOOKUPS,
        fn: () => {
          for (let i = 0; i < LOOKUPS; i++) sink += t4.lookup4(dst4[i]!) ?? 0;
        },
      });
      cases.push({
        name: `ipv6 ${count} routes`,
        params: { family: 'ipv6', routes: count },
        packetsPerOp: LOOKUPS,
        fn: () => {
          for (let i = 0; i < LOOKUPS; i++) sink += t6.lookup6(dst6[i]!) ?? 0;
        },
      });
      if (count === 10_000) {
        // The same /24s plus a few other lengths (host routes, a /26, /20, /16, /8): the trie does not care.
        const mixed = new RouteTable([...v4, ...['10.1.2.3/32', '10.9.9.64/26', '10.3.16.0/20', '10.244.0.0/16', '10.0.0.0/8'].map((p, k) => ({ prefix: cidr(p), target: -2 - k }))]);
        cases.push({
          name: `ipv4 ${count} routes mixed lengths`,
          params: { family: 'ipv4', routes: count + 5, lengths: 6 },
          packetsPerOp: LOOKUPS,
          fn: () => {
            for (let i = 0; i < LOOKUPS; i++) sink += mixed.lookup4(dst4[i]!) ?? 0;
          },
        });
      }
      if (sink === Number.MIN_VALUE) console.log(sink);
    }
    return cases;
  },
};
export default benchmark;
