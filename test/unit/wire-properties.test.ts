// Property tests (fast-check) for every wire parser: whatever the bytes and whatever offset and
// length a caller passes, check() returns a view or a WireError and never throws; every accessor
// and parse() of an accepted view read without throwing and inside the buffer; a view accepted at
// an offset is the view of the same bytes copied elsewhere. Inputs: random bytes and the kernel
// captures mutated (test/unit/fuzz-arbitraries.ts). A failure prints its seed and shrunk input.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WireError } from '../../src/packet/wire/error.js';
import { EthernetFrame } from '../../src/packet/wire/ethernet.js';
import { ArpPacket } from '../../src/packet/wire/arp.js';
import { Ipv4Packet } from '../../src/packet/wire/ipv4.js';
import { Ipv6Packet } from '../../src/packet/wire/ipv6.js';
import { Icmpv4Message } from '../../src/packet/wire/icmpv4.js';
import { Icmpv6Message } from '../../src/packet/wire/icmpv6.js';
import { TcpSegment } from '../../src/packet/wire/tcp.js';
import { UdpDatagram } from '../../src/packet/wire/udp.js';
import { VxlanHeader } from '../../src/packet/wire/vxlan.js';
import { VirtioNetHdr } from '../../src/packet/wire/virtio-net.js';
import {
  completeL4Checksum,
  completePartialL4Checksum,
  l4ChecksumState,
  repairPartialL4Checksum,
  setPartialL4Checksum,
} from '../../src/packet/wire/l4checksum.js';
import { kernelLayers, packetBytes, window } from '../support/fuzz-arbitraries.js';
import { exercise } from '../support/wire.js';

const RUNS = { numRuns: 3000 };

interface Parser {
  check(buf: Buffer, offset?: number, length?: number): object | WireError;
}
const parsers: Array<[string, Parser]> = [
  ['ethernet', EthernetFrame],
  ['arp', ArpPacket],
  ['ipv4', Ipv4Packet],
  ['ipv6', Ipv6Packet],
  ['icmpv4', Icmpv4Message],
  ['icmpv6', Icmpv6Message],
  ['tcp', TcpSegment],
  ['udp', UdpDatagram],
  ['vxlan', VxlanHeader],
  ['virtio-net', VirtioNetHdr],
];

/** Every value a view gives (getters, argument-less methods, parse()), as JSON: what it read. */
function readAll(view: object): string {
  exercise(view);
  const parsed = 'parse' in view && typeof view.parse === 'function' ? (view.parse as () => unknown)() : undefined;
  return JSON.stringify(parsed, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'bigint' ? String(v) : v));
}

describe.each(parsers)('%s parser properties', (_name, parser) => {
  it('check() never throws; an accepted view reads without throwing and stays inside the buffer', () => {
    let accepted = 0;
    fc.assert(
      fc.property(packetBytes, window, (buf, { offset, length }) => {
        for (const v of [parser.check(buf), parser.check(buf, offset, length), parser.check(buf, Math.max(0, offset))]) {
          if (v instanceof WireError) continue;
          accepted++;
          readAll(v);
          const { payloadOffset, payloadLength } = v as { payloadOffset?: number; payloadLength?: number };
          if (payloadOffset !== undefined && payloadLength !== undefined) {
            expect(payloadOffset).toBeGreaterThanOrEqual(0);
            expect(payloadOffset + payloadLength).toBeLessThanOrEqual(buf.length);
          }
        }
      }),
      RUNS,
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it('a view at an offset reads what the same bytes read at offset 0', () => {
    fc.assert(
      fc.property(packetBytes, fc.uint8Array({ minLength: 1, maxLength: 9 }), (buf, prefix) => {
        const here = parser.check(buf);
        const there = parser.check(Buffer.concat([Buffer.from(prefix), buf]), prefix.length, buf.length);
        expect(there instanceof WireError).toBe(here instanceof WireError);
        if (here instanceof WireError || there instanceof WireError) expect(there).toBe(here);
        else expect(readAll(there)).toBe(readAll(here));
      }),
      RUNS,
    );
  });
});

describe('l4checksum properties', () => {
  const fns = { l4ChecksumState, completeL4Checksum, repairPartialL4Checksum, completePartialL4Checksum, setPartialL4Checksum };

  it('no function throws, whatever the packet, offset and length', () => {
    fc.assert(
      fc.property(packetBytes, window, (buf, { offset, length }) => {
        for (const fn of Object.values(fns)) {
          fn(Buffer.from(buf), offset, length);
          fn(Buffer.from(buf), 0, buf.length);
        }
      }),
      RUNS,
    );
  });

  it('after completeL4Checksum a packet it located is valid, and it touched only the checksum field', () => {
    let completed = 0;
    fc.assert(
      fc.property(packetBytes, (buf) => {
        const b = Buffer.from(buf);
        if (!completeL4Checksum(b, 0, b.length)) {
          expect(b.equals(buf)).toBe(true);
          return;
        }
        completed++;
        expect(l4ChecksumState(b, 0, b.length)).toBe('valid');
        let changed = 0;
        for (let i = 0; i < b.length; i++) if (b[i] !== buf[i]) changed++;
        expect(changed).toBeLessThanOrEqual(2);
      }),
      RUNS,
    );
    expect(completed).toBeGreaterThan(0);
  });
});

describe('the kernel captures', () => {
  it('give the properties packets every parser accepts', () => {
    for (const [name, parser] of parsers) expect(kernelLayers.some((b) => !(parser.check(b) instanceof WireError)), name).toBe(true);
  });
});
