/**
 * CoDel on the VXLAN socket's receive queue: the TypeScript reference (src/packet/codel.ts) follows
 * RFC 8289's schedule, the addon's twin (native/codel.h) decides exactly as it does on any sequence
 * (fast-check), and on loopback a NativeBind with CoDel drops from a queue that stood too long,
 * counting every datagram either delivered or in CodelDrops.
 */
import dgram from 'node:dgram';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CODEL_SLOTS, CodelSlot, codelDequeue, newCodelState } from '../../src/packet/codel.js';
import { NativeBind, UdpCounter } from '../../src/io/bind-native.js';
import { requireNative } from '../../src/io/addon.js';

const US = 1000;

describe('CoDel reference', () => {
  it('drops first once the sojourn time has stood above target for an interval, then at interval/sqrt(count)', () => {
    const s = newCodelState(250, 2500);
    const drops: number[] = [];
    // A standing queue: every datagram waited 1 ms; one taken off every 10 µs for 20 ms.
    for (let t = 0; t <= 20_000 * US; t += 10 * US) if (codelDequeue(s, 1000 * US, t, false)) drops.push(t);
    expect(drops[0]).toBe(2500 * US); // first above at t=0, so the first drop one interval later
    // then interval / sqrt(1), / sqrt(2), ... after each scheduled one (to the 10 µs grid the dequeues run on)
    let next = drops[0]!;
    for (let k = 2; k <= drops.length; k++) {
      next += (2500 * US) / Math.sqrt(k - 1);
      expect(drops[k - 1]).toBe(Math.ceil(next / (10 * US)) * 10 * US);
    }
    expect(s[CodelSlot.Dropping]).toBe(1);
    expect(drops.length).toBe(s[CodelSlot.Count]);
  });

  it('never drops below target, or when the datagram emptied the queue; leaves the dropping state then', () => {
    const s = newCodelState(250, 2500);
    for (let t = 0; t < 10_000 * US; t += 10 * US) expect(codelDequeue(s, 200 * US, t, false)).toBe(false);
    for (let t = 0; t < 10_000 * US; t += 10 * US) expect(codelDequeue(s, 5000 * US, t, true)).toBe(false);
    let t = 0;
    while (!codelDequeue(s, 1000 * US, t, false)) t += 10 * US;
    expect(s[CodelSlot.Dropping]).toBe(1);
    expect(codelDequeue(s, 100 * US, t + 10 * US, false)).toBe(false);
    expect(s[CodelSlot.Dropping]).toBe(0);
    expect(s[CodelSlot.FirstAbove]).toBe(0);
  });

  it('a zero target is off', () => {
    const s = newCodelState(0, 2500);
    for (let t = 0; t < 100_000 * US; t += 100 * US) expect(codelDequeue(s, 1e9, t, false)).toBe(false);
  });
});

const native = requireNative();

describe('CoDel twin (native/codel.h)', () => {
  it('decides as the reference on every sequence of dequeues, and leaves the same state', () => {
    const step = fc.record({ dt: fc.integer({ min: 0, max: 3000 * US }), sojourn: fc.integer({ min: 0, max: 5000 * US }), emptied: fc.boolean() });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 5000 }), fc.array(step, { maxLength: 400 }), (targetUs, intervalUs, steps) => {
        const ts = newCodelState(targetUs, intervalUs);
        const cc = newCodelState(targetUs, intervalUs);
        let now = 1e12;
        for (const { dt, sojourn, emptied } of steps) {
          now += dt;
          expect(native.codelDequeue(cc, sojourn, now, emptied)).toBe(codelDequeue(ts, sojourn, now, emptied));
        }
        expect(Array.from(cc)).toEqual(Array.from(ts));
      }),
      { numRuns: 300 },
    );
    expect(CODEL_SLOTS).toBe(7);
    expect(() => native.codelDequeue(new Float64Array(3), 0, 0, false)).toThrow(/codelDequeue\(state: Float64Array\(7\)/);
  });
});

describe('CoDel on a NativeBind (loopback)', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  it('drops from a queue that stood above target for an interval; every datagram delivered or counted', async () => {
    const SENT = 200;
    // 1 µs target and interval, 4 datagrams per recvmmsg: 200 queued datagrams stand long enough.
    const nb = NativeBind.open('127.0.0.1', 0, { gro: false, batchSize: 4, codel: { targetUs: 1, intervalUs: 1 } });
    open.push(nb);
    expect(nb.features.codel).toBe(true);
    const s = dgram.createSocket('udp4');
    open.push(s);
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    for (let i = 0; i < SENT; i++) await new Promise<void>((r, j) => s.send(Buffer.from([i & 255, i >> 8]), nb.local.port, '127.0.0.1', (err) => (err ? j(err) : r())));
    await new Promise((r) => setTimeout(r, 20)); // the queue stands
    const heard: number[] = [];
    nb.start((bufs, sizes, _srcs, count) => {
      for (let i = 0; i < count; i++) heard.push(bufs[i]![0]! | (bufs[i]![1]! << 8));
    });
    const c = nb.counters;
    for (let k = 0; k < 400 && heard.length + c[UdpCounter.CodelDrops]! < SENT; k++) await new Promise((r) => setTimeout(r, 5));
    expect(c[UdpCounter.CodelDrops]).toBeGreaterThan(0);
    expect(heard.length + c[UdpCounter.CodelDrops]!).toBe(SENT);
    expect(c[UdpCounter.RecvPackets]).toBe(heard.length);
    // what arrived is in order and without duplicates: dropped ones are simply missing
    for (let i = 1; i < heard.length; i++) expect(heard[i]!).toBeGreaterThan(heard[i - 1]!);
    // the same traffic without CoDel: all of it
    const plain = NativeBind.open('127.0.0.1', 0, { gro: false, batchSize: 4 });
    open.push(plain);
    expect(plain.features.codel).toBe(false);
    for (let i = 0; i < SENT; i++) await new Promise<void>((r, j) => s.send(Buffer.from([i & 255, i >> 8]), plain.local.port, '127.0.0.1', (err) => (err ? j(err) : r())));
    await new Promise((r) => setTimeout(r, 20));
    let got = 0;
    plain.start((_b, _s, _r, count) => (got += count));
    for (let k = 0; k < 400 && got < SENT; k++) await new Promise((r) => setTimeout(r, 5));
    expect(got).toBe(SENT);
    expect(plain.counters[UdpCounter.CodelDrops]).toBe(0);
  });
});
