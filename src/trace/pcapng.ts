/**
 * pcapng writer for traces (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html).
 *
 *   Section Header Block   comment says what the interfaces are and how to decode port 8472
 *   Interface 0 (IDB)      LINKTYPE_RAW (101): inner IP packets, the TUN side
 *   Interface 1 (IDB)      LINKTYPE_RAW (101): outer packets, the underlay side. The OS adds the
 *                          outer IPv4/UDP headers, so vxtun never sees them: the writer rebuilds
 *                          them from the socket endpoints (DF set, TTL 64, UDP checksum 0 as
 *                          RFC 7348 recommends), so Wireshark shows IPv4 / UDP / VXLAN / Ethernet / IP.
 *   Enhanced Packet Blocks one per distinct bytes along a journey; the comment names the node,
 *                          the observation point(s) and the verdict.
 *
 * Wireshark and tshark decode VXLAN only on UDP 4789 by default; Linux and flannel use 8472:
 *   tshark -r trace.pcapng -d udp.port==8472,vxlan
 * Little-endian throughout; timestamps in microseconds (the default if_tsresol).
 */
import { openSync, writeSync, closeSync } from 'node:fs';
import { internetChecksum } from '../packet/wire/checksum.js';
import { ipv4FromString, isIpv4String } from '../packet/wire/ipv4.js';
import type { Journey, TraceEvent } from './journey.js';
import type { TraceItem } from './printer.js';
import { WallClock } from './time.js';

const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 0x00000001;
const BT_EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const LINKTYPE_RAW = 101;
export const IFACE_INNER = 0;
export const IFACE_OUTER = 1;

const OPT_END = 0;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;

export const SECTION_COMMENT =
  'vxtun trace. Interface 0: inner IP packets on the TUN side (raw IP). Interface 1: the underlay ' +
  '(raw IP; outer IPv4/UDP headers rebuilt by vxtun from the socket endpoints, UDP checksum 0). ' +
  'VXLAN runs on UDP port 8472 (Linux/flannel default), which Wireshark decodes only on 4789 by default: ' +
  'tshark -r FILE -d udp.port==8472,vxlan (Wireshark: Decode As... UDP port 8472 -> VXLAN). ' +
  'Each packet comment names the node, the observation point(s) and the verdict (path=express: forwarded by the native express path).';

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

function options(list: Array<[number, string]>): Buffer {
  return Buffer.concat([...list.map(([c, v]) => option(c, Buffer.from(v, 'utf8'))), Buffer.alloc(4)]); // + opt_endofopt
}

function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(total, 4);
  body.copy(b, 8);
  b.writeUInt32LE(total, total - 4);
  return b;
}

export function sectionHeader(comment = SECTION_COMMENT): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4);
  fixed.writeUInt16LE(0, 6);
  fixed.writeBigInt64LE(-1n, 8); // section length unknown
  return block(BT_SHB, Buffer.concat([fixed, options([[OPT_COMMENT, comment], [SHB_USERAPPL, 'vxtun trace']])]));
}

export function interfaceDescription(linkType: number, name: string, description: string): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(linkType, 0);
  fixed.writeUInt32LE(0, 4); // no snap length limit
  return block(BT_IDB, Buffer.concat([fixed, options([[IF_NAME, name], [IF_DESCRIPTION, description]])]));
}

export function enhancedPacket(iface: number, timeMs: number, data: Buffer, comment?: string): Buffer {
  const fixed = Buffer.alloc(20);
  const us = BigInt(Math.round(timeMs * 1000));
  fixed.writeUInt32LE(iface, 0);
  fixed.writeUInt32LE(Number(us >> 32n), 4);
  fixed.writeUInt32LE(Number(us & 0xffffffffn), 8);
  fixed.writeUInt32LE(data.length, 12);
  fixed.writeUInt32LE(data.length, 16);
  const padded = Buffer.alloc(pad4(data.length));
  data.copy(padded);
  return block(BT_EPB, Buffer.concat([fixed, padded, comment ? options([[OPT_COMMENT, comment]]) : Buffer.alloc(0)]));
}

/** Outer IPv4 + UDP around a VXLAN payload, as the OS would have sent it. */
export function synthesizeOuter(src: { address: string; port: number }, dst: { address: string; port: number }, payload: Buffer): Buffer {
  if (!isIpv4String(src.address) || !isIpv4String(dst.address)) return payload; // an IPv6 underlay is not rebuilt
  const out = Buffer.alloc(28 + payload.length);
  out[0] = 0x45;
  out.writeUInt16BE(out.length, 2);
  out.writeUInt16BE(0x4000, 6); // DF: VTEPs do not fragment
  out[8] = 64;
  out[9] = 17;
  out.writeUInt32BE(ipv4FromString(src.address), 12);
  out.writeUInt32BE(ipv4FromString(dst.address), 16);
  out.writeUInt16BE(internetChecksum(out, 0, 20), 10);
  out.writeUInt16BE(src.port, 20);
  out.writeUInt16BE(dst.port, 22);
  out.writeUInt16BE(8 + payload.length, 24);
  payload.copy(out, 28);
  return out;
}

function endpoints(ev: TraceEvent, j: Journey): { src: { address: string; port: number }; dst: { address: string; port: number } } {
  const self = ev.local ?? { address: j.node.publicIp, port: j.node.port };
  const other = ev.remote ?? (ev.peer ? { address: ev.peer.address, port: ev.peer.port } : { address: '0.0.0.0', port: j.node.port });
  const outgoing = ev.point === 'encap' || ev.point === 'udp-send' || ev.point === 'answer';
  return outgoing ? { src: self, dst: other } : { src: other, dst: self };
}

/** The packets a journey contributes: consecutive points with identical bytes become one packet. */
export function journeyPackets(j: Journey): Array<{ iface: number; t: number; data: Buffer; comment: string }> {
  const out: Array<{ iface: number; t: number; data: Buffer; comment: string }> = [];
  let group: TraceEvent[] = [];
  const flush = (): void => {
    const last = group[group.length - 1];
    if (!last || last.bytes === undefined) return;
    const raw = Buffer.from(last.bytes, 'base64');
    const data = last.vxlan ? (() => { const e = endpoints(last, j); return synthesizeOuter(e.src, e.dst, raw); })() : raw;
    const route = group.find((e) => e.route)?.route ?? (last.peer ? j.events.find((e) => e.route)?.route : undefined);
    const extra = [
      route ? `route=${route}` : '',
      last.peer ? `peer=${last.peer.address}` : '',
      last.fixes?.length ? `fixes=${last.fixes.join(',')}` : '',
      last.express ? 'path=express' : '',
    ].filter(Boolean);
    const comment = `vxtun node=${j.node.publicIp} dir=${j.direction} point=${group.map((e) => e.point).join('+')} verdict=${last.verdict}${extra.length ? ` ${extra.join(' ')}` : ''}`;
    out.push({ iface: last.vxlan ? IFACE_OUTER : IFACE_INNER, t: last.t, data, comment });
  };
  for (const ev of j.events) {
    const prev = group[group.length - 1];
    if (prev && (prev.vxlan !== ev.vxlan || prev.bytes !== ev.bytes || ev.point === 'answer')) {
      flush();
      group = [];
    }
    group.push(ev);
  }
  flush();
  return out;
}

/**
 * How long (ms of packet time) the writer holds packets back to put them in time order: items come
 * in the order the trace client settles them (a lone journey waits its pairing window, 400 ms), not
 * the order their packets were seen.
 */
export const PCAPNG_REORDER_MS = 2000;

/** Appends trace items to a pcapng file in time order (held back PCAPNG_REORDER_MS, the rest on close). */
export class PcapngWriter {
  private readonly fd: number;
  private readonly wall = new WallClock();
  private held: Array<{ iface: number; epochMs: number; data: Buffer; comment: string; seq: number }> = [];
  private newest = -Infinity;
  private seq = 0;
  packets = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w', 0o600);
    writeSync(this.fd, sectionHeader());
    writeSync(this.fd, interfaceDescription(LINKTYPE_RAW, 'inner', 'vxtun: inner IP packets (TUN side)'));
    writeSync(this.fd, interfaceDescription(LINKTYPE_RAW, 'underlay', 'vxtun: outer IPv4/UDP/VXLAN (headers rebuilt from socket endpoints)'));
  }

  writeJourney(j: Journey): void {
    for (const p of journeyPackets(j)) {
      const epochMs = this.wall.epochMs(j.node, p.t);
      this.held.push({ iface: p.iface, epochMs, data: p.data, comment: p.comment, seq: this.seq++ });
      if (epochMs > this.newest) this.newest = epochMs;
    }
    this.release(this.newest - PCAPNG_REORDER_MS);
  }

  write(item: TraceItem): void {
    if (item.kind === 'journey') this.writeJourney(item.journey);
    else {
      this.writeJourney(item.sender);
      this.writeJourney(item.receiver);
    }
  }

  /** Writes the held packets seen before `until`, oldest first (equal times keep their arrival order). */
  private release(until: number): void {
    this.held.sort((a, b) => a.epochMs - b.epochMs || a.seq - b.seq);
    let n = 0;
    while (n < this.held.length && this.held[n]!.epochMs <= until) {
      const p = this.held[n++]!;
      writeSync(this.fd, enhancedPacket(p.iface, p.epochMs, p.data, p.comment));
      this.packets++;
    }
    if (n > 0) this.held = this.held.slice(n);
  }

  close(): void {
    this.release(Infinity);
    closeSync(this.fd);
  }
}
