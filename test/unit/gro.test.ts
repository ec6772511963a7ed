/**
 * UDP GRO on receive: the split of coalesced messages into datagrams (fake inputs), then the real
 * thing on loopback — a NativeBind sending UDP_SEGMENT super-datagrams to a NativeBind with UDP_GRO
 * receives each super-datagram as one message (counted) and hands the engine every datagram, in
 * order, byte for byte; with GRO forced off (option, VXTUN_NO_UDP_GRO=1) the same bytes arrive
 * one message per datagram. Needs no root; a missing addon fails (requireNative), never skips.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { newGroPieces, splitGro } from '../../src/packet/gro.js';
import { NativeBind, UdpCounter, type NativeBindOptions } from '../../src/io/bind-native.js';
import { UDP_COUNTER_COUNT } from '../../src/io/counter-layouts.js';
import type { Endpoint } from '../../src/io/bind.js';
import { requireNative } from '../../src/io/addon.js';
import { xorshift32 as rng } from '../support/random.js';

const pieces = (sizes: number[], gso: number[]): Array<[number, number, number]> => {
  const out = newGroPieces();
  const n = splitGro(sizes, gso, sizes.length, out);
  return Array.from({ length: n }, (_, k) => [out.message[k]!, out.offset[k]!, out.length[k]!]);
};

describe('splitGro', () => {
  it('leaves messages without a segment size whole, in order', () => {
    expect(pieces([100, 1500, 0], [0, 0, 0])).toEqual([
      [0, 0, 100],
      [1, 0, 1500],
      [2, 0, 0],
    ]);
  });

  it('cuts a coalesced message at gso_size; the last datagram may be shorter', () => {
    expect(pieces([3000], [1200])).toEqual([
      [0, 0, 1200],
      [0, 1200, 1200],
      [0, 2400, 600],
    ]);
  });

  it('a message exactly k × gso_size gives k equal datagrams; one no longer than gso_size stays whole', () => {
    expect(pieces([2400, 1200, 700], [1200, 1200, 1200])).toEqual([
      [0, 0, 1200],
      [0, 1200, 1200],
      [1, 0, 1200],
      [2, 0, 700],
    ]);
  });

  it('mixes plain and coalesced messages, keeping message order, and reuses the output arrays', () => {
    const out = newGroPieces();
    expect(splitGro([5000, 60, 130], [1450, 0, 50], 3, out)).toBe(4 + 1 + 3);
    expect(out.message.slice(0, 8)).toEqual([0, 0, 0, 0, 1, 2, 2, 2]);
    expect(out.offset.slice(0, 8)).toEqual([0, 1450, 2900, 4350, 0, 0, 50, 100]);
    expect(out.length.slice(0, 8)).toEqual([1450, 1450, 1450, 650, 60, 50, 50, 30]);
    // a smaller batch next: only the first entries count
    expect(splitGro([10], [0], 1, out)).toBe(1);
    expect([out.message[0], out.offset[0], out.length[0]]).toEqual([0, 0, 10]);
  });

  it('only the first `count` messages are split', () => {
    expect(pieces([100, 200], [0, 0]).length).toBe(2);
    const out = newGroPieces();
    expect(splitGro([100, 200, 300], [0, 0, 0], 2, out)).toBe(2);
  });

  it('random messages: the pieces tile each message exactly, none longer than gso_size', () => {
    const next = rng(0x6e0);
    const out = newGroPieces();
    for (let round = 0; round < 100; round++) {
      const count = 1 + (next() % 64);
      const sizes = Array.from({ length: count }, () => next() % 65508);
      const gso = sizes.map(() => (next() % 3 === 0 ? 0 : 1 + (next() % 9000)));
      const n = splitGro(sizes, gso, count, out);
      const bad: string[] = [];
      let k = 0;
      for (let i = 0; i < count; i++) {
        let at = 0;
        do {
          if (out.message[k] !== i || out.offset[k] !== at || (gso[i]! > 0 && out.length[k]! > gso[i]!)) bad.push(`piece ${k} of message ${i}`);
          at += out.length[k++]!;
        } while (at < sizes[i]!);
        if (at !== sizes[i]) bad.push(`message ${i} covers ${at} of ${sizes[i]} bytes`);
      }
      expect(bad).toEqual([]);
      expect(k).toBe(n);
    }
  });
});

describe('NativeBind with UDP GRO on loopback', () => {
  const open: NativeBind[] = [];
  afterEach(async () => {
    for (const b of open.splice(0)) await b.close();
    delete process.env.VXTUN_NO_UDP_GRO;
  });

  /** 4 runs of 12 equal datagrams, each closed by a short one: 4 UDP_SEGMENT messages. */
  function runs(next: () => number): Buffer[] {
    const out: Buffer[] = [];
    for (let r = 0; r < 4; r++) {
      for (let i = 0; i < 13; i++) {
        const b = Buffer.alloc(i === 12 ? 1 + (next() % 1000) : 1400);
        for (let k = 0; k < b.length; k++) b[k] = next() & 0xff;
        b.writeUInt32BE(r * 13 + i, 0); // its place in the stream
        out.push(b);
      }
    }
    return out;
  }

  async function exchange(rxOpts: NativeBindOptions): Promise<{ rx: NativeBind; sent: string[]; got: string[]; calls: number; srcs: Endpoint[] }> {
    const rx = NativeBind.open('127.0.0.1', 0, rxOpts);
    const tx = NativeBind.open('127.0.0.1', 0, { gso: true });
    open.push(rx, tx);
    const got: string[] = [];
    const srcs: Endpoint[] = [];
    let calls = 0;
    rx.start((bufs, sizes, from, count) => {
      calls++;
      for (let i = 0; i < count; i++) {
        got.push(bufs[i]!.subarray(0, sizes[i]!).toString('hex'));
        srcs.push({ ...from[i]! });
      }
    });
    const dgrams = runs(rng(0x960));
    expect(tx.send(dgrams, dgrams.map((d) => d.length), 0, dgrams.length, rx.local)).toBe(52);
    expect(tx.counters[UdpCounter.GsoSends]).toBe(4);
    for (let i = 0; i < 400 && got.length < 52; i++) await new Promise((r) => setTimeout(r, 5));
    for (const s of srcs) expect(s).toEqual(tx.local);
    return { rx, sent: dgrams.map((d) => d.toString('hex')), got, calls, srcs };
  }

  it('receives each UDP_SEGMENT super-datagram as one message and hands over every datagram in order', async () => {
    const { rx, sent, got } = await exchange({});
    expect(rx.features.gro).toBe(true); // Linux >= 5.0 has UDP_GRO
    expect(got).toEqual(sent);
    expect(rx.counters[UdpCounter.GroReceives]).toBe(4);
    expect(rx.counters[UdpCounter.GroSegments]).toBe(52);
    expect(rx.counters[UdpCounter.RecvPackets]).toBe(52); // datagrams, not messages
    expect(rx.counters[UdpCounter.RecvCalls]).toBeLessThanOrEqual(4);
  });

  it('the engine may change a datagram in place without touching its neighbours in the arena', async () => {
    const rx = NativeBind.open('127.0.0.1', 0);
    const tx = NativeBind.open('127.0.0.1', 0);
    open.push(rx, tx);
    const got: string[] = [];
    rx.start((bufs, sizes, _from, count) => {
      // overwrite every byte of each datagram first, then read them all back
      const copies = Array.from({ length: count }, (_, i) => Buffer.from(bufs[i]!.subarray(0, sizes[i]!)));
      for (let i = 0; i < count; i++) bufs[i]!.fill(0xee, 0, sizes[i]!);
      for (let i = 0; i < count; i++) {
        expect(bufs[i]!.subarray(0, sizes[i]!).every((b) => b === 0xee)).toBe(true);
        got.push(copies[i]!.toString('hex'));
      }
    });
    const dgrams = runs(rng(0x961));
    tx.send(dgrams, dgrams.map((d) => d.length), 0, dgrams.length, rx.local);
    for (let i = 0; i < 400 && got.length < 52; i++) await new Promise((r) => setTimeout(r, 5));
    expect(got).toEqual(dgrams.map((d) => d.toString('hex')));
    expect(rx.counters[UdpCounter.GroReceives]).toBeGreaterThan(0);
  });

  it('gro: false receives one message per datagram, same bytes', async () => {
    const { rx, sent, got } = await exchange({ gro: false });
    expect(rx.features.gro).toBe(false);
    expect(got).toEqual(sent);
    expect(rx.counters[UdpCounter.GroReceives]).toBe(0);
    expect(rx.counters[UdpCounter.RecvPackets]).toBe(52);
  });

  it('udpRecvBatch refuses a gsoSizes array shorter than maxCount before any syscall', () => {
    const native = requireNative();
    const counters = new Float64Array(UDP_COUNTER_COUNT);
    const args = [Buffer.alloc(4 * 64), 64, 4, new Int32Array(4), new Uint32Array(4), new Uint16Array(4), counters] as const;
    expect(() => native.udpRecvBatch(1e6, ...args, new Int32Array(3))).toThrow(RangeError);
    expect(() => native.udpRecvBatch(1e6, ...args, new Float64Array(4) as unknown as Int32Array)).toThrow(/gsoSizes has the wrong typed-array type/);
  });

  it('VXTUN_NO_UDP_GRO=1 forces it off', async () => {
    process.env.VXTUN_NO_UDP_GRO = '1';
    const { rx, sent, got } = await exchange({});
    expect(rx.features.gro).toBe(false);
    expect(got).toEqual(sent);
    expect(rx.counters[UdpCounter.GroReceives]).toBe(0);
  });
});
