/**
 * The VXLAN socket's peer filter (native/udp.cc udpPeerFilter, a kernel socket filter): on loopback,
 * from senders on 127.0.0.1..80, exactly the datagrams of the peers arrive, the others are dropped in
 * the kernel and counted with the socket's drops (RecvOverflows, SO_RXQ_OVFL) — whatever the set's
 * size and wherever in it the peer sits; more peers than a filter holds, or null, take every datagram.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeBind, UdpCounter } from '../../src/io/bind-native.js';
import { xorshift32 as rng } from '../support/random.js';

const SENDERS = 80;

describe('peer filter', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  /** One datagram from each 127.0.0.i in `order` (its payload: i), one at a time; resolves to the senders heard. */
  async function sendFrom(nb: NativeBind, order: number[], expectCount: number): Promise<number[]> {
    const heard: number[] = [];
    nb.start((bufs, sizes, srcs, count) => {
      for (let i = 0; i < count; i++) {
        expect(srcs[i]!.address).toBe(`127.0.0.${bufs[i]![0]}`);
        heard.push(bufs[i]![0]!);
      }
    });
    for (const i of order) {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, `127.0.0.${i}`, () => r()));
      await new Promise<void>((r, j) => s.send(Buffer.from([i]), nb.local.port, '127.0.0.1', (err) => (err ? j(err) : r())));
      s.close();
    }
    for (let k = 0; k < 400 && heard.length < expectCount; k++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50)); // nothing more comes
    return heard;
  }

  for (const extra of [0, 1, 700]) {
    it(`keeps exactly the peers' datagrams among ${SENDERS} senders, with ${extra} other peer addresses in the set`, async () => {
      const nb = NativeBind.open('127.0.0.1', 0);
      open.push(nb);
      const next = rng(7 + extra);
      const peers = Array.from({ length: SENDERS }, (_, k) => k + 1).filter(() => next() % 3 === 0);
      if (!peers.includes(1)) peers.push(1);
      const others = Array.from({ length: extra }, () => `198.18.${next() % 256}.${next() % 256}`);
      expect(nb.setPeerFilter([...others, ...peers.map((i) => `127.0.0.${i}`)])).toBe(true);
      // Every sender once, then a peer last: its datagram carries the socket's drop count.
      const order = [...Array.from({ length: SENDERS }, (_, k) => k + 1), 1];
      const heard = await sendFrom(nb, order, peers.length + 1);
      expect([...heard].sort((a, b) => a - b)).toEqual([...peers, 1].sort((a, b) => a - b));
      expect(nb.counters[UdpCounter.RecvOverflows]).toBe(SENDERS - peers.length);
    });
  }

  it('null, or more peers than a filter holds, takes every datagram', async () => {
    const nb = NativeBind.open('127.0.0.1', 0);
    open.push(nb);
    expect(nb.setPeerFilter(['127.0.0.1'])).toBe(true);
    expect(nb.setPeerFilter(null)).toBe(false);
    expect(await sendFrom(nb, [1, 2, 3], 3)).toEqual([1, 2, 3]);
    const many = Array.from({ length: 900 }, (_, k) => `198.18.${k >> 8}.${k & 255}`);
    expect(nb.setPeerFilter(many)).toBe(false);
    const nb2 = NativeBind.open('127.0.0.1', 0);
    open.push(nb2);
    expect(nb2.setPeerFilter(many)).toBe(false);
    expect(await sendFrom(nb2, [4, 5], 2)).toEqual([4, 5]);
    expect(nb2.counters[UdpCounter.RecvOverflows]).toBe(0);
  });
});
