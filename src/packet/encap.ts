/**
 * Batch encap: the outbound header copy done for a whole batch in one call (the addon's
 * encapBatch on the native path). The engine builds one 22-byte header template per peer of the
 * batch with the wire emitters, records each packet's template slot and where its header goes, and
 * the call copies the template in front of every packet, EtherType by the packet's IP version:
 *
 *   template = VXLAN(I flag, VNI) 8 | inner Ethernet dst = peer VTEP MAC 6 | src = ours 6 | EtherType 2
 *
 * The packets are addressed inside one arena (an ArrayBuffer the read buffers are views of), so the
 * native call reads typed arrays only: no per-packet N-API call, which would cost more than the copy.
 * encapBatchTs is the TypeScript twin of the native call (same arguments, same result), the
 * reference the differential test holds the addon to.
 */
import { VXLAN_HEADER_LEN, emitVxlan } from './wire/vxlan.js';
import { ETHERNET_HEADER_LEN, EthernetField, EtherType, emitEthernet, type Mac } from './wire/ethernet.js';
import type { Vtep } from './routes.js';

/** Bytes written in front of each packet: VXLAN + inner Ethernet. */
export const ENCAP_HEADER_LEN = VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN;
/** Where the EtherType sits inside a template. */
const ETHERTYPE_AT = VXLAN_HEADER_LEN + EthernetField.ETHERTYPE;

/**
 * For i < count with slots[i] ≥ 0: arena[starts[i], + 22) = templates[slots[i] * 22, + 22), the
 * EtherType set from the IP version at arena[starts[i] + 22]; other versions are left untouched and
 * not counted. Returns the headers written; bad arguments throw before anything is written.
 */
export type EncapBatchFn = (arena: Uint8Array, starts: Int32Array, count: number, slots: Int32Array, templates: Uint8Array) => number;

/** The header template of `peer` (EtherType IPv4 until the copy sets it per packet) into slot `slot`. */
export function writeEncapTemplate(templates: Buffer, slot: number, peer: Vtep, ourMac: Mac): void {
  const at = slot * ENCAP_HEADER_LEN;
  emitVxlan({ vni: peer.vni }, templates, at);
  emitEthernet({ dst: peer.vtepMac, src: ourMac, etherType: EtherType.IPV4 }, templates, at + VXLAN_HEADER_LEN);
}

/** The TypeScript twin of the addon's encapBatch (see EncapBatchFn). */
export const encapBatchTs: EncapBatchFn = (arena, starts, count, slots, templates) => {
  if (!Number.isInteger(count) || count < 0 || count > starts.length || count > slots.length) throw new RangeError(`encapBatch: count must be an integer in [0, ${Math.min(starts.length, slots.length)}], got ${count}`);
  const ntemplates = Math.floor(templates.length / ENCAP_HEADER_LEN);
  for (let i = 0; i < count; i++) {
    const slot = slots[i]!;
    if (slot < 0) continue;
    if (slot >= ntemplates) throw new RangeError(`encapBatch: slots[${i}] = ${slot} is past the ${ntemplates} templates`);
    const start = starts[i]!;
    if (start < 0 || start + ENCAP_HEADER_LEN >= arena.length) throw new RangeError(`encapBatch: starts[${i}] = ${start} leaves no packet after the header in the ${arena.length}-byte arena`);
  }
  let written = 0;
  for (let i = 0; i < count; i++) {
    const slot = slots[i]!;
    if (slot < 0) continue;
    const at = starts[i]!;
    const version = arena[at + ENCAP_HEADER_LEN]! >> 4;
    if (version !== 4 && version !== 6) continue;
    arena.set(templates.subarray(slot * ENCAP_HEADER_LEN, (slot + 1) * ENCAP_HEADER_LEN), at);
    const etherType = version === 4 ? EtherType.IPV4 : EtherType.IPV6;
    arena[at + ETHERTYPE_AT] = etherType >> 8;
    arena[at + ETHERTYPE_AT + 1] = etherType & 0xff;
    written++;
  }
  return written;
};

/**
 * The engine's per-batch state for encapBatch: slots, starts and templates sized to the batch, and
 * the arena view of the ArrayBuffer the batch's buffers share. A packet whose buffer is not in that
 * arena (read buffers the engine did not allocate) is left to the per-packet emit: same bytes.
 * The read buffers are the same from batch to batch, so where each one starts is remembered.
 */
export class BatchEncap {
  slots = new Int32Array(0);
  starts = new Int32Array(0);
  templates = Buffer.alloc(0);
  arena: Uint8Array = new Uint8Array(0);
  /** The buffer whose start starts[i] holds (undefined: none yet, or the arena changed). */
  private known: Array<Buffer | undefined> = [];

  constructor(readonly encap: EncapBatchFn) {}

  /** Readies the state for a batch of `count` in `first`'s ArrayBuffer; every slot -1. */
  begin(first: Buffer | undefined, count: number): void {
    if (this.slots.length < count) {
      this.slots = new Int32Array(count);
      this.starts = new Int32Array(count);
      this.templates = Buffer.alloc(count * ENCAP_HEADER_LEN);
      this.known = [];
    }
    this.slots.fill(-1, 0, count);
    if (first !== undefined && this.arena.buffer !== first.buffer) {
      this.arena = new Uint8Array(first.buffer);
      this.known = [];
    }
  }

  /** Queues packet i (its header at buf[0]) for slot `slot`; false when buf is outside the arena. */
  add(i: number, buf: Buffer, slot: number): boolean {
    if (buf !== this.known[i]) {
      if (buf.buffer !== this.arena.buffer) return false;
      this.known[i] = buf;
      this.starts[i] = buf.byteOffset;
    }
    this.slots[i] = slot;
    return true;
  }

  /** One call for the batch. */
  run(count: number): number {
    return this.encap(this.arena, this.starts, count, this.slots, this.templates);
  }
}
