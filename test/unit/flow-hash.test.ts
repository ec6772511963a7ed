/**
 * RFC 7348 §5 source ports: the TypeScript flow hash (src/packet/flow-hash.ts, which a trace uses to
 * name the port a datagram left from) against the addon's, judged by the ports random datagrams
 * really arrive from on a loopback socket: IPv4 TCP/UDP/SCTP/ICMP, with IP options, later fragments,
 * IPv6, ARP, frames too short to hash. Needs no root; a missing addon fails, never skips.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeBind } from '../../src/io/bind-native.js';
import { innerFlowHash } from '../../src/packet/flow-hash.js';
import { xorshift32 as rng } from '../support/random.js';

const KINDS = ['tcp4', 'udp4', 'sctp4', 'icmp4', 'options4', 'fragment4', 'tcp6', 'udp6', 'arp', 'short', 'garbage'] as const;

/** VXLAN + inner Ethernet + an inner packet of `kind`, random where the hash looks. */
function datagram(next: () => number, kind: (typeof KINDS)[number]): Buffer {
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => next() & 255));
  if (kind === 'short') return bytes(next() % 42);
  if (kind === 'garbage') return bytes(42 + (next() % 200));
  const vxlanEth = Buffer.concat([Buffer.from([0x08, 0, 0, 0, 0, 0, 1, 0]), bytes(12)]);
  let etherType: number;
  let inner: Buffer;
  if (kind === 'arp') {
    etherType = 0x0806;
    inner = bytes(28);
  } else if (kind.endsWith('6')) {
    etherType = 0x86dd;
    inner = bytes(40 + 8 + (next() % 100));
    inner[0] = 0x60;
    inner[6] = kind === 'tcp6' ? 6 : 17;
  } else {
    etherType = 0x0800;
    const ihl = kind === 'options4' ? 5 + (next() % 11) : 5;
    inner = bytes(ihl * 4 + 8 + (next() % 100));
    inner[0] = 0x40 | ihl;
    inner[9] = ({ tcp4: 6, udp4: 17, sctp4: 132, icmp4: 1, options4: [6, 17][next() % 2]!, fragment4: 6 } as Record<string, number>)[kind]!;
    inner.writeUInt16BE(kind === 'fragment4' ? 1 + (next() % 0x1fff) : next() & 0x4000, 6); // offset or DF only
  }
  const type = Buffer.alloc(2);
  type.writeUInt16BE(etherType);
  return Buffer.concat([vxlanEth, type, inner]);
}

describe('flow-hashed source ports: TypeScript hash = addon hash', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  it('names the pool port every one of 1100 random datagrams really left from', async () => {
    const rx = dgram.createSocket('udp4');
    open.push(rx);
    await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
    const arrived = new Map<string, number[]>();
    rx.on('message', (m, rinfo) => arrived.set(m.toString('hex'), [...(arrived.get(m.toString('hex')) ?? []), rinfo.port]));
    const nb = NativeBind.open('127.0.0.1', 0, { sourcePorts: { min: 42000, max: 42999, sockets: 8 } });
    open.push(nb);
    expect(nb.sourcePorts.length).toBe(8);
    const next = rng(7348);
    const bufs = Array.from({ length: 1100 }, (_, i) => datagram(next, KINDS[i % KINDS.length]!));
    const total = (): number => [...arrived.values()].reduce((n, ps) => n + ps.length, 0);
    // in batches of 50, each received before the next is sent (a loopback socket's buffer is small)
    for (let i = 0; i < bufs.length; i += 50) {
      const chunk = bufs.slice(i, i + 50);
      expect(nb.send(chunk, chunk.map((b) => b.length), 0, chunk.length, { address: '127.0.0.1', port: (rx.address() as { port: number }).port })).toBe(chunk.length);
      for (let k = 0; k < 400 && total() < i + chunk.length; k++) await new Promise((r) => setTimeout(r, 2));
    }
    expect(total()).toBe(bufs.length);
    const used = new Set<number>();
    for (const b of bufs) {
      const expected = nb.sourceOf(b, 0, b.length).port;
      expect(arrived.get(b.toString('hex')), b.toString('hex')).toContain(expected);
      expect(nb.sourcePorts[innerFlowHash(b, 0, b.length) % 8]).toBe(expected);
      used.add(expected);
    }
    expect(used.size).toBe(8); // and the flows spread over the whole pool
  });

  it('a fixed-port bind names its bound port; an offset into a larger buffer hashes the same', () => {
    const nb = NativeBind.open('127.0.0.1', 0);
    open.push(nb);
    const b = datagram(rng(1), 'tcp4');
    expect(nb.sourceOf(b, 0, b.length)).toEqual(nb.local);
    const shifted = Buffer.concat([Buffer.alloc(5, 0xee), b, Buffer.alloc(3, 0xee)]);
    expect(innerFlowHash(shifted, 5, b.length)).toBe(innerFlowHash(b, 0, b.length));
  });
});
