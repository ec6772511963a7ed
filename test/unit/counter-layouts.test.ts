/**
 * Counter layouts come from the addon (native/counters.def): the TypeScript fallback, used only when
 * there is no addon, must list the same names in the same order, and every layout is the addon's order.
 */
import { describe, expect, it } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { FALLBACK_COUNTER_NAMES, counterLayout, TunCounter, UdpCounter, ExpressCounter, TUN_COUNTER_COUNT, UDP_COUNTER_COUNT, EXPRESS_COUNTER_COUNT } from '../../src/io/counter-layouts.js';

const native = requireNative();

describe('counter layouts', () => {
  it('the fallback names equal the addon names, block by block, in order', () => {
    expect({ tun: [...native.counterNames.tun], udp: [...native.counterNames.udp], express: [...native.counterNames.express] }).toEqual({
      tun: [...FALLBACK_COUNTER_NAMES.tun],
      udp: [...FALLBACK_COUNTER_NAMES.udp],
      express: [...FALLBACK_COUNTER_NAMES.express],
    });
  });

  it('each layout maps the addon name at index i to i, and each count is the addon list length', () => {
    const asIndex = (names: readonly string[]): Record<string, number> => Object.fromEntries(names.map((n, i) => [n, i]));
    expect(TunCounter).toEqual(asIndex(native.counterNames.tun));
    expect(UdpCounter).toEqual(asIndex(native.counterNames.udp));
    expect(ExpressCounter).toEqual(asIndex(native.counterNames.express));
    expect([TUN_COUNTER_COUNT, UDP_COUNTER_COUNT, EXPRESS_COUNTER_COUNT]).toEqual([native.counterNames.tun.length, native.counterNames.udp.length, native.counterNames.express.length]);
  });

  it('the addon counts into the slot its name says (a UDP receive: RecvCalls, RecvPackets, RecvBytes)', async () => {
    const { createSocket } = await import('node:dgram');
    const sock = native.udpOpen('127.0.0.1', 0, { gso: false, gro: false });
    const sender = createSocket('udp4');
    try {
      await new Promise<void>((resolve, reject) => sender.send(Buffer.alloc(33, 7), sock.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
      const counters = new Float64Array(UDP_COUNTER_COUNT);
      const n = native.udpRecvBatch(sock.fd, new Uint8Array(2048), 2048, 1, new Int32Array(1), new Uint32Array(1), new Uint16Array(1), counters);
      expect(n).toBe(1);
      const expected = new Float64Array(UDP_COUNTER_COUNT);
      expected[UdpCounter.RecvCalls] = 1;
      expected[UdpCounter.RecvPackets] = 1;
      expected[UdpCounter.RecvBytes] = 33;
      expect([...counters]).toEqual([...expected]);
    } finally {
      sender.close();
      native.close(sock.fd);
    }
  });

  it('a name the TypeScript side uses but the addon lacks is a one-line error naming both', () => {
    expect(() => counterLayout('udp', native.counterNames.udp.filter((n) => n !== 'GsoDisabled'))).toThrow(/^addon counterNames\.udp lacks GsoDisabled: rebuild the addon/);
  });
});
