import { describe, it, expect } from 'vitest';
import { ARP_LEN, ArpField, ArpOp, ArpPacket, emitArp, type ArpRepr } from '../../src/packet/wire/arp.js';
import { WireError } from '../../src/packet/wire/error.js';
import { BROADCAST_MAC, EthernetFrame, EtherType, macFromString, macToString } from '../../src/packet/wire/ethernet.js';
import { ipv4FromString, ipv4ToString } from '../../src/packet/wire/ipv4.js';
import { loadTcpdumpHex } from '../support/fixtures.js';
import { decap, exercise, hex, ok, randomBytes, rng } from '../support/wire.js';

// Golden vectors: frames the Linux kernel's own VXLAN device (flannel.1, VNI 1, port 8472) sent
// over a veth underlay, captured with `tcpdump -xx` and printed with `tcpdump -vv`; the comment
// above each is tcpdump's decode of it.

/**
 * IP (tos 0x0, ttl 64, id 60761, offset 0, flags [none], proto UDP (17), length 78)
 * 198.18.0.1.39947 > 198.18.0.2.8472: [bad udp cksum 0x8c73 -> 0x519b!] OTV, flags [I] (0x08), overlay 0, instance 1
 * ARP, Ethernet (len 6), IPv4 (len 4), Request who-has 10.244.2.7 tell 10.244.1.0, length 28
 */
const ARP_REQUEST = hex(`
  3e1b6ca911926a315ae6cf8108004500004eed5900004011011ec6120001c61200029c0b2118003a8c73080000000000
  0100ffffffffffff0a580af40100080600010800060400010a580af401000af401000000000000000af40207
`);

/**
 * IP (tos 0x0, ttl 64, id 27243, offset 0, flags [none], proto UDP (17), length 78)
 * 198.18.0.2.39947 > 198.18.0.1.8472: [bad udp cksum 0x8c73 -> 0x2302!] OTV, flags [I] (0x08), overlay 0, instance 1
 * ARP, Ethernet (len 6), IPv4 (len 4), Reply 10.244.2.7 is-at 0a:58:0a:f4:02:00, length 28
 */
const ARP_REPLY = hex(`
  6a315ae6cf813e1b6ca9119208004500004e6a6b00004011840cc6120002c61200019c0b2118003a8c73080000000000
  01000a580af401000a580af40200080600010800060400020a580af402000af402070a580af401000af40100
`);

function arpOf(frame: Buffer): { eth: EthernetFrame; arp: ArpPacket } {
  const eth = decap(frame);
  expect(eth.etherType).toBe(EtherType.ARP);
  return { eth, arp: ok(ArpPacket.check(frame, eth.payloadOffset, eth.payloadLength)) };
}

describe('ArpPacket on kernel-captured packets', () => {
  it('decodes "Request who-has 10.244.2.7 tell 10.244.1.0"', () => {
    const { eth, arp } = arpOf(ARP_REQUEST);
    expect(eth.dstIsBroadcast()).toBe(true);
    expect(macToString(eth.src)).toBe('0a:58:0a:f4:01:00');
    expect(arp.operation).toBe(ArpOp.REQUEST);
    expect(macToString(arp.senderMac)).toBe('0a:58:0a:f4:01:00');
    expect(ipv4ToString(arp.senderIp)).toBe('10.244.1.0');
    expect(macToString(arp.targetMac)).toBe('00:00:00:00:00:00');
    expect(ipv4ToString(arp.targetIp)).toBe('10.244.2.7');
  });

  it('decodes "Reply 10.244.2.7 is-at 0a:58:0a:f4:02:00"', () => {
    const { eth, arp } = arpOf(ARP_REPLY);
    expect(eth.dstIs(macFromString('0a:58:0a:f4:01:00'))).toBe(true);
    expect(arp.parse()).toEqual({
      operation: ArpOp.REPLY,
      senderMac: macFromString('0a:58:0a:f4:02:00'),
      senderIp: ipv4FromString('10.244.2.7'),
      targetMac: macFromString('0a:58:0a:f4:01:00'),
      targetIp: ipv4FromString('10.244.1.0'),
    });
  });

  it('parse() then emitArp() reproduces the captured bytes (poisoned buffer)', () => {
    for (const frame of [ARP_REQUEST, ARP_REPLY]) {
      const { arp } = arpOf(frame);
      const out = Buffer.alloc(ARP_LEN + 4, 0xa5);
      expect(emitArp(arp.parse(), out, 2)).toBe(ARP_LEN);
      expect(out.subarray(2, 30)).toEqual(frame.subarray(arp.offset, arp.offset + ARP_LEN));
      expect([out[0], out[1], out[30], out[31]]).toEqual([0xa5, 0xa5, 0xa5, 0xa5]);
    }
  });

  it('builds the reply the kernel built, from the request', () => {
    const { arp } = arpOf(ARP_REQUEST);
    const reply: ArpRepr = {
      operation: ArpOp.REPLY,
      senderMac: macFromString('0a:58:0a:f4:02:00'),
      senderIp: arp.targetIp,
      targetMac: Buffer.from(arp.senderMac),
      targetIp: arp.senderIp,
    };
    const out = Buffer.alloc(ARP_LEN, 0xa5);
    emitArp(reply, out, 0);
    const captured = arpOf(ARP_REPLY).arp;
    expect(out).toEqual(ARP_REPLY.subarray(captured.offset, captured.offset + ARP_LEN));
  });

  it('reads in place (views, not copies) and ignores Ethernet padding', () => {
    const b = Buffer.alloc(46, 0);
    emitArp({ operation: 1, senderMac: BROADCAST_MAC, senderIp: 1, targetMac: BROADCAST_MAC, targetIp: 2 }, b, 0);
    const arp = ok(ArpPacket.check(b));
    b[ArpField.SENDER_MAC] = 0x02;
    expect(arp.senderMac[0]).toBe(0x02);
    expect(arp.length).toBe(46);
  });
});

describe('ArpPacket.check refusals', () => {
  const base = (): Buffer => {
    const { arp } = arpOf(ARP_REQUEST);
    return Buffer.from(arp.buf.subarray(arp.offset, arp.offset + ARP_LEN));
  };

  it('refuses every length below 28 as Truncated', () => {
    const b = base();
    for (let len = 0; len < ARP_LEN; len++) expect(ArpPacket.check(b, 0, len)).toBe(WireError.Truncated);
    expect(ArpPacket.check(b, 1, 28)).toBe(WireError.Truncated);
    expect(ArpPacket.check(b, -1, 28)).toBe(WireError.Truncated);
  });

  it('refuses anything but Ethernet/IPv4 as Unsupported', () => {
    const cases: [number, number, number][] = [
      [ArpField.HTYPE, 2, 6], // IEEE 802 hardware type
      [ArpField.PTYPE, 2, 0x86dd],
      [ArpField.HLEN, 1, 8],
      [ArpField.PLEN, 1, 16],
    ];
    for (const [field, size, value] of cases) {
      const b = base();
      b.writeUIntBE(value, field, size);
      expect(ArpPacket.check(b)).toBe(WireError.Unsupported);
    }
  });

  it('accepts any operation (policy belongs to the caller)', () => {
    const b = base();
    b.writeUInt16BE(3, ArpField.OPERATION); // RARP request
    expect(ok(ArpPacket.check(b)).operation).toBe(3);
  });
});

describe('ArpPacket fuzz', () => {
  it('check(), every accessor and parse() never throw on random bytes (10 000 cases)', () => {
    const r = rng(0xa4b);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const size = Math.floor(r() * 64);
      const b = randomBytes(r, size);
      if (size >= 6 && r() < 0.8) b.writeUIntBE(0x000108000604, 0, 6); // htype, ptype, hlen, plen
      const offset = Math.floor(r() * 4) - 1;
      const length = Math.floor(r() * (size + 4)) - 2;
      for (const v of [ArpPacket.check(b), ArpPacket.check(b, offset, length)]) {
        if (v instanceof WireError) continue;
        accepted++;
        exercise(v);
        v.parse();
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});

describe('ArpPacket on the kernel fixtures (test/fixtures/kernel)', () => {
  it('vxlan-arp-request: "Request who-has 10.244.2.0 tell 10.244.1.0" (unicast probe)', () => {
    const fx = loadTcpdumpHex('vxlan-arp-request');
    expect(fx.summary).toContain('Request who-has 10.244.2.0 tell 10.244.1.0, length 28');
    const { eth, arp } = arpOf(fx.bytes);
    expect(macToString(eth.dst)).toBe('0a:58:0a:f4:02:00'); // unicast, through the FDB entry
    expect(arp.parse()).toEqual({
      operation: ArpOp.REQUEST,
      senderMac: macFromString('0a:58:0a:f4:01:00'),
      senderIp: ipv4FromString('10.244.1.0'),
      targetMac: Buffer.alloc(6),
      targetIp: ipv4FromString('10.244.2.0'),
    });
  });

  it('vxlan-arp-reply: "Reply 10.244.2.0 is-at 0a:58:0a:f4:02:00"', () => {
    const fx = loadTcpdumpHex('vxlan-arp-reply');
    expect(fx.summary).toContain('Reply 10.244.2.0 is-at 0a:58:0a:f4:02:00, length 28');
    const { arp } = arpOf(fx.bytes);
    expect(arp.operation).toBe(ArpOp.REPLY);
    expect(macToString(arp.senderMac)).toBe('0a:58:0a:f4:02:00');
    expect(ipv4ToString(arp.senderIp)).toBe('10.244.2.0');
    expect(macToString(arp.targetMac)).toBe('0a:58:0a:f4:01:00');
    expect(ipv4ToString(arp.targetIp)).toBe('10.244.1.0');
  });

  it('parse() then emitArp() reproduces both fixtures byte for byte (poisoned buffer)', () => {
    for (const name of ['vxlan-arp-request', 'vxlan-arp-reply']) {
      const fx = loadTcpdumpHex(name);
      const { arp } = arpOf(fx.bytes);
      const out = Buffer.alloc(ARP_LEN + 2, 0xa5);
      expect(emitArp(arp.parse(), out, 1)).toBe(ARP_LEN);
      expect(out.subarray(1, 29)).toEqual(fx.bytes.subarray(arp.offset, arp.offset + ARP_LEN));
      expect([out[0], out[29]]).toEqual([0xa5, 0xa5]);
    }
  });
});
