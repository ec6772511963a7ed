// RouteTable: longest-prefix match for IPv4 and IPv6, checked against hand-picked cases and against
// a naive linear scan over bit strings (no masks from src/ involved).
import { describe, expect, it } from 'vitest';
import { RouteTable, type Route } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { mulberry32 } from '../support/random.js';

const cidr = (s: string): Cidr => {
  const c = parseCidr(s);
  if (typeof c === 'string') throw new Error(`${s}: ${c}`);
  return c;
};
const table = (entries: [string, string][]): RouteTable<string> => new RouteTable<string>(entries.map(([p, t]) => ({ prefix: cidr(p), target: t })));
const v4 = (s: string): number => ipv4FromString(s);
const v6 = (s: string): Buffer => ipv6FromString(s);

describe('RouteTable: IPv4', () => {
  const entries: [string, string][] = [
    ['10.0.0.0/8', 'a/8'],
    ['10.244.0.0/16', 'b/16'],
    ['10.244.2.0/24', 'c/24'],
    ['10.244.2.7/32', 'd/32'],
    ['10.244.3.0/24', 'e/24'],
  ];
  const t = table(entries);

  it.each([
    ['10.244.2.7', 'd/32'],
    ['10.244.2.6', 'c/24'],
    ['10.244.2.8', 'c/24'],
    ['10.244.2.0', 'c/24'],
    ['10.244.2.255', 'c/24'],
    ['10.244.3.7', 'e/24'],
    ['10.244.4.1', 'b/16'],
    ['10.244.255.255', 'b/16'],
    ['10.245.0.0', 'a/8'],
    ['10.0.0.0', 'a/8'],
    ['10.255.255.255', 'a/8'],
  ])('%s -> %s (the longest prefix wins)', (addr, want) => {
    expect(t.lookup4(v4(addr))).toBe(want);
  });

  it.each(['11.0.0.0', '9.255.255.255', '0.0.0.0', '255.255.255.255', '192.168.1.1'])('%s -> undefined (no match)', (addr) => {
    expect(t.lookup4(v4(addr))).toBeUndefined();
  });

  it('insertion order does not matter', () => {
    const r = table([...entries].reverse());
    const s = table([entries[2]!, entries[0]!, entries[4]!, entries[3]!, entries[1]!]);
    for (const addr of ['10.244.2.7', '10.244.2.6', '10.244.4.1', '10.9.9.9', '11.0.0.0']) {
      expect(r.lookup4(v4(addr))).toBe(t.lookup4(v4(addr)));
      expect(s.lookup4(v4(addr))).toBe(t.lookup4(v4(addr)));
    }
  });

  it('a /0 default catches everything the others miss, and only that', () => {
    const d = table([...entries, ['0.0.0.0/0', 'default']]);
    expect(d.lookup4(v4('11.0.0.0'))).toBe('default');
    expect(d.lookup4(v4('255.255.255.255'))).toBe('default');
    expect(d.lookup4(v4('0.0.0.0'))).toBe('default');
    expect(d.lookup4(v4('10.244.2.7'))).toBe('d/32');
    expect(d.lookup4(v4('10.1.2.3'))).toBe('a/8');
  });

  it('the two /1 halves and the top of the space (unsigned arithmetic)', () => {
    const h = table([
      ['0.0.0.0/1', 'low'],
      ['128.0.0.0/1', 'high'],
      ['255.255.255.255/32', 'top'],
      ['255.255.255.254/31', 'top31'],
    ]);
    expect(h.lookup4(v4('127.255.255.255'))).toBe('low');
    expect(h.lookup4(v4('128.0.0.0'))).toBe('high');
    expect(h.lookup4(v4('255.255.255.255'))).toBe('top');
    expect(h.lookup4(v4('255.255.255.254'))).toBe('top31');
    expect(h.lookup4(v4('255.255.255.253'))).toBe('high');
    expect(h.lookup4(0xffffffff)).toBe('top');
  });

  it('IPv4 routes never answer IPv6 lookups', () => {
    const d = table([['0.0.0.0/0', 'v4-default']]);
    expect(d.lookup6(v6('::'))).toBeUndefined();
    expect(d.lookup6(v6('::ffff:10.0.0.1'))).toBeUndefined();
  });
});

describe('RouteTable: IPv6', () => {
  const entries: [string, string][] = [
    ['fd00::/8', 'a/8'],
    ['fd00:244::/32', 'b/32'],
    ['fd00:244:2::/64', 'c/64'],
    ['fd00:244:2::7/128', 'd/128'],
    ['fd00:244:2:0:8000::/65', 'e/65'],
  ];
  const t = table(entries);

  it.each([
    ['fd00:244:2::7', 'd/128'],
    ['fd00:244:2::6', 'c/64'],
    ['fd00:244:2::ffff:ffff:ffff', 'c/64'],
    ['fd00:244:2:0:ffff:ffff:ffff:ffff', 'e/65'],
    ['fd00:244:2:0:8000::1', 'e/65'],
    ['fd00:244:2:0:7fff:ffff:ffff:ffff', 'c/64'],
    ['fd00:244:3::1', 'b/32'],
    ['fd00:245::1', 'a/8'],
    ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'a/8'],
  ])('%s -> %s (the longest prefix wins)', (addr, want) => {
    expect(t.lookup6(v6(addr))).toBe(want);
  });

  it.each(['fe80::1', '::', '::1', '2001:db8::1', 'fc00::1', 'ff02::2'])('%s -> undefined', (addr) => {
    expect(t.lookup6(v6(addr))).toBeUndefined();
  });

  it('a ::/0 default', () => {
    const d = table([...entries, ['::/0', 'default']]);
    expect(d.lookup6(v6('2001:db8::1'))).toBe('default');
    expect(d.lookup6(v6('fd00:244:2::7'))).toBe('d/128');
    expect(d.lookup4(v4('10.0.0.1'))).toBeUndefined(); // not an IPv4 default
  });

  it('looks up a 16-byte view inside a packet buffer without copying it first', () => {
    const pkt = Buffer.alloc(64, 0xa5);
    v6('fd00:244:2::7').copy(pkt, 24);
    expect(t.lookup6(pkt.subarray(24, 40))).toBe('d/128');
    expect(t.lookup6(new Uint8Array(pkt.buffer, pkt.byteOffset + 24, 16))).toBe('d/128');
    expect(pkt.subarray(24, 40).equals(v6('fd00:244:2::7'))).toBe(true); // not masked in place
  });
});

describe('RouteTable: bookkeeping', () => {
  it('empty table: no match, size 0', () => {
    const e = RouteTable.empty<string>();
    expect(e.size).toBe(0);
    expect(e.lookup4(v4('10.0.0.1'))).toBeUndefined();
    expect(e.lookup6(v6('fd00::1'))).toBeUndefined();
  });

  it('size, routes in order, prefixOf', () => {
    const x = { name: 'x' };
    const y = { name: 'y' };
    const routes: Route<{ name: string }>[] = [
      { prefix: cidr('10.244.2.0/24'), target: x },
      { prefix: cidr('fd00:244:2::/64'), target: y },
    ];
    const t = new RouteTable(routes);
    expect(t.size).toBe(2);
    expect(t.routes.map((r) => r.target)).toEqual([x, y]);
    expect(t.prefixOf(x)).toBe('10.244.2.0/24');
    expect(t.prefixOf(y)).toBe('fd00:244:2::/64');
    expect(t.prefixOf({ name: 'x' })).toBeUndefined(); // by identity
    expect(t.lookup4(v4('10.244.2.9'))).toBe(x);
  });
});

// --- random tables against a naive scan ---

const bits = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(2).padStart(8, '0')).join('');
const fromBits = (s: string): Buffer => Buffer.from(Array.from({ length: s.length / 8 }, (_, i) => parseInt(s.slice(i * 8, i * 8 + 8), 2)));
const v4Bytes = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

interface Naive {
  prefixBits: string;
  len: number;
  target: number;
}
function naiveLookup(routes: Naive[], addrBits: string): number | undefined {
  let best: Naive | undefined;
  for (const r of routes) if (addrBits.startsWith(r.prefixBits) && (best === undefined || r.len > best.len)) best = r;
  return best?.target;
}

function randomRoutes(rnd: () => number, family: 4 | 6, count: number): { routes: Route<number>[]; naive: Naive[] } {
  const width = family === 4 ? 32 : 128;
  const seen = new Set<string>();
  const routes: Route<number>[] = [];
  const naive: Naive[] = [];
  while (routes.length < count) {
    // mostly typical lengths, some anywhere from /8 (/16) to the full width; nothing so short that
    // it covers the whole space, so misses happen
    const min = family === 4 ? 8 : 16;
    const len = rnd() < 0.7 ? (family === 4 ? 16 + Math.floor(rnd() * 17) : 32 + Math.floor(rnd() * 97)) : min + Math.floor(rnd() * (width - min + 1));
    let b = '';
    // share leading bits with an earlier route half of the time, so prefixes nest
    if (naive.length > 0 && rnd() < 0.5) {
      const base = naive[Math.floor(rnd() * naive.length)]!.prefixBits;
      b = base.slice(0, Math.min(base.length, len));
    }
    while (b.length < len) b += rnd() < 0.5 ? '0' : '1';
    if (seen.has(b)) continue;
    seen.add(b);
    const full = b.padEnd(width, '0');
    const prefix: Cidr = family === 4 ? { family: 4, addr: fromBits(full).readUInt32BE(0), prefixLen: len } : { family: 6, addr: fromBits(full), prefixLen: len };
    routes.push({ prefix, target: routes.length });
    naive.push({ prefixBits: b, len, target: routes.length - 1 });
  }
  return { routes, naive };
}

function randomAddress(rnd: () => number, naive: Naive[], width: number): string {
  let b = '';
  if (rnd() < 0.6) b = naive[Math.floor(rnd() * naive.length)]!.prefixBits; // inside some route
  while (b.length < width) b += rnd() < 0.5 ? '0' : '1';
  return b;
}

describe('RouteTable: 10 000 random routes against a linear scan', () => {
  it('IPv4', () => {
    const rnd = mulberry32(0x1234);
    const { routes, naive } = randomRoutes(rnd, 4, 10_000);
    const t = new RouteTable(routes);
    expect(t.size).toBe(10_000);
    let hits = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const a = randomAddress(rnd, naive, 32);
      const addr = fromBits(a).readUInt32BE(0);
      const want = naiveLookup(naive, a);
      if (want !== undefined) hits++;
      const got = t.lookup4(addr);
      if (got !== want) wrong.push(`${bits(v4Bytes(addr))}: got ${got}, want ${want}`);
    }
    expect(wrong).toEqual([]);
    expect(hits).toBeGreaterThan(5000);
    expect(hits).toBeLessThan(10_000); // misses were exercised too
  });

  it('IPv6', () => {
    const rnd = mulberry32(0x5678);
    const { routes, naive } = randomRoutes(rnd, 6, 10_000);
    const t = new RouteTable(routes);
    let hits = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const a = randomAddress(rnd, naive, 128);
      const want = naiveLookup(naive, a);
      if (want !== undefined) hits++;
      const got = t.lookup6(fromBits(a));
      if (got !== want) wrong.push(`${a}: got ${got}, want ${want}`);
    }
    expect(wrong).toEqual([]);
    expect(hits).toBeGreaterThan(1000);
    expect(hits).toBeLessThan(2000);
  });
});

// --- flannel-shaped tables (the IPv4 trie's common case) against a numeric linear scan ---

/** Longest match by scanning every route; masks computed here, not taken from src/. */
function scan4<T>(routes: Route<T>[], addr: number): T | undefined {
  let best: Route<T> | undefined;
  for (const r of routes) {
    if (r.prefix.family !== 4) continue;
    const len = r.prefix.prefixLen;
    const inside = len === 0 || (addr >>> (32 - len)) === (r.prefix.addr >>> (32 - len));
    if (inside && (best === undefined || len >= best.prefix.prefixLen)) best = r; // >=: the later of equal prefixes wins
  }
  return best?.target;
}

describe('RouteTable: 10 000 flannel /24s plus other lengths against a linear scan', () => {
  const build = (seed: number, extra: string[]): { routes: Route<number>[]; rnd: () => number } => {
    const rnd = mulberry32(seed);
    const seen = new Set<number>();
    const routes: Route<number>[] = [];
    while (routes.length < 10_000) {
      const k = Math.floor(rnd() * 65536); // a /24 of 10.0.0.0/8
      if (seen.has(k)) continue;
      seen.add(k);
      routes.push({ prefix: { family: 4, addr: ((10 << 24) | (k << 8)) >>> 0, prefixLen: 24 }, target: routes.length });
    }
    for (const e of extra) routes.push({ prefix: cidr(e), target: routes.length });
    // shuffled: insertion order must not matter
    for (let i = routes.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [routes[i], routes[j]] = [routes[j]!, routes[i]!];
    }
    return { routes, rnd };
  };
  const extras: Record<string, string[]> = {
    'only /24s': [],
    'with host routes, a /26, /20, /16, /12 and /8': ['10.1.2.3/32', '10.200.0.77/32', '10.9.9.64/26', '10.3.16.0/20', '10.244.0.0/16', '10.16.0.0/12', '10.0.0.0/8', '192.168.7.7/32'],
    'with a default route and a /1': ['0.0.0.0/0', '128.0.0.0/1', '10.5.5.5/32', '255.255.255.255/32'],
  };
  for (const [name, extra] of Object.entries(extras)) {
    it(name, () => {
      const { routes, rnd } = build(name.length * 7919, extra);
      const t = new RouteTable(routes);
      let hits = 0;
      const wrong: string[] = [];
      for (let i = 0; i < 8000; i++) {
        // mostly inside 10.0.0.0/8, near an extra route now and then, anywhere sometimes
        const pick = rnd();
        let addr: number;
        if (pick < 0.7) addr = ((10 << 24) | Math.floor(rnd() * 0x1000000)) >>> 0;
        else if (pick < 0.85 && extra.length > 0) {
          const r = cidr(extra[Math.floor(rnd() * extra.length)]!) as { addr: number };
          addr = (r.addr + Math.floor(rnd() * 512) - 256) >>> 0;
        } else addr = Math.floor(rnd() * 0x100000000) >>> 0;
        const want = scan4(routes, addr);
        if (want !== undefined) hits++;
        const got = t.lookup4(addr);
        if (got !== want) wrong.push(`${addr.toString(16)}: got ${got}, want ${want}`);
      }
      expect(wrong).toEqual([]);
      expect(hits).toBeGreaterThan(500);
    });
  }

  it('of two equal prefixes the later one wins; host bits in a hand-built prefix are ignored', () => {
    const t = new RouteTable<string>([
      { prefix: cidr('10.244.2.0/24'), target: 'first' },
      { prefix: cidr('10.244.2.0/24'), target: 'second' },
      { prefix: { family: 4, addr: ipv4FromString('10.244.3.9'), prefixLen: 24 }, target: 'hostbits' },
    ]);
    expect(t.lookup4(v4('10.244.2.1'))).toBe('second');
    expect(t.lookup4(v4('10.244.3.200'))).toBe('hostbits');
    expect(t.prefixOf('first')).toBe('10.244.2.0/24');
  });

  it('is immutable: changing the route list it was built from changes nothing', () => {
    const routes: Route<string>[] = [{ prefix: cidr('10.244.2.0/24'), target: 'a' }];
    const t = new RouteTable(routes);
    routes.push({ prefix: cidr('10.244.2.0/25'), target: 'b' });
    routes[0]!.target = 'changed';
    expect(t.lookup4(v4('10.244.2.1'))).toBe('a');
    expect(t.size).toBe(1);
  });
});
