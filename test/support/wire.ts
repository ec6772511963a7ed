// Helpers shared by the test/unit/wire-*.test.ts suites: decoding the kernel-captured golden
// vectors, and the seeded fuzzing that runs every view over random bytes.
import { expect } from 'vitest';
import { WireError } from '../../src/packet/wire/error.js';
import { EthernetFrame, EtherType } from '../../src/packet/wire/ethernet.js';
import { Ipv4Packet } from '../../src/packet/wire/ipv4.js';
import { UdpDatagram } from '../../src/packet/wire/udp.js';
import { VXLAN_PORT_LINUX, VxlanHeader } from '../../src/packet/wire/vxlan.js';

/** The bytes of a hex dump such as `tcpdump -xx` prints; white space and line breaks are ignored. */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** The view a check() returned; throws (failing the test) if it refused the bytes instead. */
export function ok<T>(v: T | WireError): T {
  if (v instanceof WireError) throw new Error(`refused: ${v.reason}`);
  return v;
}

/**
 * Outer Ethernet → IPv4 → UDP 8472 → VXLAN (VNI 1) → inner Ethernet, keeping the outer IPv4
 * header too; expects each layer to be what flannel.1 sends.
 */
export function decapWithOuter(frame: Buffer): { outer: Ipv4Packet; inner: EthernetFrame } {
  const eth = ok(EthernetFrame.check(frame));
  expect(eth.etherType).toBe(EtherType.IPV4);
  const outer = ok(Ipv4Packet.check(frame, eth.payloadOffset, eth.payloadLength));
  const udp = ok(UdpDatagram.check(frame, outer.payloadOffset, outer.payloadLength));
  expect(udp.dstPort).toBe(VXLAN_PORT_LINUX);
  const vx = ok(VxlanHeader.check(frame, udp.payloadOffset, udp.payloadLength));
  expect(vx.validate()).toBeUndefined();
  expect(vx.vni).toBe(1);
  return { outer, inner: ok(EthernetFrame.check(frame, vx.payloadOffset, vx.payloadLength)) };
}

/** Outer Ethernet → IPv4 → UDP 8472 → VXLAN (VNI 1) → inner Ethernet. */
export function decap(frame: Buffer): EthernetFrame {
  return decapWithOuter(frame).inner;
}

/** Seeded floats in [0, 1) (mulberry32), so a failing fuzz case reproduces. */
export { mulberry32 as rng } from './random.js';

/** Calls every getter and every argument-less method of a view. */
export function exercise(view: object): void {
  for (const [name, d] of Object.entries(Object.getOwnPropertyDescriptors(Object.getPrototypeOf(view)))) {
    if (name === 'constructor') continue;
    if (d.get) d.get.call(view);
    else if (typeof d.value === 'function' && d.value.length === 0) d.value.call(view);
  }
}

/** `size` bytes drawn from `r` (one of rng()'s generators). */
export function randomBytes(r: () => number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j++) b[j] = Math.floor(r() * 256);
  return b;
}
