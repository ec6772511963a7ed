/**
 * ICMP errors are rate-limited as Linux limits them: all together (icmp_msgs_per_sec) and per
 * address the error goes to (icmp_ratelimit: after a burst of 6, one a second), with path-MTU
 * errors exempt from the per-address limit, and a table of sources that never outgrows its bound.
 * Time is a fake clock.
 */
import { describe, expect, it } from 'vitest';
import { IcmpResponder, PerSourceRateLimit } from '../../src/packet/icmp-errors.js';
import { Ipv4Packet, emitIpv4, ipv4FromString, IpProtocol } from '../../src/packet/wire/ipv4.js';
import { Ipv6Packet, emitIpv6, ipv6FromString } from '../../src/packet/wire/ipv6.js';
import { type WireError, isWireError } from '../../src/packet/wire/error.js';

function parsed<P>(p: P | WireError): P {
  if (isWireError(p)) throw new Error(`unparsable test packet: ${JSON.stringify(p)}`);
  return p;
}

function udp4(src: string, dst: string, size = 60): Ipv4Packet {
  const buf = Buffer.alloc(size);
  emitIpv4({ src: ipv4FromString(src), dst: ipv4FromString(dst), protocol: IpProtocol.UDP, ttl: 64, payloadLength: size - 20 }, buf, 0);
  return parsed(Ipv4Packet.check(buf));
}

function udp6(src: string, dst: string, size = 80): Ipv6Packet {
  const buf = Buffer.alloc(size);
  emitIpv6({ src: ipv6FromString(src), dst: ipv6FromString(dst), nextHeader: IpProtocol.UDP, hopLimit: 64, payloadLength: size - 40 }, buf, 0);
  return parsed(Ipv6Packet.check(buf));
}

/** A responder on a fake clock, with a global budget large enough not to matter unless asked. */
function responder(perSecond = 1000, maxSources = 4096): { r: IcmpResponder; clock: { t: number } } {
  const clock = { t: 5_000_000 };
  return { r: new IcmpResponder(perSecond, { now: () => clock.t, perSource: { intervalMs: 1000, burst: 6, maxSources } }), clock };
}

const sent = (b: Buffer | undefined): boolean => b !== undefined && b !== IcmpResponder.RateLimited;

describe('ICMP error rate limits', () => {
  it('one source gets a burst of 6, then one a second; another source is not held back by it', () => {
    const { r, clock } = responder();
    const answers = Array.from({ length: 20 }, () => sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1'))));
    expect(answers.filter(Boolean)).toHaveLength(6);
    expect(answers.slice(0, 6).every(Boolean)).toBe(true);
    expect(r.unreachable4(udp4('10.244.1.5', '10.244.77.1'))).toBe(IcmpResponder.RateLimited);
    // a different pod has its own burst
    expect(Array.from({ length: 8 }, () => sent(r.unreachable4(udp4('10.244.1.6', '10.244.77.1')))).filter(Boolean)).toHaveLength(6);
    // 999 ms later still nothing; at 1000 ms exactly one more
    clock.t += 999;
    expect(sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))).toBe(false);
    clock.t += 1;
    expect(sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))).toBe(true);
    expect(sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))).toBe(false);
    // 10 s of a flood at 1000/s: one a second after the burst, as Linux sends
    let n = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      clock.t += 1;
      if (sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))) n++;
    }
    expect(n).toBe(10);
    // idle for a minute: the burst is back, no more than 6
    clock.t += 60_000;
    expect(Array.from({ length: 10 }, () => sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))).filter(Boolean)).toHaveLength(6);
  });

  it('IPv6 sources are limited the same way', () => {
    const { r } = responder();
    expect(Array.from({ length: 10 }, () => sent(r.unreachable6(udp6('fd00:244:1::5', 'fd00:244:77::1')))).filter(Boolean)).toHaveLength(6);
    expect(Array.from({ length: 10 }, () => sent(r.unreachable6(udp6('fd00:244:1::6', 'fd00:244:77::1')))).filter(Boolean)).toHaveLength(6);
  });

  it('path-MTU errors are exempt from the per-source limit but share the global budget', () => {
    const { r } = responder(20);
    for (let i = 0; i < 6; i++) expect(sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))).toBe(true);
    expect(sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))).toBe(false);
    // the same pod still learns its path MTU, until the global budget (20, 6 spent) runs out
    const pmtu = Array.from({ length: 20 }, () => sent(r.fragNeeded4(udp4('10.244.1.5', '10.244.2.7', 1500), 1450)));
    expect(pmtu.filter(Boolean)).toHaveLength(14);
    expect(sent(r.packetTooBig6(udp6('fd00:244:1::5', 'fd00:244:2::7', 1500), 1430))).toBe(false);
  });

  it('the global budget caps all sources together', () => {
    const { r } = responder(10);
    let n = 0;
    for (let i = 0; i < 50; i++) if (sent(r.unreachable4(udp4(`10.244.1.${i + 1}`, '10.244.77.1')))) n++;
    expect(n).toBe(10);
  });

  it('spoofed sources cannot grow the table past its bound; the oldest are forgotten first', () => {
    const limit = new PerSourceRateLimit({ intervalMs: 1000, burst: 6, maxSources: 64 });
    for (let i = 0; i < 100_000; i++) limit.allow(i, 0);
    expect(limit.sources).toBe(64);
    // the newest source still remembers its spent credit; the oldest has been forgotten (a fresh burst)
    for (let k = 0; k < 5; k++) limit.allow(99_999, 0);
    expect(limit.allow(99_999, 0)).toBe(false);
    expect(limit.allow(0, 0)).toBe(true);
    expect(limit.sources).toBe(64);
    // through the responder too
    const { r } = responder(1e9, 128);
    for (let i = 0; i < 10_000; i++) r.unreachable4(udp4(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, '10.244.77.1'));
    expect((r as unknown as { perSource: PerSourceRateLimit }).perSource.sources).toBe(128);
  });

  it('perSource false leaves only the global budget', () => {
    const r = new IcmpResponder(100, { perSource: false, now: () => 0 });
    expect(Array.from({ length: 150 }, () => sent(r.unreachable4(udp4('10.244.1.5', '10.244.77.1')))).filter(Boolean)).toHaveLength(100);
  });
});
