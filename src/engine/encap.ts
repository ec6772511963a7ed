/**
 * Batch encap: the outbound header copy done for a whole batch in one call (the addon's
 * encapBatch on the native path). The engine builds one 22-byte header template per peer of the
 * batch with the wire emitters, records each packet's template slot, and the call copies the
 * template in front of every packet, EtherType by the packet's IP version:
 *
 *   template = VXLAN(I flag, VNI) 8 | inner Ethernet dst = peer VTEP MAC 6 | src = ours 6 | EtherType 2
 *
 * encapBatchTs is the TypeScript twin of the native call (same arguments, same result), the
 * reference the differential test holds the addon to.
 */
import { VXLAN_HEADER_LEN, emitVxlan } from '../wire/vxlan.js';
import { ETHERNET_HEADER_LEN, EthernetField, EtherType, emitEthernet, type Mac } from '../wire/ethernet.js';
import type { Vtep } from './routes.js';

/** Bytes written in front of each packet: VXLAN + inner Ethernet. */
export const ENCAP_HEADER_LEN = VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN;
/** Where the EtherType sits inside a template. */
const ETHERTYPE_AT = VXLAN_HEADER_LEN + EthernetField.ETHERTYPE;

/**
 * For i < count with slots[i] ≥ 0: bufs[i][offset, offset + 22) = templates[slots[i] * 22, + 22), the
 * EtherType set from the IP version at bufs[i][offset + 22]; other versions are left untouched and
 * not counted. Returns the headers written. (The addon's encapBatch.)
 */
export type EncapBatchFn = (bufs: Uint8Array[], offset: number, count: number, slots: Int32Array, templates: Uint8Array) => number;

/** The header template of `peer` (EtherType IPv4 until the copy sets it per packet) into slot `slot`. */
export function writeEncapTemplate(templates: Buffer, slot: number, peer: Vtep, ourMac: Mac): void {
  const at = slot * ENCAP_HEADER_LEN;
  emitVxlan({ vni: peer.vni }, templates, at);
  emitEthernet({ dst: peer.vtepMac, src: ourMac, etherType: EtherType.IPV4 }, templates, at + VXLAN_HEADER_LEN);
}

/** The TypeScript twin of the addon's encapBatch (see EncapBatchFn). */
export const encapBatchTs: EncapBatchFn = (bufs, offset, count, slots, templates) => {
  if (count > bufs.length || count > slots.length) throw new RangeError(`encapBatch: count ${count} is past the ${Math.min(bufs.length, slots.length)} buffers/slots`);
  const ntemplates = Math.floor(templates.length / ENCAP_HEADER_LEN);
  for (let i = 0; i < count; i++) {
    const slot = slots[i]!;
    if (slot < 0) continue;
    if (slot >= ntemplates) throw new RangeError(`encapBatch: slots[${i}] = ${slot} is past the ${ntemplates} templates`);
    const length = bufs[i]!.length;
    if (offset + ENCAP_HEADER_LEN >= length) throw new RangeError(`encapBatch: bufs[${i}] (${length} bytes) has no packet after offset ${offset} + 22`);
  }
  let written = 0;
  for (let i = 0; i < count; i++) {
    const slot = slots[i]!;
    if (slot < 0) continue;
    const buf = bufs[i]!;
    const version = buf[offset + ENCAP_HEADER_LEN]! >> 4;
    if (version !== 4 && version !== 6) continue;
    buf.set(templates.subarray(slot * ENCAP_HEADER_LEN, (slot + 1) * ENCAP_HEADER_LEN), offset);
    const etherType = version === 4 ? EtherType.IPV4 : EtherType.IPV6;
    buf[offset + ETHERTYPE_AT] = etherType >> 8;
    buf[offset + ETHERTYPE_AT + 1] = etherType & 0xff;
    written++;
  }
  return written;
};
